"""The data family: exact-denoiser Gaussian-mixture problems in two disjoint splits, fit and validation.

Every problem is a :class:`~builder.select.mixtures.GaussianMixture` (closed-form E[x₀ | x_λ]) plus a batch
spec (x₀ then ε from ``default_rng(seed)``, :mod:`builder.select.truth`). Four profiles span what
diffusion models see:

- ``pixel``: data normalised to [−1, 1] (per-dimension std 0.5), D = 40–384, a power-law eigen spectrum
  λ_j ∝ j^{−a} (a = 0.8–2.8) normalised to Σ_j λ_j = 0.25·D; a fraction f of each direction's variance lies
  between the K modes (μ_kj = √(f λ_j) g_kj, g standardised over k), the rest within the modes with a
  log-normal per-mode jitter (s_kj = (1 − f) λ_j e^{0.4 n_kj − 0.08}); weights Dirichlet(3).
  The covariances are diagonal *in a shared random basis*, which is stored as the diagonal mixture:
  the samplers are linear in (x, x̂₀), x̂₀ is rotation-equivariant and the L2 error rotation-invariant,
  so the errors are exactly those of the rotated problem, at O(B·K·D) per denoiser call.
- ``latent``: unit scale (per-dimension std 1), D = 16–64, a flat spectrum (a = 0.05–0.8), K = 4–16
  modes from overlapping (f = 0.01) to well separated (f = 0.9); every mode has its own random orientation
  (full covariance: the leading 24 eigenvalues jittered, the tail flattened to its mean).
- ``lowdim``: d = 2–8, K = 6–64 sharp modes, means uniform in [−1, 1]^d, diagonal within-mode std
  log-uniform on a range within 0.02–0.12.
- ``digits``: the project's mixture fitted to the scikit-learn digits (64 dims, 10 full-covariance modes).

**Splits.** :data:`FIT_SPECS` is used for every optimisation and choice, :data:`VALIDATION_SPECS` for
nothing but the figures recorded. No (profile, seed, dims, spectrum) is shared; the digits data set is in
both with different noise seeds (different x_T). The fit ranges bracket the validation ranges in every
parameter (dimension, spectrum exponent, between-mode fraction, mode count), so validation asks the
refined grids to interpolate, not to extrapolate.

:func:`digest` hashes a split's problems (every parameter array, batch and seed): a cache key and the
version figures record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .mixtures import GaussianMixture, digits_mixture

__all__ = [
    "FIT_SPECS",
    "VALIDATION_SPECS",
    "FamilyProblem",
    "digest",
    "latent_mixture",
    "lowdim_mixture",
    "pixel_mixture",
    "split",
]

# The family's generators of problems. A problem's ``profile`` names its generator; "latent" and "pixel" are
# also the data profiles of the same name (`builder.select.profile`, `optsteps_loader.vocabulary.PROFILES`).
GENERATORS = ("pixel", "latent", "lowdim", "digits")
LATENT_RANK = 24  # leading eigen-directions of a latent mode that keep their own (jittered) eigenvalue
FIT_BATCH = 64
VALIDATION_BATCH = 128


@dataclass(frozen=True, eq=False)
class FamilyProblem:
    """A mixture and its batch: ``batch`` draws of x₀ then ε from ``default_rng(seed)``; ``spec`` made it."""

    name: str
    profile: str
    mixture: GaussianMixture
    batch: int
    seed: int
    spec: tuple


def _power_spectrum(dim: int, a: float, total: float) -> np.ndarray:
    lam = np.arange(1, dim + 1, dtype=np.float64) ** (-a)
    return lam * (total / lam.sum())


def _standardised(rng: np.random.Generator, k: int, dim: int) -> np.ndarray:
    """(K, D) Gaussian draws centred and scaled to unit variance over the K modes, per dimension."""
    g = rng.standard_normal((k, dim))
    g -= g.mean(axis=0, keepdims=True)
    return g / np.sqrt((g**2).mean(axis=0, keepdims=True) + 1e-12)


def _orthonormal(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diagonal(r))[None, :]


def pixel_mixture(dim: int, k: int, a: float, f: float, seed: int) -> GaussianMixture:
    """Pixel-like (module docstring): per-dim std 0.5, spectrum j^{−a}, fraction f between modes."""
    rng = np.random.default_rng([11, dim, k, seed])
    lam = _power_spectrum(dim, a, 0.25 * dim)
    g = _standardised(rng, k, dim)
    weights = rng.dirichlet(np.full(k, 3.0))
    within = (1.0 - f) * lam * np.exp(0.4 * rng.standard_normal((k, dim)) - 0.08)
    return GaussianMixture(weights, np.sqrt(f * lam) * g, within, None, name=f"pixel-d{dim}-k{k}-a{a}-f{f}-s{seed}")


def latent_mixture(dim: int, k: int, a: float, f: float, seed: int) -> GaussianMixture:
    """Latent-like (module docstring): per-dim std 1, spectrum j^{−a}, K randomly oriented modes."""
    rng = np.random.default_rng([23, dim, k, seed])
    lam = _power_spectrum(dim, a, 1.0 * dim)
    means = (np.sqrt(f * lam) * _standardised(rng, k, dim)) @ _orthonormal(rng, dim).T
    weights = rng.dirichlet(np.full(k, 3.0))
    within = (1.0 - f) * lam
    r = min(dim, LATENT_RANK)
    tail = within[r:].mean() if r < dim else 0.0
    eigvals = np.full((k, dim), tail)
    eigvals[:, :r] = within[:r] * np.exp(0.3 * rng.standard_normal((k, r)))
    eigvecs = np.stack([_orthonormal(rng, dim) for _ in range(k)])
    return GaussianMixture(weights, means, eigvals, eigvecs, name=f"latent-d{dim}-k{k}-a{a}-f{f}-s{seed}")


def lowdim_mixture(dim: int, k: int, std_lo: float, std_hi: float, seed: int) -> GaussianMixture:
    """Low-dimensional multimodal: K sharp modes, means uniform in [−1, 1]^d, stds log-uniform."""
    rng = np.random.default_rng([37, dim, k, seed])
    means = rng.uniform(-1.0, 1.0, size=(k, dim))
    std = np.exp(rng.uniform(np.log(std_lo), np.log(std_hi), size=(k, dim)))
    weights = rng.dirichlet(np.full(k, 2.0))
    return GaussianMixture(weights, means, std**2, None, name=f"lowdim-d{dim}-k{k}-s{seed}")


# (profile, constructor args): pixel (dim, K, a, f, seed), latent (dim, K, a, f, seed),
# lowdim (dim, K, std_lo, std_hi, seed), digits (). Fit brackets validation in every parameter.
FIT_SPECS: tuple[tuple[str, tuple], ...] = (
    ("pixel", (40, 4, 0.8, 0.3, 1)),
    ("pixel", (128, 8, 1.8, 0.2, 2)),
    ("pixel", (256, 6, 2.2, 0.4, 3)),
    ("pixel", (96, 3, 1.5, 0.65, 4)),
    ("pixel", (384, 11, 2.8, 0.5, 5)),
    ("latent", (16, 4, 0.05, 0.9, 1)),
    ("latent", (32, 8, 0.5, 0.3, 2)),
    ("latent", (64, 16, 0.8, 0.01, 3)),
    ("latent", (24, 12, 0.3, 0.6, 4)),
    ("lowdim", (2, 16, 0.02, 0.08, 1)),
    ("lowdim", (4, 64, 0.03, 0.12, 2)),
    ("lowdim", (8, 6, 0.045, 0.1, 3)),
    ("digits", ()),
)
VALIDATION_SPECS: tuple[tuple[str, tuple], ...] = (
    ("pixel", (80, 5, 1.0, 0.35, 101)),
    ("pixel", (192, 10, 2.0, 0.25, 102)),
    ("pixel", (320, 4, 2.5, 0.45, 103)),
    ("pixel", (48, 7, 1.4, 0.6, 104)),
    ("latent", (20, 6, 0.1, 0.8, 101)),
    ("latent", (48, 10, 0.6, 0.15, 102)),
    ("latent", (40, 5, 0.4, 0.02, 103)),
    ("latent", (56, 14, 0.7, 0.5, 104)),
    ("lowdim", (3, 24, 0.02, 0.1, 101)),
    ("lowdim", (6, 48, 0.03, 0.1, 102)),
    ("lowdim", (5, 8, 0.04, 0.12, 103)),
    ("digits", ()),
)
SPECS = {"fit": FIT_SPECS, "validation": VALIDATION_SPECS}
_BUILD = {"pixel": pixel_mixture, "latent": latent_mixture, "lowdim": lowdim_mixture}
_NOISE_SEED = {"fit": 0, "validation": 1000}


def problem(profile: str, args: tuple, *, batch: int, seed: int, split_name: str = "custom") -> FamilyProblem:
    """One family problem from its spec (see :data:`FIT_SPECS` for the argument order)."""
    if profile not in GENERATORS:
        raise ValueError(f"profile must be one of the generators {GENERATORS}, got {profile!r}")
    mix = digits_mixture() if profile == "digits" else _BUILD[profile](*args)
    return FamilyProblem(f"{split_name}:{mix.name}", profile, mix, int(batch), int(seed), (profile, tuple(args)))


def split(name: str, *, batch: int | None = None, profiles: Sequence[str] | None = None) -> tuple[FamilyProblem, ...]:
    """The problems of split ``"fit"`` (batch 64, noise seeds 0, 1, …), ``"validation"`` (batch 128, noise
    seeds 1000, 1001, …); ``profiles`` keeps only those profiles (same seeds)."""
    if name not in SPECS:
        raise ValueError(f"split must be one of {tuple(SPECS)}, got {name!r}")
    b = batch or (VALIDATION_BATCH if name == "validation" else FIT_BATCH)
    out = []
    for i, (profile, args) in enumerate(SPECS[name]):
        if profiles is None or profile in profiles:
            out.append(problem(profile, args, batch=b, seed=_NOISE_SEED[name] + i, split_name=name))
    return tuple(out)


def digest(problems: Sequence[FamilyProblem]) -> str:
    """sha256 over the problems' mixtures (:attr:`GaussianMixture.digest`), batches and seeds, in order."""
    h = hashlib.sha256(b"optsteps-family-v1")
    for p in problems:
        h.update(f"|{p.mixture.digest}|{p.batch}|{p.seed}".encode())
    return h.hexdigest()


def stats(problem: FamilyProblem, n: int = 4096) -> dict[str, float]:
    """Per-dimension std (root-mean total variance) and the 99th percentile of |x₀| from ``n`` draws."""
    x = problem.mixture.sample(n, np.random.default_rng(0))
    return {"per_dim_std": float(np.sqrt(x.var(axis=0).mean())), "abs_q99": float(np.quantile(np.abs(x), 0.99))}
