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

:func:`calibrated_files` writes them with :mod:`builder.registry.merge`: into a new folder holding the base
registry's file for the schedule variant, or merged into an existing (vendored) registry folder.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..registry.entry import solver_entry
from ..registry.merge import merged_files
from ..solve.schedules import Schedule

__all__ = ["calibrated_entry", "calibrated_files", "optimizer_record"]


def calibrated_entry(
    schedule: Schedule,
    lambdas: np.ndarray,
    *,
    nfe: int,
    order: int,
    solver: str,
    ending: str,
    init: str,
    optimizer: dict[str, Any],
    quality: dict[str, Any],
    calibration: dict[str, Any],
) -> dict[str, Any]:
    """One calibrated solver entry (module docstring); λ's endpoints are the schedule's own."""
    lam = np.asarray(lambdas, dtype=np.float64)
    chain = types.SimpleNamespace(solver=solver, order=order, ending=ending, profile=None)
    record = {
        "nfe": int(nfe),
        "lambda": [float(v) for v in lam],
        "method": "calibrated",
        "init": init,
        "optimizer": optimizer,
        "quality": quality,
    }
    return solver_entry(schedule, chain, record, calibration=calibration)


def optimizer_record(fit: Any) -> dict[str, Any]:
    """The entry's ``optimizer`` block from an :class:`~builder.calibrate.optimize.Fit`."""
    return {
        "method": "L-BFGS-B" if fit.method == "gradient" else "Nelder-Mead",
        "success": bool(fit.success),
        "status": int(fit.status),
        "nit": int(fit.iterations),
        "nfev": int(fit.evaluations),
        "fit_loss_start": 0.0,
        "fit_loss": float(f"{math.log(fit.fit / fit.start_scores[fit.start]):.4g}"),
    }


def calibrated_files(
    out: str | Path, schedule: Schedule, entries: list[dict[str, Any]], *, base: Any = None
) -> dict[str, bytes]:
    """{path: canonical bytes} of the registry ``out`` with ``entries`` merged in (``base``: the loader's
    ``source`` a new folder starts from)."""
    return merged_files(out, schedule, entries, generator=f"optsteps {__version__} calibrate", base=base)
