"""A diffusers scheduler configured to follow a registry entry: :func:`configure_scheduler` writes the entry's
grid into the scheduler's state and replaces its ``set_timesteps``; :func:`release` undoes it. What is
written, and why a configured scheduler's config is marked, is in :mod:`optsteps_loader.diffusers`."""

from __future__ import annotations

import types
from typing import Any

from ._endings import check_ending, evaluated, final_value, load
from ._scheduler_fit import (
    check_convention,
    check_order,
    check_same_schedule,
    class_names,
    runs_solver,
    warn_mismatches,
)

__all__ = ["CONFIGURED_SPACING", "SUPPORTED_SCHEDULERS", "configure_scheduler", "release"]

SUPPORTED_SCHEDULERS = ("UniPCMultistepScheduler", "DPMSolverMultistepScheduler", "EDMDPMSolverMultistepScheduler")
CONFIGURED_SPACING = (
    "optsteps-configured (this config comes from a scheduler set up by "
    "optsteps_loader.diffusers.configure_scheduler, which a config cannot carry: configure the new scheduler "
    "again, or call optsteps_loader.diffusers.release before saving)"
)


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
    """``set_timesteps`` of a configured scheduler: (re)applies the registry entry (see
    :mod:`optsteps_loader.diffusers`).

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
    warn_mismatches(scheduler, steps, stacklevel=3)
    column = steps.sigma_t if flow else steps.sigmas
    sigmas = [*evaluated(column, steps), final_value(column, steps)]
    if convention == "edm":  # the model takes c_noise(σ) (0.25 log σ), from σ in float32 as diffusers does
        timesteps = scheduler.precondition_noise(torch.tensor(sigmas[: steps.nfe], dtype=torch.float32))
    else:
        timesteps = torch.tensor(values, dtype=torch.int64 if convention == "discrete" else torch.float32)
    scheduler._optsteps_grid = (steps.nfe, torch.tensor(sigmas, dtype=torch.float64), timesteps)


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
