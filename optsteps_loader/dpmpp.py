"""Reference DPM-Solver++ multistep sampler (2M / 3M, data prediction, torch) for registry entries.

Lu, Zhou, Bao, Chen, Li, Zhu, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models" (arXiv:2211.01095). Same conventions as :mod:`optsteps_loader.unipc` (model call, predictions,
callback, dtype/device handling); importing this module imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import coefficients
from .model_io import PREDICTIONS, Denoiser, Grid, combine, event, final, initial_noise_scale

__all__ = ["ORDERS", "PREDICTIONS", "initial_noise_scale", "sample"]

ORDERS = (1, 2, 3)


def sample(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    steps: Any,
    *,
    prediction: str = "epsilon",
    order: int = 2,
    lower_order_final: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """Integrate the diffusion ODE over the entry's grid with DPM-Solver++(2M/3M); returns x at the last node,
    or x̂_0 at the last evaluated node for a σ = 0-ending entry (as :func:`optsteps_loader.unipc.sample`).

    ``model``, ``x``, ``steps``, ``prediction`` and ``callback`` are as in
    :func:`optsteps_loader.unipc.sample`; ``order`` is 1 (DDIM, which is Euler in σ/α), 2 (2M) or 3 (3M).
    Warm-up uses orders 1, 2, …; with ``lower_order_final`` the steps run diffusers' orders, those the entries
    are measured with (:func:`optsteps_loader.coefficients.solver_step_orders`: …, 2, 1 on the last steps below
    15 steps; from 15 on only the step to σ = 0 of a σ = 0 ending is first order). One model call per step:
    N = ``steps.nfe`` calls.

    Update for s → t (λ = log α − log σ, m = x̂_0, h = λ_t − λ_s, r_0 = (λ_s − λ_{s−1})/h,
    r_1 = (λ_{s−1} − λ_{s−2})/h, φ_k = φ_k(−h) with φ_1(z) = (e^z − 1)/z, φ_{k+1}(z) = (φ_k(z) − 1/k!)/z):

    - order 1:  x_t = (σ_t/σ_s) x_s + α_t h φ_1 m_s   (= (σ_t/σ_s) x_s − α_t (e^{−h} − 1) m_s, DDIM);
    - 2M:       x_t = (σ_t/σ_s) x_s + α_t h φ_1 (m_s + (m_s − m_{s−1})/(2 r_0));
    - 3M:       x_t = (σ_t/σ_s) x_s + α_t h (φ_1 m_s + φ_2 D_1 + φ_3 D_2), with
      D1_0 = (m_s − m_{s−1})/r_0, D1_1 = (m_{s−1} − m_{s−2})/r_1, D_1 = D1_0 + r_0 (D1_0 − D1_1)/(r_0 + r_1),
      D_2 = (D1_0 − D1_1)/(r_0 + r_1). Its D_2 term has half the weight of the exact quadratic term
      (:func:`optsteps_loader.coefficients.dpmpp_coefficients`); kept as in the reference code.

    Coefficients in float64 on the host, computed once
    (:func:`optsteps_loader.coefficients.dpmpp_coefficients`); the loop has no host–device
    synchronisation. Matches diffusers' ``DPMSolverMultistepScheduler`` (``algorithm_type="dpmsolver++"``,
    ``solver_type="midpoint"``) on the same grid.
    """
    coefficients._check_choice("order", order, ORDERS)
    denoise = Denoiser(model, steps, prediction, x)
    grid = Grid(steps, "dpmpp", order, bool(lower_order_final))
    plan = coefficients.dpmpp_coefficients(
        grid.lambdas,
        grid.alpha_t,
        grid.sigma_t,
        order=order,
        lower_order_final=bool(lower_order_final),
        orders=grid.orders,
    )
    history: list[torch.Tensor] = []  # x̂_0 at the latest nodes, newest first (at most `order`)
    for i, step in enumerate(plan):
        denoised = denoise(x, i)
        history.insert(0, denoised)
        del history[order:]
        if callback is not None:
            callback(event(steps, i, x, denoised))
        x = combine(step, x, history)
    return final(denoise, grid, steps, x, len(plan), callback)
