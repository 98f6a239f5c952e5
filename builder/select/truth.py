"""Ground truth: the probability-flow ODE in λ, solved tightly, cached on disk.

With VP-normalised x = α̂ x₀ + σ̂ ε and y = x / σ̂, the probability-flow ODE is (docs/method.md, 'The setting')

    dy/dλ = e^λ · x̂₀(σ̂ y, λ),

where x̂₀ = E[x₀ | x_λ] is the mixture's closed-form denoiser. It is integrated from λ_start to λ_end with
scipy's DOP853 (rtol 1e-10, atol 1e-12 by default) on the whole batch at once (one flattened state), from
exact marginal samples x_T = α̂_T x₀ + σ̂_T ε. The answer is x(λ_end) = σ̂_end y(λ_end).

λ_end = +∞ (the answer of a sampler whose last step goes to σ = 0) is integrated to
:data:`LAMBDA_INFINITY` = 30, where σ̂ ≈ 1e-13: the drift left beyond it is ≲ σ̂²/(α̂² s) for a
covariance eigenvalue s, below 1e-18 for every s ≥ 1e-8.

The batch is drawn from ``np.random.default_rng(seed)``: first the x₀ (:meth:`GaussianMixture.sample`),
then ε ~ N(0, I). Results are cached as .npz files named by a sha256 of (mixture digest, λ_start, λ_end,
seed, batch, rtol, atol) under ``$OPTSTEPS_QUALITY_CACHE`` (default ``~/.cache/optsteps/quality``),
written atomically (`builder.npz_cache`), so concurrent sweep workers can share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

from .. import npz_cache
from .mixtures import Array, GaussianMixture, vp_alpha_sigma

__all__ = ["LAMBDA_INFINITY", "Truth", "cache_dir", "initial_batch", "solve_truth", "ground_truth"]

DEFAULT_RTOL = 1e-10
DEFAULT_ATOL = 1e-12
_CACHE_VERSION = 1
LAMBDA_INFINITY = 30.0  # where λ_end = +∞ is integrated to (module docstring)


@dataclass(frozen=True, eq=False)
class Truth:
    """Paired start and end of the exact flow for one problem: x_T (B, D) at λ_start, x_end at λ_end."""

    x_start: Array
    x_end: Array
    lambda_start: float
    lambda_end: float
    nfev: int = 0


def cache_dir() -> Path:
    """``$OPTSTEPS_QUALITY_CACHE`` or ``~/.cache/optsteps/quality``."""
    return npz_cache.folder(True, "OPTSTEPS_QUALITY_CACHE", "quality")


def initial_batch(mixture: GaussianMixture, lambda_start: float, batch: int, seed: int) -> Array:
    """Exact marginal samples x_T = α̂_T x₀ + σ̂_T ε at λ_start (x₀ first, then ε, from one generator)."""
    rng = np.random.default_rng(seed)
    x0 = mixture.sample(batch, rng)
    eps = rng.standard_normal(x0.shape)
    alpha, sigma = vp_alpha_sigma(lambda_start)
    return alpha * x0 + sigma * eps


def solve_truth(
    mixture: GaussianMixture,
    x_start: Array,
    lambda_start: float,
    lambda_end: float,
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> tuple[Array, int]:
    """Integrate dy/dλ = e^λ x̂₀(σ̂ y, λ) from x_start at λ_start to λ_end; returns (x_end, nfev)."""
    x_start = np.asarray(x_start, dtype=np.float64)
    shape = x_start.shape
    _, sigma_start = vp_alpha_sigma(lambda_start)

    def rhs(lam: float, y: Array) -> Array:
        _, sigma = vp_alpha_sigma(lam)
        return np.exp(lam) * mixture.denoise((sigma * y).reshape(shape), lam).reshape(-1)

    sol = solve_ivp(
        rhs,
        (float(lambda_start), float(lambda_end)),
        (x_start / sigma_start).reshape(-1),
        method="DOP853",
        rtol=rtol,
        atol=atol,
        t_eval=[float(lambda_end)],
    )
    if not sol.success:  # pragma: no cover - DOP853 on a smooth, bounded field
        raise RuntimeError(f"ground-truth ODE solve failed: {sol.message}")
    _, sigma_end = vp_alpha_sigma(lambda_end)
    return sigma_end * sol.y[:, -1].reshape(shape), int(sol.nfev)


def cache_key(
    mixture: GaussianMixture,
    lambda_start: float,
    lambda_end: float,
    seed: int,
    batch: int,
    rtol: float,
    atol: float,
) -> str:
    """sha256 of the problem: mixture digest, endpoints (repr), seed, batch, tolerances, cache version."""
    spec = {
        "version": _CACHE_VERSION,
        "mixture": mixture.digest,
        "lambda_start": repr(float(lambda_start)),
        "lambda_end": repr(float(lambda_end)),
        "seed": int(seed),
        "batch": int(batch),
        "rtol": repr(float(rtol)),
        "atol": repr(float(atol)),
    }
    return npz_cache.key_of(spec)


def ground_truth(
    mixture: GaussianMixture,
    lambda_start: float,
    lambda_end: float,
    *,
    batch: int = 256,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    cache: bool | str | Path = True,
) -> Truth:
    """The cached :class:`Truth` for (mixture, endpoints, batch, seed); solves and stores it on a miss.

    ``cache``: True for :func:`cache_dir`, a folder, or False to always solve and never write.
    ``lambda_end=math.inf`` solves to :data:`LAMBDA_INFINITY` (the σ = 0 answer; ``Truth.lambda_end`` says so).
    """
    lambda_start, lambda_end = float(lambda_start), float(lambda_end)
    if lambda_end == math.inf:
        lambda_end = LAMBDA_INFINITY
    if not lambda_start < lambda_end:
        raise ValueError(f"need lambda_start < lambda_end, got {lambda_start}, {lambda_end}")
    folder = npz_cache.folder(cache, "OPTSTEPS_QUALITY_CACHE", "quality")
    key = cache_key(mixture, lambda_start, lambda_end, seed, batch, rtol, atol)
    hit = npz_cache.load(folder, "truth", key)
    if hit is not None:
        return Truth(hit["x_start"], hit["x_end"], lambda_start, lambda_end, int(hit["nfev"]))
    x_start = initial_batch(mixture, lambda_start, batch, seed)
    x_end, nfev = solve_truth(mixture, x_start, lambda_start, lambda_end, rtol=rtol, atol=atol)
    npz_cache.store(folder, "truth", key, x_start=x_start, x_end=x_end, nfev=np.array(nfev))
    return Truth(x_start, x_end, lambda_start, lambda_end, nfev)
