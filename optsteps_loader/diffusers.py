"""Put a registry entry into a diffusers multistep scheduler (UniPC or DPM-Solver++) in one call.

diffusers' ``UniPCMultistepScheduler.set_timesteps`` takes no custom timesteps, and takes custom ``sigmas``
only for flow models; ``DPMSolverMultistepScheduler`` takes integer ``timesteps`` but re-derives σ from
them. :func:`configure_scheduler` instead writes the entry's grid into the scheduler's state, which is
all ``step()`` reads (checked against diffusers 0.42)::

    import optsteps_loader
    from diffusers import StableDiffusionPipeline, UniPCMultistepScheduler
    from optsteps_loader.diffusers import configure_scheduler

    pipe = StableDiffusionPipeline.from_pretrained(...)
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, solver_type="bh1")
    steps = optsteps_loader.get("scaled-linear", nfe=8)
    configure_scheduler(pipe.scheduler, steps)
    image = pipe(prompt, num_inference_steps=steps.nfe).images[0]

What is written (N = ``steps.nfe``):

- ``scheduler.sigmas``: the N+1 node values, float64 on the CPU (diffusers keeps sigmas on the CPU):
  σ/α (``steps.sigmas``) for VP schedulers, the flow σ (``steps.sigma_t``) when the scheduler was built with
  ``use_flow_sigmas=True`` (there diffusers sets α = 1 − σ). diffusers appends a final σ = 0 (or σ_min);
  here the last value is the entry's last node (t_end > 0), so the last step lands on t_end like the
  paper's sampler, and ``final_sigmas_type`` has no effect on the grid. (DPM-Solver++ with
  ``final_sigmas_type="zero"`` still forces a first-order last step, which ``lower_order_final`` does anyway.)
- ``scheduler.timesteps``: the first N entries of ``steps.timesteps`` (int64 when integer, else float32),
  passed by pipelines to the model unchanged;
- ``num_inference_steps = N``; the multistep state is reset (model outputs, warm-up counter, UniPC's last
  sample); ``begin_index = 0`` so that timesteps that collide after rounding
  (``timestep_collisions`` in the registry) cannot confuse diffusers' timestep→index lookup.

Because pipelines call ``scheduler.set_timesteps(num_inference_steps, device=...)`` themselves, the
scheduler's ``set_timesteps`` is replaced on this instance by one that re-applies the entry (it raises
``ValueError`` if asked for another number of steps, or for custom ``timesteps``/``sigmas``; a dynamic-shift
``mu`` is ignored, the entry's grid is already fixed). ``del scheduler.set_timesteps`` restores diffusers'
own method. Limits:

- the entry must match the model: a discrete entry (``scaled-linear`` for Stable Diffusion, ``ddpm-linear``)
  gives integer timesteps for 1000-step UNets; a continuous VP entry (``vp-linear``, ``vp-cosine``) gives
  float t in (0, 1], which such a UNet does not understand. Integer timesteps are the rounded
  model-time of nodes whose α, σ come from the optimised continuous t (a half-step mismatch at most);
- EDM entries (α = 1) are rejected: use diffusers' EDM schedulers or :mod:`optsteps_loader.unipc`;
- ``solver_p`` (UniPC with another predictor) is not supported;
- only ``UniPCMultistepScheduler`` and ``DPMSolverMultistepScheduler`` (and subclasses) are accepted.
"""

from __future__ import annotations

import math
import types
from typing import Any

from ._coefficients import schedule_family

__all__ = ["SUPPORTED_SCHEDULERS", "configure_scheduler"]

SUPPORTED_SCHEDULERS = ("UniPCMultistepScheduler", "DPMSolverMultistepScheduler")
_LAMBDA_TOLERANCE = 0.5  # |λ(scheduler at the integer timestep) − λ(entry)| above this: wrong schedule


def configure_scheduler(scheduler: Any, steps: Any, *, device: Any = None, check_schedule: bool = True) -> Any:
    """Make ``scheduler.step()`` follow the registry entry ``steps``; returns the same scheduler.

    Args:
        scheduler: a diffusers ``UniPCMultistepScheduler`` or ``DPMSolverMultistepScheduler``.
        steps: an :class:`optsteps_loader.steps.Steps`.
        device: where ``scheduler.timesteps`` go (as in ``set_timesteps(device=...)``).
        check_schedule: for integer timesteps, check that the scheduler's own betas give (nearly) the entry's
            λ at those timesteps, so a ``scaled-linear`` entry is not put into a ``linear``-beta scheduler.

    Raises ``ValueError`` for an unsupported scheduler or an entry it cannot represent.
    """
    import torch

    _check_scheduler(scheduler)
    flow = bool(scheduler.config.get("use_flow_sigmas", False))
    sigmas = _grid_sigmas(steps, flow)
    values = list(steps.timesteps)[:-1]
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if integer and check_schedule and not flow:
        _check_same_schedule(scheduler, steps, values)

    scheduler._optsteps_grid = (
        steps.nfe,
        torch.tensor(sigmas, dtype=torch.float64),
        torch.tensor(values, dtype=torch.int64 if integer else torch.float32),
    )
    _apply(scheduler, device)
    scheduler.set_timesteps = types.MethodType(_set_timesteps, scheduler)
    return scheduler


def _set_timesteps(scheduler: Any, num_inference_steps: int | None = None, device: Any = None, **kwargs: Any) -> None:
    """``set_timesteps`` of a configured scheduler: re-applies the registry entry (see the module doc)."""
    nfe = scheduler._optsteps_grid[0]
    custom = sorted(k for k, v in kwargs.items() if v is not None and k != "mu")
    if custom:
        raise ValueError(
            f"this scheduler follows an optsteps entry; custom {', '.join(custom)} cannot be applied "
            "(`del scheduler.set_timesteps` restores diffusers' method)"
        )
    if num_inference_steps not in (None, nfe):
        raise ValueError(
            f"this scheduler follows an optsteps entry with {nfe} steps; pass num_inference_steps={nfe} "
            f"(got {num_inference_steps})"
        )
    _apply(scheduler, device)


def _apply(scheduler: Any, device: Any) -> None:
    nfe, sigmas, timesteps = scheduler._optsteps_grid
    order = scheduler.config.solver_order
    scheduler.sigmas = sigmas.clone()
    scheduler.timesteps = timesteps.to(device) if device is not None else timesteps.clone()
    scheduler.num_inference_steps = nfe
    scheduler.model_outputs = [None] * order
    scheduler.lower_order_nums = 0
    if hasattr(scheduler, "last_sample"):  # UniPC's corrector state
        scheduler.last_sample = None
        scheduler.timestep_list = [None] * order
    scheduler._step_index = None
    scheduler.set_begin_index(0)


def _check_scheduler(scheduler: Any) -> None:
    names = {cls.__name__ for cls in type(scheduler).__mro__}
    if not names & set(SUPPORTED_SCHEDULERS):
        raise ValueError(
            f"scheduler must be one of {SUPPORTED_SCHEDULERS} (or a subclass), got {type(scheduler).__name__}"
        )
    if getattr(scheduler, "solver_p", None) is not None:
        raise ValueError("UniPCMultistepScheduler with solver_p is not supported; build it with solver_p=None")


def _grid_sigmas(steps: Any, flow: bool) -> list[float]:
    family = schedule_family(steps.alpha_t, steps.sigma_t)
    if flow:
        if family != "flow":
            raise ValueError(
                f"the scheduler uses flow sigmas (alpha = 1 - sigma) but entry {steps.schedule!r} is not a "
                "rectified-flow schedule; build the scheduler with use_flow_sigmas=False or use a flow entry"
            )
        return [float(v) for v in steps.sigma_t]
    if family != "vp":
        hint = (
            "a rectified-flow entry: build the scheduler with use_flow_sigmas=True"
            if family == "flow"
            else "for EDM use diffusers' EDM schedulers or optsteps_loader.unipc.sample"
        )
        raise ValueError(
            f"entry {steps.schedule!r} is not variance-preserving (alpha^2 + sigma^2 != 1), which this "
            f"scheduler assumes ({hint})"
        )
    return [float(v) for v in steps.sigmas]


def _check_same_schedule(scheduler: Any, steps: Any, timesteps: list[int]) -> None:
    abar = scheduler.alphas_cumprod
    if max(timesteps) >= len(abar) or min(timesteps) < 0:
        raise ValueError(
            f"entry {steps.schedule!r} has timesteps outside the scheduler's training range 0..{len(abar) - 1}"
        )
    worst = 0.0
    for i, n in enumerate(timesteps):
        a = float(abar[n])
        lam = 0.5 * (math.log(a) - math.log1p(-a))
        worst = max(worst, abs(lam - float(steps.lambdas[i])))
    if worst > _LAMBDA_TOLERANCE:
        raise ValueError(
            f"entry {steps.schedule!r} does not match this scheduler's noise schedule "
            f"(beta_schedule={scheduler.config.get('beta_schedule')!r}): half-log-SNR differs by up to "
            f"{worst:.3g} at the entry's timesteps; pick the entry of the model's schedule "
            "(or pass check_schedule=False)"
        )
