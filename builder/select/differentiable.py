"""Differentiable (torch float64) UniPC and DPM-Solver++ on a λ-grid, and the mixture denoiser in torch.

Everything here is a function of the grid λ (a 1-D float64 tensor that may require grad): the samplers'
coefficients, the VP-normalised α̂ = (1 + e^{−2λ})^{−1/2}, σ̂ = (1 + e^{2λ})^{−1/2} (as exp(−½ softplus(∓2λ)),
so σ̂ → 0 without overflow), and the denoiser's dependence on (α̂, σ̂). Autograd then gives the exact
∂(sample error)/∂λ that the refine stage (:mod:`builder.select.refine`) hands to scipy.

The coefficients are the loader's own formulas (:func:`optsteps_loader.solver_formulas.unipc_plan` and
``dpmpp_plan``: UniPC bh1/bh2 orders 1–3 with the UniC corrector after every step but the last; DPM-Solver++
1 / 2M / 3M), run on tensors through :data:`TENSORS`: each step is ``x_next = scale · x + Σ_j w_j m_j`` with
m_j the data predictions, newest first. The order of each step is the loader's
:func:`~optsteps_loader.coefficients.solver_step_orders` (the hosts' rules), so the loader's float64
samplers and these agree to rounding (``tests/test_differentiable.py``: ≤ 1e-12 relative).

Endings (``ending``):

- ``"eps"``: the grid has N + 1 finite nodes λ_0 < … < λ_N; the answer is x at λ_N (the official UniPC /
  DPM-Solver code).
- ``"zero"``: the grid has N finite nodes λ_0 < … < λ_{N−1} and the N-th step goes to σ = 0 (λ = +∞), as
  diffusers (``final_sigmas_type="zero"``), k-diffusion and ComfyUI run. That step is first order, and its
  update to σ_t = 0, α_t = 1 is x = m_{N−1}: the answer is x̂₀ at the last evaluated node, evaluated at the
  predicted point (a corrector there would not change it). The first N − 1 steps use the orders of the
  N-step pattern (order 3, N = 5: 1, 2, 3, 2, then the jump); no corrector after step N − 2. N model calls.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from optsteps_loader import solver_formulas
from optsteps_loader.coefficients import solver_step_orders
from optsteps_loader.vocabulary import ENDINGS, SOLVERS

from .mixtures import GaussianMixture

__all__ = ["DT", "ENDINGS", "SOLVERS", "TorchMixture", "make_plan", "phi", "sample", "vp"]

DT = torch.float64


def vp(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α̂, σ̂) = (exp(−½ softplus(−2λ)), exp(−½ softplus(2λ))); σ̂ = 0 exactly at λ = +∞."""
    sp = torch.nn.functional.softplus
    return torch.exp(-0.5 * sp(-2.0 * lam)), torch.exp(-0.5 * sp(2.0 * lam))


class _Tensors:
    """:class:`~optsteps_loader.solver_formulas.Arithmetic` on float64 torch tensors (differentiable)."""

    where = staticmethod(torch.where)
    expm1 = staticmethod(torch.expm1)
    exp = staticmethod(torch.exp)

    @staticmethod
    def next_term(term: torch.Tensor, z: torch.Tensor, n: int) -> torch.Tensor:
        return term * z / n

    @staticmethod
    def solve(rows: list[list], rhs: list[torch.Tensor]) -> list[torch.Tensor]:
        like = rhs[0]
        matrix = [
            torch.stack([v if isinstance(v, torch.Tensor) else torch.full_like(like, v) for v in row]) for row in rows
        ]
        return list(torch.linalg.solve(torch.stack(matrix), torch.stack(rhs)))


TENSORS = _Tensors()


def phi(k: int, z: torch.Tensor) -> torch.Tensor:
    """φ_k(z) on a tensor (:func:`optsteps_loader.solver_formulas.phi`, the one definition, in torch)."""
    return solver_formulas.phi(k, z, TENSORS)


class TorchMixture:
    """E[x₀ | x_λ] of a :class:`GaussianMixture` in torch, differentiable in λ (same formulas as
    :meth:`GaussianMixture.denoise`): with v_k = α̂² s_k + σ̂² and z_k = U_kᵀ(x − α̂ μ_k),
    r = softmax_k(log π_k − ½ Σ log v_k − ½ Σ z_k²/v_k) and x̂₀ = Σ_k r_k (μ_k + U_k(α̂ s_k/v_k ⊙ z_k)).

    Written for few, small tensor operations (this runs inside every refine iteration, forward and backward):

    - diagonal mixtures (U_k = I) never form a (B, K, D) tensor: with y_k = x − α̂ μ_k,
      Σ_d y_kd²/v_kd = x² · (1/v_k) − 2α̂ x · (μ_k/v_k) + α̂² Σ_d μ_kd²/v_kd and
      Σ_k r_k g_k ⊙ y_k = x ⊙ (r g) − α̂ r (g ⊙ μ) with g_k = α̂ s_k / v_k: five (B, D) × (D, K) products;
    - full ones use one (D, K·D) projection, z_k/v_k once, and map back with diag(s) U_k folded into one
      constant (K·D, D) matrix: x̂₀ = r μ + α̂ (r_k z_k/v_k) (diag(s) Uᵀ) stacked.
    """

    def __init__(self, mixture: GaussianMixture) -> None:
        self.K, self.D = mixture.means.shape
        self.logw = torch.tensor(np.log(mixture.weights), dtype=DT)
        self.mu = torch.tensor(mixture.means, dtype=DT)  # (K, D)
        self.s = torch.tensor(mixture.eigvals, dtype=DT)  # (K, D)
        self.diagonal = mixture.eigvecs is None
        if self.diagonal:
            self.mu2 = self.mu * self.mu
        else:
            u = np.asarray(mixture.eigvecs, dtype=np.float64)  # (K, D, D)
            self.proj = torch.tensor(u.transpose(1, 0, 2).reshape(self.D, self.K * self.D))
            self.pmu = torch.tensor(np.einsum("kdr,kd->kr", u, mixture.means))  # U_kᵀ μ_k (K, D)
            self.back = (self.s.reshape(-1, 1) * self.proj.T).contiguous()  # diag(s) Pᵀ (K·D, D)

    def __call__(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        a, sg = vp(lam)
        inv_v = 1.0 / (a * a * self.s + sg * sg)  # (K, D)
        log_det = torch.log(inv_v).sum(-1)  # −Σ_d log v_kd
        if self.diagonal:
            quad = (x * x) @ inv_v.T - (2.0 * a) * (x @ (self.mu * inv_v).T) + (a * a) * (self.mu2 * inv_v).sum(-1)
            r = torch.softmax(self.logw + 0.5 * log_det - 0.5 * quad, dim=-1)  # (B, K)
            gain = a * self.s * inv_v
            return r @ self.mu + x * (r @ gain) - a * (r @ (gain * self.mu))
        b = x.shape[0]
        z = (x @ self.proj).view(b, self.K, self.D) - a * self.pmu  # (B, K, D)
        zv = z * inv_v
        r = torch.softmax(self.logw + 0.5 * log_det - 0.5 * (zv * z).sum(-1), dim=-1)
        return r @ self.mu + a * ((r[:, :, None] * zv).reshape(b, -1) @ self.back)


def _unipc_plan(lam: torch.Tensor, orders: tuple[int, ...], variant: str, corrector: bool) -> list[tuple]:
    """[(scale, predictor weights, corrector weights or None)] for the steps λ_s → λ_{s+1} of ``lam``."""
    alpha, sigma = vp(lam)
    steps = lam[1:] - lam[:-1]
    phis = {j: phi(j, -steps) for j in range(2, max(orders) + 2)}  # every step's φ_j(−h) at once
    expm1s = torch.expm1(-steps)
    run = orders[: lam.shape[0] - 1]  # a σ = 0 ending's last step is not on the grid
    return solver_formulas.unipc_plan(
        lam, alpha, sigma, steps, expm1s, phis, run, variant=variant, corrector=corrector, ops=TENSORS
    )


def _dpmpp_plan(lam: torch.Tensor, orders: tuple[int, ...]) -> list[tuple]:
    """[(scale, weights on (m_s, m_{s−1}, …))] for DPM-Solver++ 1 / 2M / 3M steps."""
    alpha, sigma = vp(lam)
    steps = lam[1:] - lam[:-1]
    phis = {j: phi(j, -steps) for j in range(1, max(orders) + 1)}  # every step's φ_j(−h) at once
    return solver_formulas.dpmpp_plan(lam, alpha, sigma, steps, phis, orders[: lam.shape[0] - 1])


def _check(solver: str, order: int, variant: str, ending: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if ending not in ENDINGS:
        raise ValueError(f"ending must be one of {ENDINGS}, got {ending!r}")
    valid = (1, 2, 3)
    if order not in valid:
        raise ValueError(f"{solver} order must be one of {valid}, got {order!r}")
    if solver == "unipc" and variant not in ("bh1", "bh2"):
        raise ValueError(f"variant must be 'bh1' or 'bh2', got {variant!r}")


def make_plan(
    lam: torch.Tensor,
    *,
    solver: str = "unipc",
    order: int = 3,
    variant: str = "bh2",
    corrector: bool = True,
    ending: str = "eps",
) -> list[tuple]:
    """The per-step coefficients of ``solver`` on ``lam`` (computed once, shared by every problem)."""
    _check(solver, order, variant, ending)
    n_steps = lam.shape[0] - 1 if ending == "eps" else lam.shape[0]
    orders = solver_step_orders(solver, n_steps, order, ending)
    if solver == "unipc":
        return _unipc_plan(lam, orders, variant, corrector)
    return _dpmpp_plan(lam, orders)


def sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    lam: torch.Tensor,
    *,
    solver: str = "unipc",
    order: int = 3,
    variant: str = "bh2",
    corrector: bool = True,
    ending: str = "eps",
    plan: list | None = None,
) -> torch.Tensor:
    """Run the sampler from x (at λ_0) over the grid; ``denoise(x, λ_i)`` is x̂₀. Returns x at λ_N
    (``ending="eps"``) or x̂₀ at the last node (``"zero"``). ``plan`` from :func:`make_plan` (else built)."""
    if plan is None:
        plan = make_plan(lam, solver=solver, order=order, variant=variant, corrector=corrector, ending=ending)
    hist: list[torch.Tensor] = []
    if solver == "unipc":
        x_start = x
        for i, (scale, pred, _) in enumerate(plan):
            m = denoise(x, lam[i])
            prev = plan[i - 1][2] if i > 0 else None
            if prev is not None:
                x = plan[i - 1][0] * x_start + sum(w * mm for w, mm in zip(prev, [m, *hist], strict=False))
            hist.insert(0, m)
            del hist[order:]
            x_start = x
            x = scale * x + sum(w * mm for w, mm in zip(pred, hist, strict=False))
    else:
        for i, (scale, w) in enumerate(plan):
            hist.insert(0, denoise(x, lam[i]))
            del hist[order:]
            x = scale * x + sum(wi * mm for wi, mm in zip(w, hist, strict=False))
    if ending == "zero":
        return denoise(x, lam[-1])
    return x
