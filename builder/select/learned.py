"""The learned-model check: a small denoiser trained on the 8×8 digits, sampled against its own flow.

**The model**: :mod:`builder.select.digits_denoiser` (the network, its weights, EDM preconditioning); the
grid under test: :mod:`builder.select.learned_grids` (the registry's entry, or the sweep's problem solved live).

**Its own ground truth.** The model's probability-flow ODE, dy/dλ = e^λ x̂₀(σ̂ y, λ) with y = x/σ̂, solved by
:func:`builder.select.truth.solve_truth` (DOP853, float64 weights and state, rtol 1e-9, atol 1e-11) from
x_T = α̂_T x₀ + σ̂_T ε, with x₀ drawn from the digits mixture (:func:`builder.select.truth.initial_batch`;
the mixture is fitted to the same scaled data, so the start needs neither scikit-learn nor the training set).
The truth is the model's own: sampler error is measured against what *this* network's exact flow gives.

**Measurement.** The project's sampler (:func:`builder.select.evaluate.sample_grid` with the standard
settings :data:`builder.select.selection.SAMPLER`: UniPC bh2, corrector on) runs each λ-grid from the same x_T;
per-sample errors e_b = ‖x_N − x_true‖₂. For grids g, ref, on the same noises (:func:`builder.select.evaluate.paired`):
d_b = log e_b(g) − log e_b(ref), log_ratio = mean_b d_b, se = sd_b(d_b)/√B, ratio = exp(log_ratio). The best
baseline is the one with the lowest geometric-mean error G = mean_b log e_b.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..kernels import single_threaded_blas
from ..solve.grids import baseline_grids
from ..solve.schedules import Schedule
from .digits_denoiser import (
    WEIGHTS_PATH,
    DigitsDenoiser,
    LearnedDenoiser,
    load_denoiser,
    network_from_arrays,
    network_to_arrays,
)
from .evaluate import ENDPOINT_TOL, paired, sample_grid
from .learned_grids import SubjectGrid, registry_grid, schedule_of_steps, solved_grid, subject_grid
from .mixtures import Array, digits_mixture
from .selection import SAMPLER, Measurement
from .truth import Truth, initial_batch, solve_truth

__all__ = [
    "WEIGHTS_PATH",
    "TRUTH_RTOL",
    "TRUTH_ATOL",
    "DigitsDenoiser",
    "LearnedDenoiser",
    "network_to_arrays",
    "network_from_arrays",
    "load_denoiser",
    "model_truth",
    "measure_grid",
    "summarise",
    "check_grids",
    "SubjectGrid",
    "schedule_of_steps",
    "registry_grid",
    "solved_grid",
    "subject_grid",
    "check_schedule",
    "format_table",
]

TRUTH_RTOL = 1e-9
TRUTH_ATOL = 1e-11
PROBLEM = "learned-digits"
SUBJECT = "optsteps"
REFERENCE = "uniform-lambda"


def model_truth(
    model: LearnedDenoiser,
    lambda_start: float,
    lambda_end: float,
    *,
    batch: int = 256,
    seed: int = 0,
    rtol: float = TRUTH_RTOL,
    atol: float = TRUTH_ATOL,
) -> Truth:
    """The model's own exact flow from λ_start to λ_end: x_T = α̂_T x₀ + σ̂_T ε (x₀ from the digits mixture,
    ``default_rng(seed)``), then DOP853 on dy/dλ = e^λ x̂₀(σ̂ y, λ) in float64 (not cached: seconds)."""
    lambda_start, lambda_end = float(lambda_start), float(lambda_end)
    if not lambda_start < lambda_end:
        raise ValueError(f"need lambda_start < lambda_end, got {lambda_start}, {lambda_end}")
    x_start = initial_batch(digits_mixture(), lambda_start, batch, seed)
    with single_threaded_blas():
        x_end, nfev = solve_truth(model, x_start, lambda_start, lambda_end, rtol=rtol, atol=atol)
    return Truth(x_start, x_end, lambda_start, lambda_end, nfev)


def measure_grid(model: LearnedDenoiser, truth: Truth, lambdas: Sequence[float], order: int = 3) -> Measurement:
    """Per-sample errors ‖x_N − x_true‖₂ of one λ-grid (same endpoints as ``truth``), standard sampler."""
    lam = np.asarray(lambdas, dtype=np.float64)
    if abs(lam[0] - truth.lambda_start) > ENDPOINT_TOL or abs(lam[-1] - truth.lambda_end) > ENDPOINT_TOL:
        raise ValueError(
            f"grid endpoints ({lam[0]}, {lam[-1]}) differ from the truth's ({truth.lambda_start}, {truth.lambda_end})"
        )
    with single_threaded_blas():
        x_end = sample_grid(lam, model, truth.x_start, order=order, **SAMPLER)
    return Measurement({PROBLEM: np.linalg.norm(x_end - truth.x_end, axis=1)})


def summarise(
    measured: Mapping[str, Measurement], subject: str = SUBJECT, reference: str = REFERENCE
) -> dict[str, Any]:
    """Figures of every grid and the subject's standing against the reference and the best baseline.

    ``grids``: {name: mean_l2, median_l2, log_ratio and log_ratio_se against ``reference``, ratio =
    exp(log_ratio)}; ``best_baseline``: the non-subject grid with the lowest G = mean_b log e_b, with the
    subject's paired log-ratio (and se) against it.
    """
    ref = measured[reference]
    grids = {}
    for name, m in measured.items():
        lr, se = paired(m.errors, ref.errors)
        grids[name] = {
            "mean_l2": m.mean_l2,
            "median_l2": m.median_l2,
            "log_ratio": lr,
            "log_ratio_se": se,
            "ratio": math.exp(lr),
        }
    baselines = [name for name in measured if name != subject]
    best = min(baselines, key=lambda name: measured[name].log_error)
    lr_best, se_best = paired(measured[subject].errors, measured[best].errors)
    return {
        "grids": grids,
        "best_baseline": best,
        "log_ratio_best_baseline": lr_best,
        "log_ratio_best_baseline_se": se_best,
    }


def check_grids(
    grid: SubjectGrid,
    *,
    model: LearnedDenoiser | None = None,
    truth: Truth | None = None,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`summarise` of the subject grid (endpoints snapped to the schedule's) and the schedule's baselines
    (:func:`builder.solve.grids.baseline_grids`) on the model's own truth (built unless given)."""
    model = load_denoiser() if model is None else model
    schedule = grid.schedule
    if truth is None:
        truth = model_truth(model, schedule.lambda_start, schedule.lambda_end, batch=batch, seed=seed)
    grids = {SUBJECT: _snap_endpoints(grid.lambdas, schedule), **baseline_grids(schedule, grid.nfe)}
    measured = {name: measure_grid(model, truth, lam, order=grid.order) for name, lam in grids.items()}
    return {
        "schedule": schedule.name,
        "nfe": grid.nfe,
        "order": grid.order,
        "p": grid.p,
        "grid_source": grid.source,
        "batch": int(truth.x_start.shape[0]),
        "truth_nfev": truth.nfev,
        **summarise(measured),
    }


def _snap_endpoints(lambdas: Sequence[float], schedule: Schedule, tol: float = 1e-6) -> Array:
    """The grid with its ends set to the schedule's λ_T, λ_ε (they agree to ``tol``, else ValueError)."""
    lam = np.array(lambdas, dtype=np.float64)
    if abs(lam[0] - schedule.lambda_start) > tol or abs(lam[-1] - schedule.lambda_end) > tol:
        raise ValueError(
            f"grid endpoints ({lam[0]}, {lam[-1]}) are not {schedule.name}'s "
            f"({schedule.lambda_start}, {schedule.lambda_end})"
        )
    lam[0], lam[-1] = schedule.lambda_start, schedule.lambda_end
    return lam


def check_schedule(
    schedule: str, nfes: Sequence[int], model: LearnedDenoiser, *, batch: int, seed: int, **grid_kw: Any
) -> list[dict[str, Any]]:
    """:func:`check_grids` rows of :func:`subject_grid` (``grid_kw``) for each NFE; every NFE runs on one truth
    (solved once: the endpoints are shared)."""
    rows: list[dict[str, Any]] = []
    truth = None
    for nfe in nfes:
        grid = subject_grid(schedule, nfe, **grid_kw)
        if truth is None:
            sched = grid.schedule
            truth = model_truth(model, sched.lambda_start, sched.lambda_end, batch=batch, seed=seed)
        rows.append(check_grids(grid, model=model, truth=truth))
    return rows


def format_table(schedule: str, rows: Sequence[dict[str, Any]]) -> str:
    """The text table of :func:`check_schedule` rows for one schedule: the mean L2 of the optsteps grid and of
    every baseline per NFE, its error ratio to uniform-λ, and its paired log-ratio against the best baseline."""
    first = rows[0]
    names = [SUBJECT] + [n for n in first["grids"] if n != SUBJECT]
    title = (
        f"{schedule}: {first['grid_source']} grid (order {first['order']}, p {first['p']:g}) vs baselines, "
        f"mean L2 to the digits denoiser's own flow (batch {first['batch']}, truth nfev {first['truth_nfev']})"
    )
    columns = " ".join(f"{n:>14}" for n in names)
    lines = [title, f"{'nfe':>4} {columns} {'x unif-λ':>9} {'best baseline':>15} {'log-ratio':>9}"]
    for row in rows:
        grids = row["grids"]
        cells = " ".join(f"{grids[n]['mean_l2']:>14.5f}" if n in grids else f"{'-':>14}" for n in names)
        lines.append(
            f"{row['nfe']:>4} {cells} {grids[SUBJECT]['ratio']:>9.3f} {row['best_baseline']:>15} "
            f"{row['log_ratio_best_baseline']:>+9.3f} ±{row['log_ratio_best_baseline_se']:.3f}"
        )
    return "\n".join(lines)
