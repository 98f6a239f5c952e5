"""The reference DPM-Solver++ multistep sampler (2M / 3M): coefficients, agreement with diffusers,
convergence to the true ODE solution, calling contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from optsteps_loader import dpmpp
from optsteps_loader.coefficients import dpmpp_coefficients, phi
from tests._sampler_fixtures import (
    GRID_TIMESTEPS,
    SD_BETAS,
    CountingModel,
    diffusers_state_on_grid,
    discrete_steps,
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
# coefficients


def _poly_check(steps, step, s, degree):
    lam = steps.lambdas

    def poly(v):
        return (v - 0.3) ** degree

    integral = quad(lambda v: math.exp(v - lam[s + 1]) * poly(v), lam[s], lam[s + 1], epsabs=1e-14)[0]
    exact = steps.alpha_t[s + 1] * integral
    got = sum(w * poly(lam[s - j]) for j, w in enumerate(step.weights))
    return got, exact


def test_dpmpp_weights_against_exact_integrals():
    """Independent check of the 2M/3M weights with m(λ) a polynomial (quadrature of α_t ∫ e^{λ−λ_t} m dλ).

    All steps integrate constants exactly. 3M integrates linear m exactly, and its quadratic term carries
    exactly half the exact weight (D_2 ≈ h² m''/2 is multiplied by α_t h φ_3, the Taylor term is
    α_t h³ φ_3 m''): the reference / diffusers formula, reproduced on purpose.
    """
    steps = vp_from_lambdas([-3.0, -2.1, -1.5, -0.4, 0.3, 1.5, 2.0])
    for order in (2, 3):
        plan = dpmpp_coefficients(steps.lambdas, steps.alpha_t, steps.sigma_t, order=order, lower_order_final=False)
        for s, step in enumerate(plan):
            got, exact = _poly_check(steps, step, s, 0)
            assert got == pytest.approx(exact, rel=1e-12)
            if step.order == 3:
                got, exact = _poly_check(steps, step, s, 1)
                assert got == pytest.approx(exact, rel=1e-10, abs=1e-12)
                h = steps.lambdas[s + 1] - steps.lambdas[s]
                got, exact = _poly_check(steps, step, s, 2)
                # with m = (λ − c)², the missing half is α_t h³ φ_3(−h) · m''/2 = α_t h³ φ_3(−h)
                missing = steps.alpha_t[s + 1] * h**3 * phi(3, -h)
                assert exact - got == pytest.approx(missing, rel=1e-9)


def test_orders_pattern():
    steps = vp_uniform_lambda(6)
    plan = dpmpp_coefficients(steps.lambdas, steps.alpha_t, steps.sigma_t, order=3)
    assert [p.order for p in plan] == [1, 2, 3, 3, 2, 1]
    plan = dpmpp_coefficients(steps.lambdas, steps.alpha_t, steps.sigma_t, order=2, lower_order_final=False)
    assert [p.order for p in plan] == [1, 2, 2, 2, 2, 2]


# ---------------------------------------------------------------------------------------------------------
# agreement with diffusers' DPMSolverMultistepScheduler on the same grid


def _scheduler(order, prediction, **kwargs):
    return diffusers.DPMSolverMultistepScheduler(
        **SD_BETAS,
        solver_order=order,
        algorithm_type="dpmsolver++",
        prediction_type={"v": "v_prediction"}.get(prediction, prediction),
        **kwargs,
    )


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v"])
@pytest.mark.parametrize("order", [2, 3])
def test_matches_diffusers_dpmpp(prediction, order):
    """10 steps (< 15: diffusers then lowers the last two orders, like ``lower_order_final``).

    Tolerance 1e-6 relative (norm): diffusers' ``step()`` casts the sample to float32 ("upcast", a
    downcast for float64), which leaves ~1e-7 relative differences; UniPC, which does not, agrees to 1e-15.
    """
    scheduler = _scheduler(order, prediction)
    steps = discrete_steps(scheduler.alphas_cumprod, GRID_TIMESTEPS)
    diffusers_state_on_grid(scheduler, steps)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(order))
    theirs = run_diffusers(scheduler, toy_model, x)
    ours = dpmpp.sample(toy_model, x, steps, prediction=prediction, order=order)
    assert relative_error(ours, theirs) < 1e-6


@pytest.mark.parametrize("order", [2, 3])
def test_matches_diffusers_dpmpp_long_grid(order):
    """16 steps without lower_order_final: diffusers must not force Euler at the end, so its
    ``final_sigmas_type`` is "sigma_min" ("zero" forces a first-order last step whatever the grid)."""
    timesteps = np.linspace(999, 5, 17).round().astype(int).tolist()
    scheduler = _scheduler(order, "epsilon", lower_order_final=False, final_sigmas_type="sigma_min")
    steps = discrete_steps(scheduler.alphas_cumprod, timesteps)
    diffusers_state_on_grid(scheduler, steps)
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    theirs = run_diffusers(scheduler, toy_model, x)
    ours = dpmpp.sample(toy_model, x, steps, order=order, lower_order_final=False)
    assert relative_error(ours, theirs) < 1e-6


# ---------------------------------------------------------------------------------------------------------
# against the truth


def _mixture_model(x, t):
    lam = vp_linear_lambda(float(t.reshape(-1)[0]))
    return mixture_x0(x, math.sqrt(1 / (1 + math.exp(-2 * lam))), math.sqrt(1 / (1 + math.exp(2 * lam))))


@pytest.mark.parametrize("order", [2, 3])
def test_error_shrinks_at_second_order(order):
    """Uniform-λ grids at NFE 16, 32, 64, mixture ground truth (DOP853, rtol 1e-10).

    Measured log2 error ratios: 2M 2.13/2.08, 3M 2.05/2.11. 3M converges at order 2 here because of the
    halved D_2 term (see test_dpmpp_weights_against_exact_integrals; with the exact weight 2φ_3 the slope
    rises to 2.3/2.8). Check: slope > 1.7 and 3M at least as accurate as 2M at NFE 64.
    """
    x_start = np.random.default_rng(0).standard_normal(16)
    errors = []
    for nfe in (16, 32, 64):
        steps = vp_uniform_lambda(nfe)
        start = x_start * steps.sigma_t[0]
        truth = mixture_ode_solution(start, steps.lambdas[0], steps.lambdas[-1])
        out = dpmpp.sample(
            _mixture_model,
            torch.tensor(start),
            steps,
            prediction="sample",
            order=order,
            lower_order_final=False,
        )
        errors.append(float(np.sqrt(np.mean((out.numpy() - truth) ** 2))))
    assert errors[0] > errors[1] > errors[2]
    assert math.log2(errors[1] / errors[2]) > 1.7
    assert errors[2] < 2e-3


# ---------------------------------------------------------------------------------------------------------
# calling contract


@pytest.mark.parametrize("shape", [(3,), (2, 5), (2, 3, 4, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", [2, 3])
def test_nfe_callback_shape_dtype(shape, dtype, order):
    steps = vp_uniform_lambda(7)
    model = CountingModel()
    seen = []
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    out = dpmpp.sample(model, x, steps, order=order, callback=seen.append)
    assert model.calls == steps.nfe
    assert [e["i"] for e in seen] == list(range(steps.nfe))
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"order": 4}, "order must be one of"), ({"prediction": "x0"}, "prediction must be one of")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dpmpp.sample(toy_model, torch.zeros(2), vp_uniform_lambda(4), **kwargs)
