"""Pinned numerical kernels: the registry's bytes do not depend on the CPU or the core count that built them.

numpy, OpenBLAS (numpy's and scipy's), torch (its vectorised kernels, MKL, oneDNN) each choose SIMD code for
the CPU when they load. The AVX2 and AVX-512 paths of exp, log and dot products can round differently in the
last ulp, and the solve stage's trust-region iterations turn one ulp into another stopping point (measured:
``xtol`` instead of ``gtol`` after 47 instead of 27 iterations, the optimum 9e-9 apart in t). Every process
that computes registry bytes therefore runs one instruction-set level, **x86-64-v3** (AVX2 + FMA: every
x86 server CPU since 2013-2015, every CI runner), and one thread per library:

    NPY_ENABLE_CPU_FEATURES = X86_V3      numpy's dispatched loops stop at AVX2/FMA3 (numpy ≥ 2.4 names),
    NPY_DISABLE_CPU_FEATURES = (empty)    and none below it is turned off
    OPENBLAS_CORETYPE       = Haswell     OpenBLAS's AVX2 kernels, in numpy's and scipy's copies
    ATEN_CPU_CAPABILITY     = avx2        torch's vectorised (Sleef) kernels
    MKL_CBWR                = AVX2        MKL's conditional-numerical-reproducibility path (torch's BLAS)
    MKL_ENABLE_INSTRUCTIONS = AVX2
    ONEDNN_MAX_CPU_ISA      = AVX2
    OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = 1      reductions in one fixed order

glibc's libm (Python's ``math``, numpy's scalar fallbacks) picks its FMA variant on every x86-64-v3 CPU, so it
needs no setting. The libraries read these variables once, when they load, so they must be in the
environment before numpy is imported: ``python -m builder`` re-executes itself with them
(:func:`pin_this_process`), worker processes inherit them, and :func:`require_pinned` reads back what the
loaded libraries actually run before any registry bytes are written. Where the CPU cannot run the pinned
level (no AVX2, or not x86-64), the build goes on with a :class:`UnpinnedKernelsWarning`: its bytes may
differ from a pinned build's in the last digits.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import warnings
from typing import Any

PINNED_ENV: dict[str, str] = {
    "NPY_ENABLE_CPU_FEATURES": "X86_V3",
    "NPY_DISABLE_CPU_FEATURES": "",
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_REEXEC_MARK = "OPTSTEPS_KERNELS_PINNED"  # set on the re-executed process: never re-execute twice


class UnpinnedKernelsWarning(UserWarning):
    """Registry bytes computed with kernels other than the pinned ones (they may differ in the last digits)."""


def cpu_can_pin() -> bool:
    """Whether this CPU runs x86-64-v3 code (AVX2, FMA, BMI2 among the flags Linux reports)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return {"avx2", "fma", "bmi2", "movbe"} <= set(flags)


def pin_this_process(argv: list[str]) -> None:
    """Re-execute this Python process with :data:`PINNED_ENV` unless it already runs with it (call before
    numpy is imported). Does nothing where the CPU cannot pin (:func:`require_pinned` warns there)."""
    if not cpu_can_pin() or os.environ.get(_REEXEC_MARK) or _env_pinned():
        return
    env = {**os.environ, **PINNED_ENV, _REEXEC_MARK: "1"}
    os.execve(sys.executable, [sys.executable, *argv], env)


def pin_environment() -> None:
    """Put :data:`PINNED_ENV` in ``os.environ``: the libraries loaded after this call, and every process
    started from here, run the pinned kernels (for a test session, before anything imports numpy)."""
    os.environ.update(PINNED_ENV)


def _env_pinned() -> bool:
    return all(os.environ.get(k) == v for k, v in PINNED_ENV.items())


def unpinned_kernels() -> list[str]:
    """What the loaded numerical libraries run that differs from the pinned kernels (empty: all pinned)."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    problems = []
    features = np._core._multiarray_umath.__cpu_features__
    dispatch = np._core._multiarray_umath.__cpu_dispatch__
    above = [f for f in dispatch if f not in ("X86_V2", "X86_V3") and features.get(f)]
    if "X86_V3" not in dispatch or not features.get("X86_V3") or above:
        problems.append(f"numpy dispatches {above or dispatch} (pinned: X86_V3 only)")
    for pool in threadpool_info():
        arch, threads = pool.get("architecture"), pool["num_threads"]
        if pool.get("internal_api") == "openblas" and (arch != "Haswell" or threads != 1):
            problems.append(f"{pool['prefix']} runs {arch} kernels on {threads} threads (pinned: Haswell, 1)")
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        problems.append(f"torch runs {capability} kernels (pinned: AVX2)")
    if torch.get_num_threads() != 1:
        problems.append(f"torch runs {torch.get_num_threads()} threads (pinned: 1)")
    return problems


def require_pinned() -> None:
    """Refuse to compute registry bytes with unpinned kernels on a CPU that can pin them (a
    ``RuntimeError`` naming each difference and the fix); warn where the CPU cannot pin them."""
    if not cpu_can_pin():
        warnings.warn(
            f"this CPU ({platform.machine()}) cannot run the pinned x86-64-v3 kernels: the registry bytes built "
            "here may differ from the published ones in the last digits (`sweep --check` says where)",
            UnpinnedKernelsWarning,
            stacklevel=2,
        )
        return
    problems = unpinned_kernels()
    if problems:
        settings = " ".join(f"{k}={v}" for k, v in PINNED_ENV.items())
        raise RuntimeError(
            "registry bytes must come from the pinned numerical kernels, so that any CPU rebuilds them "
            f"byte-identical; this process runs: {'; '.join(problems)}. Run it through `python -m builder` "
            f"(which pins them), or set {settings} before Python starts"
        )


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional; only speed depends on it
        return None
    return ThreadpoolController()


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while grids are evaluated (if ``threadpoolctl`` is installed).

    The matrices of a grid's evaluation are small (B ≤ 512, K·D ≤ 640); multithreaded OpenBLAS spinning against torch's
    OpenMP threads made an evaluation ~10× slower on 2 cores. Parallelise across grids or processes.
    """
    controller = _blas_controller()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def fingerprint() -> str:
    """16 hex digits of the sha256 of float64 results computed through every kernel the pins choose: numpy's
    dispatched loops (exp, log, expm1, log1p), OpenBLAS and its LAPACK (a product, a solve), torch's vectorised
    kernels (exp, expm1, log, log1p, softplus, softmax), its BLAS (MKL: products of the mixture denoiser's shapes)
    and its LAPACK (a batched 3 × 3 solve, the samplers' coefficient systems).

    Two processes with the same fingerprint computed every probe to the same bits; a different fingerprint means
    the registry's bytes may differ between them in rounding-level figures (and, through an optimizer's path,
    now and then a grid). The spec's ``kernels`` field names the fingerprint of the machines a release rebuilds
    on, and ``sweep --check`` compares this machine's with it (:func:`fingerprint_difference`). The inputs are
    exact (uniform doubles from a seeded PCG64 stream, which numpy generates with integer arithmetic only)."""
    import hashlib

    import numpy as np
    import torch

    rng = np.random.Generator(np.random.PCG64(20261208))
    x = rng.random(4096) * 40.0 - 20.0
    a, b = rng.random((64, 256)) - 0.5, rng.random((256, 24)) - 0.5
    small, vec = rng.random((16, 8)) - 0.5, rng.random((8, 3)) - 0.5
    systems = rng.random((7, 3, 3)) + 3.0 * np.eye(3)
    rhs = rng.random((7, 3))
    results = [
        np.exp(x),
        np.log(np.abs(x)),
        np.expm1(x),
        np.log1p(np.abs(x)),  # numpy's loops
        a @ b,
        np.linalg.solve(systems, rhs[..., None]),  # OpenBLAS, its LAPACK
    ]
    tx, ta, tb = torch.from_numpy(x), torch.from_numpy(a), torch.from_numpy(b)
    results += [
        t.numpy()
        for t in (
            torch.exp(tx), torch.expm1(tx), torch.log(tx.abs()), torch.log1p(tx.abs()),
            torch.nn.functional.softplus(tx), torch.softmax(ta, dim=-1),
            ta @ tb, torch.from_numpy(small) @ torch.from_numpy(vec), ta.T @ ta,
            torch.linalg.solve(torch.from_numpy(systems), torch.from_numpy(rhs)),
        )
    ]  # fmt: skip
    digest = hashlib.sha256()
    for r in results:
        digest.update(np.ascontiguousarray(r, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def cpu_name() -> str:
    """The CPU's model name as Linux reports it (else the machine type)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        name = ""
    return name or platform.machine() or "unknown"


def fingerprint_difference(reference: str | None) -> str | None:
    """Why a rebuild in this process may differ from the release whose spec names the fingerprint
    ``reference``: a sentence naming both fingerprints and the fix, or None (the same, or no reference)."""
    if reference is None:
        return None
    here = fingerprint()
    if here == reference:
        return None
    return (
        f"this machine's numerical kernels round differently from those the release was built with (kernel "
        f"fingerprint {here}, the spec's {reference}; CPU: {cpu_name()}), so a rebuild here may differ in "
        "rounding-level figures and, through an optimizer's path, in a refined grid. Check on a machine where "
        f"`python -m builder kernels` prints {reference} (docs/registry-format.md, 'Which machines rebuild a release')"
    )
