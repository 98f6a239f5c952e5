"""ComfyUI node: optimized steps as ``SIGMAS`` for ``SamplerCustom`` / ``SamplerCustomAdvanced``.

The node follows ComfyUI's Align-Your-Steps scheduler node: inputs ``model_type``, ``steps``, ``denoise``
(plus the ``sampler`` it feeds and the ``ending``), output ``SIGMAS`` — a float32 torch tensor of
``steps + 1`` descending values ending in 0; ``denoise < 1`` keeps the last ``round(steps · denoise) + 1``
values, ``denoise <= 0`` gives an empty tensor. It only selects and slices what the loader returns.

Endings and model calls. ComfyUI's samplers end with a step to σ = 0 and make one model call per interval
(Euler, DPM++ 2M, UniPC), so ``steps`` SIGMAS ending in 0 cost exactly ``steps`` calls. The ``ending``
input decides where those values come from:

- ``"zero"`` (default): the σ = 0-ending entry with NFE = ``steps`` refined for the ``sampler``
  (:data:`optsteps_loader.kdiffusion.SAMPLERS`: euler, dpmpp_2m, dpmpp_3m, unipc); the registry has them
  for a range of NFEs (``optsteps list``).
- ``"eps+denoise"``: the bound's t_ε entry with NFE = ``steps − 1`` (its ``steps`` nodes), then 0:
  ``steps − 1`` optimized steps and one final denoising step from t_ε to σ = 0 that was not part of the
  optimization. ``steps`` calls in all — never ``steps + 1``, and never a t_ε grid whose last node was
  replaced by 0. For step counts beyond the σ = 0 entries (up to 51).

Install: ``pip install "optsteps[torch]"`` into ComfyUI's Python environment, then create
``ComfyUI/custom_nodes/optsteps/__init__.py`` holding::

    from optsteps_loader.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

and restart ComfyUI: "Optimized Steps Scheduler (optsteps)" appears under sampling/custom_sampling/schedulers.
"""

from __future__ import annotations

from ._endings import load
from .kdiffusion import SAMPLERS

__all__ = ["ENDINGS", "MODEL_TYPES", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "OptimizedStepsScheduler"]

# model type shown in the node -> the registry's model alias or schedule key (aliases carry the flow shift)
MODEL_TYPES: dict[str, str] = {
    "SD1": "sd15",
    "SD2": "sd2",
    "SDXL": "sdxl",
    "SD3": "sd3",
    "FLUX (dev)": "flux",
    "FLUX (schnell)": "flux-schnell",
    "flow (shift 1)": "flux-schnell",
    "DDPM (linear betas)": "ddpm-cifar10",
    "EDM": "edm",
    "EDM (latent, e.g. EDM2)": "edm2-img512",
    "EDM (pixel)": "edm-cifar10",
}
ENDINGS = ("zero", "eps+denoise")


def full_sigmas(model_type: str, steps: int, sampler: str, ending: str) -> list[float]:
    """The ``steps + 1`` values, ending in 0, for ``denoise = 1`` (see the module doc for ``ending``)."""
    from .kdiffusion import sigmas

    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
    if ending not in ENDINGS:
        raise ValueError(f"ending must be one of {', '.join(ENDINGS)}, got {ending!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    key = MODEL_TYPES[model_type]
    solver, order = SAMPLERS[sampler]
    if ending == "zero":
        return sigmas(load(key, steps, ending="zero", solver=solver, order=order), dtype=None).tolist()
    if steps < 2:
        raise ValueError("ending 'eps+denoise' needs steps >= 2 (steps - 1 optimized steps and a final denoise)")
    entry = load(key, steps - 1, ending="eps", order=order, p=_bound_p(key))
    return [*sigmas(entry).tolist(), 0.0]


def _bound_p(key: str) -> float:
    """The schedule's default p: ``eps+denoise`` reads the bound's entries, which cover every NFE."""
    from . import info

    return info(key)["defaults"]["p"]


class OptimizedStepsScheduler:
    """The node class ComfyUI instantiates (V1 node API: ``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``)."""

    DESCRIPTION = (
        "Optimized time steps (Xue et al., CVPR 2024) from the optsteps registry. steps SIGMAS end in 0 and cost "
        "exactly `steps` model calls. ending 'zero': the sigma = 0-ending entry refined for the sampler; "
        "'eps+denoise': steps-1 bound-optimized steps then a final denoise (any step count). Pick the sampler "
        "you run (uni_pc_bh2 for unipc)."
    )
    RETURN_TYPES = ("SIGMAS",)
    CATEGORY = "sampling/custom_sampling/schedulers"
    FUNCTION = "get_sigmas"

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "model_type": (list(MODEL_TYPES),),
                "steps": ("INT", {"default": 10, "min": 1, "max": 50}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "sampler": (list(SAMPLERS), {"default": "dpmpp_2m"}),
                "ending": (list(ENDINGS),),
            }
        }

    def get_sigmas(self, model_type: str, steps: int, denoise: float, sampler: str = "dpmpp_2m", ending: str = "zero"):
        import torch

        total = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.FloatTensor([]),)
            total = round(steps * denoise)
        values = full_sigmas(model_type, steps, sampler, ending)[-(total + 1) :]
        return (torch.tensor(values, dtype=torch.float32),)


NODE_CLASS_MAPPINGS = {"OptstepsScheduler": OptimizedStepsScheduler}
NODE_DISPLAY_NAME_MAPPINGS = {"OptstepsScheduler": "Optimized Steps Scheduler (optsteps)"}
