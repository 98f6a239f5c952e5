"""Held-out kinds of data: problems used only to *validate* steps in the hosts' own code, never to fit them.

The fit and validation splits of :mod:`builder.select.family` share generators with the sweep; the kinds here
are generated with other seeds, other sizes and, for ``latent-fine``, ``scale`` and ``guided``, other
generators, so a grid that wins on them wins on data nobody tuned it on. Every problem is a
:class:`~builder.select.family.FamilyProblem` (a mixture with a closed-form denoiser, a batch and a noise
seed), so :func:`builder.select.truth.ground_truth` computes its exact answer and ``benchmarks/bench_hosts.py``
runs it through diffusers' and k-diffusion's samplers.

Kinds (:data:`KINDS`; each generator's docstring has its formula):

- ``pixel-like``: :func:`builder.select.family.pixel_mixture` (power-law spectrum, per-dim std 0.5), D 32–64;
- ``latent-like``: :func:`builder.select.family.latent_mixture` (flat spectrum, per-dim std 1), D 24–64;
- ``latent-fine``: :func:`fine_latent_mixture`, latent-like scale with sharp modes (mode std 0.01–0.3);
- ``lowdim``: :func:`builder.select.family.lowdim_mixture`, d 2–8, 20–64 sharp modes;
- ``digits``: the scikit-learn digits mixture, with noise seeds of its own;
- ``scale``: :func:`scaled_mixture` of a latent-like mixture, overall std 0.25–3;
- ``guided``: :class:`GuidedMixture`, classifier-free guidance D_u + w (D_c − D_u), w ∈ {1.5, 3, 5, 7.5, 9}.

**Guidance is exact.** For a class-conditional mixture (classes = groups of components), the conditional
p(x₀ | c) is the sub-mixture of class c with renormalised weights and the unconditional p(x₀) the whole
mixture; both denoisers are closed-form, so the guided denoiser D_w(x, λ) = D_u + w (D_c − D_u) is exact,
and its probability-flow ODE dy/dλ = e^λ D_w(σ̂ y, λ) is what :func:`builder.select.truth.solve_truth`
integrates once it is handed a :class:`GuidedMixture` (truth.py only calls ``.denoise``, ``.sample`` and
``.digest``): the adapter, not a copy of the solver. The start x_T is drawn from the conditional.

**Seeds.** Mixture seeds start at :data:`MIXTURE_SEED_BASE` (family.py uses 1–5 and 101–104) and noise seeds
at :data:`NOISE_SEED_BASE` (family.py uses 0–12 and 1000–1011); ``tests/test_kinds.py`` checks both, and that
no mixture here has a family digest except the digits data set's, which ``family`` already puts in both of
its splits with different noises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .family import FamilyProblem, latent_mixture, lowdim_mixture, pixel_mixture
from .mixtures import Array, GaussianMixture, digits_mixture

__all__ = [
    "GUIDANCE_SCALES",
    "KINDS",
    "MIXTURE_SEED_BASE",
    "NOISE_SEED_BASE",
    "GuidedMixture",
    "Kind",
    "class_conditional",
    "fine_latent_mixture",
    "kind_problems",
    "problems",
    "scaled_mixture",
]

MIXTURE_SEED_BASE = 3001
NOISE_SEED_BASE = 7000  # kind i, problem j: noise seed 7000 + 100 i + j
BATCH = 32
GUIDANCE_SCALES = (1.5, 3.0, 5.0, 7.5, 9.0)


# ---- generators that family.py does not have --------------------------------------------------------------


def _orthonormal(rng: np.random.Generator, dim: int) -> Array:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diagonal(r))[None, :]


def fine_latent_mixture(dim: int, k: int, std_lo: float, std_hi: float, seed: int) -> GaussianMixture:
    """Latent scale, sharp modes: per-dim std ≈ 1, every mode's std log-uniform on [std_lo, std_hi].

    s_kj = exp(U(log std_lo, log std_hi))² (each mode's D eigenvalues), U_k Haar-random;
    μ_k = √(1 − s̄) g_k Q with g standardised over the K modes per coordinate and Q Haar-random, s̄ the mean
    eigenvalue, so the total per-dim variance is (1 − s̄) + s̄ = 1; weights Dirichlet(3).
    """
    rng = np.random.default_rng([41, dim, k, seed])
    std = np.exp(rng.uniform(np.log(std_lo), np.log(std_hi), size=(k, dim)))
    eigvals = std**2
    g = rng.standard_normal((k, dim))
    g -= g.mean(axis=0, keepdims=True)
    g /= np.sqrt((g**2).mean(axis=0, keepdims=True) + 1e-12)
    means = np.sqrt(max(1.0 - float(eigvals.mean()), 0.0)) * g @ _orthonormal(rng, dim).T
    weights = rng.dirichlet(np.full(k, 3.0))
    eigvecs = np.stack([_orthonormal(rng, dim) for _ in range(k)])
    return GaussianMixture(weights, means, eigvals, eigvecs, name=f"latent-fine-d{dim}-k{k}-s{seed}")


def scaled_mixture(mixture: GaussianMixture, c: float) -> GaussianMixture:
    """The law of c·x₀: π_k unchanged, μ_k → c μ_k, s_k → c² s_k, U_k unchanged (overall std × c)."""
    return GaussianMixture(
        mixture.weights,
        c * mixture.means,
        c * c * mixture.eigvals,
        mixture.eigvecs,
        name=f"{mixture.name}-x{c:g}",
    )


def class_conditional(mixture: GaussianMixture, components: Sequence[int]) -> GaussianMixture:
    """p(x₀ | c) of a class c made of ``components``: those π_k renormalised, their μ_k and Σ_k unchanged."""
    idx = np.asarray(sorted(components), dtype=np.int64)
    u = None if mixture.eigvecs is None else mixture.eigvecs[idx]
    return GaussianMixture(
        mixture.weights[idx], mixture.means[idx], mixture.eigvals[idx], u, name=f"{mixture.name}-class{list(idx)}"
    )


@dataclass(frozen=True, eq=False)
class GuidedMixture:
    """Classifier-free guidance on a class of a class-conditional mixture, exact.

    D_w(x, λ) = D_u(x, λ) + w (D_c(x, λ) − D_u(x, λ)), with D_u the whole mixture's denoiser E[x₀ | x_λ] and
    D_c the class's (:func:`class_conditional`). Duck-types the part of :class:`GaussianMixture` that
    :mod:`builder.select.truth` and :mod:`builder.select.evaluate` use: ``denoise``, ``sample`` (from the
    conditional: the start x_T), ``digest``, ``dim``, ``name``. The exact answer is the guided flow
    dy/dλ = e^λ D_w(σ̂ y, λ) solved by :func:`builder.select.truth.solve_truth` (DOP853, rtol 1e-10).
    """

    unconditional: GaussianMixture
    conditional: GaussianMixture
    scale: float
    name: str = "guided"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.conditional.dim != self.unconditional.dim:
            raise ValueError("conditional and unconditional mixtures need the same dimension")

    @property
    def dim(self) -> int:
        return self.unconditional.dim

    @property
    def digest(self) -> str:
        """sha256 of ("guided", w, the two mixtures' digests): the truth cache key part."""
        if "digest" not in self._cache:
            h = hashlib.sha256(b"optsteps-guided-v1")
            h.update(f"|{float(self.scale)!r}|{self.unconditional.digest}|{self.conditional.digest}".encode())
            self._cache["digest"] = h.hexdigest()
        return self._cache["digest"]

    def sample(self, n: int, rng: np.random.Generator) -> Array:
        return self.conditional.sample(n, rng)

    def denoise(self, x: Array, lam: float) -> Array:
        """D_u + w (D_c − D_u) at one λ for a batch x (B, D)."""
        du = self.unconditional.denoise(x, lam)
        return du + self.scale * (self.conditional.denoise(x, lam) - du)


# ---- the kinds -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A named group of held-out problem specs; ``build(args)`` makes one mixture from a spec."""

    name: str
    description: str
    build: Callable[..., object]
    specs: tuple[tuple, ...]
    batch: int = BATCH


def _pixel(dim: int, k: int, a: float, f: float, seed: int) -> GaussianMixture:
    """pixel_mixture: λ_j ∝ j^{−a} with Σ λ_j = 0.25 D, μ_kj = √(f λ_j) g_kj, s_kj = (1 − f) λ_j e^{0.4 n − 0.08}."""
    return pixel_mixture(dim, k, a, f, seed)


def _latent(dim: int, k: int, a: float, f: float, seed: int) -> GaussianMixture:
    """latent_mixture: λ_j ∝ j^{−a} with Σ λ_j = D, means √(f λ) g rotated, modes (1 − f) λ jittered, rotated."""
    return latent_mixture(dim, k, a, f, seed)


def _lowdim(dim: int, k: int, lo: float, hi: float, seed: int) -> GaussianMixture:
    """lowdim_mixture: μ_k ~ U[−1, 1]^d, diagonal std log-uniform on [lo, hi], π ~ Dirichlet(2)."""
    return lowdim_mixture(dim, k, lo, hi, seed)


def _digits() -> GaussianMixture:
    """The scikit-learn digits in [−1, 1], fitted by 10 full-covariance modes (``digits_mixture``)."""
    return digits_mixture()


def _scale(c: float, seed: int) -> GaussianMixture:
    """c · x₀ for x₀ from latent_mixture(32, 8, a=0.3, f=0.5, seed): overall std ≈ c."""
    return scaled_mixture(latent_mixture(32, 8, 0.3, 0.5, seed), c)


def _guided(base: str, classes: int, cls: int, w: float, seed: int) -> GuidedMixture:
    """D_u + w (D_c − D_u): class ``cls`` of a mixture whose K components are split in ``classes`` equal classes
    by index (component k is in class k mod classes); base ``"latent"``: latent_mixture(32, 12, 0.4, 0.6, seed),
    ``"digits"``: the digits mixture (its 10 fitted modes are its classes)."""
    mix = latent_mixture(32, 12, 0.4, 0.6, seed) if base == "latent" else digits_mixture()
    members = [k for k in range(mix.n_components) if k % classes == cls]
    return GuidedMixture(mix, class_conditional(mix, members), float(w), name=f"guided-{base}-c{cls}-w{w:g}")


S = MIXTURE_SEED_BASE
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "pixel-like",
            "normalised pixels: power-law spectrum j^-a, per-dim std 0.5, D 32-64",
            _pixel,
            ((32, 5, 1.2, 0.3, S), (64, 8, 2.0, 0.5, S + 1), (48, 4, 2.6, 0.2, S + 2), (64, 6, 0.9, 0.6, S + 3)),
        ),
        Kind(
            "latent-like",
            "VAE-latent-like: flat spectrum, per-dim std 1, randomly oriented modes, D 24-64",
            _latent,
            ((24, 6, 0.2, 0.4, S), (48, 12, 0.6, 0.1, S + 1), (32, 8, 0.05, 0.7, S + 2), (64, 10, 0.4, 0.25, S + 3)),
        ),
        Kind(
            "latent-fine",
            "latent-like with fine within-mode structure: per-dim std 1, mode std 0.01-0.3",
            fine_latent_mixture,
            ((16, 8, 0.01, 0.05, S), (32, 12, 0.03, 0.1, S + 1), (48, 16, 0.1, 0.3, S + 2), (64, 10, 0.05, 0.2, S + 3)),
        ),
        Kind(
            "lowdim",
            "low-dimensional, many sharp modes: d 2-8, K 20-64, mode std 0.01-0.12",
            _lowdim,
            ((2, 32, 0.01, 0.05, S), (3, 64, 0.02, 0.06, S + 1), (6, 40, 0.02, 0.1, S + 2), (8, 20, 0.03, 0.12, S + 3)),
        ),
        Kind("digits", "scikit-learn digits mixture (64 dims, 10 modes), held-out noises", _digits, ((), ())),
        Kind(
            "scale",
            "latent-like data scaled to overall std 0.25, 0.5, 2, 3 (models with unusual data scale)",
            _scale,
            ((0.25, S + 4), (0.5, S + 5), (2.0, S + 6), (3.0, S + 7)),
        ),
        Kind(
            "guided",
            "classifier-free guidance D_u + w(D_c - D_u), w 1.5-9, on a class of a class-conditional mixture",
            _guided,
            tuple(("latent", 4, 1, w, S + 8) for w in GUIDANCE_SCALES)
            + (("digits", 10, 3, 3.0, 0), ("digits", 10, 3, 7.5, 0)),
        ),
    )
}


def kind_problems(name: str, *, batch: int | None = None) -> tuple[FamilyProblem, ...]:
    """The problems of kind ``name`` (:data:`KINDS`), noise seeds 7000 + 100·(kind's index) + j."""
    if name not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {name!r}")
    kind = KINDS[name]
    base = NOISE_SEED_BASE + 100 * list(KINDS).index(name)
    out = []
    for j, spec in enumerate(kind.specs):
        mix = kind.build(*spec)
        out.append(
            FamilyProblem(f"{name}:{mix.name}:n{base + j}", name, mix, int(batch or kind.batch), base + j, (name, spec))
        )
    return tuple(out)


def problems(kinds: Sequence[str] | None = None, *, batch: int | None = None) -> tuple[FamilyProblem, ...]:
    """Every kind's problems (or those of ``kinds``), in :data:`KINDS` order."""
    names = list(KINDS) if kinds is None else list(kinds)
    return tuple(p for name in names for p in kind_problems(name, batch=batch))
