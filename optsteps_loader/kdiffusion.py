"""k-diffusion glue: a registry entry as the descending σ tensor k-diffusion's samplers take.

k-diffusion samplers (``sample_dpmpp_2m(model, x, sigmas)``, …) make one model call per interval of
``sigmas`` (DPM++ 2M, Euler, UniPC-style multistep) and return x at the last value. Their σ is σ_t/α_t (the
EDM / variance-exploding noise level, e^{−λ}); ComfyUI's flow models (SD3, FLUX: ``CONST`` model sampling)
take the flow σ_t itself.

Endings (:mod:`optsteps_loader._endings`): a σ = 0-ending entry (``get(..., ending="zero")``, what
:func:`get_sigmas` asks for) gives its N evaluated nodes and a trailing 0: N model calls, the last a final
denoise — the usual k-diffusion shape. A t_ε entry gives its N + 1 nodes *without* a trailing 0: N model
calls, the result is x at t_ε. Appending a 0 to a t_ε entry would cost one call more (N + 1 for an NFE-N
entry); replacing its last node by 0 runs a grid that was not optimized: neither is done here.

Example (DPM++ 2M, the σ = 0-ending entry refined for it)::

    from k_diffusion.sampling import sample_dpmpp_2m
    from optsteps_loader.kdiffusion import get_sigmas

    sigmas = get_sigmas("sdxl", 8, device="cuda")          # 9 values, the last 0: 8 model calls
    x = sample_dpmpp_2m(model, torch.randn(shape, device="cuda") * sigmas[0], sigmas)
"""

from __future__ import annotations

from typing import Any

from ._coefficients import schedule_family
from ._endings import ending_of, evaluated, final_value, no_zero_entries

__all__ = ["KINDS", "SAMPLERS", "get_sigmas", "sigmas"]

# k-diffusion sampler -> the loader's (solver, order) measured for it
SAMPLERS = {
    "euler": ("dpmpp", 1),  # Euler in σ/α is DDIM, DPM-Solver++'s first order
    "dpmpp_2m": ("dpmpp", 2),
    "dpmpp_3m": ("dpmpp", 3),
    "unipc": ("unipc", 3),
}

KINDS = ("auto", "ratio", "flow")


def sigmas(steps: Any, *, device: Any = None, dtype: Any = None, kind: str = "auto", ending: str | None = None) -> Any:
    """The entry's grid as a 1-D descending torch tensor of N + 1 values (float32 unless ``dtype``).

    ``kind="ratio"``: σ/α (``steps.sigmas``), for k-diffusion and ComfyUI ε/v models (x = x_0 + σ ε in the
    k-diffusion parameterisation, the model's input scaled by 1/sqrt(1+σ²) for VP models).
    ``kind="flow"``: the flow σ_t (``steps.sigma_t``, α = 1 − σ), for ComfyUI flow models.
    ``kind="auto"``: ``flow`` for rectified-flow entries (α + σ = 1 at every node), else ``ratio``.

    ``ending``: ``None`` takes the entry's own (``"zero"``: the last value is 0; ``"eps"``: the last value is
    the t_ε node). Asking for ``"zero"`` from a t_ε entry raises
    :class:`~optsteps_loader._endings.EndingUnavailableError` (ask the loader for ``ending="zero"``).
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


def get_sigmas(
    schedule: str,
    nfe: int,
    *,
    sampler: str = "dpmpp_2m",
    device: Any = None,
    dtype: Any = None,
    kind: str = "auto",
    **get_kwargs: Any,
) -> Any:
    """The σ = 0-ending entry for k-diffusion's ``sampler`` (:data:`SAMPLERS`) as its ``sigmas`` tensor:
    ``nfe`` + 1 values ending in 0, ``nfe`` model calls. ``get_kwargs`` go to :func:`optsteps_loader.get`
    (``shift``, ``source``, …)."""
    from ._endings import load

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    solver, order = SAMPLERS[sampler]
    steps = load(schedule, nfe, ending="zero", solver=solver, order=order, **get_kwargs)
    return sigmas(steps, device=device, dtype=dtype, kind=kind)
