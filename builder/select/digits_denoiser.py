"""The learned digits denoiser (:mod:`builder.select.learned` checks the steps on it): the network, its
weights as plain arrays (no pickle), and a float64 numpy view of it for the samplers.

The weights are ``data/digits_denoiser.npz``, written by ``scripts/train_digits_denoiser.py``. Data x₀ are
scikit-learn's digits scaled to [−1, 1]^64 by x/8 − 1 (as the digits mixture, ``scripts/fit_digits_gmm.py``).
In VP-normalised coordinates x = α̂ x₀ + σ̂ ε, α̂ = (1 + e^{−2λ})^{−1/2}, σ̂ = (1 + e^{2λ})^{−1/2}. With the
EDM variables x̃ = x/α̂ = x₀ + s ε, s = σ̂/α̂ = e^{−λ}, the network predicts data (EDM preconditioning):

    x̂₀(x, λ) = μ + c_skip (x̃ − μ) + c_out F_θ(c_in (x̃ − μ), e(λ))
    c_skip = σ_d² / (s² + σ_d²),   c_out = s σ_d / √(s² + σ_d²),   c_in = 1 / √(s² + σ_d²)

μ is the per-pixel data mean, σ_d the RMS of x₀ − μ (so at low λ x̂₀ → μ, at high λ x̂₀ → x̃), and
e(λ) = (λ/λ_scale, sin ω_k λ, cos ω_k λ) a smooth embedding (low frequencies ω_k: x̂₀ is smooth in λ, as a
real network's is). F_θ is a residual SiLU MLP: h₀ = silu(W_in [u, e]), h_{l+1} = h_l + silu(W_l h_l + V_l e),
F = W_out h_L. Trained with E_{λ~U[λ_min, λ_max], x₀, ε} ‖F_θ − (x₀ − μ − c_skip(x̃ − μ))/c_out‖², which is
‖x̂₀ − x₀‖²/c_out² (EDM's loss weighting); λ_min, λ_max cover every registry schedule's endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .mixtures import DATA_DIR, Array

__all__ = [
    "WEIGHTS_PATH",
    "DigitsDenoiser",
    "LearnedDenoiser",
    "load_denoiser",
    "network_from_arrays",
    "network_to_arrays",
]

WEIGHTS_PATH = DATA_DIR / "digits_denoiser.npz"
_HYPERPARAMETERS = ("dim", "hidden", "depth", "lambda_scale", "sigma_data", "lambda_range", "frequencies", "data_mean")


class DigitsDenoiser(torch.nn.Module):
    """x̂₀(x, λ) with EDM preconditioning around the data mean (module docstring); x (B, D), λ scalar or (B,)."""

    def __init__(
        self,
        *,
        dim: int,
        hidden: int,
        depth: int,
        frequencies: Array,
        lambda_scale: float,
        data_mean: Array,
        sigma_data: float,
        lambda_range: tuple[float, float],
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.depth = int(dim), int(hidden), int(depth)
        self.lambda_scale, self.sigma_data = float(lambda_scale), float(sigma_data)
        self.lambda_range = (float(lambda_range[0]), float(lambda_range[1]))
        self.register_buffer("frequencies", torch.as_tensor(np.asarray(frequencies, dtype=np.float32)))
        self.register_buffer("data_mean", torch.as_tensor(np.asarray(data_mean, dtype=np.float32)))
        n_embed = 1 + 2 * self.frequencies.numel()
        self.inp = torch.nn.Linear(self.dim + n_embed, self.hidden)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(self.hidden, self.hidden) for _ in range(self.depth))
        self.conds = torch.nn.ModuleList(torch.nn.Linear(n_embed, self.hidden, bias=False) for _ in range(self.depth))
        self.out = torch.nn.Linear(self.hidden, self.dim)

    def embed(self, lam: torch.Tensor) -> torch.Tensor:
        """e(λ) = (λ/λ_scale, sin ω_k λ, cos ω_k λ), shape (B, 1 + 2K) for λ of shape (B,)."""
        phase = lam[:, None] * self.frequencies[None, :]
        return torch.cat([lam[:, None] / self.lambda_scale, torch.sin(phase), torch.cos(phase)], dim=1)

    def preconditioning(self, lam: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(1/α̂, c_skip, c_out, c_in) as (B, 1) columns: 1/α̂ = √(1 + s²), s² = e^{−2λ}."""
        s2 = torch.exp(-2.0 * lam)[:, None]
        sd2 = self.sigma_data**2
        inv_alpha = torch.sqrt(1.0 + s2)
        return inv_alpha, sd2 / (s2 + sd2), torch.sqrt(s2 * sd2 / (s2 + sd2)), torch.rsqrt(s2 + sd2)

    def raw(self, u: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """F_θ(u, e): the residual MLP, without preconditioning."""
        h = torch.nn.functional.silu(self.inp(torch.cat([u, emb], dim=1)))
        for block, cond in zip(self.blocks, self.conds, strict=True):
            h = h + torch.nn.functional.silu(block(h) + cond(emb))
        return self.out(h)

    def forward(self, x: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
        lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device).expand(x.shape[0])
        inv_alpha, c_skip, c_out, c_in = self.preconditioning(lam)
        centred = x * inv_alpha - self.data_mean
        return self.data_mean + c_skip * centred + c_out * self.raw(c_in * centred, self.embed(lam))


def network_to_arrays(network: DigitsDenoiser) -> dict[str, np.ndarray]:
    """Plain float32 weight arrays (``param.<name>``) plus the hyperparameters, for ``np.savez``."""
    arrays = {f"param.{name}": p.detach().cpu().numpy().astype(np.float32) for name, p in network.named_parameters()}
    arrays.update(
        dim=np.array(network.dim, dtype=np.int64),
        hidden=np.array(network.hidden, dtype=np.int64),
        depth=np.array(network.depth, dtype=np.int64),
        lambda_scale=np.array(network.lambda_scale, dtype=np.float32),
        sigma_data=np.array(network.sigma_data, dtype=np.float32),
        lambda_range=np.array(network.lambda_range, dtype=np.float32),
        frequencies=network.frequencies.cpu().numpy().astype(np.float32),
        data_mean=network.data_mean.cpu().numpy().astype(np.float32),
    )
    return arrays


def network_from_arrays(arrays: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float64) -> DigitsDenoiser:
    """Rebuild the module from :func:`network_to_arrays`' output; every parameter must be present."""
    missing = [k for k in _HYPERPARAMETERS if k not in arrays]
    if missing:
        raise ValueError(f"denoiser weights lack hyperparameters {missing}")
    network = DigitsDenoiser(
        dim=int(arrays["dim"]),
        hidden=int(arrays["hidden"]),
        depth=int(arrays["depth"]),
        frequencies=np.asarray(arrays["frequencies"]),
        lambda_scale=float(arrays["lambda_scale"]),
        data_mean=np.asarray(arrays["data_mean"]),
        sigma_data=float(arrays["sigma_data"]),
        lambda_range=tuple(float(v) for v in arrays["lambda_range"]),
    )
    state = {name: torch.from_numpy(np.array(arrays[f"param.{name}"])) for name, _ in network.named_parameters()}
    state.update(frequencies=network.frequencies, data_mean=network.data_mean)
    extra = {k.removeprefix("param.") for k in arrays if k.startswith("param.")} - set(state)
    if extra:
        raise ValueError(f"denoiser weights have unknown parameters {sorted(extra)}")
    network.load_state_dict(state, strict=True)
    return network.to(dtype).eval()


@dataclass(frozen=True, eq=False)
class LearnedDenoiser:
    """The network as a float64 numpy denoiser ``denoise(x (B, D), λ) -> x̂₀ (B, D)``.

    That is the interface :func:`builder.select.truth.solve_truth` and
    :func:`builder.select.evaluate.sample_grid` call on a mixture, so both run on this model unchanged.
    """

    network: DigitsDenoiser

    @property
    def dim(self) -> int:
        return self.network.dim

    def denoise(self, x: Array, lam: float) -> Array:
        """x̂₀(x, λ) in float64 (no autograd)."""
        with torch.no_grad():
            xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
            return self.network(xt, float(lam)).numpy()


def load_denoiser(path: str | Path = WEIGHTS_PATH) -> LearnedDenoiser:
    """The committed digits denoiser (float64 copy of the float32 weights), read without pickle."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return LearnedDenoiser(network_from_arrays(arrays, dtype=torch.float64))
