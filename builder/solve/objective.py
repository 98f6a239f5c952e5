"""The paper's data-free error bound F(λ_1 … λ_{N−1}) and its exact gradient (docs/method.md, 'The bound').

Grid: λ_0 = λ_T < λ_1 < … < λ_N = λ_ε (index 0 is the noisiest node), h_i = λ_{i+1} − λ_i.

**Weights.** Step s integrates the Lagrange polynomial (in λ) through its k_s most recent nodes against
e^λ exactly, with Φ_m(h) = ∫_0^h e^u u^m du (Φ0 = e^h − 1, Φ1 = h e^h − Φ0, Φ2 = h² e^h − 2Φ1):

    k = 1:  w_{s,s}   = e^{λ_s} Φ0(h)
    k = 2:  w_{s,s−1} = −e^{λ_s} Φ1/a,                     w_{s,s} = e^{λ_s} (Φ1 + a Φ0)/a           (a = h_{s−1})
    k = 3:  w_{s,s−2} = e^{λ_s} (Φ2 + b Φ1)/(a(a+b)),     w_{s,s−1} = −e^{λ_s} (Φ2 + (a+b) Φ1)/(ab),
            w_{s,s}   = e^{λ_s} (Φ2 + (a+2b) Φ1 + b(a+b) Φ0)/(b(a+b))                    (a = h_{s−2}, b = h_{s−1})

with every Φ at h = h_s. For each step the weights sum to e^{λ_{s+1}} − e^{λ_s}.

**Orders.** k_s = min(K, s+1, N−s) for maximum order K: 1,2,3,…,3,2,1 for K = 3 (UniPC ``order=3,
lower_order_final=True``), 1,2,…,2,1 for K = 2, all ones for K = 1 — the sampler's own rule,
``optsteps_loader.coefficients.step_orders``.

**Error model.** E_j = σ̂_j^p / α̂_j = (1 + e^{2λ_j})^{−p/2} (1 + e^{−2λ_j})^{1/2}.

**Bound.** With truncation τ,

    F = Σ_{s: k_s=1} |w_{s,s}| E_s
      + Σ_{s: k_s≥2, s<τ} sqrt(Σ_j (w_{s,j} E_j)²)
      + Σ_j |Σ_{s: k_s≥2, s≥τ} w_{s,j} E_j|.

**Gradient.** The weights are analytic in λ, so their partial derivatives come from complex-step
differentiation (forward mode, exact to rounding: Im f(λ + i·η·e_m)/η with η = 1e-20). Each step's
weights depend on the four consecutive λ_{s−2..s+1}, so perturbing every fourth λ at once yields all
partials in four batched evaluations (one complex array of shape 4 × N). The chain rule through |·| and
√ is written by hand, with sign(0) = 0 and a zero subgradient where a norm vanishes, so F and ∇F are
finite at every strictly increasing grid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from optsteps_loader.coefficients import step_orders

Array = NDArray[np.float64]

COMPLEX_STEP = 1e-20  # η of the complex-step derivative Im f(λ + iη)/η
MAX_ORDER = 3


def resolve_tau(tau: int | str, nfe: int) -> int:
    """τ as an int: ``"auto"`` is 3 for N ≤ 7 and 0 otherwise (the released code always uses 3)."""
    if tau == "auto":
        return 3 if nfe <= 7 else 0
    if isinstance(tau, bool) or not isinstance(tau, (int, np.integer)) or tau < 0:
        raise ValueError(f"tau must be 'auto' or an integer ≥ 0, got {tau!r}")
    return int(tau)


def error_model(lambdas: ArrayLike, p: float) -> tuple[Array, Array]:
    """E(λ) = (1 + e^{2λ})^{−p/2} (1 + e^{−2λ})^{1/2} and dE/dλ = E·(−p·sigmoid(2λ) − sigmoid(−2λ))."""
    lam = np.asarray(lambdas, dtype=np.float64)
    log_e = -0.5 * p * np.logaddexp(0.0, 2.0 * lam) + 0.5 * np.logaddexp(0.0, -2.0 * lam)
    e = np.exp(log_e)
    sig_pos = 0.5 * (1.0 + np.tanh(lam))  # sigmoid(2λ)
    sig_neg = 0.5 * (1.0 - np.tanh(lam))  # sigmoid(−2λ)
    return e, e * (-p * sig_pos - sig_neg)


def lagrange_weights(lambdas: NDArray, orders: NDArray) -> NDArray:
    """Weights W[..., s, c] of node s−2+c (c = 0, 1, 2) in step s; zero where a node is unused.

    ``lambdas`` has N+1 values on its last axis (real or complex, batched over leading axes);
    ``orders`` has the N step orders. Pure and analytic in λ (no abs, no branches on λ).
    """
    lam = np.asarray(lambdas)
    nfe = lam.shape[-1] - 1
    orders = np.asarray(orders)
    h_all = np.diff(lam, axis=-1)  # h_0 … h_{N−1}
    lam_s = lam[..., :-1]
    h = h_all
    scale = np.exp(lam_s)
    phi0 = np.expm1(h)
    exp_h = phi0 + 1.0
    phi1 = h * exp_h - phi0
    phi2 = h * h * exp_h - 2.0 * phi1

    ones = np.ones_like(h)
    # a, b: the two previous step sizes, padded with ones where the step has no such history.
    prev1 = np.concatenate([ones[..., :1], h_all[..., :-1]], axis=-1)  # h_{s−1}
    prev2 = np.concatenate([ones[..., :2], h_all[..., :-2]], axis=-1)[..., :nfe]  # h_{s−2}

    w = np.zeros((*lam.shape[:-1], nfe, 3), dtype=lam.dtype)
    is1, is2, is3 = orders == 1, orders == 2, orders == 3

    w1_self = scale * phi0
    a2 = prev1
    w2_prev = -scale * phi1 / a2
    w2_self = scale * (phi1 + a2 * phi0) / a2
    a3, b3 = prev2, prev1
    w3_prev2 = scale * (phi2 + b3 * phi1) / (a3 * (a3 + b3))
    w3_prev1 = -scale * (phi2 + (a3 + b3) * phi1) / (a3 * b3)
    w3_self = scale * (phi2 + (a3 + 2.0 * b3) * phi1 + b3 * (a3 + b3) * phi0) / (b3 * (a3 + b3))

    w[..., 2] = np.where(is1, w1_self, np.where(is2, w2_self, w3_self))
    w[..., 1] = np.where(is2, w2_prev, np.where(is3, w3_prev1, 0.0))
    w[..., 0] = np.where(is3, w3_prev2, 0.0)
    return w


def _weights_and_partials(lambdas: Array, orders: NDArray) -> tuple[Array, Array, NDArray]:
    """W[s, c], and dW[r, s, c] = ∂W[s, c]/∂λ_{m_r(s)} with m_r(s) the index in {s−2..s+1} ≡ r (mod 4)."""
    n_nodes = lambdas.shape[0]
    probe = np.tile(lambdas.astype(np.complex128), (4, 1))
    idx = np.arange(n_nodes)
    for r in range(4):
        probe[r, idx % 4 == r] += 1j * COMPLEX_STEP
    w_complex = lagrange_weights(probe, orders)
    weights = w_complex[0].real
    partials = w_complex.imag / COMPLEX_STEP
    s = np.arange(n_nodes - 1)
    # the node index each probe r perturbs inside step s's window s−2 … s+1
    perturbed = np.stack([s - 2 + (r - (s - 2)) % 4 for r in range(4)])
    return weights, partials, perturbed


def node_index(nfe: int) -> Array:
    """node[s, c] = s − 2 + c, the node that weight c of step s multiplies."""
    return np.arange(nfe)[:, None] - 2 + np.arange(3)[None, :]


def objective(lambdas: ArrayLike, p: float, tau: int, max_order: int = 3) -> float:
    """F at a full grid λ_0 … λ_N (docs/method.md, 'The bound')."""
    return objective_and_gradient(lambdas, p, tau, max_order, need_gradient=False)[0]


def objective_and_gradient(
    lambdas: ArrayLike, p: float, tau: int, max_order: int = 3, *, need_gradient: bool = True
) -> tuple[float, Array | None]:
    """F and ∂F/∂λ_m for every node m = 0..N of a full grid (endpoints included; callers drop them)."""
    lam = np.asarray(lambdas, dtype=np.float64)
    nfe = lam.shape[0] - 1
    orders = np.asarray(step_orders(nfe, max_order))
    node = node_index(nfe)
    used = node >= 0
    safe_node = np.where(used, node, 0)
    err, derr = error_model(lam, p)

    if need_gradient:
        weights, partials, perturbed = _weights_and_partials(lam, orders)
    else:
        weights = lagrange_weights(lam, orders)
    m = weights * np.where(used, err[safe_node], 0.0)  # M[s, c] = W[s, c] E_node

    first_order = orders == 1
    rss = (orders >= 2) & (np.arange(nfe) < tau)
    pooled = (orders >= 2) & ~rss

    term_a = np.abs(m[first_order, 2]).sum()
    norms = np.sqrt((m[rss] ** 2).sum(axis=1))
    term_b = norms.sum()
    pooled_nodes = np.bincount(safe_node[pooled].ravel(), weights=m[pooled].ravel(), minlength=nfe + 1)
    term_c = np.abs(pooled_nodes).sum()
    value = float(term_a + term_b + term_c)
    if not need_gradient:
        return value, None

    g = np.zeros_like(m)  # ∂F/∂M[s, c]
    g[first_order, 2] = np.sign(m[first_order, 2])
    with np.errstate(invalid="ignore", divide="ignore"):
        g[rss] = np.where(norms[:, None] > 0, m[rss] / norms[:, None], 0.0)
    g[pooled] = np.sign(pooled_nodes)[safe_node[pooled]]
    g = np.where(used, g, 0.0)

    grad = np.bincount(safe_node.ravel(), weights=(g * weights).ravel(), minlength=nfe + 1) * derr
    g_err = g * np.where(used, err[safe_node], 0.0)  # ∂F/∂W[s, c]
    for r in range(4):
        contribution = (g_err * partials[r]).sum(axis=1)
        valid = perturbed[r] >= 0
        grad += np.bincount(perturbed[r][valid], weights=contribution[valid], minlength=nfe + 1)
    return value, grad
