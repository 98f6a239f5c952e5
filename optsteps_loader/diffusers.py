"""Registry entries in diffusers: a configured scheduler, or the standard ``timesteps=`` / ``sigmas=`` path.

Two ways in (checked against diffusers 0.42), both with exactly N model calls for an NFE-N entry:

1. :func:`pipeline_kwargs` — the standard path, like diffusers' ``AysSchedules``: the keyword arguments a
   pipeline passes on to ``scheduler.set_timesteps`` (``pipe(prompt, **pipeline_kwargs(pipe.scheduler,
   steps))``), for ``DPMSolverMultistepScheduler``, ``DPMSolverSinglestepScheduler``,
   ``EulerDiscreteScheduler``, ``FlowMatchEulerDiscreteScheduler`` and ``EDMEulerScheduler``. It refuses
   what the scheduler would run wrongly (see its docstring); ``HeunDiscreteScheduler`` is always refused
   (two calls per step).
2. :func:`configure_scheduler` — for ``UniPCMultistepScheduler`` (whose ``set_timesteps`` takes no custom
   timesteps for non-flow models), ``DPMSolverMultistepScheduler`` and ``EDMDPMSolverMultistepScheduler``
   (EDM-parameterised pipelines; its ``set_timesteps`` takes no custom steps at all): the entry's grid is
   written into the scheduler's state, which is all ``step()`` reads::

    import optsteps_loader
    from diffusers import StableDiffusionPipeline, UniPCMultistepScheduler
    from optsteps_loader.diffusers import configure_scheduler

    pipe = StableDiffusionPipeline.from_pretrained(...)
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config)  # solver_order=2, bh2
    configure_scheduler(pipe.scheduler, "scaled-linear")      # any num_inference_steps the registry has
    image = pipe(prompt, num_inference_steps=8).images[0]

Endings (:mod:`optsteps_loader._endings`): ``get(..., ending="zero")`` entries end with a step to σ = 0
(the result is x̂_0 at the last evaluated node: diffusers' default ``final_sigmas_type="zero"``),
``ending="eps"`` entries at t_ε (the result is x there: ``final_sigmas_type="sigma_min"``). A host that can
only end at σ = 0 (FlowMatchEuler, DPM-Solver with ``final_sigmas_type="zero"`` on the standard path) is
refused a t_ε entry with :class:`~optsteps_loader._endings.EndingUnavailableError`, never run with N + 1
calls or a replaced last node. :func:`configure_scheduler` writes the grid itself, so it runs either ending;
given a schedule key it loads the entry for the scheduler's solver (UniPC → ``solver="unipc"``,
DPM-Solver → ``"dpmpp"``), ``solver_order`` and ``final_sigmas_type``.

What :func:`configure_scheduler` writes (N = ``steps.nfe``):

- ``scheduler.sigmas``: N + 1 values, float64 on the CPU (where diffusers keeps them): σ/α
  (``steps.sigmas``) for VP and EDM schedules, the flow σ (``steps.sigma_t``) with ``use_flow_sigmas=True``
  (diffusers then sets α = 1 − σ). The last value is the entry's last node (t_ε) or 0 (σ = 0 ending), so
  ``final_sigmas_type`` has no effect on the grid;
- ``scheduler.timesteps``: the N model inputs ``steps.timesteps[:N]`` (int64 when integer, else float32);
  for ``EDMDPMSolverMultistepScheduler`` its own ``precondition_noise`` of the N σ's in float32
  (c_noise = ¼ log σ, what its ``set_timesteps`` feeds the model);
- ``num_inference_steps = N``, the multistep state reset, ``begin_index = 0`` (so timesteps that collide
  after rounding cannot confuse diffusers' timestep→index lookup).

Pipelines call ``scheduler.set_timesteps(num_inference_steps, device=...)`` themselves, so the instance's
``set_timesteps`` is replaced by one that re-applies the entry — or, when the scheduler was configured with
a schedule key or a callable, loads the entry for whatever ``num_inference_steps`` the pipeline asks for.
Its signature shows ``timesteps`` and ``sigmas`` so that diffusers' ``retrieve_timesteps`` (which checks
``inspect.signature``) reaches it, and ``pipe(timesteps=...)`` gets an error that says what to do.
:func:`release` gives the scheduler its own behaviour back.

Saving: a configured scheduler's *config* cannot carry the entry (diffusers rebuilds schedulers from the
config alone), so it is made to fail loudly instead of silently falling back to default timesteps:
``configure_scheduler`` sets ``timestep_spacing`` to :data:`CONFIGURED_SPACING`, and a scheduler built
from that config (``from_config(configured.config)``, or ``save_pretrained`` then ``from_pretrained``)
raises diffusers' "… is not supported" ``ValueError`` quoting that text on its first ``set_timesteps``.
Configure the new scheduler again (or :func:`release` before saving).

Limits: EDM entries (α = 1) run through ``EDMDPMSolverMultistepScheduler`` (:func:`configure_scheduler`,
DPM-Solver++ 1/2M/3M, either ending) and ``EDMEulerScheduler`` (:func:`pipeline_kwargs`, Euler, σ = 0
ending), and only where the scheduler's ``sigma_max`` is the entry's first σ (it scales the starting noise);
continuous-time VP entries (``vp-linear``, ``vp-cosine``, model time t ∈ (0, 1]) do not go into the
1000-step discrete schedulers; ``solver_p`` (UniPC with another predictor) is not supported.
"""

from __future__ import annotations

from ._diffusers_kwargs import PIPELINE_SCHEDULERS, pipeline_kwargs
from ._diffusers_scheduler import CONFIGURED_SPACING, SUPPORTED_SCHEDULERS, configure_scheduler, release
from ._endings import EndingUnavailableError
from ._scheduler_fit import matching_schedule

__all__ = [
    "CONFIGURED_SPACING",
    "PIPELINE_SCHEDULERS",
    "SUPPORTED_SCHEDULERS",
    "EndingUnavailableError",
    "configure_scheduler",
    "matching_schedule",
    "pipeline_kwargs",
    "release",
]
