"""Differentiable samplers and the torch mixture denoiser (builder/select/differentiable.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from builder.select import family
from builder.select.differentiable import DT, TorchMixture, make_plan, sample
from builder.select.evaluate import sample_grid
from builder.select.mixtures import random_mixture

CASES = [("unipc", o, v) for o in (1, 2, 3) for v in ("bh1", "bh2")] + [("dpmpp", 2, "bh2"), ("dpmpp", 3, "bh2")]


@pytest.fixture(scope="module")
def mixtures():
    return {
        "full": random_mixture(6, 4, 3),
        "diag": family.pixel_mixture(24, 3, 1.5, 0.4, 9),
        "latent": family.latent_mixture(30, 3, 0.3, 0.5, 9),
    }


def _grid(rng, n, lo=-5.0, hi=5.0):
    lam = np.sort(rng.uniform(lo, hi, n + 1))
    lam[0], lam[-1] = lo, hi
    return lam


@pytest.mark.parametrize("kind", ["full", "diag", "latent"])
def test_denoiser_matches_numpy_mixture(mixtures, kind):
    g = mixtures[kind]
    x = np.random.default_rng(0).standard_normal((8, g.dim))
    tm = TorchMixture(g)
    for lam in (-4.0, 0.0, 3.0, 9.0):
        got = tm(torch.from_numpy(x), torch.tensor(lam, dtype=DT)).numpy()
        np.testing.assert_allclose(got, g.denoise(x, lam), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["full", "diag"])
@pytest.mark.parametrize(("solver", "order", "variant"), CASES)
def test_sampler_matches_the_loader(mixtures, kind, solver, order, variant):
    """Same grid, same start: the torch sampler equals optsteps_loader.unipc / dpmpp to ≤ 1e-12 relative."""
    g = mixtures[kind]
    rng = np.random.default_rng(order)
    x = rng.standard_normal((6, g.dim))
    tm = TorchMixture(g)
    for n in (4, 7):
        lam = _grid(rng, n)
        ref = sample_grid(lam, g, x, sampler=solver, variant=variant, order=order)
        with torch.no_grad():
            got = sample(tm, torch.from_numpy(x), torch.from_numpy(lam), solver=solver, order=order, variant=variant)
        assert np.linalg.norm(got.numpy() - ref) <= 1e-12 * np.linalg.norm(ref)


@pytest.mark.parametrize(("solver", "order"), [("unipc", 1), ("unipc", 2), ("dpmpp", 2)])
def test_zero_ending_is_the_denoised_last_node(mixtures, solver, order):
    """ending="zero" on N finite nodes = x̂₀(x_{N−1}, λ_{N−1}), x_{N−1} from the loader's sampler over the same
    nodes (for orders ≤ 2 the zero ending's first N − 1 steps have the loader's order pattern without
    lower-order-final)."""
    g = mixtures["full"]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, g.dim))
    lam = _grid(rng, 5, hi=4.0)  # 6 finite nodes, then σ = 0: NFE 6
    x_last = sample_grid(lam, g, x, sampler=solver, variant="bh2", order=order, lower_order_final=False)
    with torch.no_grad():
        got = sample(
            TorchMixture(g), torch.from_numpy(x), torch.from_numpy(lam), solver=solver, order=order, ending="zero"
        )
    np.testing.assert_allclose(got.numpy(), g.denoise(x_last, lam[-1]), rtol=1e-12, atol=1e-13)


def test_zero_ending_orders_follow_the_n_step_pattern():
    lam = torch.linspace(-5.0, 4.0, 5, dtype=DT)  # NFE 5: steps 1, 2, 3, 2, then the jump to σ = 0
    plan = make_plan(lam, solver="unipc", order=3, ending="zero")
    assert [len(pred) for _, pred, _ in plan] == [1, 2, 3, 2]
    assert plan[-1][2] is None and all(c is not None for _, _, c in plan[:-1])


@pytest.mark.parametrize(("solver", "order", "ending"), [("unipc", 3, "eps"), ("dpmpp", 3, "zero")])
def test_gradient_matches_finite_differences(mixtures, solver, order, ending):
    g = mixtures["latent"]
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((4, g.dim)))
    lam0 = _grid(rng, 6, hi=4.5)
    tm = TorchMixture(g)

    def f(lam):
        out = sample(tm, x, lam, solver=solver, order=order, ending=ending)
        return torch.linalg.vector_norm(out, dim=1).mean()

    lam = torch.tensor(lam0, requires_grad=True)
    f(lam).backward()
    eps = 1e-6
    for i in range(1, len(lam0) - 1):
        up, dn = lam0.copy(), lam0.copy()
        up[i] += eps
        dn[i] -= eps
        with torch.no_grad():
            fd = (f(torch.from_numpy(up)) - f(torch.from_numpy(dn))).item() / (2 * eps)
        assert abs(lam.grad[i].item() - fd) <= 1e-6 * max(1.0, abs(fd)), i


def test_bad_arguments_raise():
    lam = torch.linspace(-3.0, 3.0, 5, dtype=DT)
    for kw in ({"solver": "ddim"}, {"ending": "last"}, {"solver": "dpmpp", "order": 4}, {"variant": "bh3"}):
        with pytest.raises(ValueError):
            make_plan(lam, **kw)
