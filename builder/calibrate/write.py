"""Calibrated grids as solver entries of a registry folder (docs/registry-format.md, docs/calibrate.md).

A calibrated entry is a *solver entry* (:func:`builder.registry.entry.solver_entry`: t, λ, α, σ, σ/α and
timesteps from the schedule, the solver, order and ending it was calibrated for) with

- ``method: "calibrated"``, ``init``: the start the optimisation began from (``registry`` or a rule or
  table name);
- ``optimizer``: the optimiser (``L-BFGS-B`` with gradients, ``Nelder-Mead`` without), its status, iterations
  and loss evaluations, and the fit loss log(mean L2 / the start's mean L2) before (0) and after;
- ``quality``: the held-out figures in the registry's quality shape (benchmark ``"calibration"``): mean and
  median L2 to the teacher, and per baseline (the starting registry entry as ``registry``, every rule and
  applicable table) its mean/median L2 and the entry's paired log-ratio with its standard error;
- ``calibration``: model identifier, weights hash, prediction, shape, noises (fit / held-out / seed), the
  teacher (solver, steps, what its answer is, error estimate), the method that ran and why, iterations.

``input_hash`` adds the calibration's identity (model, weights, noises, seed) to the solver entry's key.
The loader's key of a calibrated entry is ``("calibrated", solver, order, ending, nfe)``, and ``get()``
returns it before the profile and generic entries of the same solver, order, ending and NFE.

:func:`calibrated_entry` builds one from the optimisation's result and held-out errors (with
:func:`optimizer_record`, :func:`quality_record`, :func:`calibration_record`). :func:`calibrated_files` lays
them out with :mod:`builder.registry.merge`: a new folder holding the base registry's file for the schedule
variant, or an existing (vendored) registry folder they are merged into; :func:`write_entries` writes that.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from .. import __version__
from ..registry.entry import solver_entry
from ..registry.merge import MergeError, merged_files, write_folder
from ..rounding import significant
from ..select.evaluate import paired
from ..solve.schedules import Schedule
from .model import CalibrationError
from .settings import Settings
from .teacher import Teacher

__all__ = [
    "calibrated_entry",
    "calibrated_files",
    "calibration_record",
    "optimizer_record",
    "quality_record",
    "write_entries",
]


def calibrated_entry(
    settings: Settings,
    fit: OptimizeResult,
    *,
    nfe: int,
    errs: dict[str, np.ndarray],
    teacher: Teacher,
    starts: int,
    scale: float,
) -> dict[str, Any]:
    """The calibrated solver entry of ``fit``'s grid at ``nfe`` (module docstring); λ's endpoints are the
    schedule's own. ``errs``: held-out per-noise errors (:func:`quality_record`); ``starts``, ``scale``: as
    :func:`calibration_record` takes them."""
    chain = types.SimpleNamespace(solver=settings.solver, order=settings.order, ending=settings.ending, profile=None)
    record = {
        "nfe": int(nfe),
        "lambda": [float(v) for v in np.asarray(fit.x, dtype=np.float64)],
        "method": "calibrated",
        "init": fit.start,
        "optimizer": optimizer_record(fit),
        "quality": quality_record(errs, settings),
    }
    calibration = calibration_record(settings, teacher, fit, starts, scale)
    return solver_entry(settings.schedule, chain, record, calibration=calibration)


def optimizer_record(fit: OptimizeResult) -> dict[str, Any]:
    """The entry's ``optimizer`` block from :func:`~builder.calibrate.optimize.optimise`'s result."""
    return {
        "method": "L-BFGS-B" if fit.method == "gradient" else "Nelder-Mead",
        "success": bool(fit.success),
        "status": int(fit.status),
        "nit": int(fit.nit),
        "nfev": int(fit.nfev),
        "fit_loss_start": 0.0,
        "fit_loss": significant(fit.fun),
    }


def quality_record(errs: dict[str, np.ndarray], settings: Settings) -> dict[str, Any]:
    """The entry's ``quality`` block from held-out per-noise errors ({grid: errors}, ``"calibrated"`` first,
    then the registry start if any and the rules and tables)."""
    mine = errs["calibrated"]
    baselines = {}
    for name, e in errs.items():
        if name == "calibrated":
            continue
        lr, se = paired({"m": mine}, {"m": e})
        baselines[name] = {
            "mean_l2": significant(e.mean()),
            "median_l2": significant(np.median(e)),
            "log_ratio": significant(lr),
            "log_ratio_se": significant(se),
        }
    rules = [n for n in errs if n not in ("calibrated", "registry")]
    best = min(rules, key=lambda n: float(np.log(errs[n]).mean()))
    lr_best, se_best = paired({"m": mine}, {"m": errs[best]})
    sampler = {"name": settings.solver, "order": settings.order}
    if settings.solver == "unipc":
        sampler.update(variant=settings.sampler["variant"], corrector=True)
    return {
        "benchmark": "calibration",
        "problems": [settings.model_id],
        "sampler": sampler,
        "mean_l2": significant(mine.mean()),
        "median_l2": significant(np.median(mine)),
        "baselines": baselines,
        "best_baseline": best,
        "mean_l2_best_baseline": significant(errs[best].mean()),
        "mean_l2_uniform_lambda": significant(errs["uniform-lambda"].mean()),
        "mean_l2_uniform_t": significant(errs["uniform-t"].mean()),
        "ratio_uniform_lambda": significant(math.exp(paired({"m": mine}, {"m": errs["uniform-lambda"]})[0])),
        "log_ratio_best_baseline": significant(lr_best),
        "log_ratio_best_baseline_se": significant(se_best),
        "worse_than_best_baseline": bool(lr_best > 2 * se_best),
        "held_out": {"noises": settings.held_out, "metric": "L2 to the teacher in the schedule's coordinates"},
    }


def calibration_record(
    settings: Settings, tch: Teacher, fit: OptimizeResult, starts: int, scale: float
) -> dict[str, Any]:
    """The entry's ``calibration`` block: the model, noises, teacher and how the optimisation ran (``starts``:
    how many starts were scored; ``scale``: the factor of held-out errors to the schedule's coordinates)."""
    s = settings
    return {
        "identity": {"model": s.model_id, "weights_sha256": s.weights_hash, "noises": s.noises, "seed": s.seed},
        "model": s.model_id,
        "weights_sha256": s.weights_hash,
        "prediction": s.prediction,
        "shape": list(s.shape),
        "dtype": str(s.dtype).removeprefix("torch."),
        "noises": {"fit": s.fit_noises, "held_out": s.held_out, "seed": s.seed, "start": "sigma_T * randn"},
        "teacher": {
            "solver": "unipc",
            "variant": "bh2",
            "order": 3,
            "grid": "uniform-lambda",
            "steps": tch.steps,
            "answer": "x at t_eps" if s.ending == "eps" else "the model's x0-prediction at the answer at t_eps",
            "error_estimate": significant(scale * tch.error),
            "relative_error_estimate": significant(tch.relative_error),
        },
        "start": fit.start,
        "method": fit.method,
        "method_reason": fit.method_reason,
        "iterations": fit.nit,
        "stopped": fit.message,
        "restarts": s.restarts,
        "restart": fit.restart,
        "starts": starts,
        "held_out_start": significant(scale * fit.held_out_start),
    }


def calibrated_files(
    out: str | Path, schedule: Schedule, entries: list[dict[str, Any]], *, base: Any = None
) -> dict[str, bytes]:
    """{path: canonical bytes} of the registry ``out`` with ``entries`` merged in (``base``: the loader's
    ``source`` a new folder starts from)."""
    return merged_files(out, schedule, entries, generator=f"optsteps {__version__} calibrate", base=base)


def write_entries(settings: Settings, entries: list[dict[str, Any]]) -> Path | None:
    """Write ``entries`` to ``settings.out`` (:func:`calibrated_files`; nothing when it is None) and return its
    path; a folder the merge refuses raises :class:`CalibrationError` and is left as it was."""
    if settings.out is None:
        return None
    path = Path(settings.out)
    try:
        write_folder(path, calibrated_files(path, settings.schedule, entries, base=settings.registry))
    except MergeError as err:
        raise CalibrationError(str(err)) from None
    return path
