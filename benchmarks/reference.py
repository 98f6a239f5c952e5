"""Two deliberately literal implementations of the bound, shaped like the paper's released code.

Plain Python loops over steps and nodes, and finite-difference gradients in the optimiser: this is how
``step_optim.py`` solves the problem (docs/method.md, 'The solve'). Two flavours of the same loops:

- ``reference_objective``: scalar ``math`` calls on Python floats — the fastest a loop-and-finite-difference
  solve gets, and the independent second implementation tests check ``builder.solve.objective`` against;
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

from builder.solve.optimize import monotone_constraint


def _phi(h, exp=math.exp):
    phi0 = exp(h) - 1.0
    phi1 = h * exp(h) - phi0
    phi2 = h * h * exp(h) - 2.0 * phi1
    return phi0, phi1, phi2


def _order(s: int, nfe: int, max_order: int) -> int:
    if s == 0 or s == nfe - 1:
        return 1
    if s == 1 or s == nfe - 2:
        return min(2, max_order)
    return max_order


def _step_weights(lam, s: int, k: int, exp=math.exp) -> dict:
    """{node j: w_{s,j}} for step s of order k (docs/method.md, 'The bound'), one case per order."""
    h = lam[s + 1] - lam[s]
    phi0, phi1, phi2 = _phi(h, exp)
    e = exp(lam[s])
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


def _bound_by_loops(lam, p: float, tau: int, max_order: int, exp, sqrt, pooled):
    """The bound (docs/method.md) step by step; ``exp``/``sqrt`` and the ``pooled`` accumulator set the
    arithmetic's kind."""
    nfe = len(lam) - 1
    err = [(1 + exp(2 * lam[j])) ** (-p / 2) * sqrt(1 + exp(-2 * lam[j])) for j in range(nfe + 1)]
    total = 0.0
    for s in range(nfe):
        k = _order(s, nfe, max_order)
        weights = _step_weights(lam, s, k, exp)
        if k == 1:
            total += abs(weights[s]) * err[s]
        elif s < tau:
            total += sqrt(sum((w * err[j]) ** 2 for j, w in weights.items()))
        else:
            for j, w in weights.items():
                pooled[j] += w * err[j]
    return total + sum(abs(v) for v in pooled)


def reference_objective(lambdas: list[float] | np.ndarray, p: float, tau: int, max_order: int = 3) -> float:
    """F(λ) by loops on Python floats, exactly as docs/method.md states it."""
    lam = [float(v) for v in lambdas]
    return _bound_by_loops(lam, p, tau, max_order, math.exp, math.sqrt, [0.0] * len(lam))


def released_objective(interior: np.ndarray, schedule, p: float, tau: int, max_order: int = 3) -> float:
    """F(λ_1 … λ_{N−1}) evaluated the way the released objective does it, cost included (module docstring)."""
    lambda_t = np.log(schedule.marginal_alpha(schedule.t_start) / schedule.marginal_sigma(schedule.t_start))
    lambda_e = np.log(schedule.marginal_alpha(schedule.t_end) / schedule.marginal_sigma(schedule.t_end))
    lam = np.concatenate((np.array([lambda_t]), interior, np.array([lambda_e])))
    return float(_bound_by_loops(lam, p, tau, max_order, np.exp, np.sqrt, np.zeros(lam.shape[0])))


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
            return released_objective(x, schedule, p, tau)

    else:

        def fun(x: np.ndarray) -> float:
            return reference_objective([lambda_start, *x, lambda_end], p, tau)

    start = grid[1:-1] if x0 is None else np.asarray(x0, dtype=np.float64)
    constraint = monotone_constraint(nfe, lambda_start, lambda_end)  # the released constraint, row for row
    return minimize(fun, start, method="trust-constr", constraints=[constraint])
