"""Minimise the bound F exactly: its ℓ1 part moved into constraints, so trust-constr sees a smooth problem.

Split F (builder.solve.objective) into a smooth part and the pooled ℓ1 part:

    F(λ) = S(λ) + Σ_j |c_j(λ)|,
    S    = Σ_{s: k_s=1} w_{s,s} E_s + Σ_{s<τ, k_s≥2} ‖(w_{s,j} E_j)_j‖₂,
    c_j  = E_j Σ_{s≥τ, k_s≥2} w_{s,j}                       (the pooled weight of node j).

S is smooth on a strictly increasing grid (w_{s,s} = e^{λ_s}(e^{h_s} − 1) > 0, and the step norms do not
vanish), but at a minimiser of F several c_j are exactly zero: F has kinks there, ∇F jumps, and a
gradient method on F (the released solve, and ``method="direct"``) crawls along them until its trust
radius falls below ``xtol`` — it stops where it is, not at a stationary point. The epigraph form

    minimise  S(λ) + Σ_j u_j
    s.t.      u_j − c_j(λ) ≥ 0,  u_j + c_j(λ) ≥ 0,  λ_T ≤ λ_1 ≤ … ≤ λ_{N−1} ≤ λ_ε

has the same minimisers (u_j = |c_j| at a solution) and is smooth, so trust-constr's SQP reaches a KKT
point (``status`` 1, ``gtol``) instead. Exact first derivatives of S and c come from one batched
complex-step evaluation (N+1 probes, one per node; N ≤ 200 keeps that small).

What it shows (``benchmarks/bench_exact_minimum.py``; figures in the README): from the uniform-λ start at
τ = 3 the exact local minimiser has a lower F than the released solve (NFE 8–30, vp-linear and edm,
p = 2), but it samples worse from NFE 10 on. At τ = 0 its grid collapses a step to h ≈ 0.01 in λ, F drops
about tenfold, and the sampling error grows to 1.7–100× that of uniform-λ steps. The bound guides well
only where the optimiser stops early. The registry therefore keeps ``method="direct"`` and picks among
its candidates by measured error (builder.select).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import LinearConstraint, NonlinearConstraint, OptimizeResult, minimize

from optsteps_loader.coefficients import step_orders

from .objective import COMPLEX_STEP, error_model, lagrange_weights, node_index, objective

Array = NDArray[np.float64]


class SplitBound:
    """S(λ), ∇S, c(λ) and ∂c/∂λ at full grids λ_0 … λ_N for one (N, p, τ, K) problem (pure; memoises one λ)."""

    def __init__(self, nfe: int, p: float, tau: int, max_order: int) -> None:
        self.p = float(p)
        self.orders = np.asarray(step_orders(nfe, max_order))
        node = node_index(nfe)
        self.used = node >= 0
        self.safe_node = np.where(self.used, node, 0)
        steps = np.arange(nfe)
        self.first_order = self.orders == 1
        self.rss = (self.orders >= 2) & (steps < int(tau))
        pooled = (self.orders >= 2) & ~self.rss
        # pool[j, e] = 1 where pooled entry e (row-major over pooled steps × 3 weights) multiplies node j
        entry_nodes = np.where(self.used[pooled], self.safe_node[pooled], -1).ravel()
        self.pool = (entry_nodes[None, :] == np.arange(nfe + 1)[:, None]).astype(np.float64)
        self.pooled = pooled
        #: the nodes with a pooled weight (the others have c_j ≡ 0 and need no epigraph variable)
        self.pooled_nodes = np.flatnonzero(self.pool.any(axis=1))
        self._key: bytes | None = None
        self._value: tuple[float, Array, Array, Array] | None = None

    def __call__(self, lambdas: Array) -> tuple[float, Array, Array, Array]:
        """(S, ∂S/∂λ_m, c_j, ∂c_j/∂λ_m) with m and j over all N+1 nodes."""
        key = lambdas.tobytes()
        if key != self._key:
            self._value, self._key = self._evaluate(lambdas), key
        assert self._value is not None
        return self._value

    def _evaluate(self, lam: Array) -> tuple[float, Array, Array, Array]:
        n_nodes = lam.shape[0]
        step = 1j * COMPLEX_STEP
        probes = np.tile(lam.astype(np.complex128), (n_nodes + 1, 1))
        probes[1:] += step * np.eye(n_nodes)
        weights = lagrange_weights(probes, self.orders)  # (N+2, N, 3): row 0 unperturbed, row 1+m moves λ_m
        err, derr = error_model(lam, self.p)
        err_c = np.tile(err.astype(np.complex128), (n_nodes + 1, 1))
        err_c[1:] += step * np.diag(derr)
        m = weights * np.where(self.used, err_c[:, self.safe_node], 0.0)
        smooth = m[:, self.first_order, 2].sum(axis=1) + np.sqrt((m[:, self.rss] ** 2).sum(axis=2)).sum(axis=1)
        pooled = m[:, self.pooled].reshape(n_nodes + 1, -1) @ self.pool.T  # (N+2, N+1)
        return (
            float(smooth[0].real),
            smooth[1:].imag / COMPLEX_STEP,
            pooled[0].real,
            pooled[1:].imag.T / COMPLEX_STEP,  # [j, m] = ∂c_j/∂λ_m
        )


def minimize_epigraph(
    grid: Array,
    p: float,
    tau: int,
    order: int,
    constraint: LinearConstraint,
    options: dict[str, Any],
    callback: Any = None,
) -> OptimizeResult:
    """trust-constr on the epigraph form from ``grid`` (N+1 nodes); ``x`` of the result is λ_1 … λ_{N−1}."""
    nfe = grid.shape[0] - 1
    n_x = nfe - 1
    bound = SplitBound(nfe, p, tau, order)
    nodes = bound.pooled_nodes
    n_u = nodes.size
    full = grid.astype(np.float64).copy()

    def parts(z: Array) -> tuple[float, Array, Array, Array]:
        full[1:-1] = z[:n_x]
        return bound(full)

    def fun(z: Array) -> tuple[float, Array]:
        smooth, d_smooth, _, _ = parts(z)
        return smooth + float(z[n_x:].sum()), np.concatenate([d_smooth[1:-1], np.ones(n_u)])

    def cons(z: Array) -> Array:
        c = parts(z)[2][nodes]
        u = z[n_x:]
        return np.concatenate([u - c, u + c])

    def cons_jac(z: Array) -> Array:
        jac_c = parts(z)[3][nodes][:, 1:-1]
        eye = np.eye(n_u)
        return np.block([[-jac_c, eye], [jac_c, eye]])

    monotone = np.atleast_2d(constraint.A)
    lifted = LinearConstraint(np.hstack([monotone, np.zeros((monotone.shape[0], n_u))]), constraint.lb, constraint.ub)
    c_start = parts(np.concatenate([grid[1:-1], np.zeros(n_u)]))[2][nodes]
    # a strictly feasible start: u a little above |c|
    z0 = np.concatenate([grid[1:-1], np.abs(c_start) * 1.01 + 1e-12])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = minimize(
            fun,
            z0,
            jac=True,
            method="trust-constr",
            constraints=[lifted, NonlinearConstraint(cons, 0.0, np.inf, jac=cons_jac)],
            options=options,
            callback=callback,
        )
    result.x = result.x[:n_x].copy()
    lambdas = np.concatenate([[grid[0]], result.x, [grid[-1]]])
    result.lambdas = lambdas
    result.fun = objective(lambdas, p, tau, order) if np.all(np.isfinite(lambdas)) else np.inf
    return result
