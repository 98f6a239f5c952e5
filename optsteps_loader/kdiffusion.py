"""k-diffusion / ComfyUI glue: a registry entry as the descending σ tensor those samplers take.

k-diffusion samplers (``sample_dpmpp_2m(model, x, sigmas)``, …) and ComfyUI's ``SIGMAS`` use σ = σ_t/α_t
(the EDM / variance-exploding noise level, e^{−λ}), descending, with a trailing 0 for the final denoise.
ComfyUI's flow models (SD3, FLUX: ``CONST`` model sampling) instead take the flow σ_t itself.
"""

from __future__ import annotations

from typing import Any

from ._coefficients import schedule_family

__all__ = ["KINDS", "sigmas"]

KINDS = ("auto", "ratio", "flow")


def sigmas(steps: Any, *, device: Any = None, dtype: Any = None, kind: str = "auto") -> Any:
    """The entry's N+1 node σ's plus a trailing 0.0, as a 1-D torch tensor (float32 unless ``dtype``).

    ``kind="ratio"``: σ/α (``steps.sigmas``), for k-diffusion and ComfyUI ε/v models (x = x_0 + σ ε in the
    k-diffusion parameterisation, the model's input scaled by 1/sqrt(1+σ²) for VP models).
    ``kind="flow"``: the flow σ_t (``steps.sigma_t``, α = 1 − σ), for ComfyUI flow models.
    ``kind="auto"``: ``flow`` for rectified-flow entries (α + σ = 1 at every node), else ``ratio``.

    With the trailing 0 the sampler's last step denoises from the entry's final node (t_end) to σ = 0, one
    model call more than ``steps.nfe``; drop it (``[:-1]``) to stop at t_end.
    """
    import torch

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "auto":
        kind = "flow" if schedule_family(steps.alpha_t, steps.sigma_t) == "flow" else "ratio"
    values = (*steps.sigma_t, 0.0) if kind == "flow" else steps.sigmas_with_zero()
    return torch.tensor(values, dtype=torch.float32 if dtype is None else dtype, device=device)
