"""The registry's bytes do not depend on the CPU or the thread count (builder.kernels): a builder run under
another CPU's kernels gives the same output, an unpinned process may not compute registry bytes, and
``sweep --check`` says how much a rebuild differs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.kernels import PINNED_ENV, cpu_can_pin
from builder.registry.sweep.compare import describe, field_differences

ROOT = Path(__file__).resolve().parents[1]
# what another x86 CPU (or a machine with other defaults) loads: pre-AVX2 OpenBLAS and numpy loops, torch
# without its vectorised kernels, MKL's generic path, two threads per library
OTHER_CPU = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Nehalem",
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
}
needs_pin = pytest.mark.skipif(not cpu_can_pin(), reason="this CPU cannot run the pinned x86-64-v3 kernels")


def _run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    base = {k: v for k, v in os.environ.items() if k not in PINNED_ENV and not k.startswith("OPTSTEPS_")}
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_pin
def test_a_solve_under_another_cpus_kernels_gives_the_same_numbers():
    args = ["-m", "builder", "solve", "--schedule", "vp-linear", "--nfe", "5", "--order", "1", "--p", "0", "--json"]
    here, there = (json.loads(_run(args, env)) for env in ({}, OTHER_CPU))
    here.pop("seconds"), there.pop("seconds")
    assert here == there  # trust-constr's path included: nit, message, every node


@needs_pin
def test_a_refine_under_another_cpus_kernels_writes_the_same_bytes(tmp_path):
    args = ["-m", "builder", "refine", "--schedule", "sd3", "--nfe", "3", "--profile", "latent"]
    args += ["--solver", "unipc", "--order", "3", "--maxiter", "2", "--out"]
    for name, env in (("here", {}), ("there", OTHER_CPU)):
        _run([*args, str(tmp_path / name)], env)
    files = sorted(p.relative_to(tmp_path / "here") for p in (tmp_path / "here").rglob("*.json"))
    assert files and all((tmp_path / "here" / f).read_bytes() == (tmp_path / "there" / f).read_bytes() for f in files)


@needs_pin
def test_the_kernel_fingerprint_is_stable_and_sees_the_blas_branch():
    """MKL_CBWR=AVX2 and COMPATIBLE round torch's float64 products differently on Intel and AMD CPUs alike
    (measured on a Xeon with AVX-512 and an EPYC): the fingerprint sees MKL."""
    code = "from builder.kernels import fingerprint; print(fingerprint())"
    pinned = [_run(["-c", code], PINNED_ENV) for _ in range(2)]
    other = _run(["-c", code], {**PINNED_ENV, "MKL_CBWR": "COMPATIBLE"})
    assert pinned[0] == pinned[1] and len(pinned[0].strip()) == 16 and other != pinned[0]


@needs_pin
def test_an_unpinned_process_may_not_compute_registry_bytes(tmp_path):
    code = (
        "from builder.kernels import require_pinned\n"
        "try:\n    require_pinned()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    out = _run(["-c", code], OTHER_CPU)
    assert "Nehalem kernels on 2 threads" in out and "python -m builder" in out
    assert _run(["-c", code], PINNED_ENV) == ""


def test_check_reports_the_stage_that_diverged_and_by_how_much():
    entry = {"nfe": 5, "order": 3, "p": 1, "lambda": [-3.0, 1.0, 2.5], "optimizer": {"nit": 27, "message": "gtol"}}
    solver = {"nfe": 5, "order": 3, "solver": "dpmpp", "ending": "zero", "lambda": [-3.0, 0.5]}
    old = {"entries": [entry], "solver_entries": [solver], "data_version": "a"}
    new = json.loads(json.dumps(old))
    new["solver_entries"][0]["lambda"][1] *= 1 + 4e-16
    text = describe("v1/x.json", json.dumps(old).encode(), json.dumps(new).encode())
    assert "first diverged in the refine (solver entries) stage" in text and "lambda 4.4e-16" in text
    new["entries"][0]["optimizer"] = {"nit": 47, "message": "xtol"}
    text = describe("v1/x.json", json.dumps(old).encode(), json.dumps(new).encode())
    assert "first diverged in the solve/finalize (bound entries) stage" in text
    assert "optimizer.message changed" in text and "optimizer.nit 4.3e-01" in text
    assert field_differences({"a": [1, 2]}, {"a": [1, 2, 3]}) == {"a": "changed"}
    # a field present on one side only does not shift the comparison of the fields after it
    assert field_differences({"a": 1, "b": {"c": 2.0}}, {"b": {"c": 2.0}}) == {"a": "changed"}
