"""The record `get()` returns: one registry entry as plain, immutable data.

Every sequence has N+1 values for N = nfe steps, noisiest node first. ``lambdas`` is the half-log-SNR
λ = log α − log σ (strictly increasing); ``sigmas`` = σ/α (k-diffusion / diffusers convention, decreasing);
``timesteps`` is what the model takes as its time input (ints for discrete schedules).

``ending`` says how the grid ends. ``"eps"``: the last node is the schedule's t_ε, the result is x there.
``"zero"``: the last step goes to σ = 0 and the result is the data prediction at the last evaluated node;
``t``, ``alpha_t``, ``sigma_t`` and ``sigmas`` then end with the σ = 0 node (0, 1, 0, 0), while ``lambdas``
and ``timesteps`` hold only the N evaluated nodes (λ = +∞ is no number; the model is never called at σ = 0).
Either way the model is called N times, at the first N nodes.

``method``: ``"bound"`` (the paper's bound, indexed by ``p``; ``tau`` and ``objective`` are its), ``"refined"``
(refined on the data family for this ``solver``, ``order``, ``variant`` and ``ending``; ``p``, ``tau`` and
``objective`` are None), ``"rule"`` (a rule grid that refinement did not beat), ``"calibrated"``
(``python -m builder calibrate``; its record in ``calibration``), ``"generic"`` (a profile's entry that kept the
generic grid).

``profile``: the data profile a solver entry was refined on (``"latent"``, ``"pixel"``), or None for a generic
entry (refined on the whole data family) and for the bound's entries. A model alias that carries a profile
(``get("sdxl", 8)``: latent) returns that profile's entry where the registry has one.

``requested``: None when the record is what `get()` was asked for. Where `get()` had to return another entry
(a `~optsteps_loader.FallbackWarning`: the bound's entry for lack of a solver entry, or the generic entry for
lack of the alias's profile), the request it stands in for, as ``{"solver", "order", "ending", "profile",
"p"}`` to compare with the record's own fields: ``p`` None asked for a solver entry, ``profile`` is the
profile asked for (an alias's own, or ``profile=``; None for generic).

``served_from``: None for a record read from the registry. A flow record at a shift no file holds
(``get("flow", 8, shift=5)``) is *served* from the shipped variant nearest in log(shift): its interior
nodes keep that entry's σ, its end nodes sit at the requested shift's t_start / t_end, every sequence is
recomputed at the requested shift (``params``), and ``served_from`` says ``{"shift", "file"}`` of the source;
``objective`` and ``quality`` are the source entry's, measured at its shift (`optsteps_loader.flow_shift`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, repr=False)
class Steps:
    """One optimized step schedule (an entry of the registry).

    Records returned by ``optsteps_loader.get()`` come from a cache and are shared: their mappings
    (``params``, ``quality``, ``provenance``) are read-only ``MappingProxyType`` views, nested lists tuples.
    """

    schedule: str
    nfe: int
    order: int
    p: float | None
    solver: str
    t: tuple[float, ...]
    lambdas: tuple[float, ...]
    alpha_t: tuple[float, ...]
    sigma_t: tuple[float, ...]
    sigmas: tuple[float, ...]
    timesteps: tuple[float | int, ...]
    step_orders: tuple[int, ...]
    tau: int | None
    objective: float | None
    params: dict[str, Any] = field(default_factory=dict)
    time_input: str = "t"
    quality: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    objective_uniform_lambda: float | None = None  # F at the uniform-λ grid (the baseline the optimum beats)
    objective_uniform_t: float | None = None  # F at the uniform-t grid
    timestep_collisions: tuple[tuple[int, int], ...] = ()  # node pairs whose integer timesteps coincide
    ending: str = "eps"
    method: str = "bound"
    variant: str | None = None  # UniPC's B(h) for solver entries ("bh2")
    calibration: dict[str, Any] | None = None
    profile: str | None = None
    requested: dict[str, Any] | None = None  # what get() was asked for, where this record stands in for it
    served_from: dict[str, Any] | None = None  # flow at a shift no file holds: the source {"shift", "file"}

    def __repr__(self) -> str:
        """One line: what identifies the entry, and its first and last ``t`` (``print(steps)`` stays short;
        the fields themselves hold everything)."""
        who = [f"schedule={self.schedule!r}", f"nfe={self.nfe}", f"order={self.order}", f"solver={self.solver!r}"]
        for name in ("p", "profile", "variant"):
            if getattr(self, name) is not None:
                who.append(f"{name}={getattr(self, name)!r}")
        who += [f"ending={self.ending!r}", f"method={self.method!r}"]
        if self.params:
            who.append(f"params={dict(self.params)!r}")
        if self.served_from is not None:
            who.append(f"served_from={dict(self.served_from)!r}")
        return f"Steps({', '.join(who)}, t=({self.t[0]!r}, …, {self.t[-1]!r}))"

    def sigmas_with_zero(self) -> tuple[float, ...]:
        """σ/α ending in 0.0 (the k-diffusion / ComfyUI ``SIGMAS`` shape): for a ``"zero"`` entry ``sigmas`` as
        they are, N model calls. For an ``"eps"`` entry a 0 is appended, so a sampler makes N + 1 calls, the last
        a step to σ = 0 the entry was not optimized with: not what the entry was measured as. For k-diffusion and
        ComfyUI ask for the σ = 0 entry (``get(..., ending="zero")``, or
        `optsteps_loader.kdiffusion.get_sigmas`)."""
        return self.sigmas if self.ending == "zero" else (*self.sigmas, 0.0)
