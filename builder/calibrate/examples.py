"""Model factories for ``python -m builder calibrate --model builder.calibrate.examples:digits`` and the tests.

:func:`digits` wraps the shipped learned digits denoiser (:mod:`builder.select.digits_denoiser`, x̂₀ of VP-normalised
x at λ) as a ``model(x, timestep)`` on the ``vp-linear`` schedule: the time input is the continuous t, and
λ(t) = log α − ½ log(1 − α²) with log α(t) = −(β₁ − β₀) t²/4 − β₀ t/2 is computed in torch, so the model is
differentiable in its time input. It predicts the data (``prediction = "sample"``), shape (64,).
"""

from __future__ import annotations

import torch

from ..select.digits_denoiser import load_denoiser

__all__ = ["DigitsModel", "digits"]


class DigitsModel:
    """The digits denoiser as ``model(x (B, 64), t (B,)) -> x̂₀`` on vp-linear (β₀ = 0.1, β₁ = 20)."""

    prediction = "sample"
    shape = (64,)

    def __init__(self, beta_0: float = 0.1, beta_1: float = 20.0) -> None:
        self.network = load_denoiser().network
        self.beta_0, self.beta_1 = beta_0, beta_1

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float64)
        log_alpha = -0.25 * t * t * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0
        lam = log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))
        return self.network(x.to(torch.float64), lam).to(x.dtype)


def digits() -> DigitsModel:
    """The factory ``--model builder.calibrate.examples:digits`` names."""
    return DigitsModel()
