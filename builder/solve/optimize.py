"""Optimise the interior λ's of an N-step grid with scipy's trust-region constrained method.

    minimise  F(λ_1 … λ_{N−1})                       (builder.solve.objective)
    s.t.      λ_T ≤ λ_1 ≤ λ_2 ≤ … ≤ λ_{N−1} ≤ λ_ε     (one LinearConstraint, as in the released code)

``solve`` mirrors ``scipy.optimize.minimize``: the problem inputs come first, knobs in ``options``, a
``callback``, and it returns an ``OptimizeResult`` (failure is data: ``success=False`` and a message,
never an exception). The released code passes finite-difference gradients; here ``jac`` is exact
(builder.solve.objective), which makes each iteration cheaper and the optimum sharper.

Starting grids (``init``, built by :mod:`builder.solve.grids`), each with N+1 nodes from t_T to t_ε:

- ``unif``: λ uniform on [λ_T, λ_ε] (DPM-Solver's "logSNR" skip; recommended for pixel models);
- ``unif_t``: t uniform on [t_ε, t_T] (recommended for latent models);
- ``quad``: t_i = (√T + (i/N)(√ε − √T))²;
- ``edm``: the Karras ρ = 7 grid in σ/α = e^{−λ} (the CLI also calls it ``karras``);
- ``best``: every start above plus the blends ½(unif + quad) and ½(unif + edm); the lowest F wins, ties
  going to the earlier start, so ``best`` is never above any single named start. (A ½(unif + unif_t)
  blend is not used: over 24 probe problems — 4 schedules × NFE 5–50 × p 1, 2 — it never gave the lowest F.)

Options: scipy's trust-constr defaults, except ``initial_barrier_parameter`` and
``initial_barrier_tolerance`` = 1e-6 (the monotone constraints are far from active at the optimum, so the
barrier stages from 0.1 down are wasted work: ~30% fewer iterations, and over 84 probe problems the
best-of-starts F was 0.8% lower on average) and ``maxiter`` = 500 (runs that reach it are crawling along a
kink of the non-smooth bound; the multi-start covers for them).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import LinearConstraint, OptimizeResult, minimize

from optsteps_loader.coefficients import step_orders

from .epigraph import minimize_epigraph
from .grids import STARTS, start_grid, start_grids
from .objective import MAX_ORDER, objective, objective_and_gradient, resolve_tau
from .schedules import Schedule, get_schedule

METHODS = ("direct", "epigraph")
INITS = tuple(STARTS)
INIT_CHOICES = (*INITS, "best")
MAX_NFE = 200

DEFAULT_OPTIONS: dict[str, Any] = {
    "maxiter": 500,
    "gtol": 1e-8,
    "xtol": 1e-8,
    "barrier_tol": 1e-8,
    "initial_barrier_parameter": 1e-6,
    "initial_barrier_tolerance": 1e-6,
}


def explicit_start(schedule: Schedule, nfe: int, grid: ArrayLike) -> np.ndarray:
    """A caller's starting grid, checked: N+1 finite, strictly increasing λ's on [λ_T, λ_ε] (endpoints set exactly)."""
    lam = np.array(grid, dtype=np.float64).reshape(-1)
    if lam.shape[0] != nfe + 1:
        raise ValueError(f"a starting grid for nfe={nfe} has {nfe + 1} λ's (endpoints included), got {lam.shape[0]}")
    if not (np.all(np.isfinite(lam)) and np.all(np.diff(lam) > 0)):
        raise ValueError("a starting grid must be finite and strictly increasing in λ (noisiest node first)")
    ends = (schedule.lambda_start, schedule.lambda_end)
    if not np.allclose((lam[0], lam[-1]), ends, rtol=0, atol=1e-9):
        raise ValueError(
            f"a starting grid must run from λ_T = {ends[0]!r} to λ_ε = {ends[1]!r} (the schedule's endpoints), "
            f"got {lam[0]!r} … {lam[-1]!r}"
        )
    lam[0], lam[-1] = ends
    return lam


def monotone_constraint(nfe: int, lambda_start: float, lambda_end: float) -> LinearConstraint:
    """A x ≥ lb with rows x_1 ≥ λ_T, x_{i+1} − x_i ≥ 0, −x_{N−1} ≥ −λ_ε (A is N × (N−1))."""
    n = nfe - 1
    a = np.zeros((nfe, n))
    a[0, 0] = 1.0
    for row in range(1, nfe - 1):
        a[row, row - 1], a[row, row] = -1.0, 1.0
    a[nfe - 1, n - 1] = -1.0
    lb = np.zeros(nfe)
    lb[0], lb[-1] = lambda_start, -lambda_end
    return LinearConstraint(a, lb, np.inf)


def check_problem(nfe: int, order: int, p: float) -> None:
    """Raise one clear error per bad input."""
    if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)):
        raise TypeError(f"nfe must be an integer, got {type(nfe).__name__} {nfe!r}")
    if not 2 <= nfe <= MAX_NFE:
        raise ValueError(f"nfe must be in 2..{MAX_NFE}, got {nfe}")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise TypeError(f"p must be a number ≥ 0, got {p!r}")
    if not (np.isfinite(p) and p >= 0):
        raise ValueError(f"p must be a finite number ≥ 0, got {p!r}")


def solve(
    schedule: Schedule | str,
    nfe: int,
    *,
    order: int = 3,
    p: float = 2.0,
    tau: int | str = "auto",
    init: str | ArrayLike = "best",
    method: str = "direct",
    options: dict[str, Any] | None = None,
    callback: Callable[[OptimizeResult], None] | None = None,
) -> OptimizeResult:
    """Optimised N-step grid for ``schedule``; returns an OptimizeResult with, besides scipy's fields,
    ``lambdas``, ``t``, ``timesteps``, ``nfe``, ``order``, ``p``, ``tau``, ``init``, ``method``, ``step_orders``,
    ``objective_uniform_lambda``, ``objective_uniform_t``, ``starts``, ``seconds`` and ``candidates`` (one
    dict per start: ``init``, ``lambdas``, ``fun``, ``valid`` — the local optima the multi-start found).

    ``init``: a named start (module docstring) or an explicit grid of N+1 λ's, strictly increasing, whose
    endpoints are the schedule's λ_T and λ_ε (to 1e-9; they are then set exactly); its ``init`` is ``"x0"``.

    ``method``: ``"direct"`` (trust-constr on F itself, as the released code does, with the exact gradient;
    what the registry uses) or ``"epigraph"`` (builder.solve.epigraph: F's ℓ1 part as constraints, so the solve
    reaches a stationary point of F — a lower F, but at τ = 0 and at large N a degenerate grid).
    """
    if isinstance(schedule, str):
        schedule = get_schedule(schedule)
    check_problem(nfe, order, p)
    p = float(p)
    tau_int = resolve_tau(tau, nfe)
    if isinstance(init, str) and init not in INIT_CHOICES:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INIT_CHOICES)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    opts = {**DEFAULT_OPTIONS, **(options or {})}

    started = time.perf_counter()
    starts = _starting_grids(schedule, nfe, init)
    results = []
    candidates = []
    for name, grid in starts:
        result = _solve_from(grid, p, tau_int, order, opts, callback, method)
        result.init = name
        results.append(result)
        candidates.append({"init": name, "lambdas": result.lambdas, "fun": result.fun, "valid": result.valid})
    best = results[lowest_bound_index(candidates)]
    best.candidates = candidates

    lam = best.lambdas
    t = schedule.inverse_lambda(lam)
    t[0], t[-1] = schedule.t_start, schedule.t_end
    best.t = t
    best.timesteps = schedule.model_time(t)
    best.nfe, best.order, best.p, best.tau, best.method = nfe, order, p, tau_int, method
    best.step_orders = np.asarray(step_orders(nfe, order))
    best.objective_uniform_lambda = objective(start_grid(schedule, nfe, "unif"), p, tau_int, order)
    best.objective_uniform_t = objective(start_grid(schedule, nfe, "unif_t"), p, tau_int, order)
    best.starts = len(starts)
    best.seconds = time.perf_counter() - started
    return best


def _starting_grids(schedule: Schedule, nfe: int, init: str | ArrayLike) -> list[tuple[str, np.ndarray]]:
    if not isinstance(init, str):
        return [("x0", explicit_start(schedule, nfe, init))]
    if init != "best":
        return [(init, start_grid(schedule, nfe, init))]
    return start_grids(schedule, nfe)


def lowest_bound_index(candidates: Sequence[Mapping[str, Any]]) -> int:
    """The candidate ``solve`` keeps (each a mapping with ``valid`` and ``fun``): valid (finite, strictly
    increasing) grids before invalid ones, then the lowest F, ties going to the earlier start."""
    best = 0
    for i, c in enumerate(candidates[1:], start=1):
        b = candidates[best]
        if (c["valid"] and not b["valid"]) or (c["valid"] == b["valid"] and c["fun"] < b["fun"]):
            best = i
    return best


def _solve_from(
    grid: np.ndarray,
    p: float,
    tau: int,
    order: int,
    options: dict[str, Any],
    callback: Callable[[OptimizeResult], None] | None,
    method: str = "direct",
) -> OptimizeResult:
    nfe = grid.shape[0] - 1
    lam_t, lam_e = float(grid[0]), float(grid[-1])
    if method == "epigraph":
        result = minimize_epigraph(grid, p, tau, order, monotone_constraint(nfe, lam_t, lam_e), options, callback)
        return _checked(result)
    full = grid.copy()

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        full[1:-1] = x
        value, grad = objective_and_gradient(full, p, tau, order)
        return value, grad[1:-1]

    if nfe < 2:  # pragma: no cover - check_problem rejects it
        raise ValueError("nfe must be ≥ 2")
    with warnings.catch_warnings():
        # trust-constr warns when a constraint row is linear-dependent on bounds; harmless here.
        warnings.simplefilter("ignore", UserWarning)
        result = minimize(
            fun,
            grid[1:-1].copy(),
            jac=True,
            method="trust-constr",
            constraints=[monotone_constraint(nfe, lam_t, lam_e)],
            options=options,
            callback=callback,
        )
    lambdas = np.concatenate([[lam_t], result.x, [lam_e]])
    result.lambdas = lambdas
    result.fun = objective(lambdas, p, tau, order)
    return _checked(result)


def _checked(result: OptimizeResult) -> OptimizeResult:
    """Mark a result whose grid is not finite and strictly increasing as invalid (and unsuccessful)."""
    lambdas = result.lambdas
    result.valid = bool(np.all(np.isfinite(lambdas)) and np.all(np.diff(lambdas) > 0))
    if not result.valid:
        result.success = False
        result.message = f"{result.message} (result grid is not strictly increasing)"
    return result
