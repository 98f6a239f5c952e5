"""Two deliberately literal implementations of the bound, shaped like the paper's released code.

Plain Python loops over steps and nodes, and finite-difference gradients in the optimiser: this is how
``step_optim.py`` solves the problem (METHOD.md §5). Two flavours of the same loops:

- ``reference_objective``: scalar ``math`` calls on Python floats — the fastest a loop-and-finite-difference
  solve gets, and the independent second implementation tests check ``builder.objective`` against;
- ``released_objective``: what one evaluation of the released objective costs — the endpoints λ_T, λ_ε
  re-derived from the schedule on every call, numpy arrays filled and read element by element, numpy
  scalar arithmetic. (The released code also routes the endpoints through torch, which this port does
  not: it is, if anything, faster than the original.)

``solve_released_way`` solves with either (``literal=True``, the default, is the released cost).
``benchmarks/bench_optimize.py`` times both against ours on the same problem. Nothing in the product
calls this module.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize

from .optimize import monotone_constraint


def _phi(h: float) -> tuple[float, float, float]:
    phi0 = math.exp(h) - 1.0
    phi1 = h * math.exp(h) - phi0
    phi2 = h * h * math.exp(h) - 2.0 * phi1
    return phi0, phi1, phi2


def _order(s: int, nfe: int, max_order: int) -> int:
    if s == 0 or s == nfe - 1:
        return 1
    if s == 1 or s == nfe - 2:
        return min(2, max_order)
    return max_order


def _step_weights(lam: list[float], s: int, k: int) -> dict[int, float]:
    """{node j: w_{s,j}} for step s of order k (METHOD.md §2), one case per order."""
    h = lam[s + 1] - lam[s]
    phi0, phi1, phi2 = _phi(h)
    e = math.exp(lam[s])
    if k == 1:
        return {s: e * phi0}
    if k == 2:
        a = lam[s] - lam[s - 1]
        return {s - 1: -e * phi1 / a, s: e * (phi1 + a * phi0) / a}
    a = lam[s - 1] - lam[s - 2]
    b = lam[s] - lam[s - 1]
    return {
        s - 2: e * (phi2 + b * phi1) / (a * (a + b)),
        s - 1: -e * (phi2 + (a + b) * phi1) / (a * b),
        s: e * (phi2 + (a + 2 * b) * phi1 + b * (a + b) * phi0) / (b * (a + b)),
    }


def reference_objective(lambdas: list[float] | np.ndarray, p: float, tau: int, max_order: int = 3) -> float:
    """F(λ) by loops, exactly as METHOD.md §3 states it."""
    lam = [float(v) for v in lambdas]
    nfe = len(lam) - 1
    err = [(1 + math.exp(2 * v)) ** (-p / 2) * (1 + math.exp(-2 * v)) ** 0.5 for v in lam]
    total = 0.0
    pooled = [0.0] * (nfe + 1)
    for s in range(nfe):
        k = _order(s, nfe, max_order)
        weights = _step_weights(lam, s, k)
        if k == 1:
            total += abs(weights[s]) * err[s]
        elif s < tau:
            total += math.sqrt(sum((w * err[j]) ** 2 for j, w in weights.items()))
        else:
            for j, w in weights.items():
                pooled[j] += w * err[j]
    return total + sum(abs(v) for v in pooled)


def released_objective(interior: np.ndarray, schedule, p: float, tau: int, max_order: int = 3) -> float:
    """F(λ_1 … λ_{N−1}) evaluated the way the released objective does it, cost included (module docstring)."""
    lambda_t = np.log(schedule.marginal_alpha(schedule.t_start) / schedule.marginal_sigma(schedule.t_start))
    lambda_e = np.log(schedule.marginal_alpha(schedule.t_end) / schedule.marginal_sigma(schedule.t_end))
    lam = np.concatenate((np.array([lambda_t]), interior, np.array([lambda_e])))
    nfe = len(lam) - 1
    h = np.zeros(nfe)
    for i in range(nfe):
        h[i] = lam[i + 1] - lam[i]
    exp_lam = np.exp(lam)
    err = (1 + np.exp(2 * lam)) ** (-p / 2) * np.sqrt(1 + np.exp(-2 * lam))
    total = 0.0
    pooled = np.zeros(nfe)
    for s in range(nfe):
        k = _order(s, nfe, max_order)
        phi0 = np.exp(h[s]) - 1
        phi1 = np.exp(h[s]) * h[s] - phi0
        phi2 = np.exp(h[s]) * h[s] * h[s] - 2 * phi1
        if k == 1:
            total += abs(exp_lam[s] * phi0 * err[s])
            continue
        if k == 2:
            a = h[s - 1]
            terms = [(s - 1, -exp_lam[s] * phi1 / a), (s, exp_lam[s] * (phi1 + a * phi0) / a)]
        else:
            a, b = h[s - 2], h[s - 1]
            terms = [
                (s - 2, exp_lam[s] * (phi2 + b * phi1) / (a * (a + b))),
                (s - 1, -exp_lam[s] * (phi2 + (a + b) * phi1) / (a * b)),
                (s, exp_lam[s] * (phi2 + (a + 2 * b) * phi1 + b * (a + b) * phi0) / (b * (a + b))),
            ]
        if s < tau:
            total += np.sqrt(sum((err[j] * w) ** 2 for j, w in terms))
        else:
            for j, w in terms:
                pooled[j] += err[j] * w
    return total + sum(abs(pooled))


def solve_released_way(schedule, nfe: int, p: float, tau: int = 3, *, literal: bool = True, x0=None):
    """trust-constr with 2-point finite differences from the uniform-λ start, as the released code does.

    ``literal``: evaluate F with ``released_objective`` (the released cost); else ``reference_objective``
    (the same loops on Python floats, 3× cheaper per evaluation). Both return the same F to rounding.
    ``x0``: the interior λ's to start from instead of the uniform-λ grid's.
    """
    lambda_start, lambda_end = schedule.lambda_start, schedule.lambda_end
    grid = np.linspace(lambda_start, lambda_end, nfe + 1)  # the released start (in float64: the same problem)

    if literal:

        def fun(x: np.ndarray) -> float:
            return float(released_objective(x, schedule, p, tau))

    else:

        def fun(x: np.ndarray) -> float:
            return reference_objective([lambda_start, *x, lambda_end], p, tau)

    start = grid[1:-1] if x0 is None else np.asarray(x0, dtype=np.float64)
    constraint = monotone_constraint(nfe, lambda_start, lambda_end)  # the released constraint, row for row
    return minimize(fun, start, method="trust-constr", constraints=[constraint])
