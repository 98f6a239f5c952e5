"""How a grid ends, and which host runs which ending: shared by the diffusers, k-diffusion and ComfyUI glue.

Two endings (``ENDINGS``), both with exactly N model calls for an NFE-N entry:

- ``"eps"``: the last node is t_ε > 0 (σ/α ≈ 0.029 for Stable Diffusion); the result is x at that node, as
  the official UniPC / DPM-Solver code runs.
- ``"zero"``: the last step goes to σ = 0 (a final denoise), as diffusers (``final_sigmas_type="zero"``),
  k-diffusion and ComfyUI run; the result is x̂_0 at the last evaluated node.

A σ = 0-ending entry (``get(..., ending="zero")``): the first N values of ``t``, ``sigmas``, ``sigma_t``,
``alpha_t`` are the N evaluated nodes and the (N+1)-th is the σ = 0 node; ``lambdas`` and ``timesteps`` hold
the N evaluated nodes only (:mod:`optsteps_loader.steps`). Each integration asks the loader for the ending its
host runs; a t_ε entry handed to a host that ends at σ = 0 is refused (:class:`EndingUnavailableError`),
never run with one call more or with its last node replaced by 0.
"""

from __future__ import annotations

from typing import Any

from .vocabulary import ENDINGS


class EndingUnavailableError(ValueError):
    """The host runs an ending the entry it was given does not have."""


def ending_of(steps: Any) -> str:
    """The ending of an entry: ``steps.ending``, or ``"eps"`` for a record without one (a user's own)."""
    ending = getattr(steps, "ending", "eps")
    if ending not in ENDINGS:
        raise ValueError(f"entry has ending {ending!r}; known endings: {', '.join(ENDINGS)}")
    return ending


def check_ending(ending: object) -> str:
    if ending not in ENDINGS:
        raise ValueError(f"ending must be one of {', '.join(map(repr, ENDINGS))}, got {ending!r}")
    return ending  # type: ignore[return-value]


def no_zero_entries(host: str, steps: Any = None) -> EndingUnavailableError:
    """The error for a host that ends at σ = 0 given a t_ε-ending entry: ask the loader for the σ = 0 one."""
    entry = ""
    if steps is not None:
        entry = (
            f" Entry {steps.schedule!r} nfe={steps.nfe} ends at t_eps (sigma/alpha = {steps.sigmas[steps.nfe]:.4g});"
            " run on this host it would cost N + 1 model calls, or end on a grid that was not optimized."
        )
    return EndingUnavailableError(
        f"{host} ends with a step to sigma = 0.{entry} Use the sigma = 0-ending entry: "
        "optsteps_loader.get(schedule, nfe, ending='zero', ...)."
    )


def load(schedule: str, nfe: int, *, ending: str, **kwargs: Any) -> Any:
    """``optsteps_loader.get(schedule, nfe, ending=ending, **kwargs)`` with the ending checked first."""
    from . import get

    return get(schedule, nfe, ending=check_ending(ending), **kwargs)


def evaluated(values: Any, steps: Any) -> list[float]:
    """The first N values of a per-node sequence: the nodes where the model is called, in either ending."""
    return [float(v) for v in list(values)[: steps.nfe]]


def final_value(values: Any, steps: Any) -> float:
    """Where the grid ends in the same sequence: its last node (``"eps"``) or 0 (``"zero"``)."""
    return float(values[steps.nfe]) if ending_of(steps) == "eps" else 0.0
