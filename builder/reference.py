"""A second, deliberately literal implementation of the bound, shaped like the paper's released code.

Plain Python loops over steps and nodes, scalar ``math`` calls, and finite-difference gradients in the
optimiser: this is how ``step_optim.py`` solves the problem (METHOD.md §5). It exists for two reasons:
tests check ``builder.objective`` (vectorised, complex-step gradient) against it, and
``benchmarks/bench_optimize.py`` times the released way of solving against ours on the same problem.
Nothing in the product calls it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import LinearConstraint, minimize


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


def solve_released_way(lambda_start: float, lambda_end: float, nfe: int, p: float, tau: int = 3):
    """trust-constr with 2-point finite differences from the uniform-λ start, as the released code does."""
    grid = np.linspace(lambda_start, lambda_end, nfe + 1)
    a = np.zeros((nfe, nfe - 1))
    a[0, 0] = 1.0
    for row in range(1, nfe - 1):
        a[row, row - 1], a[row, row] = -1.0, 1.0
    a[nfe - 1, nfe - 2] = -1.0
    lb = np.zeros(nfe)
    lb[0], lb[-1] = lambda_start, -lambda_end

    def fun(x: np.ndarray) -> float:
        return reference_objective([lambda_start, *x, lambda_end], p, tau)

    return minimize(fun, grid[1:-1], method="trust-constr", constraints=[LinearConstraint(a, lb, np.inf)])
