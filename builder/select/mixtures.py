"""Gaussian mixtures with a closed-form denoiser E[x₀ | x_λ], in VP-normalised coordinates.

Data x₀ ~ Σ_k π_k N(μ_k, Σ_k) with Σ_k = U_k diag(s_k) U_kᵀ (eigendecomposition stored once; a diagonal
mixture has U_k = I and skips the rotations). At half-log-SNR λ the VP-normalised marginal is

    x = α̂ x₀ + σ̂ ε,   α̂² = 1 / (1 + e^{−2λ}),  σ̂² = 1 / (1 + e^{2λ})   (α̂² + σ̂² = 1).

Per component, with v_k = α̂² s_k + σ̂² (elementwise) and z_k = U_kᵀ (x − α̂ μ_k):

    log p(x | k) = −½ Σ_d log v_kd − ½ Σ_d z_kd² / v_kd + const
    E[x₀ | x, k] = μ_k + U_k (α̂ s_k / v_k ⊙ z_k)

and E[x₀ | x] = Σ_k r_k E[x₀ | x, k] with responsibilities r = softmax_k(log π_k + log p(x | k))
(log-sum-exp). All of it in float64, vectorised over a batch: one (B, D) × (D, K·D) product to project
and one (B, K·D) × (K·D, D) product to map back.

Why λ alone is enough: the data-prediction UniPC / DPM-Solver++ updates are equivariant under
(α, σ, x) → c·(α, σ, x), so any schedule's sample error on a λ-grid equals the VP-normalised one (scaled by
the schedule's α at the last node); the tests check this.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..solve.schedules import vp_log_alpha_from_lambda

Array = NDArray[np.float64]

DATA_DIR = Path(__file__).resolve().parent / "data"

__all__ = [
    "GaussianMixture",
    "vp_alpha_sigma",
    "random_mixture",
    "digits_mixture",
]


def vp_alpha_sigma(lam: float) -> tuple[float, float]:
    """(α̂, σ̂) = ((1 + e^{−2λ})^{−1/2}, (1 + e^{2λ})^{−1/2}) as floats, from the schedules' one formula
    log α̂(λ) (`builder.solve.schedules.vp_log_alpha_from_lambda`, without overflow) and log σ̂(λ) = log α̂(−λ)."""
    lam = float(lam)
    return float(np.exp(vp_log_alpha_from_lambda(lam))), float(np.exp(vp_log_alpha_from_lambda(-lam)))


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """π_k, μ_k and the eigendecomposition Σ_k = U_k diag(s_k) U_kᵀ of each covariance.

    ``eigvecs`` is None for a diagonal mixture (then ``eigvals`` is the diagonal). Build from covariances
    with :meth:`from_covariances`; ``name`` is a label only and does not enter :attr:`digest`.
    """

    weights: Array  # (K,)
    means: Array  # (K, D)
    eigvals: Array  # (K, D), > 0
    eigvecs: Array | None  # (K, D, D), columns are eigenvectors; None: diagonal
    name: str = "mixture"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        mu = np.asarray(self.means, dtype=np.float64)
        s = np.asarray(self.eigvals, dtype=np.float64)
        object.__setattr__(self, "weights", w / w.sum())
        object.__setattr__(self, "means", mu)
        object.__setattr__(self, "eigvals", s)
        k, d = mu.shape
        if w.shape != (k,) or s.shape != (k, d) or not np.all(s > 0) or not np.all(w > 0):
            raise ValueError("need weights (K,) > 0, means (K, D), eigvals (K, D) > 0")
        if self.eigvecs is not None:
            u = np.asarray(self.eigvecs, dtype=np.float64)
            if u.shape != (k, d, d):
                raise ValueError(f"eigvecs must have shape {(k, d, d)}, got {u.shape}")
            object.__setattr__(self, "eigvecs", u)
        else:
            u = np.broadcast_to(np.eye(d), (k, d, d))
        # Projection P = [U_1 … U_K] (D, K·D), its transpose, the projected means m_k = U_kᵀ μ_k (K·D,),
        # and the block indicator E (K, K·D) with E[k, k·D + d] = 1. Everything below is 2-D: numpy's
        # broadcasting over (B, K, D) with a (1, K, D) operand is an order of magnitude slower.
        proj = np.ascontiguousarray(u.transpose(1, 0, 2).reshape(d, k * d))
        self._cache["proj"] = proj
        self._cache["proj_t"] = np.ascontiguousarray(proj.T)
        self._cache["pmeans"] = np.einsum("kdj,kd->kj", u, mu).reshape(k * d)
        self._cache["blocks"] = np.kron(np.eye(k), np.ones((1, d)))
        self._cache["log_weights"] = np.log(self.weights)

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_covariances(
        cls, weights: ArrayLike, means: ArrayLike, covariances: ArrayLike, name: str = "mixture"
    ) -> GaussianMixture:
        """Full (K, D, D) or diagonal (K, D) covariances; full ones are eigendecomposed once (``eigh``)."""
        cov = np.asarray(covariances, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        if cov.ndim == 2:
            return cls(np.asarray(weights), means, cov, None, name=name)
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        s, u = np.linalg.eigh(cov)
        return cls(np.asarray(weights), means, s, u, name=name)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> GaussianMixture:
        """Read the .npz written by :meth:`save` (keys weights, means, eigvals and optionally eigvecs)."""
        with np.load(path) as z:
            u = z["eigvecs"] if "eigvecs" in z.files else None
            return cls(z["weights"], z["means"], z["eigvals"], u, name=name or Path(path).stem)

    def save(self, path: str | Path) -> None:
        arrays = {"weights": self.weights, "means": self.means, "eigvals": self.eigvals}
        if self.eigvecs is not None:
            arrays["eigvecs"] = self.eigvecs
        np.savez_compressed(path, **arrays)

    # -- properties --------------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def diagonal(self) -> bool:
        return self.eigvecs is None

    @property
    def covariances(self) -> Array:
        """Σ_k = U_k diag(s_k) U_kᵀ, shape (K, D, D)."""
        if self.eigvecs is None:
            return np.stack([np.diag(s) for s in self.eigvals])
        return np.einsum("kij,kj,klj->kil", self.eigvecs, self.eigvals, self.eigvecs)

    @property
    def digest(self) -> str:
        """sha256 of the parameters' float64 bytes (weights, means, eigvals, eigvecs): the cache key part."""
        if "digest" not in self._cache:
            h = hashlib.sha256(b"optsteps-gmm-v1")
            for a in (self.weights, self.means, self.eigvals, self.eigvecs):
                h.update(b"|" if a is None else np.ascontiguousarray(a, dtype="<f8").tobytes())
            self._cache["digest"] = h.hexdigest()
        return self._cache["digest"]

    # -- sampling ----------------------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> Array:
        """n draws of x₀: k ~ π, then x₀ = μ_k + U_k (√s_k ⊙ n), n ~ N(0, I)."""
        comp = rng.choice(self.n_components, size=n, p=self.weights)
        noise = rng.standard_normal((n, self.dim)) * np.sqrt(self.eigvals[comp])
        if self.eigvecs is not None:
            noise = np.einsum("nij,nj->ni", self.eigvecs[comp], noise)
        return self.means[comp] + noise

    # -- the denoiser ------------------------------------------------------------------------------------
    def _terms(self, x: ArrayLike, lam: float) -> tuple[Array, Array, Array, float]:
        """(z, log π_k + log N(x; α̂μ_k, α̂²Σ_k + σ̂²I) without the 2π term, v, α̂) with z (B, K·D)."""
        x = np.asarray(x, dtype=np.float64)
        alpha, sigma = vp_alpha_sigma(lam)
        v = (alpha**2 * self.eigvals + sigma**2).reshape(-1)  # (K·D,)
        z = x @ self._cache["proj"] - alpha * self._cache["pmeans"]  # z_k = U_kᵀ(x − α̂μ_k), flattened
        blocks = self._cache["blocks"]  # (K, K·D)
        log_joint = self._cache["log_weights"] - 0.5 * (blocks @ np.log(v)) - 0.5 * ((z * z) @ (blocks / v).T)
        return z, log_joint, v, alpha

    def log_marginal_components(self, x: ArrayLike, lam: float) -> Array:
        """log π_k + log N(x; α̂ μ_k, α̂² Σ_k + σ̂² I), shape (B, K), including the −(D/2) log 2π."""
        return self._terms(x, lam)[1] - 0.5 * self.dim * np.log(2.0 * np.pi)

    def responsibilities(self, x: ArrayLike, lam: float) -> Array:
        """r_k(x) = p(k | x_λ = x), shape (B, K), by log-sum-exp."""
        return _softmax(self._terms(x, lam)[1])

    def denoise(self, x: ArrayLike, lam: float) -> Array:
        """E[x₀ | x_λ = x] = Σ_k r_k (μ_k + U_k (α̂ s_k / v_k ⊙ z_k)) for a batch x (B, D) at one λ."""
        z, log_joint, v, alpha = self._terms(x, lam)
        r = _softmax(log_joint)  # (B, K)
        gain = self._cache["blocks"] * (alpha * self.eigvals.reshape(-1) / v)  # E_k ⊙ α̂ s_k / v_k (K, K·D)
        z *= r @ gain  # r_k · (α̂ s_k / v_k) ⊙ z_k, in place
        return r @ self.means + z @ self._cache["proj_t"]


def _softmax(logits: Array) -> Array:
    """softmax over the last axis; weights below e^{−600} are set to 0 (no subnormals downstream)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(np.maximum(shifted, -600.0))
    e[shifted < -600.0] = 0.0
    return e / e.sum(axis=-1, keepdims=True)


def random_mixture(
    dim: int,
    n_components: int,
    seed: int,
    *,
    mean_scale: float = 0.6,
    eig_range: tuple[float, float] = (1e-4, 0.2),
    diagonal: bool = False,
) -> GaussianMixture:
    """A random anisotropic mixture roughly in [−1, 1]^D, like image data.

    Weights ~ Dirichlet(2·1), means ~ N(0, mean_scale² I), eigenvalues log-uniform on ``eig_range`` (so
    some directions are resolved only at high λ), eigenvectors Haar-random (QR of a Gaussian matrix with
    sign fix). Deterministic in (dim, n_components, seed, options).
    """
    rng = np.random.default_rng([dim, n_components, seed])
    weights = rng.dirichlet(np.full(n_components, 2.0))
    means = mean_scale * rng.standard_normal((n_components, dim))
    lo, hi = np.log(eig_range[0]), np.log(eig_range[1])
    eigvals = np.exp(rng.uniform(lo, hi, size=(n_components, dim)))
    name = f"random-d{dim}-k{n_components}-s{seed}" + ("-diag" if diagonal else "")
    if diagonal:
        return GaussianMixture(weights, means, eigvals, None, name=name)
    q, r = np.linalg.qr(rng.standard_normal((n_components, dim, dim)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return GaussianMixture(weights, means, eigvals, q, name=name)


def digits_mixture() -> GaussianMixture:
    """The mixture fitted to scikit-learn's 8×8 digits scaled to [−1, 1] (``scripts/fit_digits_gmm.py``)."""
    return GaussianMixture.load(DATA_DIR / "digits_gmm.npz", name="digits")
