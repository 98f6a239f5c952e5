"""Ground truth of the probability-flow ODE in λ (builder/select/truth.py)."""

from __future__ import annotations

import numpy as np

from builder.select.mixtures import GaussianMixture, random_mixture, vp_alpha_sigma
from builder.select.truth import cache_dir, ground_truth, initial_batch, solve_truth


def test_single_gaussian_flow_is_the_exact_linear_map():
    """For N(μ, UΛUᵀ) the flow maps x_T to x_ε per eigen-direction: c_ε = α̂_ε μ̃ + √(α̂_ε² s + σ̂_ε²) ·
    (c_T − α̂_T μ̃)/√(α̂_T² s + σ̂_T²), with c = Uᵀx, μ̃ = Uᵀμ (the PF-ODE keeps the whitened point fixed)."""
    g = random_mixture(6, 1, 4)
    lam_t, lam_e = -5.0, 4.6
    x_t = initial_batch(g, lam_t, 32, seed=3)
    x_e, _ = solve_truth(g, x_t, lam_t, lam_e)
    (a_t, s_t), (a_e, s_e) = vp_alpha_sigma(lam_t), vp_alpha_sigma(lam_e)
    u, s, mu = g.eigvecs[0], g.eigvals[0], g.means[0] @ g.eigvecs[0]
    c = x_t @ u
    ref = (a_e * mu + np.sqrt(a_e**2 * s + s_e**2) * (c - a_t * mu) / np.sqrt(a_t**2 * s + s_t**2)) @ u.T
    np.testing.assert_allclose(x_e, ref, rtol=1e-8, atol=1e-9)


def test_truth_tolerance_converged():
    g = random_mixture(4, 5, 9)
    x_t = initial_batch(g, -5.02, 64, seed=0)
    coarse, _ = solve_truth(g, x_t, -5.02, 4.56, rtol=1e-9, atol=1e-11)
    fine, _ = solve_truth(g, x_t, -5.02, 4.56, rtol=1e-11, atol=1e-13)
    scale = np.abs(fine).max()
    assert np.abs(coarse - fine).max() <= 1e-7 * scale


def test_initial_batch_is_the_marginal():
    g = GaussianMixture.from_covariances([1.0], [[0.5, -0.5]], [[0.04, 0.09]])
    lam = -0.3
    x = initial_batch(g, lam, 100_000, seed=1)
    a, s = vp_alpha_sigma(lam)
    np.testing.assert_allclose(x.mean(0), a * g.means[0], atol=0.01)
    np.testing.assert_allclose(x.var(0), a * a * g.eigvals[0] + s * s, rtol=0.02)


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTSTEPS_QUALITY_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    g = random_mixture(3, 2, 0)
    first = ground_truth(g, -3.0, 3.0, batch=16, seed=0)
    files = list(tmp_path.glob("truth-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    again = ground_truth(g, -3.0, 3.0, batch=16, seed=0)
    assert again.nfev == first.nfev
    np.testing.assert_array_equal(again.x_end, first.x_end)
    np.testing.assert_array_equal(again.x_start, first.x_start)
    ground_truth(g, -3.0, 3.0, batch=16, seed=1)  # another key, another file
    assert len(list(tmp_path.glob("truth-*.npz"))) == 2
    files[0].write_bytes(b"garbage")  # a corrupt entry is recomputed and replaced
    healed = ground_truth(g, -3.0, 3.0, batch=16, seed=0)
    np.testing.assert_array_equal(healed.x_end, first.x_end)
    uncached = ground_truth(g, -3.0, 3.0, batch=16, seed=0, cache=False)
    np.testing.assert_array_equal(uncached.x_end, first.x_end)
