"""Schedules, the bound F and its gradient, and the optimiser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.reference import reference_objective, released_objective, solve_released_way
from builder.cli import cli
from builder.solve.grids import start_grid
from builder.solve.objective import error_model, lagrange_weights, objective, objective_and_gradient
from builder.solve.optimize import INITS, solve
from builder.solve.schedules import SCHEDULE_NAMES, get_schedule
from optsteps_loader.coefficients import step_orders
from optsteps_loader.errors import ScheduleNotFoundError

ALL_SCHEDULES = [(name, {}) for name in SCHEDULE_NAMES] + [("flow", {"shift": 3.0})]


# -- schedules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "params"), ALL_SCHEDULES)
@given(u=st.floats(0.0, 1.0))
@settings(max_examples=60, deadline=None)
def test_t_of_lambda_round_trips(name, params, u):
    sched = get_schedule(name, **params)
    t = sched.t_end * (sched.t_start / sched.t_end) ** u  # log-uniform over the interval
    back = float(sched.inverse_lambda(sched.marginal_lambda(t)))
    assert back == pytest.approx(t, rel=1e-12)


@pytest.mark.parametrize(("name", "params"), ALL_SCHEDULES)
def test_lambda_strictly_decreasing_and_consistent(name, params):
    sched = get_schedule(name, **params)
    t = np.geomspace(sched.t_end, sched.t_start, 2001)
    lam = sched.marginal_lambda(t)
    assert np.all(np.diff(lam) < 0)
    log_ratio = np.log(sched.marginal_alpha(t)) - np.log(sched.marginal_sigma(t))
    np.testing.assert_allclose(log_ratio, lam, rtol=0, atol=1e-12)


def test_documented_endpoints():
    """Schedule values (float64; the discrete tables are float64 here, float32 in the released code)."""
    vp = get_schedule("vp-linear")
    assert vp.lambda_start == pytest.approx(-5.024978406659204, abs=1e-13)
    assert vp.lambda_end == pytest.approx(4.557714932729866, abs=1e-13)
    assert float(vp.marginal_lambda(1e-4)) == pytest.approx(5.751509795269855, abs=1e-12)
    assert float(vp.inverse_lambda(vp.lambda_start)) == pytest.approx(1.0, abs=1e-15)
    assert get_schedule("vp-cosine").t_start == 0.9946
    assert get_schedule("vp-cosine").lambda_start == pytest.approx(-4.78, abs=5e-3)
    sd = get_schedule("scaled-linear")
    assert sd.lambda_start == pytest.approx(-2.682023816589001, abs=1e-7)  # float32 table differs at 1e-8
    assert sd.lambda_end == pytest.approx(3.5347119321060347, abs=1e-7)
    edm = get_schedule("edm")
    assert edm.lambda_start == pytest.approx(-math.log(80))
    assert edm.lambda_end == pytest.approx(-math.log(0.002))
    flow3 = get_schedule("flow", shift=3.0)
    assert flow3.lambda_start == pytest.approx(get_schedule("flow").lambda_start - math.log(3.0))


def test_discrete_timesteps_are_ddpm_integers():
    sd = get_schedule("scaled-linear")
    assert sd.model_time([1.0, 0.5, 1e-3]).tolist() == [999.0, 499.0, 0.0]
    # the table: log α at knot n is ½ Σ_{i≤n} log(1 − β_i) for the SD scaled-linear betas
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    assert float(sd.marginal_log_alpha(0.5)) == pytest.approx(0.5 * np.log1p(-betas[:500]).sum(), rel=1e-14)


def test_unknown_schedule_suggests():
    with pytest.raises(ScheduleNotFoundError, match="Did you mean 'vp-linear'") as info:
        get_schedule("vp-linaer")
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("vp-linear", {"t_end": 2.0}, "t_start > t_end > 0"),
        ("flow", {"t_start": 1.0}, "must be < 1"),
        ("flow", {"shift": -1.0}, "shift must be > 0"),
        ("vp-cosine", {"t_start": 1.0}, "0.9946"),
        ("edm", {"bogus": 1}, "bad parameter"),
    ],
)
def test_bad_schedule_parameters(name, params, message):
    with pytest.raises(ValueError, match=message):
        get_schedule(name, **params)


# -- objective -----------------------------------------------------------------------------------------------
REFERENCE_VALUES = [  # vp-linear, float64 uniform-λ grid (the paper's released code)
    (5, 2, 3, 231.47846510520728),
    (5, 1, 3, 243.44491078239162),
    (5, 0, 3, 332.80559398300926),
    (5, 2, 0, 211.28226318122864),
    (8, 2, 3, 52.57300093929214),
    (8, 1, 3, 60.08036387934098),
    (8, 2, 0, 32.55527373380303),
    (10, 2, 3, 28.612224789788648),
    (10, 1, 3, 35.692062446918996),
    (10, 2, 0, 15.906928568506336),
]


@pytest.mark.parametrize(("nfe", "p", "tau", "expected"), REFERENCE_VALUES)
def test_objective_reproduces_method_reference_values(nfe, p, tau, expected):
    lam = start_grid(get_schedule("vp-linear"), nfe, "unif")
    assert objective(lam, p, tau) == pytest.approx(expected, rel=1e-10)


def test_step_orders_pattern():
    assert step_orders(3, 3) == (1, 2, 1)
    assert step_orders(4, 3) == (1, 2, 2, 1)
    assert step_orders(7, 3) == (1, 2, 3, 3, 3, 2, 1)
    assert step_orders(6, 2) == (1, 2, 2, 2, 2, 1)
    assert step_orders(5, 1) == (1,) * 5


def _random_grid(draw_gaps, lam_t=-5.0, lam_e=4.5):
    gaps = np.asarray(draw_gaps, dtype=np.float64)
    return lam_t + (lam_e - lam_t) * np.concatenate([[0.0], np.cumsum(gaps) / gaps.sum()])


grids = st.lists(st.floats(0.02, 1.0), min_size=2, max_size=30).map(_random_grid)


@given(lam=grids, p=st.sampled_from([0.0, 0.5, 1.0, 2.0]), tau=st.integers(0, 4), order=st.integers(1, 3))
@settings(max_examples=120, deadline=None)
def test_objective_matches_loop_reference_and_is_finite(lam, p, tau, order):
    value, grad = objective_and_gradient(lam, p, tau, order)
    assert math.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(reference_objective(lam, p, tau, order), rel=1e-11)


@pytest.mark.parametrize(("name", "params"), ALL_SCHEDULES)
@given(gaps=st.lists(st.floats(0.02, 1.0), min_size=2, max_size=25), p=st.sampled_from([0.0, 1.0, 2.0]))
@settings(max_examples=25, deadline=None)
def test_released_cost_port_computes_the_same_bound(name, params, gaps, p):
    """The benchmark's literal port (endpoints re-derived from the schedule per call) is F, to rounding."""
    sched = get_schedule(name, **params)
    lam = _random_grid(gaps, sched.lambda_start, sched.lambda_end)
    for tau, order in ((0, 3), (3, 3), (2, 2), (0, 1)):
        assert released_objective(lam[1:-1], sched, p, tau, order) == pytest.approx(
            objective(lam, p, tau, order), rel=1e-11
        )


@given(lam=grids, order=st.integers(1, 3))
@settings(max_examples=60, deadline=None)
def test_weights_sum_to_exact_integral(lam, order):
    w = lagrange_weights(lam, step_orders(len(lam) - 1, order))
    np.testing.assert_allclose(w.sum(axis=1), np.exp(lam[1:]) - np.exp(lam[:-1]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("tau", [0, 3])
@pytest.mark.parametrize("p", [0.0, 1.0, 2.0])
def test_gradient_matches_central_differences(order, tau, p):
    rng = np.random.default_rng(1234 + order + 10 * tau)
    lam = start_grid(get_schedule("vp-linear"), 12, "unif")
    lam[1:-1] += rng.uniform(-0.25, 0.25, 11)
    _, grad = objective_and_gradient(lam, p, tau, order)
    step = 1e-6
    for i in range(1, 12):
        e = np.zeros_like(lam)
        e[i] = step
        fd = (objective(lam + e, p, tau, order) - objective(lam - e, p, tau, order)) / (2 * step)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-6)


def test_error_model_derivative():
    lam = np.linspace(-6, 6, 25)
    for p in (0.0, 1.0, 2.0):
        e, de = error_model(lam, p)
        np.testing.assert_allclose(e, (1 + np.exp(2 * lam)) ** (-p / 2) * (1 + np.exp(-2 * lam)) ** 0.5, rtol=1e-13)
        fd = (error_model(lam + 1e-6, p)[0] - error_model(lam - 1e-6, p)[0]) / 2e-6
        np.testing.assert_allclose(de, fd, rtol=1e-6, atol=1e-8)


def test_same_lambda_problem_gives_same_grid_across_schedules():
    """METHOD §7.8: F depends on λ only; same endpoints and start give the same optimum."""
    vp = get_schedule("vp-linear")
    edm = get_schedule("edm", t_start=math.exp(-vp.lambda_start), t_end=math.exp(-vp.lambda_end))
    a = solve(vp, 6, p=2, tau=3, init="unif")
    b = solve(edm, 6, p=2, tau=3, init="unif")
    np.testing.assert_allclose(a.lambdas, b.lambdas, rtol=0, atol=1e-9)
    np.testing.assert_allclose(edm.marginal_lambda(b.t), b.lambdas, atol=1e-12)


# -- optimiser ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nfe", [5, 6])
def test_unif_matches_or_beats_released_way(nfe):
    vp = get_schedule("vp-linear")
    ours = solve(vp, nfe, p=2, tau=3, init="unif")
    released = solve_released_way(vp, nfe, 2.0, 3)
    assert ours.fun <= released.fun * (1 + 1e-7)
    assert ours.fun < 0.5 * ours.objective_uniform_lambda  # the paper's point: far below uniform-λ


@pytest.mark.parametrize(("name", "nfe", "p"), [("vp-linear", 8, 1.0), ("edm", 10, 2.0), ("scaled-linear", 7, 2.0)])
def test_best_is_no_worse_than_any_single_start(name, nfe, p):
    sched = get_schedule(name)
    best = solve(sched, nfe, p=p, init="best")
    for init in INITS:
        assert best.fun <= solve(sched, nfe, p=p, init=init).fun * (1 + 1e-12)
    assert best.success and best.starts == 6


def test_solution_is_valid_grid_and_deterministic():
    sched = get_schedule("scaled-linear")
    a = solve(sched, 9, p=1, init="best")
    b = solve(sched, 9, p=1, init="best")
    assert a.lambdas.tobytes() == b.lambdas.tobytes()
    assert a.lambdas[0] == sched.lambda_start and a.lambdas[-1] == sched.lambda_end
    assert np.all(np.diff(a.lambdas) > 0) and np.all(np.diff(a.t) < 0)
    assert a.t[0] == sched.t_start and a.t[-1] == sched.t_end
    assert a.timesteps[0] == 999 and a.timesteps[-1] == 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"nfe": 1}, ValueError, r"nfe must be in 2\.\.200"),
        ({"nfe": 6.0}, TypeError, "nfe must be an integer"),
        ({"nfe": True}, TypeError, "nfe must be an integer"),
        ({"nfe": 6, "p": -1.0}, ValueError, "p must be a finite number"),
        ({"nfe": 6, "order": 4}, ValueError, "order must be 1, 2 or 3"),
        ({"nfe": 6, "tau": -2}, ValueError, "tau must be"),
        ({"nfe": 6, "init": "random"}, ValueError, "unknown init"),
        ({"nfe": 6, "method": "newton"}, ValueError, "unknown method 'newton'; choose one of direct, epigraph"),
    ],
)
def test_bad_inputs_get_one_clear_error(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        solve("vp-linear", **kwargs)


def test_explicit_start_grid_is_solved_like_the_named_one():
    sched = get_schedule("edm")
    named = solve(sched, 7, p=1, init="quad")
    explicit = solve(sched, 7, p=1, init=start_grid(sched, 7, "quad").tolist())
    assert explicit.init == "x0" and explicit.starts == 1
    assert explicit.lambdas.tobytes() == named.lambdas.tobytes()


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (lambda s: np.linspace(s.lambda_start, s.lambda_end, 6), "has 7 λ's"),
        (lambda s: np.linspace(s.lambda_end, s.lambda_start, 7), "strictly increasing"),
        (lambda s: np.linspace(s.lambda_start, s.lambda_end + 0.5, 7), "must run from λ_T"),
        (lambda s: np.full(7, np.nan), "finite"),
    ],
)
def test_bad_explicit_start_gets_a_clear_error(grid, message):
    sched = get_schedule("vp-linear")
    with pytest.raises(ValueError, match=message):
        solve(sched, 6, init=grid(sched))


def test_released_way_literal_and_loop_agree_on_a_stable_problem():
    vp = get_schedule("vp-linear")
    literal = solve_released_way(vp, 5, 2.0, 3)
    loop = solve_released_way(vp, 5, 2.0, 3, literal=False)
    assert literal.fun == pytest.approx(loop.fun, rel=1e-9)
    np.testing.assert_allclose(literal.x, loop.x, atol=1e-6)


def test_nfe_2_has_one_free_node():
    r = solve("vp-linear", 2, p=1)
    assert r.lambdas.shape == (3,) and r.step_orders.tolist() == [1, 1]


# -- CLI --------------------------------------------------------------------------------------------------------
def test_cli_solve_json_contract():
    out = CliRunner().invoke(
        cli,
        [
            "solve",
            "--schedule",
            "vp-linear",
            "--nfe",
            "5",
            "--p",
            "2",
            "--tau",
            "3",
            "--init",
            "unif",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    for key in ("t", "lambda", "objective", "objective_uniform_lambda", "seconds"):
        assert key in payload
    assert len(payload["t"]) == len(payload["lambda"]) == 6
    assert payload["objective_uniform_lambda"] == pytest.approx(231.47846510520728, rel=1e-10)
    assert payload["objective"] < payload["objective_uniform_lambda"]


def test_cli_table_and_errors():
    runner = CliRunner()
    ok = runner.invoke(cli, ["solve", "--schedule", "flow", "--shift", "3", "--nfe", "4"])
    assert ok.exit_code == 0 and "below uniform-λ" in ok.output
    bad = runner.invoke(cli, ["solve", "--schedule", "edn", "--nfe", "4"])
    assert bad.exit_code != 0 and "Did you mean 'edm'" in bad.output and "Traceback" not in bad.output
    bad_nfe = runner.invoke(cli, ["solve", "--schedule", "edm", "--nfe", "1"])
    assert bad_nfe.exit_code == 2 and "2<=x<=200" in bad_nfe.output
    bad_tau = runner.invoke(cli, ["solve", "--schedule", "edm", "--nfe", "4", "--tau", "x"])
    assert bad_tau.exit_code != 0 and "neither 'auto' nor an integer" in bad_tau.output
