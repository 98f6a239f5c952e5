"""``calibrate``: optimised steps for the user's own model, written as a registry folder the loader reads.

Pipeline (docs/calibrate.md): the model ``model(x, timestep)`` becomes a denoiser of the λ-grid
(:mod:`.model`); a teacher integrates it accurately from ``noises`` start noises (:mod:`.teacher`, cached);
for each NFE the starting grids (the registry's entry and the rules) are scored on the fit noises and the
best is optimised against the teacher, stopped by the held-out noises (:mod:`.optimize`); the grids and
their held-out figures are written as calibrated solver entries of a registry folder, new or an existing
(vendored) one they are merged into (:mod:`.write`).

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
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optsteps_loader.vocabulary import ENDINGS, ORDERS, SOLVERS

from ..registry.merge import MergeError, write_folder
from ..select.evaluate import paired
from ..select.refine import rule_grids, rule_starts
from ..solve.schedules import Schedule, get_schedule
from .model import (
    DT,
    CalibrationError,
    ModelDenoiser,
    ModelOutputError,
    PredictionTypeError,
    TeacherNotConvergedError,
    family_alpha_sigma,
    load_factory,
    probe_dtype,
)
from .optimize import Fit, grid_errors, optimise
from .teacher import Teacher, teacher
from .write import calibrated_entry, calibrated_files, optimizer_record

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
    """What :func:`calibrate` did: per NFE its :class:`~builder.calibrate.optimize.Fit` and held-out figures
    (``figures[nfe]``: {grid name: mean L2}, the calibrated grid as ``"calibrated"``), the registry entries,
    the teacher, the folder written (or None), model calls (per-sample evaluations) and wall time."""

    fits: dict[int, Fit]
    figures: dict[int, dict[str, float]]
    entries: list[dict[str, Any]]
    teacher: Teacher
    out: Path | None
    model_calls: int
    seconds: float
    dtype: str
    notes: list[str] = field(default_factory=list)


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def _quality(errs: dict[str, np.ndarray], solver: dict, model_id: str, held_out: int) -> dict[str, Any]:
    """The registry's quality record from held-out per-noise errors ({grid: errors}, ``"calibrated"`` first)."""
    mine = errs["calibrated"]
    baselines = {}
    for name, e in errs.items():
        if name == "calibrated":
            continue
        lr, se = paired({"m": mine}, {"m": e})
        baselines[name] = {
            "mean_l2": _sig(e.mean()),
            "median_l2": _sig(np.median(e)),
            "log_ratio": _sig(lr),
            "log_ratio_se": _sig(se),
        }
    rules = [n for n in errs if n not in ("calibrated", "registry")]
    best = min(rules, key=lambda n: float(np.log(errs[n]).mean()))
    lr_best, se_best = paired({"m": mine}, {"m": errs[best]})
    sampler = {"name": solver["solver"], "order": solver["order"]}
    if solver["solver"] == "unipc":
        sampler.update(variant=solver["variant"], corrector=True)
    return {
        "benchmark": "calibration",
        "problems": [model_id],
        "sampler": sampler,
        "mean_l2": _sig(mine.mean()),
        "median_l2": _sig(np.median(mine)),
        "baselines": baselines,
        "best_baseline": best,
        "mean_l2_best_baseline": _sig(errs[best].mean()),
        "mean_l2_uniform_lambda": _sig(errs["uniform-lambda"].mean()),
        "mean_l2_uniform_t": _sig(errs["uniform-t"].mean()),
        "ratio_uniform_lambda": _sig(math.exp(paired({"m": mine}, {"m": errs["uniform-lambda"]})[0])),
        "log_ratio_best_baseline": _sig(lr_best),
        "log_ratio_best_baseline_se": _sig(se_best),
        "worse_than_best_baseline": bool(lr_best > 2 * se_best),
        "held_out": {"noises": held_out, "metric": "L2 to the teacher in the schedule's coordinates"},
    }


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


def _registry_start(
    schedule: Schedule, nfe: int, order: int, solver: str, ending: str, profile: str | None, source: Any
) -> tuple[Any, str | None]:
    """(loader Steps or None, a note) of the registry entry the calibration starts from: the one ``get()``
    returns for the solver, order, ending and ``profile`` (never an earlier calibration's); the note says why
    there is none, or that it is the bound's entry (``get()``'s fallback where no solver entry exists)."""
    import warnings

    import optsteps_loader
    from optsteps_loader.errors import FallbackWarning, OptstepsError

    shift = schedule.variant_params.get("shift")
    kw = {"order": order, "solver": solver, "ending": ending, "source": source, "shift": shift}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FallbackWarning)  # said in the note instead
            steps = optsteps_loader.get(schedule.name, nfe, profile=profile or "generic", **kw)
    except OptstepsError as err:
        return None, f"no registry entry to start from at NFE {nfe}: {err}"
    if steps.requested is not None:
        return steps, f"the registry start at NFE {nfe} is the bound's entry ({steps.method}): no solver entry there"
    return steps, None


def teacher_answers(
    denoise: ModelDenoiser, tch: Teacher, lambda_end: float, ending: str, batch: int = 64
) -> torch.Tensor:
    """What a grid of ``ending`` is compared with (module docstring): the teacher's x at t_ε (``"eps"``), or
    the model's x̂₀ there (``"zero"``; one model call per noise)."""
    if ending == "eps":
        return tch.x_end
    lam = torch.tensor(lambda_end, dtype=DT)
    with torch.no_grad():
        return torch.cat([denoise(x, lam) for x in torch.split(tch.x_end, batch)])


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
    with thread_limits(threads):
        t0 = time.perf_counter()
        prediction = prediction or getattr(model, "prediction", None)
        shape = shape if shape is not None else getattr(model, "shape", None)
        if prediction is None or shape is None:
            raise CalibrationError("give prediction= and shape= (or a model with .prediction and .shape attributes)")
        if ending not in ENDINGS:
            raise CalibrationError(f"ending must be one of {ENDINGS}, got {ending!r}")
        if solver not in SOLVERS or order not in ORDERS:
            raise CalibrationError(f"solver must be 'unipc' or 'dpmpp' with order 1-3, got {solver!r} {order}")
        nfes = sorted({int(n) for n in ([nfe] if isinstance(nfe, int) else nfe)})
        if not nfes or nfes[0] < 2:
            raise CalibrationError(f"nfe must be at least 2, got {nfes}")
        held_out = noises // 2 if held_out is None else int(held_out)
        if not 1 <= held_out < noises:
            raise CalibrationError(f"need 1 <= held_out < noises, got held_out={held_out}, noises={noises}")
        sched = get_schedule(schedule, **({} if shift is None else {"shift": float(shift)}))
        shape = tuple(int(s) for s in shape)
        dtype = dtype or probe_dtype(model, shape, device)
        denoise = ModelDenoiser(model, sched, prediction, shape, dtype=dtype, device=device)
        model_id = model_id or f"{type(model).__module__}.{type(model).__qualname__}"
        lam0, lam1 = sched.lambda_start, sched.lambda_end
        tch = teacher(
            denoise,
            lambda_start=lam0,
            lambda_end=lam1,
            noises=noises,
            seed=seed,
            steps=teacher_steps,
            rtol=teacher_rtol,
            batch=batch,
            model_id=model_id,
            weights_hash=weights_hash,
            cache=cache,
        )
        n_fit = noises - held_out
        answers = teacher_answers(denoise, tch, lam1, ending, batch)
        fit = (tch.x_start[:n_fit], answers[:n_fit])
        ho = (tch.x_start[n_fit:], answers[n_fit:])
        spec = {"solver": solver, "order": order, "ending": ending} | ({"variant": "bh2"} if solver == "unipc" else {})
        scale = 1.0  # "zero": x̂₀ is in data coordinates for every family
        if ending == "eps":  # VP-normalised x at t_ε → the schedule's own coordinates
            scale = float(family_alpha_sigma(sched.family, torch.tensor(lam1, dtype=DT))[0]) / float(
                family_alpha_sigma("vp-continuous", torch.tensor(lam1, dtype=DT))[0]
            )
        identity = {"model": model_id, "weights_sha256": weights_hash, "noises": noises, "seed": seed}
        fits, figures, entries, notes = {}, {}, [], []
        for n in nfes:
            steps, why = _registry_start(sched, n, order, solver, ending, profile, registry)
            grids: dict[str, np.ndarray] = {}
            if steps is not None:
                lam = np.array(steps.lambdas, dtype=np.float64)
                lam[0] = lam0
                if ending == "eps":
                    lam[-1] = lam1
                grids["registry"] = lam
            if why is not None:
                notes.append(why)
            rules = rule_starts(sched, n, ending)
            wanted = ["registry", *rules] if start is None else ([start] if isinstance(start, str) else list(start))
            starts = {k: (grids | rules)[k] for k in wanted if k in grids or k in rules}
            if not starts:
                raise CalibrationError(f"none of the starts {wanted} exists at NFE {n} (rules: {sorted(rules)})")
            tables = rule_grids(sched, n, ending)
            baselines = {**grids, **tables}
            errs = {k: scale * grid_errors(g, denoise, *ho, spec, batch) for k, g in baselines.items()}
            best_rule = min((k for k in errs if k != "registry"), key=lambda k: errs[k].mean())
            bar = _progress_bar(progress, n, maxiter, errs, best_rule, scale)
            try:
                result = optimise(
                    starts,
                    denoise,
                    fit,
                    ho,
                    ends=(lam0, lam1, ending),
                    solver=spec,
                    batch=batch,
                    method=method,
                    maxiter=maxiter,
                    patience=patience,
                    restarts=restarts,
                    restart_seed=seed,
                    progress=None if bar is None else bar[1],
                )
            finally:
                if bar is not None:
                    bar[0].close()
            errs = {"calibrated": scale * grid_errors(result.lambdas, denoise, *ho, spec, batch), **errs}
            fits[n] = result
            figures[n] = {k: float(e.mean()) for k, e in errs.items()}
            calibration = {
                "identity": identity,
                "model": model_id,
                "weights_sha256": weights_hash,
                "prediction": prediction,
                "shape": list(shape),
                "dtype": str(dtype).removeprefix("torch."),
                "noises": {"fit": n_fit, "held_out": held_out, "seed": seed, "start": "sigma_T * randn"},
                "teacher": {
                    "solver": "unipc",
                    "variant": "bh2",
                    "order": 3,
                    "grid": "uniform-lambda",
                    "steps": tch.steps,
                    "answer": "x at t_eps" if ending == "eps" else "the model's x0-prediction at the answer at t_eps",
                    "error_estimate": _sig(scale * tch.error),
                    "relative_error_estimate": _sig(tch.relative_error),
                },
                "start": result.start,
                "method": result.method,
                "method_reason": result.method_reason,
                "iterations": result.iterations,
                "stopped": result.message,
                "restarts": restarts,
                "restart": result.restart,
                "starts": len(starts),
                "held_out_start": _sig(scale * result.held_out_start),
            }
            quality = _quality(errs, spec, model_id, held_out)
            entries.append(
                calibrated_entry(
                    sched,
                    result.lambdas,
                    nfe=n,
                    order=order,
                    solver=solver,
                    ending=ending,
                    init=result.start,
                    optimizer=optimizer_record(result),
                    quality=quality,
                    calibration=calibration,
                )
            )
        path = None
        if out is not None:
            path = Path(out)
            try:
                write_folder(path, calibrated_files(path, sched, entries, base=registry))
            except MergeError as err:
                raise CalibrationError(str(err)) from None
        return CalibrationResult(
            fits, figures, entries, tch, path, denoise.calls, time.perf_counter() - t0, str(dtype), notes
        )


def _progress_bar(enabled: bool, nfe: int, maxiter: int, errs: dict, best_rule: str, scale: float):
    """(tqdm bar, callback) showing the held-out error against the start and the best rule; None if disabled."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=maxiter, desc=f"calibrate NFE {nfe}", unit="it", leave=True)
    rule = f"{best_rule} {errs[best_rule].mean():.4g}"

    def update(info: dict) -> None:
        bar.update(1)
        bar.set_postfix_str(
            f"held-out {scale * info['held_out']:.4g} best {scale * info['best']:.4g} "
            f"start {scale * info['start']:.4g} | {rule}"
        )

    return bar, update
