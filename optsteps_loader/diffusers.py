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

import math
import types
import warnings
from typing import Any

from ._endings import (
    EndingUnavailableError,
    check_ending,
    ending_of,
    evaluated,
    final_value,
    load,
    no_zero_entries,
)
from ._scheduler_fit import (
    check_convention,
    check_order,
    check_same_schedule,
    class_names,
    matching_schedule,
    runs_solver,
    solver_mismatches,
)
from .errors import SolverMismatchWarning

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

_FINAL_SIGMA_RTOL = 1e-3  # DPM-Solver's sigma_min vs the entry's last node (float32 inside diffusers)

SUPPORTED_SCHEDULERS = ("UniPCMultistepScheduler", "DPMSolverMultistepScheduler", "EDMDPMSolverMultistepScheduler")
PIPELINE_SCHEDULERS = (
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "EDMEulerScheduler",
)
CONFIGURED_SPACING = (
    "optsteps-configured (this config comes from a scheduler set up by "
    "optsteps_loader.diffusers.configure_scheduler, which a config cannot carry: configure the new scheduler "
    "again, or call optsteps_loader.diffusers.release before saving)"
)
# ---- 1. the standard path: pipe(timesteps=...) / pipe(sigmas=...) -----------------------------------------


def pipeline_kwargs(scheduler: Any, steps: Any, *, mu: float | None = None, check_schedule: bool = True) -> dict:
    """The keyword arguments that make ``pipe(...)`` run the entry on ``scheduler`` with exactly N calls.

    ``pipe(prompt, **pipeline_kwargs(pipe.scheduler, steps))``; the scheduler is not modified. Per class
    (``PIPELINE_SCHEDULERS``; subclasses count):

    - ``DPMSolverMultistepScheduler`` / ``DPMSolverSinglestepScheduler`` (discrete entries):
      ``{"timesteps": steps.timesteps[:N]}``. diffusers takes σ at those timesteps from its own betas and
      appends the final σ from ``final_sigmas_type``: ``"sigma_min"`` (σ at timestep 0, the t_ε node of the
      ``scaled-linear`` / ``ddpm-linear`` entries) for a t_ε entry, ``"zero"`` for a σ = 0 entry.
      ``solver_order`` must equal ``steps.order``.
    - ``EulerDiscreteScheduler`` (discrete entries, order 1): ``{"sigmas": [N + 1 values]}`` (σ/α; Euler
      runs to the last value given, so either ending works); the model gets the fractional timesteps
      diffusers derives from them (``_sigma_to_t``), the same nodes as the entry's integer timesteps up to
      their rounding.
    - ``EDMEulerScheduler`` (EDM entries, order 1, σ = 0 ending; ``sigma_schedule="karras"``,
      ``final_sigmas_type="zero"``): ``{"sigmas": r}``, a tensor of N positions on its Karras map that it
      turns back into the entry's σ's exactly (it takes positions, not σ's: :func:`_edm_euler_kwargs`).
    - ``FlowMatchEulerDiscreteScheduler`` (flow entries, order 1): ``{"sigmas": [N values]}``; the scheduler
      always appends σ = 0, so only σ = 0-ending entries fit. It shifts whatever it is given (``shift``, or
      ``time_shift(mu, ...)`` with ``use_dynamic_shifting``, FLUX); the values returned are the entry's flow
      σ *un-shifted* by that same map, so the schedule runs the entry's nodes exactly, shifted once. With
      dynamic shifting pass the ``mu`` the pipeline will use (FLUX: ``calculate_shift((height // 16) *
      (width // 16), ...)`` from ``diffusers.pipelines.flux.pipeline_flux``).

    Raises ``ValueError`` for a scheduler or entry it cannot run (time convention, order, schedule), and
    :class:`EndingUnavailableError` where the scheduler ends at σ = 0 (FlowMatchEuler, DPM-Solver with
    ``final_sigmas_type="zero"``) and the entry at t_ε: ask the loader for ``ending="zero"``. Warns
    :class:`~optsteps_loader.SolverMismatchWarning` where the scheduler will run another solver than the
    entry was measured with (``algorithm_type``, ``solver_type``, single-step DPM-Solver, step orders; a UniPC
    entry on an Euler or DPM-Solver scheduler).
    """
    kwargs = _standard_kwargs(scheduler, steps, mu, check_schedule)
    _warn_mismatches(scheduler, steps, stacklevel=2)
    return kwargs


def _standard_kwargs(scheduler: Any, steps: Any, mu: float | None, check_schedule: bool) -> dict:
    names = class_names(scheduler)
    name = type(scheduler).__name__
    ending = ending_of(steps)
    if "HeunDiscreteScheduler" in names:
        raise ValueError(
            "HeunDiscreteScheduler calls the model twice per step (2M - 1 calls for M timesteps): a registry "
            f"entry for {steps.nfe} calls of a one-call-per-step solver cannot run there; use "
            "DPMSolverMultistepScheduler, UniPCMultistepScheduler (configure_scheduler) or EulerDiscreteScheduler"
        )
    if not names & set(PIPELINE_SCHEDULERS):
        raise ValueError(
            f"pipeline_kwargs supports {', '.join(PIPELINE_SCHEDULERS)} (and subclasses), got {name}; for "
            "UniPCMultistepScheduler and EDMDPMSolverMultistepScheduler use configure_scheduler"
        )
    if "EDMEulerScheduler" in names:
        return _edm_euler_kwargs(scheduler, steps, ending)
    config = scheduler.config
    for flag in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas"):
        if config.get(flag):
            raise ValueError(f"{name} was built with {flag}=True, which replaces custom steps; build it without")
    convention = check_convention(scheduler, steps)

    if "FlowMatchEulerDiscreteScheduler" in names:
        check_order(scheduler, steps, 1, set_order=None)
        if config.get("invert_sigmas") or config.get("shift_terminal"):
            raise ValueError(f"{name} with invert_sigmas or shift_terminal is not supported")
        if ending != "zero":
            raise no_zero_entries(name, steps)
        return {"sigmas": _unshift(scheduler, evaluated(steps.sigma_t, steps), mu)}

    if convention != "discrete":  # use_flow_sigmas DPM-Solver: its timesteps path ignores custom timesteps
        raise ValueError(f"{name} with use_flow_sigmas=True takes no custom timesteps; use configure_scheduler")
    timesteps = [int(v) for v in list(steps.timesteps)[: steps.nfe]]
    if check_schedule:
        check_same_schedule(scheduler, steps, timesteps)

    if "EulerDiscreteScheduler" in names:
        check_order(scheduler, steps, 1, set_order=None)
        if config.get("timestep_type") == "continuous":
            raise ValueError(f"{name} with timestep_type='continuous' is not supported")
        return {"sigmas": [*evaluated(steps.sigmas, steps), final_value(steps.sigmas, steps)]}

    check_order(scheduler, steps, config.solver_order, set_order=None)
    final = config.get("final_sigmas_type", "zero")
    if ending == "zero":
        if final != "zero":
            raise ValueError(f"entry ends at sigma = 0: build {name} with final_sigmas_type='zero'")
        return {"timesteps": timesteps}
    if final == "zero":
        raise no_zero_entries(
            f"{name} (final_sigmas_type='zero'; build it with final_sigmas_type='sigma_min' to end at the "
            "entry's last node, or use configure_scheduler)",
            steps,
        )
    abar0 = float(scheduler.alphas_cumprod[0])
    sigma_min = math.sqrt((1.0 - abar0) / abar0)
    if not math.isclose(sigma_min, steps.sigmas[steps.nfe], rel_tol=_FINAL_SIGMA_RTOL):
        raise ValueError(
            f"{name} ends at sigma_min = {sigma_min:.6g} (its timestep 0) but entry {steps.schedule!r} ends at "
            f"{steps.sigmas[steps.nfe]:.6g}; use configure_scheduler, which writes the last node itself"
        )
    return {"timesteps": timesteps}


def _edm_euler_kwargs(scheduler: Any, steps: Any, ending: str) -> dict:
    """``{"sigmas": r}`` for ``EDMEulerScheduler``: r, a float64 tensor, is what makes it run the entry's σ's.

    Its ``set_timesteps(sigmas=r)`` takes positions on its Karras map, not σ's:
    σ(r) = (σ_max^{1/ρ} + r (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ with its config's σ_min, σ_max, ρ. So the entry's N
    evaluated σ's go through the inverse, r_i = (σ_i^{1/ρ} − σ_max^{1/ρ}) / (σ_min^{1/ρ} − σ_max^{1/ρ}); the
    scheduler then appends σ = 0 (``final_sigmas_type="zero"``) and its Euler step from σ_i to σ_{i+1} is
    DPM-Solver++ order 1 (DDIM) in σ. So only EDM entries, order 1, σ = 0 ending fit.
    """
    import torch

    name = type(scheduler).__name__
    config = scheduler.config
    check_convention(scheduler, steps)
    check_order(scheduler, steps, 1, set_order=None)
    schedule = config.get("sigma_schedule", "karras")
    if schedule != "karras":
        raise ValueError(
            f"{name} with sigma_schedule={schedule!r} ignores the values it is given; build it with 'karras'"
        )
    if config.get("final_sigmas_type", "zero") != "zero":
        raise ValueError(f"{name} ends at sigma_min after a zero-length step: build it with final_sigmas_type='zero'")
    if ending != "zero":
        raise no_zero_entries(name, steps)
    inv_rho = 1.0 / float(config.rho)
    lo, hi = float(config.sigma_min) ** inv_rho, float(config.sigma_max) ** inv_rho
    ramp = [(s**inv_rho - hi) / (lo - hi) for s in evaluated(steps.sigmas, steps)]
    return {"sigmas": torch.tensor(ramp, dtype=torch.float64)}


def _unshift(scheduler: Any, sigmas: list[float], mu: float | None) -> list[float]:
    """The inverse of FlowMatchEuler's shift, so that ``set_timesteps(sigmas=...)`` shifts back to ``sigmas``.

    Static shift s: σ' = s σ / (1 + (s − 1) σ), inverted by σ = σ' / (s − (s − 1) σ'). Dynamic shifting
    (``use_dynamic_shifting``) is the same map with s = e^μ (``time_shift_type="exponential"``, FLUX) or
    s = μ (``"linear"``).
    """
    config = scheduler.config
    if config.get("use_dynamic_shifting"):
        if mu is None:
            raise ValueError(
                f"{type(scheduler).__name__} uses dynamic shifting: pass the mu the pipeline computes for your "
                "resolution (FLUX: calculate_shift((height // 16) * (width // 16), ...)) so the entry is shifted once"
            )
        shift = math.exp(mu) if config.get("time_shift_type", "exponential") == "exponential" else float(mu)
    else:
        if mu is not None:
            raise ValueError("mu only applies to a scheduler built with use_dynamic_shifting=True")
        shift = float(getattr(scheduler, "shift", config.get("shift", 1.0)))
    return [s / (shift - (shift - 1.0) * s) for s in sigmas]


# ---- 2. a configured scheduler (UniPC, DPM-Solver++) ------------------------------------------------------


def configure_scheduler(
    scheduler: Any,
    steps: Any,
    *,
    device: Any = None,
    check_schedule: bool = True,
    set_order: bool = False,
    ending: str | None = None,
    **get_kwargs: Any,
) -> Any:
    """Make ``scheduler.step()`` follow a registry entry; returns the same scheduler.

    Args:
        scheduler: a diffusers ``UniPCMultistepScheduler``, ``DPMSolverMultistepScheduler`` or
            ``EDMDPMSolverMultistepScheduler`` (or subclass; the EDM one takes EDM entries only).
        steps: one of
            - an :class:`optsteps_loader.steps.Steps` (the pipeline must then ask for ``steps.nfe`` steps);
            - a schedule key or model alias (``"scaled-linear"``, ``"sdxl"``): each ``set_timesteps(n)`` loads
              ``optsteps_loader.get(key, n, solver=<the scheduler's>, order=<its solver_order>,
              ending=<ending>, **get_kwargs)``, so the pipeline's ``num_inference_steps`` picks the entry;
            - a callable ``n -> Steps`` (e.g. ``lambda n: optsteps_loader.get("flow", n, shift=3.0, order=2)``).
        device: where ``scheduler.timesteps`` go (as in ``set_timesteps(device=...)``).
        check_schedule: for integer timesteps, check that the scheduler's own betas give (nearly) the entry's
            λ at those timesteps, so a ``scaled-linear`` entry is not put into a ``linear``-beta scheduler.
        set_order: an entry optimized for another order than the scheduler's ``solver_order`` is refused;
            ``True`` sets ``solver_order`` to the entry's order instead.
        ending: with a key: ``"zero"`` (a last step to σ = 0) or ``"eps"`` (end at t_ε); ``None`` follows the
            scheduler's ``final_sigmas_type`` (``"zero"`` → ``"zero"``, else ``"eps"``).
        get_kwargs: with a key: more arguments of ``optsteps_loader.get`` (``p``, ``shift``, ``source``).

    Raises ``ValueError`` for an unsupported scheduler, an entry of another time convention (continuous-time
    or EDM entries into a discrete 1000-step scheduler, flow into non-flow and back, a non-EDM entry into an
    EDM scheduler: the message names the matching schedule), an EDM scheduler whose ``sigma_max`` is not the
    entry's first σ, or another order. Warns :class:`~optsteps_loader.SolverMismatchWarning` (on every entry
    it loads) where ``step()`` will run another solver than the entry was measured with: an entry of the
    other solver, ``algorithm_type`` other than ``"dpmsolver++"`` (SDE or noise-prediction DPM-Solver),
    ``solver_type="heun"``, UniPC's ``solver_type="bh1"``, ``predict_x0=False`` or ``disable_corrector``,
    and step orders other than the entry's (``lower_order_final=False``, ``euler_at_final=True``).
    """
    _check_scheduler(scheduler)
    if ending is None:
        ending = "zero" if scheduler.config.get("final_sigmas_type", "zero") == "zero" else "eps"
    check_ending(ending)
    if isinstance(steps, str):
        source: Any = (steps, ending, get_kwargs)  # resolved per call by _entry_for
    elif callable(steps):
        source = steps
    else:
        if get_kwargs:
            raise ValueError(f"{', '.join(sorted(get_kwargs))}: only with a schedule key")
        source = None
    scheduler._optsteps = {"source": source, "device": device, "check": check_schedule, "set_order": set_order}
    scheduler._optsteps_grid = None
    if source is None:
        _load_grid(scheduler, steps)
        _apply(scheduler, device)
    if not hasattr(scheduler, "_optsteps_spacing"):
        scheduler._optsteps_spacing = scheduler.config.get("timestep_spacing")
        _set_config(scheduler, "timestep_spacing", CONFIGURED_SPACING)
    scheduler.set_timesteps = types.MethodType(_set_timesteps, scheduler)
    return scheduler


def release(scheduler: Any) -> Any:
    """Undo :func:`configure_scheduler`: diffusers' own ``set_timesteps`` and ``timestep_spacing`` again."""
    if "set_timesteps" in vars(scheduler):
        del scheduler.set_timesteps
    if hasattr(scheduler, "_optsteps_spacing"):
        _set_config(scheduler, "timestep_spacing", scheduler._optsteps_spacing)
        del scheduler._optsteps_spacing
    return scheduler


def _set_config(scheduler: Any, key: str, value: Any) -> None:
    """``register_to_config(key=value)``, and take ``key`` off ``_use_default_values`` (from_config drops the
    keys listed there, which would hide the marker in a config that had the default value)."""
    scheduler.register_to_config(**{key: value})
    defaults = scheduler.config.get("_use_default_values")
    if defaults and key in defaults:
        scheduler.register_to_config(_use_default_values=[k for k in defaults if k != key])


def _set_timesteps(
    scheduler: Any,
    num_inference_steps: int | None = None,
    device: Any = None,
    timesteps: Any = None,
    sigmas: Any = None,
    mu: float | None = None,
    **kwargs: Any,
) -> None:
    """``set_timesteps`` of a configured scheduler: (re)applies the registry entry (see the module doc).

    ``timesteps`` and ``sigmas`` are in the signature so that a pipeline's ``retrieve_timesteps`` passes
    them here and the user gets this error rather than "does not support custom timestep schedules".
    A dynamic-shift ``mu`` is ignored: the entry's grid is already fixed.
    """
    custom = [name for name, value in (("timesteps", timesteps), ("sigmas", sigmas)) if value is not None]
    custom += sorted(k for k, v in kwargs.items() if v is not None)
    if custom:
        raise ValueError(
            f"this scheduler follows optsteps entries (configure_scheduler), so pipe({custom[0]}=...) cannot be "
            "applied: pass num_inference_steps instead, or call optsteps_loader.diffusers.release(scheduler) "
            "to use custom steps"
        )
    state = scheduler._optsteps
    if state["source"] is not None and num_inference_steps is not None:
        if scheduler._optsteps_grid is None or scheduler._optsteps_grid[0] != num_inference_steps:
            _load_grid(scheduler, _entry_for(scheduler, num_inference_steps))
    grid = getattr(scheduler, "_optsteps_grid", None)
    if grid is None:
        raise ValueError("this scheduler follows a schedule key: pass num_inference_steps")
    if num_inference_steps not in (None, grid[0]):
        raise ValueError(
            f"this scheduler follows an optsteps entry with {grid[0]} steps; pass num_inference_steps={grid[0]} "
            f"(got {num_inference_steps}), or configure it with a schedule key to follow any number of steps"
        )
    _apply(scheduler, device if device is not None else state["device"])


def _entry_for(scheduler: Any, nfe: int) -> Any:
    """The entry for ``nfe`` steps of a scheduler configured with a key (at its solver order) or a callable."""
    source = scheduler._optsteps["source"]
    if callable(source):
        return source(nfe)
    key, ending, get_kwargs = source
    defaults = {"order": scheduler.config.solver_order, "solver": runs_solver(scheduler)}
    return load(key, nfe, ending=ending, **{**defaults, **get_kwargs})


def _load_grid(scheduler: Any, steps: Any) -> None:
    """Check ``steps`` against the scheduler and keep its grid as tensors (N, sigmas, timesteps)."""
    import torch

    state = scheduler._optsteps
    check_order(scheduler, steps, scheduler.config.solver_order, state["set_order"])
    convention = check_convention(scheduler, steps)
    flow = convention == "flow"
    values = list(steps.timesteps)[: steps.nfe]
    if convention == "discrete" and state["check"]:
        check_same_schedule(scheduler, steps, values)
    _warn_mismatches(scheduler, steps, stacklevel=3)
    column = steps.sigma_t if flow else steps.sigmas
    sigmas = [*evaluated(column, steps), final_value(column, steps)]
    if convention == "edm":  # the model takes c_noise(σ) (0.25 log σ), from σ in float32 as diffusers does
        timesteps = scheduler.precondition_noise(torch.tensor(sigmas[: steps.nfe], dtype=torch.float32))
    else:
        timesteps = torch.tensor(values, dtype=torch.int64 if convention == "discrete" else torch.float32)
    scheduler._optsteps_grid = (steps.nfe, torch.tensor(sigmas, dtype=torch.float64), timesteps)


def _warn_mismatches(scheduler: Any, steps: Any, stacklevel: int) -> None:
    """One :class:`SolverMismatchWarning` listing every :func:`solver_mismatches` line, if there is any,
    attributed to the frame ``stacklevel`` above the caller (as ``warnings.warn`` counts from its caller)."""
    lines = solver_mismatches(scheduler, steps)
    if lines:
        warnings.warn(
            SolverMismatchWarning(
                f"{type(scheduler).__name__} will run entry {steps.schedule!r} (nfe={steps.nfe}, "
                f"solver={steps.solver!r}, order={steps.order}) with another solver than it was optimized and "
                "measured with; the steps still run, but their measured quality does not describe this solver:\n- "
                + "\n- ".join(lines)
            ),
            stacklevel=stacklevel + 1,
        )


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
    names = class_names(scheduler)
    if not names & set(SUPPORTED_SCHEDULERS):
        raise ValueError(
            f"scheduler must be one of {SUPPORTED_SCHEDULERS} (or a subclass), got {type(scheduler).__name__}; "
            "for Euler, EDM Euler, DPM-Solver single-step and FlowMatchEuler use pipeline_kwargs"
        )
    if getattr(scheduler, "solver_p", None) is not None:
        raise ValueError("UniPCMultistepScheduler with solver_p is not supported; build it with solver_p=None")
