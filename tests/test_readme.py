"""The README's promises, run as written: the demo command (on the committed registry), the Python snippet of
"Using the steps", the two commands a newcomer types, and the measured sweep time."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import optsteps_loader
from builder.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_commands_are_the_ones_ci_runs() -> None:
    blocks = _code_blocks("sh")
    setup = next(block for block in blocks if "-e '.[all]'" in block)
    tests = next(block for block in blocks if block.strip().startswith("python -m pytest"))
    assert 'pip install "torch==2.13.0"' in setup and setup.strip().endswith("python -m builder demo")
    assert tests.strip() == "python -m pytest"
    ci = (REPO / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and ci.strip().splitlines()[-1] == tests.strip()


def test_figures_live_in_the_generated_benchmarks_page() -> None:
    """The README is a user guide: measured timings live in docs/benchmarks.md, each section with the command
    that printed it (written by benchmarks/run.py), not as dated notes here."""
    assert len(README.splitlines()) <= 200
    timing = re.search(r"\d+ min \d+ s|\d(\.\d+)? ?(ms|µs)\b", README)
    assert not timing, f"{timing.group(0)!r}: a timing figure belongs in docs/benchmarks.md"
    page = (REPO / "docs" / "benchmarks.md").read_text()
    sections = re.findall(r"<!-- bench:([\w-]+) -->(.*?)<!-- /bench:\1 -->", page, flags=re.S)
    assert sections and all(re.search(r"Command: `python [^`]+` — \d{4}-\d\d-\d\d, ", body) for _, body in sections)
    assert "docs/benchmarks.md" in README


def test_using_the_steps_snippet_runs() -> None:
    snippet = next(block for block in _code_blocks("python") if "steps.timesteps" in block)
    namespace: dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    steps = namespace["steps"]
    assert steps.schedule == "scaled-linear" and steps.nfe == 8
    assert steps.timesteps[0] == 999 and list(steps.timesteps) == sorted(steps.timesteps, reverse=True)
    assert list(steps.sigmas) == sorted(steps.sigmas, reverse=True)
    assert steps.sigmas_with_zero()[-1] == 0.0


def test_readme_has_a_user_install_line_and_no_pointers_outside_the_repository() -> None:
    assert "`pip install .`" in README and '`pip install ".[torch]"`' in README
    assert "DESIGN.md" not in README and "METHOD.md" not in README and "../shared" not in README
    assert (REPO / "docs" / "method.md").is_file() and "docs/method.md" in README
    for model, key in [
        ("SDXL", "scaled-linear"),
        ("Diffusion 3", "shift=3"),
        ("FLUX", "resolution"),
        ("DDPM", "ddpm-linear"),
        ("EDM", "edm"),
    ]:
        row = next(line for line in README.splitlines() if line.startswith("|") and model in line)
        assert key in row, row
    for alias, a in optsteps_loader.aliases().items():  # the model table's profile column is the registry's
        row = next(line for line in README.splitlines() if line.startswith("|") and f"`{alias}`" in line)
        assert row.split("|")[4].strip().startswith(a.get("profile", "—")), row


def test_install_lines_install_what_they_say() -> None:
    """Each `pip install ".[EXTRA]"` of the Quick start names an extra of pyproject.toml that holds the
    packages the line says it adds; the diffusers glue is the extra with diffusers; a CPU torch line exists."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    packages = {name: {re.split(r"[<>=!~\[ ;]", r)[0].lower() for r in reqs} for name, reqs in extras.items()}
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    claims = re.findall(r'"\.\[(\w+)\]"`?:? adds ([^()]*)\(([^)]*)\)', quick)
    assert {extra for extra, _, _ in claims} >= {"torch", "diffusers", "cli", "builder"}, claims
    for extra, what, listed in claims:
        assert extra in extras, extra
        assert set(re.split(r",\s+|\s+and\s+", listed.strip())) <= packages[extra], (extra, listed)
        if "diffusers glue" in what:
            assert "diffusers" in packages[extra], extra
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in quick


def test_diffusers_snippet_runs_on_a_stand_in_pipeline() -> None:
    """The snippet as printed, with the two lines that need a downloaded model replaced: a stand-in `pipe`
    holding Stable Diffusion's scheduler, and the pipeline call replaced by its scheduler loop."""
    diffusers = pytest.importorskip("diffusers")
    import types

    import torch

    snippet = next(block for block in _code_blocks("python") if "configure_scheduler(pipe.scheduler" in block)
    assert "import optsteps_loader" in snippet
    kept = [
        line.replace("StableDiffusionPipeline, ", "")  # importing it needs transformers
        for line in snippet.splitlines()
        if not line.startswith(("pipe = StableDiffusionPipeline", "image = pipe("))
    ]
    scheduler = diffusers.PNDMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    namespace: dict[str, object] = {"pipe": types.SimpleNamespace(scheduler=scheduler)}
    exec(compile("\n".join(kept), "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    configured = namespace["pipe"].scheduler
    configured.set_timesteps(8, device="cpu")  # what the pipeline does with num_inference_steps=8
    calls = []
    x = torch.randn(1, 4, 2, 2)
    for t in configured.timesteps:
        calls.append(int(t))
        x = configured.step(torch.tanh(x), t, x).prev_sample
    assert calls == list(optsteps_loader.get("sd15", 8, order=2, ending="zero").timesteps)  # final_sigmas_type


def test_comfyui_shim_exports_the_mappings() -> None:
    shim = next(block for block in _code_blocks("python") if "NODE_CLASS_MAPPINGS" in block)
    namespace: dict[str, object] = {}
    exec(compile(shim, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert "OptstepsScheduler" in namespace["NODE_CLASS_MAPPINGS"]
    assert set(namespace["__all__"]) == {"NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"}
    from optsteps_loader.comfyui import MODEL_TYPES

    usage = (REPO / "docs" / "usage.md").read_text()
    listed = re.findall(r'"([^"]+)"', usage.split("Model types:", 1)[1].split("Install", 1)[0].replace("\n", " "))
    assert listed == list(MODEL_TYPES)  # docs/usage.md names every model type the node offers, in its order


@pytest.mark.slow  # a live solve and measurement (about 25 s)
@pytest.mark.parametrize("schedule", ["vp-linear"])
def test_demo_solves_loads_and_measures(schedule: str) -> None:
    """`python -m builder demo`: the shipped entry beats uniform-λ on the digits mixture beyond noise."""
    result = CliRunner().invoke(cli, ["demo", "--schedule", schedule, "--nfe", "6"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"schedule {schedule}, 6 steps (NFE)" in out and "live solve of the paper's bound" in out
    steps = optsteps_loader.get(schedule, 6)
    assert f"timesteps = {list(steps.timesteps)}" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("optsteps (registry)"))
    ratio, se = re.search(r"([\d.]+)x ± ([\d.]+)", row).groups()
    # ratio is exp(log-ratio) to uniform-λ; "beyond noise": log(ratio) + 2 se < 0
    assert float(ratio) < 1.0 and math.log(float(ratio)) + 2 * float(se) < 0, row
