"""Reference multistep UniPC sampler (torch) for registry entries.

UniPC: Zhao, Bai, Rao, Zhou, Lu, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
Diffusion Models", NeurIPS 2023 (arXiv:2302.04867); the steps come from Xue et al., "Accelerating Diffusion
Sampling with Optimized Time Steps", CVPR 2024 (arXiv:2402.17376).

Importing this module imports torch; importing :mod:`optsteps_loader` does not.

Example::

    import torch, optsteps_loader
    from optsteps_loader import unipc

    steps = optsteps_loader.get("scaled-linear", nfe=8)
    x = unipc.initial_noise_scale(steps) * torch.randn(1, 4, 64, 64)
    x0 = unipc.sample(unet, x, steps, prediction="epsilon")  # a diffusers UNet2DModel works as is
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import coefficients
from .model_io import PREDICTIONS, Denoiser, Grid, combine, event, final, initial_noise_scale

__all__ = ["PREDICTIONS", "VARIANTS", "initial_noise_scale", "sample"]

VARIANTS = coefficients.UNIPC_VARIANTS


def sample(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    steps: Any,
    *,
    prediction: str = "epsilon",
    order: int | None = None,
    variant: str = "bh2",
    corrector: bool = True,
    lower_order_final: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """Integrate the diffusion ODE over the entry's grid with multistep UniPC; returns x at the last node
    (``steps.ending == "eps"``) or, for a σ = 0-ending entry, x̂_0 at the last evaluated node (the step to σ = 0
    is first order; diffusers' ``final_sigmas_type="zero"``). N = ``steps.nfe`` model calls either way.

    Args:
        model: called as ``model(x, timestep)``; ``timestep`` has shape ``x.shape[:1]`` and holds
            ``steps.timesteps[i]`` (``torch.long`` for integer timesteps, else ``x.dtype``). It runs in x's
            dtype and device; its output is interpreted according to ``prediction``. It may return a tensor,
            a diffusers output (``unet(x, t)`` gives a ``UNet2DOutput``: its ``.sample`` is used) or a tuple
            whose first item is the tensor; the tensor must have x's shape (``ValueError`` naming both shapes).
        x: the start at the first (noisiest) node, any shape with the batch first, any floating dtype and
            device, e.g. ``initial_noise_scale(steps) * torch.randn(...)`` (σ_T ≈ 1 for VP schedules).
        steps: an :class:`optsteps_loader.steps.Steps` (uses ``lambdas``, ``alpha_t``, ``sigma_t``,
            ``timesteps``, ``order``).
        prediction: ``"epsilon"``, ``"sample"`` (x_0), ``"v"`` (v = α ε − σ x_0) or ``"flow"`` (u = ε − x_0).
        order: UniPC order 1–3; ``None`` takes ``steps.order`` (the order the steps were optimised for).
        variant: ``"bh2"`` (B(h) = e^{−h} − 1; the default, diffusers' default, and the variant every registry
            entry's quality figures were measured with) or ``"bh1"`` (B(h) = −h, the reference code's default).
        corrector: apply UniC after every step but the last (no extra model calls).
        lower_order_final: orders fall to …, 2, 1 on the last steps (order_s = min(order, s+1, N−s)).
        callback: called once per step, before the step's update, with a dict ``i``, ``x`` (the sample at
            node i, corrected), ``denoised`` (x̂_0 at node i), ``t``, ``sigma`` (σ/α), ``timestep``.

    The update (data prediction, λ = log α − log σ, m = x̂_0, nodes s_i before s = s_0, t = s + 1):
    h = λ_t − λ_s, hh = −h, r_i = (λ_{s_i} − λ_s)/h, D_i = (m_{s_i} − m_s)/r_i, B(h) = hh (bh1) or
    e^{hh} − 1 (bh2), g_1 = (e^{hh} − 1)/hh − 1, g_{i+1} = g_i/hh − 1/(i+1)! (g_i = hh·φ_{i+1}(hh)),
    b_i = i!·g_i/B(h), R_{ij} = r_j^{i−1} with r_k = 1;

    - UniP: x̃_t = (σ_t/σ_s) x_s − α_t (e^{hh} − 1) m_s − α_t B(h) Σ_i ρ^p_i D_i, with ρ^p = ½ at order 2
      and R[:−1,:−1] ρ^p = b[:−1] at order 3;
    - UniC: m_t = x̂_0(x̃_t, t), x_t = (σ_t/σ_s) x_s − α_t (e^{hh} − 1) m_s − α_t B(h) (Σ_i ρ^c_i D_i +
      ρ^c_k (m_t − m_s)), with ρ^c = ½ at order 1 and R ρ^c = b otherwise; m_t is reused by the next step,
      so there are exactly N = ``steps.nfe`` model calls (no corrector after the last one).

    All coefficients are computed once, in float64 on the host (:mod:`optsteps_loader.coefficients`);
    the loop only scales and adds tensors with Python floats: no host–device synchronisation. Matches
    diffusers' ``UniPCMultistepScheduler`` (``predict_x0=True``) run on the same grid
    (see :func:`optsteps_loader.diffusers.configure_scheduler`). Bad arguments raise ``ValueError``.
    """
    order = steps.order if order is None else order
    coefficients._check_choice("order", order, coefficients.ORDERS)
    coefficients._check_choice("variant", variant, VARIANTS)
    denoise = Denoiser(model, steps, prediction, x)
    grid = Grid(steps, "unipc", order, bool(lower_order_final))
    plan = coefficients.unipc_coefficients(
        grid.lambdas,
        grid.alpha_t,
        grid.sigma_t,
        order=order,
        variant=variant,
        corrector=bool(corrector),
        lower_order_final=bool(lower_order_final),
        orders=grid.orders,
    )

    history: list[torch.Tensor] = []  # x̂_0 at the latest nodes, newest first (at most `order`)
    x_start = x  # the sample the previous step started from (the corrector restarts from it)
    for i, step in enumerate(plan):
        denoised = denoise(x, i)
        previous = plan[i - 1].corrector if i > 0 else None
        if previous is not None:
            x = combine(previous, x_start, [denoised, *history])
        history.insert(0, denoised)
        del history[order:]
        if callback is not None:
            callback(event(steps, i, x, denoised))
        x_start = x
        x = combine(step.predictor, x, history)
    return final(denoise, grid, steps, x, len(plan), callback)
