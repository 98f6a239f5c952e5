"""Which registry entry fits which diffusers scheduler: the schedule a scheduler config names, the time
convention of an entry, the checks every diffusers path runs before it hands an entry over (the same
schedule, the same order, the same time convention), and how the solver a scheduler runs differs from the
one an entry was measured with (warned as a :class:`~optsteps_loader.SolverMismatchWarning`). Standard
library only; no diffusers import."""

from __future__ import annotations

import math
import warnings
from typing import Any

from ._endings import evaluated
from .coefficients import FULL_ORDER_FROM, schedule_family
from .errors import SolverMismatchWarning

__all__ = [
    "check_convention",
    "check_order",
    "check_same_schedule",
    "class_names",
    "is_edm",
    "is_flow",
    "matching_schedule",
    "run_step_orders",
    "runs_solver",
    "solver_mismatches",
    "time_convention",
    "warn_mismatches",
]

_LAMBDA_TOLERANCE = 0.5  # |λ(scheduler at the integer timestep) − λ(entry)| above this: wrong schedule
_SIGMA_MAX_RTOL = 1e-3  # an EDM scheduler's sigma_max vs the entry's first σ (it scales the initial noise)
# The discrete schedules diffusers configs name, as registry keys: (beta_schedule, beta_start, beta_end).
_DISCRETE = {
    ("scaled_linear", 0.00085, 0.012): "scaled-linear",
    ("linear", 0.0001, 0.02): "ddpm-linear",
}


def class_names(scheduler: Any) -> set[str]:
    """The names of the scheduler's class and its bases: a subclass counts as the diffusers class it extends."""
    return {cls.__name__ for cls in type(scheduler).__mro__}


def runs_solver(scheduler: Any) -> str:
    """The loader's solver whose updates the scheduler's ``step()`` runs: ``"unipc"`` for UniPC, else
    ``"dpmpp"`` (DPM-Solver++; Euler and the single-step solver's order 1 are its first order, DDIM)."""
    return "unipc" if "UniPCMultistepScheduler" in class_names(scheduler) else "dpmpp"


def matching_schedule(scheduler: Any) -> str | None:
    """The registry schedule key of a diffusers scheduler's noise schedule, or ``None`` if none matches.

    ``"flow"`` for flow-matching schedulers (``FlowMatch*`` or ``use_flow_sigmas=True``), ``"edm"`` for
    diffusers' EDM schedulers (``EDMEulerScheduler``, ``EDMDPMSolverMultistepScheduler``), ``"scaled-linear"``
    (Stable Diffusion 1.x/2.x/SDXL betas) and ``"ddpm-linear"`` for 1000-step discrete betas.
    """
    config = scheduler.config
    if is_flow(scheduler):
        return "flow"
    if is_edm(scheduler):
        return "edm"
    if config.get("num_train_timesteps", 1000) != 1000 or config.get("trained_betas") is not None:
        return None
    for (kind, start, end), key in _DISCRETE.items():
        if (
            config.get("beta_schedule") == kind
            and math.isclose(config.get("beta_start", -1.0), start, rel_tol=1e-6)
            and math.isclose(config.get("beta_end", -1.0), end, rel_tol=1e-6)
        ):
            return key
    return None


def time_convention(steps: Any) -> str:
    """How an entry's model takes time: ``"discrete"`` (integer timesteps, a 1000-step VP model),
    ``"continuous"`` (VP, float t), ``"flow"`` (rectified flow) or ``"edm"`` (α = 1, input σ)."""
    family = schedule_family(evaluated(steps.alpha_t, steps), evaluated(steps.sigma_t, steps))
    if family == "flow":
        return "flow"
    if family != "vp":
        return "edm"
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in list(steps.timesteps)[: steps.nfe])
    return "discrete" if integer else "continuous"


def is_flow(scheduler: Any) -> bool:
    return any(name.startswith("FlowMatch") for name in class_names(scheduler)) or bool(
        scheduler.config.get("use_flow_sigmas", False)
    )


def is_edm(scheduler: Any) -> bool:
    """diffusers' EDM schedulers (α = 1, the model takes c_noise = σ-preconditioned input), subclasses too."""
    return any(name.startswith("EDM") for name in class_names(scheduler))


def check_convention(scheduler: Any, steps: Any) -> str:
    """Refuse an entry whose time convention the scheduler does not run; returns the convention.

    An EDM scheduler takes EDM entries only, and only when its ``sigma_max`` is the entry's first σ (to
    1e-3, relative): its ``init_noise_sigma`` = √(σ_max² + 1) scales the pipeline's starting noise, so
    another σ_max would start the entry from the wrong noise level.
    """
    convention = time_convention(steps)
    name = type(scheduler).__name__
    if is_edm(scheduler):
        if convention != "edm":
            raise ValueError(
                f"{name} runs EDM models (alpha = 1, the model takes sigma), but entry {steps.schedule!r} is not "
                "an EDM schedule: use an 'edm' entry (optsteps_loader.get('edm', nfe, solver='dpmpp', ...)), or "
                "the alias of your model"
            )
        sigma_max = float(scheduler.config.get("sigma_max", 80.0))
        if not math.isclose(sigma_max, float(steps.sigmas[0]), rel_tol=_SIGMA_MAX_RTOL):
            raise ValueError(
                f"{name} has sigma_max={sigma_max:g}, which scales the starting noise, but entry "
                f"{steps.schedule!r} starts at sigma = {steps.sigmas[0]:g}: build the scheduler with "
                f"sigma_max={steps.sigmas[0]:g} if the model was trained to it, or use an entry that starts at "
                f"{sigma_max:g}"
            )
        return convention
    want = matching_schedule(scheduler)
    use = f"use the {want!r} entry (optsteps_loader.get({want!r}, nfe, ...))" if want else "use the model's schedule"
    if is_flow(scheduler):
        if convention != "flow":
            raise ValueError(
                f"{name} runs a flow-matching model (alpha = 1 - sigma), but entry {steps.schedule!r} is not a "
                f"rectified-flow schedule: use a 'flow' entry (optsteps_loader.get('flow', nfe, shift=...))"
            )
        return convention
    if convention == "flow":
        raise ValueError(
            f"entry {steps.schedule!r} is a rectified-flow schedule but {name} is not a flow scheduler: build it "
            "with use_flow_sigmas=True (UniPC / DPM-Solver++) or use FlowMatchEulerDiscreteScheduler"
        )
    if convention == "edm":
        raise ValueError(
            f"entry {steps.schedule!r} is not variance-preserving (alpha = 1, the model takes sigma): {name} "
            "cannot run it; for EDM use EDMDPMSolverMultistepScheduler with configure_scheduler, "
            "EDMEulerScheduler with pipeline_kwargs (Euler, ending='zero'), or optsteps_loader.unipc.sample / "
            "dpmpp.sample"
        )
    if convention == "continuous":
        raise ValueError(
            f"entry {steps.schedule!r} is continuous-time (the model's time input is t in (0, 1]); {name} feeds "
            f"a {scheduler.config.get('num_train_timesteps', 1000)}-step discrete model integer timesteps: {use}"
        )
    return convention


def check_same_schedule(scheduler: Any, steps: Any, timesteps: list[int]) -> None:
    """The scheduler's own betas give (nearly) the entry's λ at its integer timesteps."""
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
        want = matching_schedule(scheduler)
        hint = f"use the {want!r} entry" if want else "pick the entry of the model's schedule"
        raise ValueError(
            f"entry {steps.schedule!r} does not match this scheduler's noise schedule "
            f"(beta_schedule={scheduler.config.get('beta_schedule')!r}): half-log-SNR differs by up to "
            f"{worst:.3g} at the entry's timesteps; {hint} (or pass check_schedule=False)"
        )


def check_order(scheduler: Any, steps: Any, order: int, set_order: bool | None) -> None:
    """Refuse an entry of another order than the ``order`` the scheduler's ``step()`` runs, naming the fix
    that applies to this path and class. ``set_order``: `configure_scheduler`'s flag (``True`` sets
    ``solver_order`` to the entry's instead of refusing); ``None`` on the standard path (`pipeline_kwargs`),
    which leaves the scheduler as it is: Euler-type schedulers run order 1 only, DPM-Solver is rebuilt with
    the entry's ``solver_order``."""
    if steps.order == order:
        return
    if set_order:
        scheduler.register_to_config(solver_order=steps.order)
        return
    name = type(scheduler).__name__
    ask = f"ask for optsteps_loader.get(..., solver={runs_solver(scheduler)!r}, order={order})"
    if "solver_order" not in scheduler.config:  # Euler, FlowMatchEuler, EDMEuler: first order only
        raise ValueError(
            f"{name} takes first-order (Euler) steps, which are DPM-Solver++ order 1, but the entry was optimized "
            f"for order {steps.order}: {ask}"
        )
    if set_order is not None:
        fix = f"{ask}, or pass set_order=True to run the scheduler at order {steps.order}"
    elif "DPMSolverSinglestepScheduler" in class_names(scheduler):
        fix = f"{ask} (single-step DPM-Solver above order 1 is another solver than the entries')"
    else:
        fix = f"{ask}, or build the scheduler with solver_order={steps.order}"
    raise ValueError(f"{name} has solver_order={order} but the entry was optimized for order {steps.order}: {fix}")


def run_step_orders(scheduler: Any, n: int) -> tuple[int, ...] | None:
    """The order of each of the ``n`` steps a diffusers multistep scheduler's ``step()`` runs (diffusers
    0.42's rules), or ``None`` for a scheduler this does not model (single-step DPM-Solver, Euler).

    - UniPC: k_i = min(solver_order, i + 1), and with ``lower_order_final`` also ≤ n − i (at every n).
    - DPM-Solver multistep (and its EDM variant): k_i = 1 at i = 0 and at the last step when
      ``euler_at_final``, or ``lower_order_final`` and n < 15, or ``final_sigmas_type="zero"``; k_i ≤ 2 at
      i = 1 and at the second-to-last step when ``lower_order_final`` and n < 15; else ``solver_order``.
    """
    names, config = class_names(scheduler), scheduler.config
    order = int(config.get("solver_order", 2))
    lower = bool(config.get("lower_order_final", True))
    if "UniPCMultistepScheduler" in names:
        return tuple(min(order, i + 1, n - i) if lower else min(order, i + 1) for i in range(n))
    if not names & {"DPMSolverMultistepScheduler", "EDMDPMSolverMultistepScheduler"}:
        return None
    short = lower and n < FULL_ORDER_FROM
    first_final = bool(config.get("euler_at_final")) or short or config.get("final_sigmas_type", "zero") == "zero"
    out = []
    for i in range(n):
        if order == 1 or i < 1 or (i == n - 1 and first_final):
            out.append(1)
        elif order == 2 or i < 2 or (i == n - 2 and short):
            out.append(2)
        else:
            out.append(3)
    return tuple(out)


def solver_mismatches(scheduler: Any, steps: Any) -> list[str]:
    """Each way the solver that ``scheduler.step()`` runs on ``steps`` differs from the one the entry was
    optimized and measured with (``steps.solver``, ``steps.variant``, ``steps.step_orders``: UniPC bh2 with
    the corrector after every step but the last, or DPM-Solver++ multistep with midpoint 2nd-order updates,
    both on the probability-flow ODE), as ``"setting (measured: …): fix"`` lines; empty when they agree.
    Solver order and schedule are checked elsewhere (they are refused, not warned about); what the scheduler
    does to the model's output (``prediction_type``, ``thresholding``) is the model's side and not checked."""
    names, config = class_names(scheduler), scheduler.config
    own = runs_solver(scheduler)
    out: list[str] = []
    if steps.solver != own:
        out.append(
            f"{type(scheduler).__name__} runs {'UniPC' if own == 'unipc' else 'DPM-Solver++ (Euler = DDIM)'} updates "
            f"(measured: solver={steps.solver!r}): ask for get(..., solver={own!r})"
        )
    if own == "unipc":
        if not config.get("predict_x0", True):
            out.append("predict_x0=False, the noise-prediction UniPC (measured: True): build it with predict_x0=True")
        variant = steps.variant or "bh2"
        if (kind := config.get("solver_type", "bh2")) != variant:
            out.append(f"solver_type={kind!r} (measured: {variant!r}): build it with solver_type={variant!r}")
        if disabled := list(config.get("disable_corrector") or []):
            out.append(
                f"disable_corrector={disabled} (measured: the corrector after every step but the last): build it "
                "with disable_corrector=[]"
            )
    else:
        algorithm = config.get("algorithm_type")
        if algorithm is not None and algorithm != "dpmsolver++":
            kind = "a stochastic sampler" if algorithm.startswith("sde") else "the noise-prediction DPM-Solver"
            out.append(
                f"algorithm_type={algorithm!r}, {kind} (measured: 'dpmsolver++' on the probability-flow ODE): "
                "build it with algorithm_type='dpmsolver++'"
            )
        if steps.order > 1 and (kind := config.get("solver_type", "midpoint")) != "midpoint":
            out.append(f"solver_type={kind!r} (measured: 'midpoint'): build it with solver_type='midpoint'")
        if "DPMSolverSinglestepScheduler" in names and int(config.get("solver_order", 1)) > 1:
            out.append(
                f"single-step DPM-Solver of order {config.get('solver_order')} (measured: multistep): use "
                "DPMSolverMultistepScheduler, or order-1 entries (the same DDIM step in both)"
            )
    runs = run_step_orders(scheduler, steps.nfe)
    measured = tuple(steps.step_orders)[: steps.nfe]
    if runs is not None and runs != measured:
        if own == "unipc" or steps.nfe < FULL_ORDER_FROM:
            fix = "build it with lower_order_final=True" + ("" if own == "unipc" else ", euler_at_final=False")
        else:
            fix = (
                f"no setting matches (diffusers lowers the last orders below {FULL_ORDER_FROM} steps only); the "
                "σ = 0 solver entries, get(..., solver='dpmpp', ending='zero'), are measured with its orders"
            )
        out.append(f"step orders {_orders(runs)} (measured: {_orders(measured)}): {fix}")
    return out


def warn_mismatches(scheduler: Any, steps: Any, stacklevel: int) -> None:
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


def _orders(orders: tuple[int, ...]) -> str:
    return ",".join(map(str, orders))
