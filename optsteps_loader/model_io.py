"""What the torch samplers share: calling the model, turning its output into x̂_0, and the update itself.

Private to :mod:`optsteps_loader.unipc` and :mod:`optsteps_loader.dpmpp`; imports torch, so the loader
package never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .coefficients import LinearStep

PREDICTIONS = ("epsilon", "sample", "v", "flow")


def initial_noise_scale(steps: Any) -> float:
    """Standard deviation of the data-independent start: ``x = initial_noise_scale(steps) * randn(...)``.

    The marginal at the first node is x_T = α_T x_0 + σ_T ε. Dropping the (small) α_T x_0 term gives
    x_T ~ N(0, σ_T²), so this returns σ_t[0]: ≈ 1 for VP schedules (diffusers uses exactly 1), σ_max (e.g. 80)
    for EDM, and the flow σ of the first node for rectified flow.
    """
    return float(steps.sigma_t[0])


def x0_weights(prediction: str, alpha: Any, sigma: Any) -> tuple[Any, Any]:
    """(a, b) with x̂_0 = a · x + b · output at x = α x_0 + σ ε, from the model's parameterisation:

    - ``epsilon`` (output ε):           x̂_0 = (x − σ ε)/α;
    - ``sample`` (output x_0):          x̂_0 = output;
    - ``v`` (diffusers v = α ε − σ x_0): x̂_0 = (α x − σ v)/(α² + σ²)  (= α x − σ v for VP);
    - ``flow`` (velocity u = ε − x_0):  x̂_0 = (x − σ u)/(α + σ)       (= x − σ u for α = 1 − σ).

    α and σ may be floats or tensors (only +, −, ·, / are used): the samplers' per-node floats and the
    calibration's differentiable tensors share this one definition.
    """
    if prediction == "epsilon":
        return 1.0 / alpha, -sigma / alpha
    if prediction == "sample":
        return 0.0, 1.0
    if prediction == "v":
        norm = alpha * alpha + sigma * sigma
        return alpha / norm, -sigma / norm
    if prediction == "flow":
        norm = alpha + sigma
        return 1.0 / norm, -sigma / norm
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def x0_coefficients(steps: Any, prediction: str) -> tuple[tuple[float, float], ...]:
    """:func:`x0_weights` (a_i, b_i) at each node of ``steps``."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    pairs = zip(steps.alpha_t, steps.sigma_t, strict=True)
    return tuple(x0_weights(prediction, float(alpha), float(sigma)) for alpha, sigma in pairs)


def timestep_values(steps: Any, x: torch.Tensor) -> torch.Tensor:
    """All nodes' model time inputs as one tensor on x's device (one copy, before the loop).

    ``torch.long`` when every value is an int (discrete models), else x's dtype.
    """
    values = list(steps.timesteps)
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    host = torch.tensor(values, dtype=torch.long if integer else x.dtype)
    if x.device.type != "cuda":
        return host.to(x.device)
    return host.pin_memory().to(x.device, non_blocking=True)  # a pageable copy would block the host


class Grid:
    """The part of an entry a multistep sampler integrates over, and how it ends.

    ``"eps"``: every node; the result is x at the last node. ``"zero"``: the N evaluated nodes, stepped with
    the first N − 1 orders of the N-step pattern (the N-th step, to σ = 0, is first order: x_0 = x̂_0 at the
    last evaluated node, which is the result); no corrector after the step to that node.
    """

    __slots__ = ("alpha_t", "lambdas", "orders", "sigma_t", "zero")

    def __init__(self, steps: Any, solver: str, order: int, lower_order_final: bool) -> None:
        from .coefficients import solver_step_orders, step_orders

        ending = getattr(steps, "ending", "eps")
        self.zero = ending == "zero"
        n = len(steps.lambdas)
        self.lambdas, self.alpha_t, self.sigma_t = steps.lambdas, steps.alpha_t[:n], steps.sigma_t[:n]
        if lower_order_final:
            orders = solver_step_orders(solver, steps.nfe, order, ending)
        else:
            orders = step_orders(steps.nfe, order, lower_order_final=False)
        self.orders = orders[: n - 1]  # a σ = 0 ending's last step (to σ = 0) is taken apart, by `final`


class Denoiser:
    """``denoiser(x, i)`` calls ``model(x, timestep)`` at node i and returns x̂_0 (no host sync)."""

    __slots__ = ("_coefficients", "_model", "_timesteps")

    def __init__(self, model: Callable[..., torch.Tensor], steps: Any, prediction: str, x: torch.Tensor):
        if not callable(model):
            raise ValueError(f"model must be callable as model(x, timestep), got {type(model).__name__}")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError("x must be a floating-point torch.Tensor")
        if len(steps.timesteps) != len(steps.lambdas):
            raise ValueError(
                f"steps has {len(steps.timesteps)} timesteps for {len(steps.lambdas)} nodes; they must agree"
            )
        self._model = model
        self._coefficients = x0_coefficients(steps, prediction)
        self._timesteps = timestep_values(steps, x)

    def __call__(self, x: torch.Tensor, i: int) -> torch.Tensor:
        output = model_output(self._model(x, self._timesteps[i].expand(x.shape[:1])), x)
        a, b = self._coefficients[i]
        if a == 0.0:
            return output if b == 1.0 else output * b
        return torch.add(x * a, output, alpha=b)


def model_output(output: Any, x: torch.Tensor) -> torch.Tensor:
    """The tensor a model returned, checked against x's shape.

    Accepts a tensor, a diffusers output object (``UNet2DOutput``, ``Transformer2DModelOutput``: anything
    with a tensor ``.sample``) or a tuple/list whose first item is the tensor (diffusers' ``return_dict=False``).
    The shape must equal x's: a wrong batch or channel count would otherwise broadcast silently. Checking the
    shape reads tensor metadata only (no host-device synchronisation).
    """
    if not isinstance(output, torch.Tensor):
        if isinstance(getattr(output, "sample", None), torch.Tensor):
            output = output.sample
        elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            output = output[0]
        else:
            raise ValueError(
                "the model must return a tensor, an object with a tensor .sample (diffusers' UNet2DOutput) or a "
                f"tuple whose first item is the tensor; got {type(output).__name__}"
            )
    if output.shape != x.shape:
        raise ValueError(
            f"the model returned shape {tuple(output.shape)} for an input of shape {tuple(x.shape)}; they must be "
            "equal (check the batch size, e.g. classifier-free guidance must combine its two halves, and the "
            "output channels: learned-variance models return 2×C, keep the first C)"
        )
    return output


def combine(step: LinearStep, x: torch.Tensor, predictions: Sequence[torch.Tensor]) -> torch.Tensor:
    """``step.scale · x + Σ_j step.weights[j] · predictions[j]`` with Python-float weights."""
    out = x * step.scale
    for weight, prediction in zip(step.weights, predictions, strict=False):
        out = out.add_(prediction, alpha=weight)
    return out


def final(denoise: Denoiser, grid: Grid, steps: Any, x: torch.Tensor, i: int, callback: Any) -> torch.Tensor:
    """The sampler's result after its planned steps: x (``"eps"``), or x̂_0 at node i, the last evaluated one,
    for a σ = 0 ending (the first-order step to σ = 0, α = 1 gives exactly x̂_0)."""
    if not grid.zero:
        return x
    denoised = denoise(x, i)
    if callback is not None:
        callback(event(steps, i, x, denoised))
    return denoised


def event(steps: Any, i: int, x: torch.Tensor, denoised: torch.Tensor) -> dict[str, Any]:
    """The dict handed to a sampler's ``callback`` at node i."""
    return {
        "i": i,
        "x": x,
        "denoised": denoised,
        "t": steps.t[i],
        "sigma": steps.sigmas[i],
        "timestep": steps.timesteps[i],
    }
