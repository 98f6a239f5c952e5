"""The mixture denoiser E[x₀ | x_λ] against independent formulas (builder/select/mixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from builder.select.mixtures import DATA_DIR, GaussianMixture, digits_mixture, random_mixture, vp_alpha_sigma


def _bayes_denoiser(weights, means, covs, x, lam):
    """E[x₀|x] = Σ_k r_k (μ_k + α̂Σ_k(α̂²Σ_k + σ̂²I)^{-1}(x − α̂μ_k)), with scipy densities and solves."""
    a, s = vp_alpha_sigma(lam)
    d = means.shape[1]
    logs, posts = [], []
    for w, mu, cov in zip(weights, means, covs, strict=True):
        c = a * a * cov + s * s * np.eye(d)
        logs.append(np.log(w) + multivariate_normal(a * mu, c).logpdf(x))
        posts.append(mu + (a * cov @ np.linalg.solve(c, (x - a * mu).T)).T)
    logs = np.array(logs).reshape(len(weights), -1)
    r = np.exp(logs - logs.max(0))
    r /= r.sum(0)
    return np.einsum("kb,kbd->bd", r, np.array(posts))


@pytest.mark.parametrize("lam", [-6.0, -1.3, 0.0, 0.7, 4.5, 9.0])
@pytest.mark.parametrize("diagonal", [False, True])
def test_single_gaussian_matches_closed_form(lam, diagonal):
    g = random_mixture(5, 1, 3, diagonal=diagonal)
    cov, mu = g.covariances[0], g.means[0]
    a, s = vp_alpha_sigma(lam)
    x = np.random.default_rng(1).standard_normal((7, 5))
    ref = mu + (a * cov @ np.linalg.inv(a * a * cov + s * s * np.eye(5)) @ (x - a * mu).T).T
    np.testing.assert_allclose(g.denoise(x, lam), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lam", [-3.0, 0.2, 2.5, 6.0])
def test_mixture_matches_bayes_formula(lam):
    g = random_mixture(6, 4, 11)
    x = np.random.default_rng(2).standard_normal((9, 6)) * 0.8
    ref = _bayes_denoiser(g.weights, g.means, g.covariances, x, lam)
    np.testing.assert_allclose(g.denoise(x, lam), ref, rtol=1e-9, atol=1e-11)
    ll = g.log_marginal_components(x, lam)
    a, s = vp_alpha_sigma(lam)
    ref_ll = [
        np.log(w) + multivariate_normal(a * m, a * a * c + s * s * np.eye(6)).logpdf(x)
        for w, m, c in zip(g.weights, g.means, g.covariances, strict=True)
    ]
    np.testing.assert_allclose(ll, np.array(ref_ll).T, rtol=1e-10)


def test_one_dimensional_mixture_against_quadrature():
    """Bayes by quadrature: E[x₀|x] = ∫ x₀ p(x₀) N(x; α̂x₀, σ̂²) dx₀ / ∫ p(x₀) N(x; α̂x₀, σ̂²) dx₀."""
    g = GaussianMixture.from_covariances([0.3, 0.7], [[-0.8], [0.5]], [[0.05], [0.2]])
    grid = np.linspace(-5, 5, 200001)
    prior = sum(
        w * np.exp(-0.5 * (grid - m[0]) ** 2 / v[0]) / np.sqrt(2 * np.pi * v[0])
        for w, m, v in zip(g.weights, g.means, g.eigvals, strict=True)
    )
    for lam in (-1.0, 0.5, 2.0):
        a, s = vp_alpha_sigma(lam)
        for x in (-1.2, 0.1, 0.9):
            lik = np.exp(-0.5 * (x - a * grid) ** 2 / s**2)
            ref = np.trapezoid(grid * prior * lik, grid) / np.trapezoid(prior * lik, grid)
            assert g.denoise(np.array([[x]]), lam)[0, 0] == pytest.approx(ref, rel=1e-8, abs=1e-10)


def test_tweedie_identity():
    """E[x₀|x] = (x + σ̂² ∇ log p(x)) / α̂ with ∇ by central differences of the marginal log density."""
    g = random_mixture(3, 3, 5)
    x = np.random.default_rng(3).standard_normal((4, 3)) * 0.5
    lam, h = 0.4, 1e-5
    a, s = vp_alpha_sigma(lam)

    def logp(y):
        ll = g.log_marginal_components(y, lam)
        return np.logaddexp.reduce(ll, axis=1)

    grad = np.stack([(logp(x + h * e) - logp(x - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(g.denoise(x, lam), (x + s * s * grad) / a, rtol=1e-6, atol=1e-8)


def test_extreme_lambdas_are_finite_and_limits_are_right():
    g = random_mixture(16, 6, 0)
    x = np.random.default_rng(4).standard_normal((32, 16))
    for lam in (-40.0, -15.0, 15.0, 40.0):
        out = g.denoise(x * (50 if lam > 0 else 1), lam)
        assert np.all(np.isfinite(out))
    r = g.responsibilities(x, -40.0)
    np.testing.assert_allclose(r, np.broadcast_to(g.weights, r.shape), rtol=1e-9)  # no signal: the prior
    np.testing.assert_allclose(g.denoise(x, -40.0), np.broadcast_to(g.weights @ g.means, x.shape), atol=1e-9)
    np.testing.assert_allclose(g.denoise(x, 40.0), x, atol=1e-9)  # no noise: x itself (α̂ = 1)


def test_sampling_moments():
    g = random_mixture(4, 3, 7)
    x0 = g.sample(200_000, np.random.default_rng(0))
    mean = g.weights @ g.means
    second = np.einsum("k,kij->ij", g.weights, g.covariances + np.einsum("ki,kj->kij", g.means, g.means))
    np.testing.assert_allclose(x0.mean(0), mean, atol=0.01)
    np.testing.assert_allclose(np.cov(x0.T, bias=True), second - np.outer(mean, mean), atol=0.01)


def test_digits_mixture_data():
    path = DATA_DIR / "digits_gmm.npz"
    assert path.stat().st_size < 1_000_000
    g = digits_mixture()
    assert (g.dim, g.n_components) == (64, 10)
    assert g.weights.sum() == pytest.approx(1.0)
    assert np.all(g.eigvals >= 1e-3 * (1 - 1e-9))  # reg_covar floor
    np.testing.assert_allclose(
        np.einsum("kij,kil->kjl", g.eigvecs, g.eigvecs), np.broadcast_to(np.eye(64), (10, 64, 64)), atol=1e-10
    )
    assert np.all(np.abs(g.means) <= 1.0 + 1e-9)  # data scaled to [−1, 1]


def test_round_trip_and_digest(tmp_path):
    g = random_mixture(8, 3, 1)
    g.save(tmp_path / "m.npz")
    h = GaussianMixture.load(tmp_path / "m.npz")
    assert h.digest == g.digest
    assert random_mixture(8, 3, 2).digest != g.digest
    np.testing.assert_array_equal(h.denoise(np.ones((2, 8)), 0.3), g.denoise(np.ones((2, 8)), 0.3))
