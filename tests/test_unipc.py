"""The reference UniPC sampler: coefficients, agreement with diffusers, convergence to the true ODE solution,
and the calling contract (NFE, callback, shapes, dtypes, errors)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from optsteps_loader import unipc
from optsteps_loader.coefficients import phi, step_orders, unipc_coefficients
from optsteps_loader.solver_formulas import _solve
from tests._sampler_fixtures import (
    GRID_TIMESTEPS,
    SD_BETAS,
    CountingModel,
    diffusers_state_on_grid,
    discrete_steps,
    flow_steps,
    mixture_ode_solution,
    mixture_x0,
    relative_error,
    run_diffusers,
    toy_model,
    vp_from_lambdas,
    vp_linear_lambda,
    vp_uniform_lambda,
)

diffusers = pytest.importorskip("diffusers")
# diffusers' own set_timesteps calls np.array on a tensor (numpy 2 deprecation inside diffusers)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# ---------------------------------------------------------------------------------------------------------
# coefficients (pure Python, float64)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("z", [-1e-6, -0.01, -0.5, -0.999, -1.0, -1.7, -6.0])
def test_phi_matches_closed_forms(k, z):
    # φ_k(z) = Σ zⁿ/(n+k)!, summed in exact rational arithmetic (70 terms: the tail is < 1e-40 here)
    exact = float(sum(Fraction(z) ** n / math.factorial(n + k) for n in range(70)))
    assert phi(k, z) == pytest.approx(exact, rel=1e-13, abs=1e-300)


def test_step_orders_pattern():
    assert step_orders(6, 3) == (1, 2, 3, 3, 2, 1)
    assert step_orders(3, 3) == (1, 2, 1)
    assert step_orders(5, 2, lower_order_final=False) == (1, 2, 2, 2, 2)
    assert step_orders(1, 3) == (1,)


@given(st.lists(st.floats(-5, 5), min_size=3, max_size=3), st.lists(st.floats(-5, 5), min_size=3))
@settings(max_examples=50, deadline=None)
def test_gaussian_elimination_matches_numpy(entries, rhs):
    matrix = np.array([[1.0, 1.0, 1.0], entries, np.square(entries)])  # a Vandermonde-like UniPC R
    if abs(np.linalg.det(matrix)) < 1e-3:
        return
    expected = np.linalg.solve(matrix, rhs[:3])
    np.testing.assert_allclose(_solve(matrix.tolist(), rhs[:3]), expected, rtol=1e-8, atol=1e-8)


LAMBDAS = [-3.0, -2.1, -1.5, -0.4, 0.3, 1.5, 2.0, 2.6]


def _exact_update(steps, s, poly):
    """α_t ∫_{λ_s}^{λ_t} e^{λ−λ_t} m(λ) dλ: what a step adds for a data prediction m(λ) (quadrature)."""
    lam = steps.lambdas
    integral = quad(lambda v: math.exp(v - lam[s + 1]) * poly(v), lam[s], lam[s + 1], epsabs=1e-14)[0]
    return steps.alpha_t[s + 1] * integral


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_polynomial_exactness(variant, order):
    """Independent check of ρ_p, ρ_c, B(h), b: with m(λ) a polynomial, the combination must equal the
    exact exponential integral. UniC-k solves R ρ = b (exact to degree k for k ≥ 2); UniP-3 solves the
    reduced system (degree ≤ 2); the simplified ρ = ½ cases (UniP-2, UniC-1) are exact for constants."""
    steps = vp_from_lambdas(LAMBDAS)
    plan = unipc_coefficients(
        steps.lambdas, steps.alpha_t, steps.sigma_t, order=order, variant=variant, lower_order_final=False
    )
    lam = steps.lambdas
    for s, step in enumerate(plan[:-1]):
        k = step.predictor.order
        degree_p = k - 1 if k >= 3 else 0
        degree_c = k if k >= 2 else 0
        for degree in range(4):

            def poly(v, d=degree):
                return (v - 0.3) ** d

            exact = _exact_update(steps, s, poly)
            pred = sum(w * poly(lam[s - j]) for j, w in enumerate(step.predictor.weights))
            w_new, *w_old = step.corrector.weights
            corr = w_new * poly(lam[s + 1]) + sum(w * poly(lam[s - j]) for j, w in enumerate(w_old))
            if degree <= degree_p:
                assert pred == pytest.approx(exact, rel=1e-10, abs=1e-12), (s, k, degree)
            if degree <= degree_c:
                assert corr == pytest.approx(exact, rel=1e-10, abs=1e-12), (s, k, degree)
        if k == 3:  # and not beyond: the test is not vacuous
            cubic = _exact_update(steps, s, lambda v: (v - 0.3) ** 3)
            pred = sum(w * (lam[s - j] - 0.3) ** 3 for j, w in enumerate(step.predictor.weights))
            assert abs(pred - cubic) > 1e-3


def test_corrector_absent_on_last_step_and_when_disabled():
    steps = vp_uniform_lambda(5)
    plan = unipc_coefficients(steps.lambdas, steps.alpha_t, steps.sigma_t, order=3)
    assert [p.corrector is None for p in plan] == [False] * 4 + [True]
    plan = unipc_coefficients(steps.lambdas, steps.alpha_t, steps.sigma_t, order=3, corrector=False)
    assert all(p.corrector is None for p in plan)


# ---------------------------------------------------------------------------------------------------------
# agreement with diffusers' UniPCMultistepScheduler on the same grid (float64)


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize(("corrector", "lower_order_final"), [(True, True), (False, True), (True, False)])
def test_matches_diffusers_unipc(prediction, order, variant, corrector, lower_order_final):
    """Same α, σ (diffusers' own scaled-linear table at chosen integer timesteps), same toy model.

    diffusers' corrector runs at the start of the next ``step()`` and never after the last model call,
    like ours; ``disable_corrector`` lists step indices, so all of them turn UniC off.
    """
    scheduler = diffusers.UniPCMultistepScheduler(
        **SD_BETAS,
        solver_order=order,
        solver_type=variant,
        prediction_type={"v": "v_prediction"}.get(prediction, prediction),
        lower_order_final=lower_order_final,
        disable_corrector=[] if corrector else list(range(len(GRID_TIMESTEPS))),
    )
    steps = discrete_steps(scheduler.alphas_cumprod, GRID_TIMESTEPS)
    diffusers_state_on_grid(scheduler, steps)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(order))
    theirs = run_diffusers(scheduler, toy_model, x)
    ours = unipc.sample(
        toy_model,
        x,
        steps,
        prediction=prediction,
        order=order,
        variant=variant,
        corrector=corrector,
        lower_order_final=lower_order_final,
    )
    assert relative_error(ours, theirs) < 1e-6


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_matches_diffusers_unipc_flow(variant):
    """Rectified flow: diffusers' flow mode uses the flow σ (α = 1 − σ) and x̂_0 = x − σ u."""
    scheduler = diffusers.UniPCMultistepScheduler(
        solver_order=3, solver_type=variant, prediction_type="flow_prediction", use_flow_sigmas=True
    )
    steps = flow_steps([0.999, 0.93, 0.8, 0.62, 0.45, 0.3, 0.17, 0.08, 0.02])
    diffusers_state_on_grid(scheduler, steps)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    theirs = run_diffusers(scheduler, toy_model, x)
    ours = unipc.sample(toy_model, x, steps, prediction="flow", order=3, variant=variant)
    assert relative_error(ours, theirs) < 1e-6


# ---------------------------------------------------------------------------------------------------------
# against the truth: a Gaussian mixture with a closed-form denoiser


def _mixture_model(x, t):
    """x̂_0 of the mixture on VP-linear, as a ``sample``-prediction model of the continuous time t."""
    lam = vp_linear_lambda(float(t.reshape(-1)[0]))
    return mixture_x0(x, math.sqrt(1 / (1 + math.exp(-2 * lam))), math.sqrt(1 / (1 + math.exp(2 * lam))))


X_START = np.random.default_rng(0).standard_normal(16)


def _errors(sampler, nfes):
    errors = []
    for nfe in nfes:
        steps = vp_uniform_lambda(nfe)
        start = X_START * steps.sigma_t[0]
        truth = mixture_ode_solution(start, steps.lambdas[0], steps.lambdas[-1])
        out = sampler(_mixture_model, torch.tensor(start), steps).numpy()
        errors.append(float(np.sqrt(np.mean((out - truth) ** 2))))
    return np.array(errors)


def test_mixture_ground_truth_is_tight():
    """The ODE reference reproduces the closed-form flow of a single Gaussian component (sanity of setup)."""
    mu, s = 0.8, 0.5
    lam0, lam1 = vp_linear_lambda(1.0), vp_linear_lambda(1e-3)
    a0, s0 = math.sqrt(1 / (1 + math.exp(-2 * lam0))), math.sqrt(1 / (1 + math.exp(2 * lam0)))
    a1, s1 = math.sqrt(1 / (1 + math.exp(-2 * lam1))), math.sqrt(1 / (1 + math.exp(2 * lam1)))
    from tests import _sampler_fixtures as fx

    saved = fx.MIX_WEIGHTS, fx.MIX_MEANS, fx.MIX_STDS
    fx.MIX_WEIGHTS, fx.MIX_MEANS, fx.MIX_STDS = (0.5, 0.5), (mu, mu), (s, s)
    try:
        got = mixture_ode_solution(X_START, lam0, lam1)
    finally:
        fx.MIX_WEIGHTS, fx.MIX_MEANS, fx.MIX_STDS = saved
    # Gaussian data: x_t = α_t μ + sqrt(α_t² s² + σ_t²)·z along the flow
    z = (X_START - a0 * mu) / math.sqrt(a0**2 * s**2 + s0**2)
    np.testing.assert_allclose(got, a1 * mu + math.sqrt(a1**2 * s**2 + s1**2) * z, rtol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "slope"),
    [
        ({"order": 1, "corrector": False}, 1.0),  # DDIM
        ({"order": 1}, 2.0),  # UniC raises the order by one
        ({"order": 2, "corrector": False}, 2.0),
        ({"order": 2}, 3.0),
        ({"order": 3, "variant": "bh1"}, 3.5),
        ({"order": 3, "variant": "bh2"}, 3.5),
    ],
)
def test_error_shrinks_at_the_expected_order(kwargs, slope):
    """Uniform-λ grids at NFE 16, 32, 64 (lower_order_final off, so the last steps do not cap the order).

    Measured log2 error ratios: 0.96/0.98, 2.01/2.05, 2.26/2.09, 2.92/2.90, 3.58/3.86 (both variants);
    the check is slope ≥ expected − 0.35 on the last doubling and errors falling monotonically.
    """
    errors = _errors(
        lambda m, x, s: unipc.sample(m, x, s, prediction="sample", lower_order_final=False, **kwargs),
        (16, 32, 64),
    )
    assert np.all(np.diff(errors) < 0)
    assert math.log2(errors[-2] / errors[-1]) > slope - 0.35


def test_default_settings_converge():
    errors = _errors(lambda m, x, s: unipc.sample(m, x, s, prediction="sample"), (8, 16, 32))
    assert np.all(np.diff(errors) < 0) and errors[-1] < 1e-3


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_parameterisations_agree(prediction):
    """The same denoiser written as ε or v prediction gives the same samples as the x_0 prediction."""
    steps = vp_uniform_lambda(7)

    def model(x, t):
        lam = vp_linear_lambda(float(t.reshape(-1)[0]))
        alpha, sigma = math.sqrt(1 / (1 + math.exp(-2 * lam))), math.sqrt(1 / (1 + math.exp(2 * lam)))
        x0 = mixture_x0(x, alpha, sigma)
        eps = (x - alpha * x0) / sigma
        return eps if prediction == "epsilon" else alpha * eps - sigma * x0

    x = torch.tensor(X_START)
    reference = unipc.sample(_mixture_model, x, steps, prediction="sample")
    assert relative_error(unipc.sample(model, x, steps, prediction=prediction), reference) < 1e-12


def test_flow_parameterisation_agrees():
    steps = flow_steps([0.99, 0.9, 0.7, 0.5, 0.3, 0.15, 0.05])

    def x0_model(x, t):
        sigma = float(t.reshape(-1)[0]) / 1000.0
        return mixture_x0(x, 1.0 - sigma, sigma)

    def velocity(x, t):
        sigma = float(t.reshape(-1)[0]) / 1000.0
        x0 = x0_model(x, t)
        return (x - (1.0 - sigma) * x0) / sigma - x0  # u = ε − x_0

    x = torch.tensor(X_START) * steps.sigma_t[0]
    reference = unipc.sample(x0_model, x, steps, prediction="sample")
    assert relative_error(unipc.sample(velocity, x, steps, prediction="flow"), reference) < 1e-12


# ---------------------------------------------------------------------------------------------------------
# calling contract


@pytest.mark.parametrize("shape", [(3,), (2, 5), (2, 3, 4, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_nfe_callback_shape_dtype(shape, dtype, order):
    steps = vp_uniform_lambda(6)
    model = CountingModel()
    seen = []
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    out = unipc.sample(model, x, steps, order=order, callback=seen.append)
    assert model.calls == steps.nfe
    assert [e["i"] for e in seen] == list(range(steps.nfe))
    assert {"x", "denoised", "t", "sigma", "timestep"} <= set(seen[0])
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out).all()


def test_timestep_tensor_types():
    got = []

    def model(x, timestep):
        got.append(timestep)
        return torch.zeros_like(x)

    steps = discrete_steps(diffusers.UniPCMultistepScheduler(**SD_BETAS).alphas_cumprod, [999, 500, 10])
    unipc.sample(model, torch.zeros(4, 2, dtype=torch.float16), steps)
    assert got[0].dtype == torch.long and got[0].shape == (4,) and got[0].tolist() == [999] * 4
    got.clear()
    unipc.sample(model, torch.zeros(4, 2, dtype=torch.float32), vp_uniform_lambda(3))
    assert got[0].dtype == torch.float32 and got[0].shape == (4,)


def test_float32_close_to_float64():
    steps = vp_uniform_lambda(10)
    x = torch.randn(2, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ref = unipc.sample(toy_model, x, steps)
    assert relative_error(unipc.sample(toy_model, x.float(), steps).double(), ref) < 1e-5


def test_order_defaults_to_steps_order():
    steps = vp_uniform_lambda(6, order=2)
    x = torch.randn(4, dtype=torch.float64)
    assert torch.equal(unipc.sample(toy_model, x, steps), unipc.sample(toy_model, x, steps, order=2))


def test_initial_noise_scale():
    steps = vp_uniform_lambda(5)
    assert unipc.initial_noise_scale(steps) == steps.sigma_t[0]
    assert 0.99 < unipc.initial_noise_scale(steps) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prediction": "eps"}, "prediction must be one of"),
        ({"variant": "bh3"}, "variant must be one of"),
        ({"order": 4}, "order must be one of"),
        ({"order": True}, "order must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        unipc.sample(toy_model, torch.zeros(2), vp_uniform_lambda(4), **kwargs)


def test_bad_inputs():
    steps = vp_uniform_lambda(4)
    with pytest.raises(ValueError, match="floating-point"):
        unipc.sample(toy_model, torch.zeros(2, dtype=torch.long), steps)
    with pytest.raises(ValueError, match="callable"):
        unipc.sample(None, torch.zeros(2), steps)
    bad = vp_from_lambdas([-1.0, 0.5, 0.5, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        unipc.sample(toy_model, torch.zeros(2), bad)
