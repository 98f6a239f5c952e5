"""The wheel installs the builder under the project's own name (``optsteps_builder``), never a top-level
``builder``: the builder imports itself relatively, so a copy under another name runs without any module
called ``builder``, and ``optsteps calibrate`` reaches it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from builder.kernels import PINNED_ENV

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_maps_the_builder_to_the_projects_name():
    tomllib = pytest.importorskip("tomllib")
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["sources"] == {"builder": "optsteps_builder"}
    assert set(wheel["packages"]) == {"optsteps_loader", "builder"}
    # an editable install cannot rename a package (hatch refuses): it puts the checkout on sys.path instead
    assert wheel["dev-mode-dirs"] == ["."]


def test_the_builder_runs_under_another_name(tmp_path):
    shutil.copytree(REPO / "builder", tmp_path / "optsteps_builder", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import sys\n"
        "import optsteps_builder.cli, optsteps_builder.calibrate, optsteps_builder.select.promise\n"
        "import optsteps_builder.registry.sweep, optsteps_builder.demo, optsteps_builder.profiles\n"
        "own = sorted(m for m in sys.modules if m == 'builder' or m.startswith('builder.'))\n"
        "assert not own, own\n"
        "assert optsteps_builder.cli.__file__.startswith(sys.argv[1])\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    unpinned = {k: v for k, v in os.environ.items() if k not in PINNED_ENV and not k.startswith("OPTSTEPS_")}
    main = subprocess.run(  # re-executes itself with the pinned kernels, under its own name
        [sys.executable, "-m", "optsteps_builder", "--help"], cwd=tmp_path, env=unpinned, capture_output=True, text=True
    )
    assert main.returncode == 0 and "python -m optsteps_builder" in main.stdout, main.stderr[-2000:]
    helped = subprocess.run(
        [sys.executable, "-m", "optsteps_loader", "calibrate", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "Usage: optsteps calibrate" in helped.stdout, helped.stderr[-2000:]


@pytest.mark.slow  # builds the wheel
def test_the_built_wheel_has_no_top_level_builder(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=REPO,
        check=True,
    )
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("optsteps-")} == {"optsteps_builder", "optsteps_loader"}
    assert "optsteps_loader/registry/index.json" in names and "optsteps_builder/registry/spec.json" in names
