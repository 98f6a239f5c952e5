"""The standard diffusers path: :func:`pipeline_kwargs`, the ``timesteps=`` / ``sigmas=`` a pipeline passes on
to ``scheduler.set_timesteps`` so that it runs a registry entry with exactly N model calls. The public
interface, with its limits and endings, is :mod:`optsteps_loader.diffusers`."""

from __future__ import annotations

import math
from typing import Any

from ._endings import ending_of, evaluated, final_value, no_zero_entries
from ._scheduler_fit import check_convention, check_order, check_same_schedule, class_names, warn_mismatches

__all__ = ["PIPELINE_SCHEDULERS", "pipeline_kwargs"]

_FINAL_SIGMA_RTOL = 1e-3  # DPM-Solver's sigma_min vs the entry's last node (float32 inside diffusers)

PIPELINE_SCHEDULERS = (
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "EDMEulerScheduler",
)


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
    warn_mismatches(scheduler, steps, stacklevel=2)
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
