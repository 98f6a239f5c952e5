"""k-diffusion glue: a registry entry as the descending σ tensor k-diffusion's samplers take.

k-diffusion's one-call-per-step samplers (``k_diffusion.sampling.sample_euler``, ``sample_dpmpp_2m``; checked
against k-diffusion 0.1.1) make one model call per interval of ``sigmas`` and return x at the last value.
The samplers an entry was measured for, by the names :func:`get_sigmas` and the ComfyUI node take, and what
runs them: :data:`SAMPLERS`, :data:`RUN_WITH`; samplers no entry was measured for (SDE, ancestral, two calls
per step): :data:`UNMEASURED`. Their σ is σ_t/α_t (the
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

from ._endings import ending_of, evaluated, final_value, no_zero_entries
from .coefficients import schedule_family

__all__ = ["KINDS", "RUN_WITH", "SAMPLERS", "UNMEASURED", "get_sigmas", "sampler_for", "sigma_values", "sigmas"]

# sampler name (get_sigmas, the ComfyUI node) -> the loader's (solver, order) measured for it
SAMPLERS = {
    "euler": ("dpmpp", 1),  # Euler in σ/α is DDIM, DPM-Solver++'s first order
    "dpmpp_2m": ("dpmpp", 2),
    "dpmpp_3m": ("dpmpp", 3),
    "unipc": ("unipc", 3),
}
# what runs each: k-diffusion 0.1.1 (k_diffusion.sampling), ComfyUI's sampler names, this package's samplers
RUN_WITH = {
    "euler": "k-diffusion's sample_euler, ComfyUI's euler",
    "dpmpp_2m": "k-diffusion's sample_dpmpp_2m, ComfyUI's dpmpp_2m",
    "dpmpp_3m": "optsteps_loader.dpmpp.sample(..., order=3) (k-diffusion and ComfyUI have only the SDE dpmpp_3m_sde)",
    "unipc": "ComfyUI's uni_pc_bh2, optsteps_loader.unipc.sample (k-diffusion has no UniPC)",
}
# k-diffusion / ComfyUI samplers no entry was measured for: why, and the closest measured sampler (None: none
# fits, as the sampler calls the model twice per step)
UNMEASURED = {
    "dpmpp_2m_sde": ("it adds noise at every step (with eta=0 it is DPM++ 2M)", "dpmpp_2m"),
    "dpmpp_3m_sde": ("it adds noise at every step", "dpmpp_3m"),
    "euler_ancestral": ("it adds noise at every step", "euler"),
    "lms": ("it is a linear multistep method in sigma, which was not measured", "dpmpp_2m"),
    "heun": ("it calls the model twice per step", None),
    "dpm_2": ("it calls the model twice per step", None),
    "dpm_2_ancestral": ("it calls the model twice per step and adds noise", None),
    "dpmpp_2s_ancestral": ("it calls the model twice per step and adds noise", None),
    "dpmpp_sde": ("it calls the model twice per step and adds noise", None),
}

KINDS = ("auto", "ratio", "flow")


def sigma_values(steps: Any, *, kind: str = "auto", ending: str | None = None) -> list[float]:
    """The entry's grid as a list of N + 1 descending floats: what :func:`sigmas` puts in a tensor, without torch.

    ``kind="ratio"``: σ/α (``steps.sigmas``), for k-diffusion and ComfyUI ε/v models (x = x_0 + σ ε in the
    k-diffusion parameterisation, the model's input scaled by 1/sqrt(1+σ²) for VP models).
    ``kind="flow"``: the flow σ_t (``steps.sigma_t``, α = 1 − σ), for ComfyUI flow models.
    ``kind="auto"``: ``flow`` for rectified-flow entries (α + σ = 1 at every node), else ``ratio``.

    ``ending``: ``None`` takes the entry's own (``"zero"``: the last value is 0; ``"eps"``: the last value is
    the t_ε node). Asking for ``"zero"`` from a t_ε entry raises
    :class:`~optsteps_loader._endings.EndingUnavailableError` (ask the loader for ``ending="zero"``).
    Either way the sampler makes exactly N = ``steps.nfe`` model calls.
    """
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
    return [*evaluated(column, steps), final_value(column, steps)]


def sigmas(steps: Any, *, device: Any = None, dtype: Any = None, kind: str = "auto", ending: str | None = None) -> Any:
    """:func:`sigma_values` (``kind``, ``ending`` as there) as a 1-D descending torch tensor of N + 1 values
    (float32 unless ``dtype``)."""
    import torch

    values = sigma_values(steps, kind=kind, ending=ending)
    return torch.tensor(values, dtype=torch.float32 if dtype is None else dtype, device=device)


def sampler_for(solver: str, order: int) -> str | None:
    """The :data:`SAMPLERS` name whose entries are ``solver`` at ``order``, or None."""
    return next((name for name, key in SAMPLERS.items() if key == (solver, order)), None)


def _sampler(name: str) -> str:
    """A :data:`SAMPLERS` name (k-diffusion's ``sample_`` prefix allowed), or a ValueError that says what to use."""
    short = name.removeprefix("sample_") if isinstance(name, str) else name
    if short in SAMPLERS:
        return short
    if short in UNMEASURED:
        why, closest = UNMEASURED[short]
        if closest is None:
            raise ValueError(
                f"sampler {short!r} was not measured and no entry fits it: {why}, and an NFE-N entry is N calls of "
                f"a one-call-per-step sampler; use one of {', '.join(SAMPLERS)}"
            )
        solver, order = SAMPLERS[closest]
        use = (
            f"the closest measured entry is {closest}'s sigma = 0 one: get_sigmas(schedule, nfe, sampler={closest!r}) "
            f"(optsteps_loader.get(schedule, nfe, solver={solver!r}, order={order}, ending='zero')), run with "
            f"{RUN_WITH[closest]}; run with {short} its measured quality does not describe what runs"
        )
        raise ValueError(
            f"sampler {short!r} was not measured: {why}, and the entries were refined for the deterministic "
            f"probability-flow ODE; {use}"
        )
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


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
    """The σ = 0-ending entry for ``sampler`` (:data:`SAMPLERS`: ``"dpmpp_2m"`` for k-diffusion's
    ``sample_dpmpp_2m``, ``"euler"`` for ``sample_euler``; the ``sample_`` prefix may be given) as its
    ``sigmas`` tensor: ``nfe`` + 1 values ending in 0, ``nfe`` model calls. A sampler no entry was measured
    for (:data:`UNMEASURED`: SDE, ancestral, two calls per step) is refused with the closest measured entry
    and how to get it. ``get_kwargs`` go to :func:`optsteps_loader.get` (``shift``, ``source``, …)."""
    from ._endings import load

    solver, order = SAMPLERS[_sampler(sampler)]
    steps = load(schedule, nfe, ending="zero", solver=solver, order=order, **get_kwargs)
    return sigmas(steps, device=device, dtype=dtype, kind=kind)
