"""The ``optsteps`` command through click's CliRunner (and once as ``python -m optsteps_loader``)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import optsteps_loader

click_testing = pytest.importorskip("click.testing")

from optsteps_loader import get  # noqa: E402
from optsteps_loader.cli import build_cli, main  # noqa: E402
from tests import registry_factory as factory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("fresh_loader_cache")  # an empty loader cache (tests/conftest.py)
REGISTRY_GRID = {"nfes": (3, 4, 5, 6, 8)}  # the `reg` fixture's grid (tests/conftest.py)


def run(*args: str):
    return click_testing.CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def test_list_table_and_json(reg):
    result = run("list", "--source", str(reg))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split(":")[0].split() == ["schedule", "params", "solver", "entries"]
    assert [c.strip() for c in lines[0].split("  ") if c.strip()] == [
        "schedule",
        "params",
        "solver entries: nfe",
        "bound entries: nfe",
        "orders",
        "p",
    ]
    assert any(line.split() == ["flow", "shift=3", "-", "3-6,", "8", "1,2,3", "0,1,2"] for line in lines)
    listing = json.loads(run("list", "--source", str(reg), "--format", "json").output)
    assert sorted(listing["schedules"]) == ["ddpm-linear", "flow", "vp-linear"] and listing["aliases"] == {}


def test_list_uses_the_environment_variable(reg, monkeypatch):
    monkeypatch.setenv("OPTSTEPS_REGISTRY_DIR", str(reg))
    assert "vp-linear" in run("list").output


def test_show_table(reg):
    result = run("show", "vp-linear", "--nfe", "6", "--source", str(reg))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("vp-linear nfe=6 order=3 p=1 solver=unipc ending=eps method=bound (data 2026.01.01)")
    assert lines[2].split()[:3] == ["i", "t", "lambda"] and len(lines) == 3 + 7
    assert lines[3].split()[0] == "0" and lines[-1].split()[0] == "6"


def test_show_json_is_the_whole_record(reg):
    result = run(
        "show",
        "flow",
        "--nfe",
        "4",
        "--shift",
        "3",
        "--order",
        "2",
        "--p",
        "0",
        "--source",
        str(reg),
        "--format",
        "json",
    )
    record = json.loads(result.output)
    steps = get("flow", 4, shift=3, order=2, p=0, source=reg)
    assert record["t"] == list(steps.t) and record["params"] == {"shift": 3.0}
    assert record["provenance"]["optimizer"]["starts"] == 1 and record["order"] == 2


def _assignment(line: str) -> tuple[str, list]:
    name, value = line.split("=", 1)
    return name, ast.literal_eval(value)


def test_show_diffusers_discrete_and_flow(reg):
    """Each printed block loads the entry for its scheduler's solver, order and ending (the blocks are executed
    against real schedulers in tests/test_integrations.py)."""
    out = run("show", "ddpm-linear", "--nfe", "5", "--source", str(reg), "--format", "diffusers").output
    steps = get("ddpm-linear", 5, source=reg)
    assert f"optsteps_loader.get('ddpm-linear', 5, order=3, p=1, source={str(reg)!r})" in out  # UniPC: this entry
    assert f"optsteps_loader.get('ddpm-linear', 5, order=3, solver='dpmpp', source={str(reg)!r})" in out
    assert f"optsteps_loader.get('ddpm-linear', 5, order=1, solver='dpmpp', source={str(reg)!r})" in out  # Euler
    assert steps.nfe == 5 and "5 model calls, ending at t_eps" in out
    out = run("show", "flow", "--nfe", "5", "--shift", "3", "--source", str(reg), "--format", "diffusers").output
    assert "use_flow_sigmas=True" in out and "shift=3" in out
    assert "get('flow', 5, order=1, shift=3, solver='dpmpp', ending='zero'" in out  # FlowMatchEuler
    out = run("show", "vp-linear", "--nfe", "5", "--source", str(reg), "--format", "diffusers").output
    assert "timesteps" not in out and "do not run it" in out  # continuous time: no diffusers scheduler


def test_show_diffusers_get_call_loads_the_entry_it_shows():
    """Beyond the solver entries `show` says so (FallbackWarning, on stderr), and each printed get() asks for
    the bound+denoise record it falls back to by its p, so it runs as printed without a warning."""
    result = run("show", "sd15", "--nfe", "31", "--order", "2", "--ending", "zero", "--format", "diffusers")
    assert result.exit_code == 0 and "FallbackWarning: get('sd15', 31" in result.stderr
    calls = sorted(set(re.findall(r"optsteps_loader\.get\([^)]*\)", result.stdout)))
    assert calls and all("p=1" in c and "ending='zero'" in c for c in calls)
    with pytest.warns(optsteps_loader.FallbackWarning):
        shown = get("sd15", 31, order=2, ending="zero")
    assert shown.method == "bound+denoise"
    unipc_call = next(c for c in calls if "order=2" in c and "solver" not in c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = eval(unipc_call, {"optsteps_loader": optsteps_loader})  # noqa: S307 - the printed call
    assert (loaded.sigmas, loaded.method, loaded.requested) == (shown.sigmas, shown.method, None)


def test_show_k_diffusion(reg):
    """N + 1 values and N calls: by default the sigma = 0 DPM++ 2M entry (k-diffusion's sample_dpmpp_2m),
    named; a t_eps entry gives its own nodes, no trailing 0 (one call more)."""
    out = run("show", "vp-linear", "--nfe", "4", "--source", str(reg), "--format", "k-diffusion").output
    name, sigmas = _assignment(out.splitlines()[-1])
    dpmpp_2m = get("vp-linear", 4, solver="dpmpp", order=2, ending="zero", source=reg)
    assert name == "sigmas" and sigmas == list(dpmpp_2m.sigmas)
    assert "solver=dpmpp" in out and "ending=zero" in out and "sample_dpmpp_2m" in out and sigmas[-1] == 0.0
    out = run("show", "vp-linear", "--nfe", "3", "--ending", "eps", "--source", str(reg), "--format", "k-diffusion")
    name, sigmas = _assignment(out.output.splitlines()[-1])
    assert sigmas == list(get("vp-linear", 3, solver="dpmpp", order=2, source=reg).sigmas)
    assert "3 model calls" in out.output and "no trailing 0" in out.output
    out = run("show", "flow", "--nfe", "3", "--ending", "eps", "--source", str(reg), "--format", "k-diffusion").output
    assert _assignment(out.splitlines()[-1])[1] == list(get("flow", 3, solver="dpmpp", order=2, source=reg).sigma_t)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "vp-lineer", "--nfe", "6"), "Did you mean 'vp-linear'"),
        (("show", "vp-linear", "--nfe", "7"), "python -m builder solve --schedule vp-linear --nfe 7"),
        (("show", "vp-linear", "--nfe", "0"), "nfe is the number of model calls, got 0; vp-linear"),
        (("show", "vp-linear", "--nfe", "6", "--order", "5"), "order must be 1, 2 or 3"),
        (("show", "vp-linear", "--nfe", "6", "--shift", "3"), "only applies to flow"),
    ],
)
def test_errors_are_one_line_without_traceback(reg, args, message):
    result = run(*args, "--source", str(reg))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.output.startswith("Error: ")


def test_usage_errors_exit_2(reg):
    assert run("show", "vp-linear", "--source", str(reg)).exit_code == 2  # --nfe missing
    assert run("show", "vp-linear", "--nfe", "six", "--source", str(reg)).exit_code == 2
    assert run("show", "vp-linear", "--nfe", "6", "--format", "csv", "--source", str(reg)).exit_code == 2


def test_verify_ok_and_failing(reg, tmp_path):
    result = run("verify", "--source", str(reg))
    assert result.exit_code == 0 and result.output.startswith(f"ok: {reg} (data 2026.01.01): 4 files")
    assert "schema: " in result.output and "pin: a local folder" in result.output
    broken = factory.make_registry(tmp_path, schedules=("vp-linear",))
    (broken / "v1" / "vp-linear.json").write_bytes(b"{}")
    result = run("verify", "--source", str(broken))
    assert result.exit_code == 1 and "sha256 mismatch" in result.output and "Traceback" not in result.output
    (broken / "v1" / "vp-linear.json").unlink()
    result = run("verify", "--source", str(broken), "--allow-missing")
    assert result.exit_code == 0 and "missing: v1/vp-linear.json" in result.output


def test_missing_registry(tmp_path):
    result = run("list", "--source", str(tmp_path / "none"))
    assert result.exit_code == 1 and "no registry at" in result.output


def test_main_and_version(reg, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and "0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["show", "nope", "--nfe", "3", "--source", str(reg)])
    assert done.value.code == 1 and "unknown schedule 'nope'" in capsys.readouterr().err


def test_main_without_click(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "click", None)
    with pytest.raises(SystemExit) as done:
        main(["list"])
    assert done.value.code == 2 and "pip install 'optsteps[cli]'" in capsys.readouterr().err


def test_python_dash_m(reg):
    command = [
        sys.executable,
        "-m",
        "optsteps_loader",
        "show",
        "vp-linear",
        "--nfe",
        "4",
        "--source",
        str(reg),
        "--format",
        "k-diffusion",
    ]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.splitlines()[-1].startswith("sigmas=[")
