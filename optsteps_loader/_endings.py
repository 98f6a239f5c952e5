"""How a grid ends, and which host runs which ending: shared by the diffusers, k-diffusion and ComfyUI glue.

Two endings (``ENDINGS``), both with exactly N model calls for an NFE-N entry:

- ``"eps"``: the last node is t_ε > 0 (σ/α ≈ 0.029 for Stable Diffusion); the result is x at that node. This
  is how the official UniPC / DPM-Solver code runs, and the only ending this registry version ships.
- ``"zero"``: the last step goes to σ = 0 (a final denoise), as diffusers (``final_sigmas_type="zero"``),
  k-diffusion and ComfyUI run; the result is x̂_0 at the last evaluated node. Entries with this ending are
  not in this registry version.

What the glue assumes of a σ = 0-ending entry (so that it plugs in unchanged): ``steps.ending == "zero"``,
the first N values of ``t``, ``sigmas``, ``sigma_t``, ``alpha_t`` and ``timesteps`` are the N evaluated
nodes, and the final σ is 0. The glue never reads the (N+1)-th value of such an entry, so it does not matter
how the registry writes the σ = 0 node (λ = +∞ has no JSON number). A `Steps` without an ``ending``
attribute (this version's) ends at t_ε. ``optsteps_loader.get(..., ending=...)`` is used when the loader
has that argument; until then asking for ``"zero"`` raises :class:`EndingUnavailableError`.
"""

from __future__ import annotations

from typing import Any

ENDINGS = ("eps", "zero")


class EndingUnavailableError(ValueError):
    """The host needs an ending the registry does not (yet) provide."""


def ending_of(steps: Any) -> str:
    """The ending of an entry: ``steps.ending`` when the record has it, else ``"eps"`` (this version's)."""
    ending = getattr(steps, "ending", "eps")
    if ending not in ENDINGS:
        raise ValueError(f"entry has ending {ending!r}; known endings: {', '.join(ENDINGS)}")
    return ending


def check_ending(ending: object) -> str:
    if ending not in ENDINGS:
        raise ValueError(f"ending must be one of {', '.join(map(repr, ENDINGS))}, got {ending!r}")
    return ending  # type: ignore[return-value]


def no_zero_entries(host: str, steps: Any = None) -> EndingUnavailableError:
    """The error for a host that ends at σ = 0 given (or asking for) a t_ε-ending entry."""
    entry = ""
    if steps is not None:
        version = steps.provenance.get("data_version") if steps.provenance else None
        entry = (
            f" Entry {steps.schedule!r} nfe={steps.nfe} (data {version}) ends at t_eps"
            f" (sigma/alpha = {steps.sigmas[steps.nfe]:.4g}); run on this host it would cost N + 1 model calls,"
            " or end on a grid that was not optimized."
        )
    return EndingUnavailableError(
        f"{host} ends with a step to sigma = 0, and the sigma = 0-ending entries (ending='zero') are not in this "
        f"registry version: its entries end at t_eps.{entry}"
    )


def supports_ending_argument() -> bool:
    """Whether ``optsteps_loader.get`` takes ``ending=`` (a registry with both endings)."""
    import inspect

    from . import get

    return "ending" in inspect.signature(get).parameters


def load(schedule: str, nfe: int, *, ending: str, **kwargs: Any) -> Any:
    """``optsteps_loader.get(schedule, nfe, ending=ending, **kwargs)``; on a loader without ``ending=``,
    ``"eps"`` is its only ending and ``"zero"`` raises :class:`EndingUnavailableError`."""
    from . import get

    check_ending(ending)
    if supports_ending_argument():
        return get(schedule, nfe, ending=ending, **kwargs)
    if ending == "zero":
        raise no_zero_entries(f"asking for {schedule!r} with ending='zero'")
    return get(schedule, nfe, **kwargs)


def evaluated(values: Any, steps: Any) -> list[float]:
    """The first N values of a per-node sequence: the nodes where the model is called, in either ending."""
    return [float(v) for v in list(values)[: steps.nfe]]


def final_value(values: Any, steps: Any) -> float:
    """Where the grid ends in the same sequence: its last node (``"eps"``) or 0 (``"zero"``)."""
    return float(values[steps.nfe]) if ending_of(steps) == "eps" else 0.0
