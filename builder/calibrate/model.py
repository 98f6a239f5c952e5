"""The user's model as a denoiser of the λ-grid: x̂₀(x, λ) in VP-normalised coordinates, differentiable in λ.

The samplers of :mod:`builder.select.differentiable` work in VP-normalised coordinates
x̂ = α̂ x₀ + σ̂ ε with α̂ = (1 + e^{−2λ})^{−1/2}, σ̂ = (1 + e^{2λ})^{−1/2}. A schedule's own coordinates are
x = α x₀ + σ ε with the same λ = log α − log σ, so x = c(λ) x̂ with c = α/α̂ = σ/σ̂, and per family

- VP (vp-continuous, vp-discrete): α = α̂, σ = σ̂ (c = 1);
- edm: α = 1, σ = e^{−λ} (c = 1/α̂);
- flow: σ = 1/(1 + e^{λ}), α = 1 − σ (c = α + σ relative to VP: c = 1/(α̂ + σ̂)).

One evaluation at node λ: x = c(λ) x̂ reshaped to (B, *shape), the time input τ(λ) = model_time(t(λ)) of the
schedule (``timesteps`` of the registry format), the model's output o = model(x, τ), then x̂₀ by the
prediction type (the loader's :func:`optsteps_loader.model_io.x0_coefficients`, here on tensors of λ):

    epsilon: x̂₀ = (x − σ o)/α;  sample: x̂₀ = o;  v: x̂₀ = (α x − σ o)/(α² + σ²);  flow: x̂₀ = (x − σ o)/(α + σ).

**Gradients.** α, σ and c are torch functions of λ. τ(λ) is computed in float64 by the schedule (numpy) and
differentiated by a central difference, dτ/dλ ≈ (τ(λ + δ) − τ(λ − δ))/(2δ), δ = 1e-6 (1 + |λ|)
(:class:`_TimeInput`); the model then carries the gradient on through its own time embedding if it is
differentiable in its time input. Discrete schedules feed integer timesteps (``torch.long``, as the loader's
samplers do): there the time input carries no gradient, and calibration runs derivative-free.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optsteps_loader.model_io import PREDICTIONS, model_output, x0_weights

from ..select.differentiable import DT, vp
from ..solve.schedules import Schedule

__all__ = [
    "CalibrationError",
    "ModelDenoiser",
    "ModelOutputError",
    "PredictionTypeError",
    "TeacherNotConvergedError",
    "family_alpha_sigma",
    "load_factory",
    "x0_from_output",
]


class CalibrationError(ValueError):
    """Calibration cannot proceed; the message names the problem and what to change."""


class ModelOutputError(CalibrationError):
    """The model's output has the wrong shape, is not a tensor, or holds NaN/inf."""


class PredictionTypeError(CalibrationError):
    """The model's x̂₀ statistics contradict the declared prediction type."""


class TeacherNotConvergedError(CalibrationError):
    """The teacher's solution changes more than its tolerance when its step count is halved."""


def family_alpha_sigma(family: str, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α, σ) of a schedule family at λ (module docstring), as differentiable torch functions."""
    if family in ("vp-continuous", "vp-discrete"):
        return vp(lam)
    if family == "edm":
        return torch.ones_like(lam), torch.exp(-lam)
    if family == "flow":
        return torch.sigmoid(lam), torch.sigmoid(-lam)
    raise ValueError(f"unknown schedule family {family!r}")


def x0_from_output(prediction: str, x: torch.Tensor, out: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """x̂₀ from the model output ``out`` at x = α x₀ + σ ε (`optsteps_loader.model_io.x0_weights`)."""
    a, b = x0_weights(prediction, alpha, sigma)
    return a * x + b * out


class _TimeInput(torch.autograd.Function):
    """τ(λ) = model_time(t(λ)) in float64 (schedule numpy), with a central-difference derivative."""

    @staticmethod
    def forward(ctx, lam: torch.Tensor, schedule: Schedule) -> torch.Tensor:  # noqa: ANN001 - autograd ctx
        value = float(lam)
        delta = 1e-6 * (1.0 + abs(value))
        taus = schedule.model_time(schedule.inverse_lambda(np.array([value - delta, value, value + delta])))
        ctx.slope = float((taus[2] - taus[0]) / (2.0 * delta))
        return torch.tensor(float(taus[1]), dtype=DT)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205 - autograd ctx
        return grad * ctx.slope, None


class ModelDenoiser:
    """``denoiser(x̂ (B, D) float64, λ (0-d float64 tensor)) -> x̂₀ (B, D) float64`` for the samplers.

    The model runs in ``dtype`` on ``device``; inputs are cast to them and outputs back to float64.
    ``calls`` counts per-sample evaluations (the sum of batch sizes). Output checks: shape
    (:func:`optsteps_loader.model_io.model_output`) and, with ``check_finite``, NaN/inf — both raise
    :class:`ModelOutputError` naming the node.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        schedule: Schedule,
        prediction: str,
        shape: tuple[int, ...],
        *,
        dtype: torch.dtype = DT,
        device: str | torch.device = "cpu",
        check_finite: bool = True,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.model, self.schedule, self.prediction = model, schedule, prediction
        self.shape = tuple(int(s) for s in shape)
        self.dim = int(np.prod(self.shape))
        self.dtype, self.device = dtype, torch.device(device)
        self.check_finite = check_finite
        self.discrete = schedule.family == "vp-discrete"
        self.calls = 0

    def time_input(self, lam: torch.Tensor) -> torch.Tensor:
        """τ(λ): an integer (long, no gradient) for discrete schedules, else float64 and differentiable."""
        if self.discrete:
            return torch.tensor(int(self.schedule.model_time(self.schedule.inverse_lambda(float(lam)))))
        return _TimeInput.apply(lam, self.schedule)

    def __call__(self, x_hat: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        lam = torch.as_tensor(lam, dtype=DT)
        alpha, sigma = family_alpha_sigma(self.schedule.family, lam)
        alpha_vp, _ = vp(lam)
        scale = alpha / alpha_vp
        b = x_hat.shape[0]
        x = (scale * x_hat).reshape(b, *self.shape)
        xm = x.to(self.device, self.dtype)
        tau = self.time_input(lam)
        tau = tau.to(self.device) if tau.dtype == torch.long else tau.to(self.device, self.dtype)
        try:
            raw = self.model(xm, tau.expand(b))
            out = model_output(raw, xm)
        except ValueError as err:
            raise ModelOutputError(f"{err} (at λ = {float(lam):.4g}, time input {float(tau):.6g})") from None
        self.calls += b
        out = out.to(x_hat.device, DT)
        if self.check_finite and not bool(torch.isfinite(out).all()):
            raise ModelOutputError(
                f"the model returned NaN or inf at time input {float(tau):.6g} (λ = {float(lam):.4g}) for "
                f"{int((~torch.isfinite(out)).flatten(1).any(1).sum())} of {b} samples; check its dtype (float16 "
                "overflows), its weights, and that it accepts this schedule's time input"
            )
        x0 = x0_from_output(self.prediction, x.to(DT), out, alpha, sigma)
        return x0.reshape(b, self.dim)


def probe_dtype(model: Callable[..., Any], shape: tuple[int, ...], device: str | torch.device) -> torch.dtype:
    """The first dtype the model runs in, tried in this order with one call on one sample each: float64, the
    parameters' dtype (an ``nn.Module``), float32, bfloat16, float16. A dtype counts when the call succeeds
    and returns that dtype. A closure around a float16 network (classifier-free guidance, say) thus runs in
    float16; the model itself is never converted. float32 when none runs (the denoiser then reports the
    failure with its node)."""
    candidates = [DT]
    params = getattr(model, "parameters", None)
    if callable(params):
        first = next(iter(params()), None)
        if first is not None and first.is_floating_point():
            candidates.append(first.dtype)
    candidates += [torch.float32, torch.bfloat16, torch.float16]
    for dtype in dict.fromkeys(candidates):
        x = torch.zeros(1, *shape, dtype=dtype, device=device)
        try:
            with torch.no_grad():
                out = model_output(model(x, torch.ones(1, dtype=dtype, device=device)), x)
        except (RuntimeError, TypeError, ValueError):
            continue  # a dtype the model refuses
        if out.dtype == dtype:
            return dtype
    return torch.float32


def fingerprint(denoise: ModelDenoiser, x_hat: torch.Tensor, lam: float) -> str:
    """sha256 of the model's x̂₀ on ``x_hat`` at ``lam`` (float64 bytes): the teacher cache's check that the
    weights behind a model identifier did not change."""
    with torch.no_grad():
        out = denoise(x_hat, torch.tensor(lam, dtype=DT))
    return hashlib.sha256(np.ascontiguousarray(out.numpy()).tobytes()).hexdigest()


def load_factory(spec: str) -> Callable[..., Any]:
    """``"MODULE:FACTORY"`` → ``FACTORY()`` imported from MODULE with the current directory and ``PYTHONPATH``
    on ``sys.path``. The result must be callable as ``model(x, timestep)``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CalibrationError(f"--model must be MODULE:FACTORY (e.g. mymodels:load_unet), got {spec!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CalibrationError(f"cannot import {module_name!r} for --model {spec}: {err}") from None
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise CalibrationError(f"module {module_name!r} has no attribute {attr!r} (--model {spec})")
        factory = getattr(factory, part)
    if not callable(factory):
        raise CalibrationError(f"{spec} is not callable: FACTORY() must return the model")
    model = factory()
    if not callable(model):
        raise CalibrationError(f"{spec}() returned {type(model).__name__}, not a callable model(x, timestep)")
    return model
