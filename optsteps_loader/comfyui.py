"""ComfyUI node: optimized steps as ``SIGMAS`` for ``SamplerCustom`` / ``SamplerCustomAdvanced``.

The node follows ComfyUI's Align-Your-Steps scheduler node: inputs ``model_type``, ``steps``, ``denoise``
(plus the solver ``order`` and the ``ending``), output ``SIGMAS`` — a float32 torch tensor of
``steps + 1`` descending values ending in 0; ``denoise < 1`` keeps the last ``round(steps · denoise) + 1``
values, ``denoise <= 0`` gives an empty tensor. It only selects and slices what the loader returns.

Endings and model calls. ComfyUI's samplers end with a step to σ = 0 and make one model call per interval
(Euler, DPM++ 2M, UniPC), so ``steps`` SIGMAS ending in 0 cost exactly ``steps`` calls. The ``ending``
input decides where those values come from:

- ``"zero"``: the σ = 0-ending entry with NFE = ``steps``. Those entries are not in this registry version:
  this raises a clear error today and works unchanged once the registry ships them.
- ``"eps+denoise"``: the t_ε entry with NFE = ``steps − 1`` (its ``steps`` nodes, optimized), then 0:
  ``steps − 1`` optimized steps and one final denoising step from t_ε to σ = 0 that was not part of the
  optimization. ``steps`` calls in all — never ``steps + 1``, and never a t_ε grid whose last node was
  replaced by 0. Needs ``steps − 1`` in the registry's NFE grid (3 and up).
- ``"auto"`` (default): ``"zero"`` when the registry has σ = 0 entries, else ``"eps+denoise"``.

Install: ``pip install "optsteps[torch]"`` into ComfyUI's Python environment, then create
``ComfyUI/custom_nodes/optsteps/__init__.py`` holding::

    from optsteps_loader.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

and restart ComfyUI: "Optimized Steps Scheduler (optsteps)" appears under sampling/custom_sampling/schedulers.
"""

from __future__ import annotations

from typing import Any

from ._endings import load, supports_ending_argument

__all__ = ["ENDINGS", "MODEL_TYPES", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "OptimizedStepsScheduler"]

# model type shown in the node -> (registry schedule key, loader arguments)
MODEL_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "SD1": ("scaled-linear", {}),
    "SD2": ("scaled-linear", {}),
    "SDXL": ("scaled-linear", {}),
    "SD3 (flow, shift 3)": ("flow", {"shift": 3.0}),
    "flow (shift 1)": ("flow", {"shift": 1.0}),
    "DDPM (linear betas)": ("ddpm-linear", {}),
    "EDM": ("edm", {}),
}
ENDINGS = ("auto", "zero", "eps+denoise")


def full_sigmas(model_type: str, steps: int, order: int, ending: str) -> list[float]:
    """The ``steps + 1`` values, ending in 0, for ``denoise = 1`` (see the module doc for ``ending``)."""
    from .kdiffusion import sigmas

    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
    if ending not in ENDINGS:
        raise ValueError(f"ending must be one of {', '.join(ENDINGS)}, got {ending!r}")
    key, params = MODEL_TYPES[model_type]
    if ending == "auto":
        ending = "zero" if supports_ending_argument() else "eps+denoise"
    if ending == "zero":
        return sigmas(load(key, steps, ending="zero", order=order, **params), dtype=None).tolist()
    if steps < 2:
        raise ValueError("ending 'eps+denoise' needs steps >= 2 (steps - 1 optimized steps and a final denoise)")
    entry = load(key, steps - 1, ending="eps", order=order, **params)
    return [*sigmas(entry).tolist(), 0.0]


class OptimizedStepsScheduler:
    """The node class ComfyUI instantiates (V1 node API: ``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``)."""

    DESCRIPTION = (
        "Optimized time steps (Xue et al., CVPR 2024) from the optsteps registry. steps SIGMAS end in 0 and cost "
        "exactly `steps` model calls. ending 'eps+denoise' (today's auto): steps-1 optimized steps then a final "
        "denoise; 'zero': sigma = 0-ending entries (not in this registry version yet). Match order to the "
        "sampler: euler 1, dpmpp_2m 2, uni_pc 3."
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
                "order": ("INT", {"default": 2, "min": 1, "max": 3}),
                "ending": (list(ENDINGS),),
            }
        }

    def get_sigmas(self, model_type: str, steps: int, denoise: float, order: int = 2, ending: str = "auto"):
        import torch

        total = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.FloatTensor([]),)
            total = round(steps * denoise)
        values = full_sigmas(model_type, steps, order, ending)[-(total + 1) :]
        return (torch.tensor(values, dtype=torch.float32),)


NODE_CLASS_MAPPINGS = {"OptstepsScheduler": OptimizedStepsScheduler}
NODE_DISPLAY_NAME_MAPPINGS = {"OptstepsScheduler": "Optimized Steps Scheduler (optsteps)"}
