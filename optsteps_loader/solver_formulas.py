"""The multistep solvers' formulas, written once over any arithmetic: Python floats or torch tensors.

Each formula here is the one definition of its rule; :mod:`optsteps_loader.coefficients` runs them on
Python floats for the loader's samplers (and documents the updates: UniPC bh1/bh2 with the UniC corrector,
DPM-Solver++ 1 / 2M / 3M), and the builder's differentiable sampler (``builder/select/differentiable.py``)
runs them on float64 tensors, so that autograd gives the refine stage ∂(sample error)/∂λ through the very
coefficients the loader uses. Only + − × ÷, ``abs`` and comparisons are used directly; the rest goes
through an :class:`Arithmetic`. Standard library only.

- :func:`phi`: φ_k(z) = Σ_{n≥0} zⁿ/(n+k)!;
- :func:`unipc_plan`, :func:`dpmpp_plan`: every step's ``(scale, weights)`` for a grid and its step orders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["FLOATS", "Arithmetic", "dpmpp_plan", "phi", "unipc_plan"]


class Arithmetic(Protocol):
    """The few operations the formulas below need beyond + − × ÷ and ``abs``, for one kind of number.

    Python floats use :data:`FLOATS`; the builder's differentiable sampler passes torch's (``torch.where``,
    ``torch.expm1``, ``torch.exp``, its own :meth:`next_term`, ``torch.linalg.solve``), so one text of each
    formula serves the loader's samplers and autograd.
    """

    def where(self, condition: Any, a: Any, b: Any) -> Any: ...

    def expm1(self, z: Any) -> Any: ...

    def exp(self, z: Any) -> Any: ...

    def next_term(self, term: Any, z: Any, n: int) -> Any:
        """term · z / n: the next Taylor term of :func:`phi`. Each backend keeps the rounding order the shipped
        registry was computed with (floats: term · (z/n), finalize's figures; tensors: (term · z)/n, refine's
        gradients). The two differ in the last bit for a few per cent of arguments, which moves the registry's
        noise-level figures (log ratios of ~1e-15 between grids equal to the last bits), so unifying them is a
        data release (a full rebuild), not a refactor."""
        ...

    def solve(self, rows: list[list[Any]], rhs: list[Any]) -> list[Any]:
        """x with rows · x = rhs (a small dense system; entries of ``rows`` may be plain floats)."""
        ...


class _Floats:
    """:class:`Arithmetic` on Python floats (the standard library's ``math``)."""

    @staticmethod
    def where(condition: bool, a: float, b: float) -> float:
        return a if condition else b

    expm1 = staticmethod(math.expm1)
    exp = staticmethod(math.exp)

    @staticmethod
    def next_term(term: float, z: float, n: int) -> float:
        return term * (z / n)

    @staticmethod
    def solve(rows: list[list[float]], rhs: list[float]) -> list[float]:
        return _solve(rows, rhs)


FLOATS: Arithmetic = _Floats()


def phi(k: int, z: Any, ops: Arithmetic = FLOATS) -> Any:
    """φ_k(z) = Σ_{n≥0} zⁿ / (n+k)!, the exponential-integrator functions (z a float, or a tensor with ``ops``).

    φ_0(z) = e^z, φ_{k+1}(z) = (φ_k(z) − 1/k!) / z, so φ_1(z) = (e^z − 1)/z, φ_2(z) = (e^z − 1 − z)/z².
    The recursion (from φ_1 = expm1(z)/z, without the φ_0 − 1 cancellation) cancels badly for small |z|;
    there the Taylor series is summed instead (|z| < 1: the terms fall faster than 1/n!, 30 terms reach
    double precision). Both branches are computed on safe inputs and one is selected, so on tensors the
    unused branch never produces a NaN gradient.
    Identity used throughout: ∫_0^h e^{u−h} uⁿ du = n! h^{n+1} φ_{n+1}(−h).
    """
    if k < 0:
        raise ValueError(f"phi: k must be >= 0, got {k}")
    if k == 0:
        return ops.exp(z)
    small = abs(z) < 1.0
    if small is True or small is False:  # one float: only the branch it selects
        return _phi_series(k, z, ops) if small else _phi_recursion(k, z, ops)
    return ops.where(
        small, _phi_series(k, ops.where(small, z, 0.0), ops), _phi_recursion(k, ops.where(small, 1.0, z), ops)
    )


def _phi_series(k: int, z: Any, ops: Arithmetic) -> Any:
    """Σ_{n<30} zⁿ/(n+k)! (φ_k for |z| < 1)."""
    total, term, next_term = 0.0, 1.0 / math.factorial(k), ops.next_term
    for n in range(1, 30):
        total = total + term
        term = next_term(term, z, n + k)
    return total


def _phi_recursion(k: int, z: Any, ops: Arithmetic) -> Any:
    """φ_1 = expm1(z)/z, φ_{j+1} = (φ_j − 1/j!)/z (φ_k for |z| ≥ 1)."""
    value = ops.expm1(z) / z
    for j in range(1, k):
        value = (value - 1.0 / math.factorial(j)) / z
    return value


def unipc_plan(
    lam: Sequence[Any],
    alpha: Sequence[Any],
    sigma: Sequence[Any],
    steps: Sequence[Any],
    expm1s: Sequence[Any],
    phis: dict[int, Sequence[Any]],
    orders: Sequence[int],
    *,
    variant: str,
    corrector: bool,
    ops: Arithmetic,
) -> list[tuple[Any, list[Any], list[Any] | None]]:
    """UniPC's [(σ_t/σ_s, predictor weights, corrector weights or None)] for the steps of ``orders``, in the
    numbers of ``ops`` (formulas: :func:`unipc_coefficients`).

    The caller supplies, per step s, h_s = λ_{s+1} − λ_s (``steps``), e^{−h_s} − 1 (``expm1s``) and
    φ_j(−h_s) (``phis[j]``, j = 2 … max order + 1), so that a tensor backend computes them for all steps at
    once. Orders are at most 3 (the predictor's system at order 3 is [[1, 1], [r_1, r_2]] ρ_p = b[:−1]).
    """
    n_run = len(orders)
    plan = []
    for s in range(n_run):
        k = orders[s]
        h = steps[s]
        hh = -h
        h_phi_1 = expm1s[s]
        b_of_h = hh if variant == "bh1" else h_phi_1
        b = [math.factorial(i) * hh * phis[i + 1][s] / b_of_h for i in range(1, k + 1)]  # i!·hh·φ_{i+1}(hh)/B(h)
        r = [(lam[s - i] - lam[s]) / h for i in range(1, k)]
        if k == 1:
            rho_p: list[Any] = []
        elif k == 2:
            rho_p = [0.5]
        else:
            rho_p = ops.solve([[1.0] * (k - 1), r], b[:-1])
        pred = _bh_weights(alpha[s + 1], h_phi_1, b_of_h, r, rho_p)
        corr = None
        if corrector and s < n_run - 1:
            if k == 1:
                rho_c = [0.5]
            else:
                rho_c = ops.solve([[*(ri ** (row - 1) for ri in r), 1.0] for row in range(1, k + 1)], b)
            corr = _bh_weights(alpha[s + 1], h_phi_1, b_of_h, r, rho_c)
        plan.append((sigma[s + 1] / sigma[s], pred, corr))
    return plan


def dpmpp_plan(
    lam: Sequence[Any],
    alpha: Sequence[Any],
    sigma: Sequence[Any],
    steps: Sequence[Any],
    phis: dict[int, Sequence[Any]],
    orders: Sequence[int],
) -> list[tuple[Any, list[Any]]]:
    """DPM-Solver++'s [(σ_t/σ_s, weights on (m_s, m_{s−1}, …))] for the steps of ``orders`` (formulas:
    :func:`dpmpp_coefficients`), with h_s (``steps``) and φ_j(−h_s) (``phis[j]``, j = 1 … max order) from
    the caller, as in :func:`unipc_plan`. Only + − × ÷, so any number type serves.
    """
    plan = []
    for s in range(len(orders)):
        k = orders[s]
        h = steps[s]
        c1 = alpha[s + 1] * h * phis[1][s]
        if k == 1:
            w = [c1]
        elif k == 2:
            r0 = (lam[s] - lam[s - 1]) / h
            w = [c1 * (1.0 + 0.5 / r0), -c1 * 0.5 / r0]
        else:
            r0 = (lam[s] - lam[s - 1]) / h
            r1 = (lam[s - 1] - lam[s - 2]) / h
            c2 = alpha[s + 1] * h * phis[2][s]
            c3 = alpha[s + 1] * h * phis[3][s]
            # D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1, as coefficient vectors on (m0, m1, m2)
            d10 = (1.0 / r0, -1.0 / r0, 0.0)
            d11 = (0.0, 1.0 / r1, -1.0 / r1)
            diff = [p - q for p, q in zip(d10, d11, strict=True)]
            d1 = [p + r0 / (r0 + r1) * d for p, d in zip(d10, diff, strict=True)]
            d2 = [d / (r0 + r1) for d in diff]
            w = [c1 * e + c2 * p + c3 * q for e, p, q in zip((1.0, 0.0, 0.0), d1, d2, strict=True)]
        plan.append((sigma[s + 1] / sigma[s], w))
    return plan


def _bh_weights(alpha_t: Any, h_phi_1: Any, b_of_h: Any, r: list[Any], rho: list[Any]) -> list[Any]:
    """Expand −α_t·(e^{hh}−1)·m_s − α_t·B(h)·(Σ_i ρ_i D_i [+ ρ_k D_t]) into weights.

    ``len(rho) == len(r)`` (predictor): weights on (m_s, m_{s−1}, …). ``len(rho) == len(r) + 1`` (corrector):
    weights on (m_t, m_s, m_{s−1}, …).
    """
    c = -alpha_t * b_of_h
    history = [c * rho_i / r_i for rho_i, r_i in zip(rho, r, strict=False)]  # on m_{s−i}
    w_s = -alpha_t * h_phi_1 - sum(history) if history else -alpha_t * h_phi_1  # D_i puts −1/r_i on m_s
    if len(rho) == len(r) + 1:
        w_t = c * rho[-1]
        return [w_t, w_s - w_t, *history]
    return [w_s, *history]


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Solve a small dense system by Gaussian elimination with partial pivoting (float64)."""
    n = len(rhs)
    a = [[float(v) for v in row] + [float(rhs[i])] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda i: abs(a[i][col]))
        if a[pivot][col] == 0.0:
            raise ValueError("singular UniPC system: two grid nodes share the same lambda")
        a[col], a[pivot] = a[pivot], a[col]
        for i in range(col + 1, n):
            f = a[i][col] / a[col][col]
            for j in range(col, n + 1):
                a[i][j] -= f * a[col][j]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (a[i][n] - sum(a[i][j] * x[j] for j in range(i + 1, n))) / a[i][i]
    return x
