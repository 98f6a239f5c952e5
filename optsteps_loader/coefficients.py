"""Per-step coefficients of the multistep samplers, in float64 with the standard library only.

Every sampler here is an exponential integrator in data-prediction form. With the half-log-SNR
λ = log α − log σ, the probability-flow ODE has the exact solution (docs/method.md, 'The bound')

    x_t / σ_t = x_s / σ_s + ∫_{λ_s}^{λ_t} e^{λ} x_θ(x_λ, λ) dλ,

and every multistep update below replaces x_θ by a combination of stored data predictions m_j, so that
one step is a *linear combination*

    x_next = scale · x + Σ_j weights[j] · m_j,                 scale = σ_t / σ_s,

with the m_j newest first. This module computes ``scale`` and ``weights`` once per sampling call, from
the entry's λ, α, σ; the torch loops (``unipc.py``, ``dpmpp.py``) only multiply and add. Here:

- :func:`phi`: the φ_k functions (re-exported from :mod:`optsteps_loader.solver_formulas`);
- :func:`step_orders`: the warm-up / lower-order-final order pattern, and :func:`solver_step_orders`, the
  pattern each solver's entries are measured with (the hosts' rules);
- :func:`unipc_coefficients`: UniP predictor and UniC corrector (bh1/bh2), Zhao et al., "UniPC: A Unified
  Predictor-Corrector Framework for Fast Sampling of Diffusion Models", NeurIPS 2023 (arXiv:2302.04867);
- :func:`dpmpp_coefficients`: DPM-Solver++ multistep 2M/3M, Lu et al., "DPM-Solver++: Fast Solver for
  Guided Sampling of Diffusion Probabilistic Models" (arXiv:2211.01095), in the form of the reference
  code (LuChengTHU/dpm-solver) and diffusers.

The formulas themselves (φ and each solver's step) are written once, over any arithmetic, in
:mod:`optsteps_loader.solver_formulas`: the two functions above run them on Python floats and document the
updates; the builder's differentiable sampler runs them on torch tensors. Standard library only.

These are *not* the weights of the step-optimisation objective (docs/method.md, 'The bound': exact Lagrange-in-λ
weights); that objective lives in the builder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .solver_formulas import FLOATS, dpmpp_plan, phi, unipc_plan

__all__ = [
    "LinearStep",
    "UniPCStep",
    "dpmpp_coefficients",
    "phi",
    "schedule_family",
    "step_orders",
    "unipc_coefficients",
]

UNIPC_VARIANTS = ("bh1", "bh2")
ORDERS = (1, 2, 3)


@dataclass(frozen=True)
class LinearStep:
    """One update ``x_next = scale · x + Σ_j weights[j] · m_j`` (m_j newest first).

    ``order`` is the solver order of the step (the number of stored predictions it uses, not counting
    the fresh one a corrector adds).
    """

    order: int
    scale: float
    weights: tuple[float, ...]


@dataclass(frozen=True)
class UniPCStep:
    """Step s → s+1 of UniPC: the UniP predictor and, unless disabled or final, the UniC corrector.

    ``predictor.weights`` act on (m_s, m_{s−1}, …). ``corrector.weights`` act on (m_{s+1}, m_s, m_{s−1}, …)
    where m_{s+1} = x_θ(x̃_{s+1}) is the model's prediction at the predicted point; the corrector is applied
    to the same x_s the predictor started from.
    """

    predictor: LinearStep
    corrector: LinearStep | None


def step_orders(n_steps: int, order: int, lower_order_final: bool = True) -> tuple[int, ...]:
    """Solver order of each step s = 0..N−1.

    Warm-up: k_s ≤ s + 1 (only s + 1 predictions exist). With ``lower_order_final`` also k_s ≤ N − s, so the
    last steps fall back to orders …, 2, 1 (UniPC's rule; for N < 15 also diffusers' DPM-Solver rule). For
    order 3 this is 1, 2, 3, …, 3, 2, 1, the pattern the registry's steps were optimised for.
    """
    _check_choice("order", order, ORDERS)
    if n_steps < 1:
        raise ValueError(f"need at least one step, got {n_steps}")
    return tuple(min(order, s + 1, n_steps - s) if lower_order_final else min(order, s + 1) for s in range(n_steps))


FULL_ORDER_FROM = 15  # diffusers' DPM-Solver lowers its last two steps' order below this many steps only


def solver_step_orders(solver: str, n_steps: int, order: int, ending: str = "eps") -> tuple[int, ...]:
    """The order of each step an entry of ``solver`` runs, as the hosts run it (diffusers 0.3x–0.4x).

    - UniPC, at every N, and DPM-Solver++ below N = 15: :func:`step_orders` (1, 2, 3, …, 3, 2, 1 for order 3).
    - DPM-Solver++ from N = 15 (:data:`FULL_ORDER_FROM`) on: warm-up only, k_s = min(order, s + 1), except
      that the step to σ = 0 (``ending="zero"``) is first order: diffusers' ``DPMSolverMultistepScheduler``
      stops lowering its last orders at 15 steps, and no setting undoes it.
    """
    if solver == "dpmpp" and n_steps >= FULL_ORDER_FROM:
        orders = step_orders(n_steps, order, lower_order_final=False)
        return (*orders[:-1], 1) if ending == "zero" else orders
    return step_orders(n_steps, order)


def unipc_coefficients(
    lambdas: Sequence[float],
    alphas: Sequence[float],
    sigmas: Sequence[float],
    *,
    order: int,
    variant: str = "bh1",
    corrector: bool = True,
    lower_order_final: bool = True,
    orders: Sequence[int] | None = None,
) -> tuple[UniPCStep, ...]:
    """UniPC (data prediction) coefficients for every step of a grid λ_0 < … < λ_N.

    ``orders``: the N steps' orders, when they are not :func:`step_orders` of N (a σ = 0 ending runs the
    first N of an (N+1)-step pattern here and its last step apart).

    For the step s → t = s+1 of order k, with previous nodes s_i = s − i:

    - h = λ_t − λ_s, r_i = (λ_{s_i} − λ_s)/h < 0 (i = 1..k−1), D_i = (m_{s_i} − m_s)/r_i, hh = −h;
    - B(h) = hh (bh1) or e^{hh} − 1 (bh2);
    - b_i = i! · g_i / B(h) for i = 1..k, where g_1 = (e^{hh} − 1)/hh − 1 and g_{i+1} = g_i/hh − 1/(i+1)!,
      i.e. g_i = hh · φ_{i+1}(hh) (evaluated through :func:`phi`, without the recursion's cancellation);
    - R (k×k): row i (1..k) is (r_1, …, r_{k−1}, 1) to the power i−1, elementwise.

    UniP predictor: ρ_p = ∅ (k = 1), [½] (k = 2), else the solution of R[:−1,:−1] ρ_p = b[:−1];
    x̃_t = (σ_t/σ_s) x_s − α_t (e^{hh} − 1) m_s − α_t B(h) Σ_i ρ_p,i D_i.

    UniC corrector with m_t = x_θ(x̃_t, t), D_t = m_t − m_s: ρ_c = [½] (k = 1), else R ρ_c = b;
    x_t = (σ_t/σ_s) x_s − α_t (e^{hh} − 1) m_s − α_t B(h) (Σ_i ρ_c,i D_i + ρ_c,k D_t).
    No corrector on the final step (so NFE = N), none at all when ``corrector`` is false.

    These are the formulas of the reference implementation (wl-zhao/UniPC ``multistep_uni_pc_bh_update``)
    and of diffusers' ``UniPCMultistepScheduler`` (including the simplified ρ = ½ cases), expanded here into
    the weights on m_s, m_{s−1}, … (and m_t). Raises ``ValueError`` for an invalid grid or argument.
    """
    _check_choice("variant", variant, UNIPC_VARIANTS)
    lam = _check_grid(lambdas, alphas, sigmas)
    orders = _orders(orders, len(lam) - 1, order, lower_order_final)
    steps = [t - s for s, t in zip(lam, lam[1:], strict=False)]
    phis = {j: _PhiOfSteps(j, steps) for j in range(2, max(orders) + 2)}
    expm1s = [math.expm1(-h) for h in steps]
    alpha, sigma = [float(v) for v in alphas], [float(v) for v in sigmas]
    plan = unipc_plan(lam, alpha, sigma, steps, expm1s, phis, orders, variant=variant, corrector=corrector, ops=FLOATS)
    return tuple(
        UniPCStep(LinearStep(k, scale, tuple(pred)), None if corr is None else LinearStep(k, scale, tuple(corr)))
        for k, (scale, pred, corr) in zip(orders, plan, strict=True)
    )


def dpmpp_coefficients(
    lambdas: Sequence[float],
    alphas: Sequence[float],
    sigmas: Sequence[float],
    *,
    order: int,
    lower_order_final: bool = True,
    orders: Sequence[int] | None = None,
) -> tuple[LinearStep, ...]:
    """DPM-Solver++ multistep (data prediction) coefficients for every step of a grid λ_0 < … < λ_N
    (``orders`` as in :func:`unipc_coefficients`).

    Step s → t = s+1, h = λ_t − λ_s, h_0 = λ_s − λ_{s−1}, h_1 = λ_{s−1} − λ_{s−2}, r_0 = h_0/h, r_1 = h_1/h,
    φ_k = φ_k(−h) (so α_t h φ_1 = −α_t (e^{−h} − 1)):

    - 1 (DDIM; Euler in σ/α, as k-diffusion's and diffusers' Euler samplers):  x_t = (σ_t/σ_s) x_s + α_t h φ_1 · m_s;
    - 2M (midpoint form, D_1 = (m_s − m_{s−1})/r_0):  x_t = (σ_t/σ_s) x_s + α_t h φ_1 (m_s + ½ D_1);
    - 3M: D1_0 = (m_s − m_{s−1})/r_0, D1_1 = (m_{s−1} − m_{s−2})/r_1,
      D_1 = D1_0 + r_0/(r_0+r_1)·(D1_0 − D1_1), D_2 = (D1_0 − D1_1)/(r_0 + r_1);
      x_t = (σ_t/σ_s) x_s + α_t h (φ_1 m_s + φ_2 D_1 + φ_3 D_2).

    The 3M update is the one of the reference code and diffusers; note D_2 ≈ h² m''/2 while the exact
    Taylor term is h² m''·φ_3, so its quadratic term carries half the exact weight.
    """
    lam = _check_grid(lambdas, alphas, sigmas)
    if order not in (1, 2, 3):
        raise ValueError(f"DPM-Solver++ multistep order must be one of (1, 2, 3), got {order!r}")
    orders = _orders(orders, len(lam) - 1, order, lower_order_final)
    steps = [t - s for s, t in zip(lam, lam[1:], strict=False)]
    phis = {j: _PhiOfSteps(j, steps) for j in range(1, max(orders) + 1)}
    alpha, sigma = [float(v) for v in alphas], [float(v) for v in sigmas]
    plan = dpmpp_plan(lam, alpha, sigma, steps, phis, orders)
    return tuple(LinearStep(k, scale, tuple(w)) for k, (scale, w) in zip(orders, plan, strict=True))


class _PhiOfSteps:
    """φ_j(−h_s) for the steps s of a grid, computed when a step's formula asks for it (``[s]``)."""

    def __init__(self, j: int, steps: list[float]) -> None:
        self.j, self.steps = j, steps

    def __getitem__(self, s: int) -> float:
        return phi(self.j, -self.steps[s])


def _orders(orders: Sequence[int] | None, n_steps: int, order: int, lower_order_final: bool) -> tuple[int, ...]:
    if orders is None:
        return step_orders(n_steps, order, lower_order_final)
    orders = tuple(orders)
    if len(orders) != n_steps or any(not 1 <= k <= min(order, s + 1) for s, k in enumerate(orders)):
        raise ValueError(f"orders {orders} must give each of the {n_steps} steps an order in 1..min(order, step + 1)")
    return orders


def schedule_family(alphas: Sequence[float], sigmas: Sequence[float], tol: float = 1e-6) -> str:
    """``"vp"`` if α² + σ² = 1 at every node, ``"flow"`` if α + σ = 1, else ``"other"`` (e.g. EDM, α = 1)."""
    pairs = [(float(a), float(s)) for a, s in zip(alphas, sigmas, strict=True)]
    if all(abs(a * a + s * s - 1.0) <= tol for a, s in pairs):
        return "vp"
    if all(abs(a + s - 1.0) <= tol for a, s in pairs):
        return "flow"
    return "other"


def _check_grid(lambdas: Sequence[float], alphas: Sequence[float], sigmas: Sequence[float]) -> list[float]:
    lam = [float(v) for v in lambdas]
    if len(lam) < 2 or len(alphas) != len(lam) or len(sigmas) != len(lam):
        raise ValueError(
            f"need N+1 >= 2 nodes with as many alphas and sigmas; got {len(lam)} lambdas, "
            f"{len(alphas)} alphas, {len(sigmas)} sigmas"
        )
    if not all(math.isfinite(v) for v in lam) or any(b <= a for a, b in zip(lam, lam[1:], strict=False)):
        raise ValueError("lambdas must be finite and strictly increasing (noisiest node first)")
    if any(not (float(v) > 0.0) for v in sigmas) or any(not (float(v) > 0.0) for v in alphas):
        raise ValueError("alphas and sigmas must be positive at every node")
    return lam


def _check_choice(name: str, value: object, valid: tuple) -> None:
    if isinstance(value, bool) or value not in valid:  # True == 1, but order=True is a mistake
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
