"""``calibrate``: optimised steps for the user's own model, written as a registry folder the loader reads.

Pipeline (docs/calibrate.md): the model ``model(x, timestep)`` becomes a denoiser of the λ-grid
(:mod:`.model`); a teacher integrates it accurately from ``noises`` start noises (:mod:`.teacher`, cached);
for each NFE the starting grids (the registry's entry and the rules) are scored on the fit noises and the
best is optimised against the teacher, stopped by the held-out noises (:mod:`.optimize`); the grids and
their held-out figures are written as calibrated solver entries of a registry folder, new or an existing
(vendored) one they are merged into (:mod:`.write`). :func:`calibrate` drives these steps (:mod:`.steps`) over
its arguments, checked and completed from the model once (:mod:`.settings`).

**Endings.** ``"eps"``: the sampler ends at t_ε and is compared with the teacher's x at t_ε. ``"zero"`` (a
last step to σ = 0, what diffusers with ``final_sigmas_type="zero"``, k-diffusion and ComfyUI run): the
sampler's answer is the model's x̂₀ at its last node, compared with the model's x̂₀ at the teacher's x at
t_ε — the sample a σ = 0 ending converges to as the steps are refined, and the answer of the schedule's
smallest trained noise level (the model is never asked below it). Errors are then in data coordinates.

Cost in per-sample model evaluations: noises · 1.5 M for the teacher (M steps and the M/2 check), then
per NFE N about N · (starts · fit + baselines · held-out) to score, and per iteration N · (3 fit + held-out)
with gradients (a backward pass costs about two forwards) or N · (k fit + held-out) derivative-free (k
loss evaluations per Nelder–Mead iteration, 1–2 on average). Every call is counted in ``model_calls``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy.optimize import OptimizeResult

from .model import (
    CalibrationError,
    ModelDenoiser,
    ModelOutputError,
    PredictionTypeError,
    TeacherNotConvergedError,
    load_factory,
)
from .settings import resolve
from .steps import (
    baseline_errors,
    choose_starts,
    fit_nfe,
    measured_problem,
    model_teacher,
    registry_start,
    teacher_answers,
)
from .teacher import Teacher
from .write import calibrated_entry, write_entries

__all__ = [
    "CalibrationError",
    "CalibrationResult",
    "ModelOutputError",
    "PredictionTypeError",
    "TeacherNotConvergedError",
    "calibrate",
    "load_factory",
    "teacher_answers",
]


@dataclass
class CalibrationResult:
    """What :func:`calibrate` did: per NFE its fit (:func:`~builder.calibrate.optimize.optimise`'s
    ``OptimizeResult``, ``x`` the calibrated λ-grid) and held-out figures (``figures[nfe]``: {grid name: mean
    L2}, the calibrated grid as ``"calibrated"``), the registry entries, the teacher, the folder written (or
    None), model calls (per-sample evaluations) and wall time."""

    fits: dict[int, OptimizeResult]
    figures: dict[int, dict[str, float]]
    entries: list[dict[str, Any]]
    teacher: Teacher
    out: Path | None
    model_calls: int
    seconds: float
    dtype: str
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def thread_limits(threads: int):
    """torch's intra-op threads and the BLAS and OpenMP thread pools (threadpoolctl) at ``threads`` while the
    block runs, torch's count restored after.

    A calibration is thousands of small model calls and optimiser steps: pools of one thread per core spin
    against each other and against other processes. On a busy 2-core machine the digits calibration at NFE 5
    and 8 took 42-87 s with torch's default count and 6-14 s with one thread (docs/calibrate.md, "Threads").
    Raise it for a large model on the CPU, where one call is big enough to share.
    """
    from threadpoolctl import threadpool_limits

    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise CalibrationError(f"threads must be a positive int, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def calibrate(
    model: Callable[..., Any],
    *,
    schedule: str,
    nfe: int | Sequence[int],
    prediction: str | None = None,
    shape: Sequence[int] | None = None,
    shift: float | None = None,
    solver: str = "unipc",
    order: int = 3,
    ending: str = "eps",
    noises: int = 64,
    held_out: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    start: str | Sequence[str] | None = None,
    profile: str | None = None,
    out: str | Path | None = None,
    teacher_steps: int = 200,
    teacher_rtol: float = 1e-3,
    batch: int = 64,
    method: str = "auto",
    maxiter: int = 100,
    patience: int = 10,
    restarts: int = 0,
    model_id: str | None = None,
    weights_hash: str | None = None,
    registry: Any = None,
    cache: bool | str | Path = True,
    progress: bool = True,
    threads: int = 1,
) -> CalibrationResult:
    """Calibrate ``schedule``'s steps at each ``nfe`` for ``model`` and write them to ``out`` (docs/calibrate.md).

    ``model(x, timestep)`` takes x of shape (B, *shape) and the schedule's time input (``timesteps`` of the
    registry format), returns the ``prediction`` (``epsilon``, ``sample``, ``v``, ``flow``); conditioning and
    guidance live inside it. ``shape``/``prediction`` default to the model's attributes of those names.
    ``start``: None (the registry entry, from ``registry`` as the loader's ``source``, and every rule), or
    names among ``"registry"`` and the rules; ``profile``: which registry entry starts (``"latent"``,
    ``"pixel"``; default the generic one). ``held_out`` noises (default half) are never fitted. ``out``: a new
    folder, or an existing registry folder the entries are merged into (a vendored copy).
    ``method``: ``"auto"`` (measured), ``"gradient"`` or ``"derivative-free"``; ``restarts``: more runs from
    perturbed starts, the best held-out one kept (:func:`~builder.calibrate.optimize.optimise`). ``threads``:
    torch's intra-op threads and the BLAS / OpenMP pools during the run (:func:`thread_limits`). Raises
    :class:`CalibrationError` subclasses naming the problem; on any error ``out`` is left as it was.
    """
    # the keyword arguments as given (the first statement: locals() holds the parameters alone)
    arguments = {name: value for name, value in locals().items() if name not in ("model", "threads")}
    with thread_limits(threads):
        t0 = time.perf_counter()
        s = resolve(model, arguments)
        denoise = ModelDenoiser(model, s.schedule, s.prediction, s.shape, dtype=s.dtype, device=s.device)
        tch = model_teacher(denoise, s)
        problem = measured_problem(denoise, tch, s)
        fits, figures, entries, notes = {}, {}, [], []
        for n in s.nfes:
            from_registry, note = registry_start(s, n)
            notes += [] if note is None else [note]
            starts = choose_starts(s, n, from_registry)
            errs = baseline_errors(problem, s, n, from_registry)
            fits[n] = fit = fit_nfe(problem, s, n, starts, errs)
            errs = {"calibrated": problem.held_out_errors(fit.x), **errs}
            figures[n] = {name: float(e.mean()) for name, e in errs.items()}
            entry = calibrated_entry(s, fit, nfe=n, errs=errs, teacher=tch, starts=len(starts), scale=problem.scale)
            entries.append(entry)
        path = write_entries(s, entries)
        seconds = time.perf_counter() - t0
        return CalibrationResult(fits, figures, entries, tch, path, denoise.calls, seconds, str(s.dtype), notes)
