"""k-diffusion glue: a registry entry as the descending σ tensor k-diffusion's samplers take.

k-diffusion samplers (``sample_dpmpp_2m(model, x, sigmas)``, …) make one model call per interval of
``sigmas`` (DPM++ 2M, Euler, UniPC-style multistep) and return x at the last value. Their σ is σ_t/α_t (the
EDM / variance-exploding noise level, e^{−λ}); ComfyUI's flow models (SD3, FLUX: ``CONST`` model sampling)
take the flow σ_t itself.

Endings (:mod:`optsteps_loader._endings`): an entry of this registry version ends at t_ε, so its tensor
is its N + 1 nodes *without* a trailing 0: N model calls, the result is x at t_ε, as the entry was
optimized and measured. A σ = 0-ending entry (``steps.ending == "zero"``, planned) gives its N evaluated
nodes and a trailing 0: N model calls, the last a final denoise — the usual k-diffusion shape. Appending a
0 to a t_ε entry would cost one call more (N + 1 for an NFE-N entry); replacing its last node by 0 runs a
grid that was not optimized: neither is done here.
"""

from __future__ import annotations

from typing import Any

from ._coefficients import schedule_family
from ._endings import ending_of, evaluated, final_value, no_zero_entries

__all__ = ["KINDS", "sigmas"]

KINDS = ("auto", "ratio", "flow")


def sigmas(steps: Any, *, device: Any = None, dtype: Any = None, kind: str = "auto", ending: str | None = None) -> Any:
    """The entry's grid as a 1-D descending torch tensor of N + 1 values (float32 unless ``dtype``).

    ``kind="ratio"``: σ/α (``steps.sigmas``), for k-diffusion and ComfyUI ε/v models (x = x_0 + σ ε in the
    k-diffusion parameterisation, the model's input scaled by 1/sqrt(1+σ²) for VP models).
    ``kind="flow"``: the flow σ_t (``steps.sigma_t``, α = 1 − σ), for ComfyUI flow models.
    ``kind="auto"``: ``flow`` for rectified-flow entries (α + σ = 1 at every node), else ``ratio``.

    ``ending``: ``None`` takes the entry's own (``"eps"`` in this registry version: the last value is the
    t_ε node; ``"zero"``: the last value is 0). Asking for ``"zero"`` from a t_ε entry raises
    :class:`~optsteps_loader._endings.EndingUnavailableError` (the σ = 0 entries are not shipped yet).
    Either way the sampler makes exactly N = ``steps.nfe`` model calls.
    """
    import torch

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    own = ending_of(steps)
    if ending is not None and ending != own:
        if ending == "zero":
            raise no_zero_entries("ending='zero' (k-diffusion's usual trailing 0)", steps)
        raise ValueError(f"entry {steps.schedule!r} ends at sigma = 0; it has no t_eps ending (ending={ending!r})")
    if kind == "auto":
        family = schedule_family(evaluated(steps.alpha_t, steps), evaluated(steps.sigma_t, steps))
        kind = "flow" if family == "flow" else "ratio"
    column = steps.sigma_t if kind == "flow" else steps.sigmas
    values = [*evaluated(column, steps), final_value(column, steps)]
    return torch.tensor(values, dtype=torch.float32 if dtype is None else dtype, device=device)
