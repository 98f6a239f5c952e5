"""The teacher: the user's model integrated accurately from the calibration noises, checked and cached.

**Start.** x_T in the schedule's own coordinates is σ_T ε (``optsteps_loader.unipc.initial_noise_scale``: the
data-independent start every pipeline uses), ε ~ N(0, I) of shape (noises, *shape) from
``torch.Generator().manual_seed(seed)``; in VP-normalised coordinates x̂_T = σ̂_T ε.

**Solve.** UniPC bh2, order 3, corrector on (:func:`builder.select.differentiable.sample`, float64 state and
coefficients) on the uniform-λ grid of M steps between the schedule's λ_T and λ_ε, the same endpoints and
ending (``eps``: the answer at λ_ε) as the entries it will judge. Cost: M model calls per noise.

**Convergence.** The same solve with M/2 steps; for an order-3 method the error of the M-step answer is
about ‖x_M − x_{M/2}‖ / (2³ − 1). The teacher's error estimate is the mean over noises of that, and its
relative error estimate divides by the mean ‖x_M‖. Above ``rtol`` (default 1e-3):
:class:`TeacherNotConvergedError`. A model that ignores its prediction type also tends to land here.

**Prediction type** (checked before convergence: it names the likelier cause). For a correct model
x̂₀ = E[x₀ | x_λ], so by Jensen E‖x̂₀(x_λ)‖² ≤ E‖x₀‖² at every λ; at the noisiest node (σ/α > 10) x̂₀ knows
little of the noise, so ‖x̂₀‖ ≪ ‖x/α‖; and at the cleanest node x̂₀(x) ≈ x/α (nearly the identity).
:class:`PredictionTypeError` when the first node's RMS x̂₀ exceeds half the RMS of x/α (e.g. a
data-predicting model declared ``epsilon``), or :data:`JENSEN_FACTOR` times the RMS of the teacher's
answers x_M/α_ε (model samples), or when the last node's x̂₀ differs from x/α by more than 0.5 relative
(e.g. an ε-predicting model declared ``sample``).

**Cache.** ``teacher-<key>.npz`` under ``$OPTSTEPS_CALIBRATE_CACHE`` (default ``~/.cache/optsteps/calibrate``),
key = sha256 of (model identifier, weights hash, the model's x̂₀ fingerprint on two noises, prediction,
shape, schedule name and params, endpoints, noises, seed, M, dtype); written atomically with the registry
format's writer, so a rerun or a second NFE reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import npz_cache
from ..select.differentiable import make_plan, sample
from .model import (
    DT,
    ModelDenoiser,
    PredictionTypeError,
    TeacherNotConvergedError,
    family_alpha_sigma,
    fingerprint,
)

__all__ = ["JENSEN_FACTOR", "Teacher", "cache_dir", "initial_noise", "solve_teacher", "teacher"]

_CACHE_VERSION = 1
JENSEN_FACTOR = 3.0  # allowed excess of E‖x̂₀‖² over E‖x₀‖² (model error, finite noises) before refusing


@dataclass(frozen=True, eq=False)
class Teacher:
    """Start x̂_T and teacher answer x̂ at λ_ε (VP-normalised, flattened: (noises, D) float64), its step count,
    error estimate (mean L2) and relative error estimate, and whether it came from the cache."""

    x_start: torch.Tensor
    x_end: torch.Tensor
    steps: int
    error: float
    relative_error: float
    cached: bool = False


def cache_dir() -> Path:
    """``$OPTSTEPS_CALIBRATE_CACHE`` or ``~/.cache/optsteps/calibrate``."""
    return npz_cache.folder(True, "OPTSTEPS_CALIBRATE_CACHE", "calibrate")


def initial_noise(denoise: ModelDenoiser, lambda_start: float, noises: int, seed: int) -> torch.Tensor:
    """x̂_T = σ̂_T ε, ε ~ N(0, I) from ``torch.Generator().manual_seed(seed)`` (float64, CPU), flattened."""
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn((noises, denoise.dim), generator=gen, dtype=DT)
    _, sigma_vp = family_alpha_sigma("vp-continuous", torch.tensor(lambda_start, dtype=DT))
    return sigma_vp * eps


def solve_teacher(denoise: ModelDenoiser, x_start: torch.Tensor, lambdas: torch.Tensor, batch: int) -> torch.Tensor:
    """UniPC bh2 order 3 over ``lambdas`` from every start, ``batch`` noises per model call (no gradient)."""
    plan = make_plan(lambdas, solver="unipc", order=3, variant="bh2")
    with torch.no_grad():
        return torch.cat(
            [sample(denoise, xs, lambdas, order=3, plan=plan) for xs in torch.split(x_start, max(1, batch))]
        )


def _check_prediction(denoise: ModelDenoiser, x_start: torch.Tensor, x_end: torch.Tensor, lam0: float, lam1: float):
    alpha_end, _ = family_alpha_sigma("vp-continuous", torch.tensor(lam1, dtype=DT))
    data_rms = float((x_end / alpha_end).pow(2).sum(1).mean().sqrt()) + 1e-12
    with torch.no_grad():
        first = denoise(x_start, torch.tensor(lam0, dtype=DT))
        last = denoise(x_end, torch.tensor(lam1, dtype=DT))
    first_rms = float(first.pow(2).sum(1).mean().sqrt())
    alpha_start, sigma_start = family_alpha_sigma("vp-continuous", torch.tensor(lam0, dtype=DT))
    noise_rms = float((x_start / alpha_start).pow(2).sum(1).mean().sqrt())
    if float(sigma_start / alpha_start) > 10.0 and first_rms > 0.5 * noise_rms:
        raise PredictionTypeError(
            f"at the noisiest node the model's x̂₀ has RMS norm {first_rms:.4g}, {first_rms / noise_rms:.2f}× that of "
            f"x/α ({noise_rms:.4g}): it passes the noise through, which a denoiser at σ/α = "
            f"{float(sigma_start / alpha_start):.3g} cannot. The declared prediction type {denoise.prediction!r} is "
            "probably wrong (or the schedule is)"
        )
    if first_rms > JENSEN_FACTOR * data_rms:
        raise PredictionTypeError(
            f"at the noisiest node the model's x̂₀ has RMS norm {first_rms:.4g}, {first_rms / data_rms:.3g}× the "
            f"norm of its own samples ({data_rms:.4g}); a denoiser's E[x₀|x] cannot exceed it (Jensen). The "
            f"declared prediction type {denoise.prediction!r} is probably wrong (or the schedule is)"
        )
    ident = x_end / alpha_end
    mismatch = float((last - ident).norm(dim=1).mean() / (ident.norm(dim=1).mean() + 1e-12))
    if mismatch > 0.5:
        raise PredictionTypeError(
            f"at the cleanest node the model's x̂₀ differs from x/α by {mismatch:.3g} (relative); at low noise a "
            f"denoiser is nearly the identity. The declared prediction type {denoise.prediction!r} is probably "
            "wrong (or the schedule is)"
        )


def teacher(
    denoise: ModelDenoiser,
    *,
    lambda_start: float,
    lambda_end: float,
    noises: int,
    seed: int,
    steps: int = 200,
    rtol: float = 1e-3,
    batch: int = 64,
    model_id: str = "",
    weights_hash: str | None = None,
    cache: bool | str | Path = True,
) -> Teacher:
    """The checked teacher for ``noises`` starts (module docstring); cached unless ``cache=False``."""
    if steps < 8 or steps % 2:
        raise ValueError(f"teacher steps must be an even number >= 8, got {steps}")
    x_start = initial_noise(denoise, lambda_start, noises, seed)
    spec = {
        "version": _CACHE_VERSION,
        "model": model_id,
        "weights": weights_hash,
        "fingerprint": fingerprint(denoise, x_start[:2], lambda_start),
        "prediction": denoise.prediction,
        "shape": list(denoise.shape),
        "schedule": denoise.schedule.name,
        "params": {k: repr(v) for k, v in denoise.schedule.params.items()},
        "lambda": [repr(float(lambda_start)), repr(float(lambda_end))],
        "noises": int(noises),
        "seed": int(seed),
        "steps": int(steps),
        "dtype": str(denoise.dtype),
    }
    key = npz_cache.key_of(spec)
    folder = npz_cache.folder(cache, "OPTSTEPS_CALIBRATE_CACHE", "calibrate")
    hit = npz_cache.load(folder, "teacher", key)
    if hit is not None:
        x_end = torch.from_numpy(hit["x_end"])
        return Teacher(x_start, x_end, steps, float(hit["error"]), float(hit["relative_error"]), cached=True)
    x_end = solve_teacher(denoise, x_start, torch.linspace(lambda_start, lambda_end, steps + 1, dtype=DT), batch)
    x_half = solve_teacher(denoise, x_start, torch.linspace(lambda_start, lambda_end, steps // 2 + 1, dtype=DT), batch)
    _check_prediction(denoise, x_start, x_end, lambda_start, lambda_end)  # first: it names the likelier cause
    error = float((x_end - x_half).norm(dim=1).mean()) / 7.0
    relative = error / (float(x_end.norm(dim=1).mean()) + 1e-300)
    if not relative <= rtol:  # NaN fails too
        raise TeacherNotConvergedError(
            f"the teacher (UniPC-3, {steps} uniform-λ steps) did not converge: halving its steps changes the answer "
            f"by {relative * 7:.3g} relative, an estimated error of {relative:.3g} (tolerance {rtol:g}). Check the "
            "prediction type and the schedule (a model on the wrong schedule has no smooth flow), or raise "
            "teacher_steps (--teacher-steps)"
        )
    npz_cache.store(
        folder, "teacher", key, x_end=x_end.numpy(), error=np.array(error), relative_error=np.array(relative)
    )
    return Teacher(x_start, x_end, steps, error, relative)
