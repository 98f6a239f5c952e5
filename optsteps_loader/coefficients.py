"""Per-step coefficients of the multistep samplers, in float64 with the standard library only.

Every sampler here is an exponential integrator in data-prediction form. With the half-log-SNR
λ = log α − log σ, the probability-flow ODE has the exact solution (docs/method.md, 'The bound')

    x_t / σ_t = x_s / σ_s + ∫_{λ_s}^{λ_t} e^{λ} x_θ(x_λ, λ) dλ,

and every multistep update below replaces x_θ by a combination of stored data predictions m_j, so that
one step is a *linear combination*

    x_next = scale · x + Σ_j weights[j] · m_j,                 scale = σ_t / σ_s,

with the m_j newest first. This module computes ``scale`` and ``weights`` once per sampling call, from
the entry's λ, α, σ; the torch loops (``unipc.py``, ``dpmpp.py``) only multiply and add. One definition
of each formula lives here:

- :func:`phi`: the φ_k functions;
- :func:`step_orders`: the warm-up / lower-order-final order pattern, and :func:`solver_step_orders`, the
  pattern each solver's entries are measured with (the hosts' rules);
- :func:`unipc_coefficients`: UniP predictor and UniC corrector (bh1/bh2), Zhao et al., "UniPC: A Unified
  Predictor-Corrector Framework for Fast Sampling of Diffusion Models", NeurIPS 2023 (arXiv:2302.04867);
- :func:`dpmpp_coefficients`: DPM-Solver++ multistep 2M/3M, Lu et al., "DPM-Solver++: Fast Solver for
  Guided Sampling of Diffusion Probabilistic Models" (arXiv:2211.01095), in the form of the reference
  code (LuChengTHU/dpm-solver) and diffusers.

These are *not* the weights of the step-optimisation objective (docs/method.md, 'The bound': exact Lagrange-in-λ
weights); that objective lives in the builder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def phi(k: int, z: float) -> float:
    """φ_k(z) = Σ_{n≥0} zⁿ / (n+k)!, the exponential-integrator functions.

    φ_0(z) = e^z, φ_{k+1}(z) = (φ_k(z) − 1/k!) / z, so φ_1(z) = (e^z − 1)/z, φ_2(z) = (e^z − 1 − z)/z².
    The recursion cancels badly for small |z|; there the Taylor series is summed instead (|z| < 1: the
    terms fall faster than 1/n!, 30 terms reach double precision).
    Identity used throughout: ∫_0^h e^{u−h} uⁿ du = n! h^{n+1} φ_{n+1}(−h).
    """
    if k < 0:
        raise ValueError(f"phi: k must be >= 0, got {k}")
    if abs(z) < 1.0:
        total, term = 0.0, 1.0 / math.factorial(k)
        for n in range(1, 30):
            total += term
            term *= z / (n + k)
        return total
    value = math.expm1(z) / z  # φ_1, computed without the φ_0 − 1 cancellation
    if k == 0:
        return math.exp(z)
    for j in range(1, k):
        value = (value - 1.0 / math.factorial(j)) / z
    return value


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
    result = []
    for s, k in enumerate(orders):
        h = lam[s + 1] - lam[s]
        hh = -h
        alpha_t = float(alphas[s + 1])
        scale = float(sigmas[s + 1]) / float(sigmas[s])
        h_phi_1 = math.expm1(hh)
        b_of_h = hh if variant == "bh1" else h_phi_1
        # b_i = i!·g_i/B(h) with g_i = hh·φ_{i+1}(hh)
        b = [math.factorial(i) * hh * phi(i + 1, hh) / b_of_h for i in range(1, k + 1)]
        r = [(lam[s - i] - lam[s]) / h for i in range(1, k)]
        rows = [[*(ri ** (row - 1) for ri in r), 1.0] for row in range(1, k + 1)]

        if k == 1:
            rho_p: list[float] = []
        elif k == 2:
            rho_p = [0.5]
        else:
            rho_p = _solve([row[:-1] for row in rows[:-1]], b[:-1])
        predictor = _bh_weights(scale, alpha_t, h_phi_1, b_of_h, r, rho_p, k)

        corr = None
        if corrector and s < len(orders) - 1:
            rho_c = [0.5] if k == 1 else _solve(rows, b)
            corr = _bh_weights(scale, alpha_t, h_phi_1, b_of_h, r, rho_c, k)
        result.append(UniPCStep(predictor, corr))
    return tuple(result)


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
    result = []
    for s, k in enumerate(orders):
        h = lam[s + 1] - lam[s]
        alpha_t = float(alphas[s + 1])
        scale = float(sigmas[s + 1]) / float(sigmas[s])
        c1 = alpha_t * h * phi(1, -h)
        if k == 1:
            weights: tuple[float, ...] = (c1,)
        elif k == 2:
            r0 = (lam[s] - lam[s - 1]) / h
            weights = (c1 * (1.0 + 0.5 / r0), -c1 * 0.5 / r0)
        else:
            r0 = (lam[s] - lam[s - 1]) / h
            r1 = (lam[s - 1] - lam[s - 2]) / h
            c2 = alpha_t * h * phi(2, -h)
            c3 = alpha_t * h * phi(3, -h)
            # D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1, as coefficient vectors on (m0, m1, m2)
            d10 = (1.0 / r0, -1.0 / r0, 0.0)
            d11 = (0.0, 1.0 / r1, -1.0 / r1)
            diff = tuple(a - b for a, b in zip(d10, d11, strict=True))
            d1 = tuple(a + r0 / (r0 + r1) * d for a, d in zip(d10, diff, strict=True))
            d2 = tuple(d / (r0 + r1) for d in diff)
            weights = tuple(c1 * e + c2 * p + c3 * q for e, p, q in zip((1.0, 0.0, 0.0), d1, d2, strict=True))
        result.append(LinearStep(k, scale, weights))
    return tuple(result)


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


def _bh_weights(
    scale: float,
    alpha_t: float,
    h_phi_1: float,
    b_of_h: float,
    r: list[float],
    rho: list[float],
    k: int,
) -> LinearStep:
    """Expand −α_t·(e^{hh}−1)·m_s − α_t·B(h)·(Σ_i ρ_i D_i [+ ρ_k D_t]) into weights.

    ``len(rho) == len(r)`` (predictor): weights on (m_s, m_{s−1}, …). ``len(rho) == len(r) + 1`` (corrector):
    weights on (m_t, m_s, m_{s−1}, …).
    """
    c = -alpha_t * b_of_h
    history = [c * rho_i / r_i for rho_i, r_i in zip(rho, r, strict=False)]  # on m_{s−i}
    w_s = -alpha_t * h_phi_1 - sum(history)  # D_i = (m_{s_i} − m_s)/r_i puts −1/r_i on m_s
    if len(rho) == len(r) + 1:
        w_t = c * rho[-1]
        return LinearStep(k, scale, (w_t, w_s - w_t, *history))
    return LinearStep(k, scale, (w_s, *history))


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
