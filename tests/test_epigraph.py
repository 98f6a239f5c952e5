"""The bound minimised exactly (builder.solve.epigraph, ``solve(method="epigraph")``): its split of F, its
derivatives, its stationary points, and the degeneracy it exposes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.reference import solve_released_way
from builder.cli import cli
from builder.solve.epigraph import SplitBound
from builder.solve.grids import start_grid
from builder.solve.objective import objective
from builder.solve.optimize import solve
from builder.solve.schedules import get_schedule

from .test_builder_core import grids


@given(lam=grids, p=st.sampled_from([0.0, 1.0, 2.0]), tau=st.integers(0, 4), order=st.integers(1, 3))
@settings(max_examples=80, deadline=None)
def test_split_reassembles_the_bound(lam, p, tau, order):
    smooth, _, pooled, _ = SplitBound(len(lam) - 1, p, tau, order)(lam)
    assert smooth + np.abs(pooled).sum() == pytest.approx(objective(lam, p, tau, order), rel=1e-12)


@pytest.mark.parametrize(("tau", "order", "p"), [(0, 3, 2.0), (3, 3, 1.0), (0, 2, 0.0), (2, 1, 2.0)])
def test_split_derivatives_match_central_differences(tau, order, p):
    rng = np.random.default_rng(7 + tau + order)
    lam = start_grid(get_schedule("vp-linear"), 10, "unif")
    lam[1:-1] += rng.uniform(-0.2, 0.2, 9)
    bound = SplitBound(10, p, tau, order)
    _, d_smooth, _, d_pooled = bound(lam)
    step = 1e-6
    for m in range(11):
        e = np.zeros_like(lam)
        e[m] = step
        plus, minus = bound(lam + e), bound(lam - e)
        assert d_smooth[m] == pytest.approx((plus[0] - minus[0]) / (2 * step), rel=1e-6, abs=1e-7)
        np.testing.assert_allclose(d_pooled[:, m], (plus[2] - minus[2]) / (2 * step), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("nfe", [8, 10])
def test_epigraph_reaches_a_stationary_point_below_the_released_solve(nfe):
    """On the released problem (``--tau 3 --init unif``) the exact minimiser ends below the released solve's F."""
    vp = get_schedule("vp-linear")
    exact = solve(vp, nfe, p=2, tau=3, init="unif", method="epigraph")
    released = solve_released_way(vp, nfe, 2.0, 3)
    direct = solve(vp, nfe, p=2, tau=3, init="unif")
    assert exact.status == 1 and exact.valid  # gtol: a KKT point, not a collapsed trust radius
    assert exact.fun < released.fun and exact.fun < direct.fun
    assert exact.method == "epigraph" and direct.method == "direct"


def test_epigraph_result_is_a_local_minimum_of_f():
    """No small perturbation of the interior λ lowers F (it is a kink point, so probe many directions)."""
    res = solve("vp-linear", 8, p=2, tau=3, init="unif", method="epigraph")
    rng = np.random.default_rng(0)
    for _ in range(200):
        direction = rng.standard_normal(7)
        trial = res.lambdas.copy()
        trial[1:-1] += 1e-4 * direction / np.linalg.norm(direction)
        assert objective(trial, 2.0, 3) >= res.fun - 1e-10


def test_exact_minimum_of_tau_0_bound_is_degenerate():
    """The finding bench_exact_minimum.py measures: at τ = 0 the bound's true minimiser collapses a step."""
    vp = get_schedule("vp-linear")
    exact = solve(vp, 8, p=2, tau=0, init="unif", method="epigraph")
    direct = solve(vp, 8, p=2, tau=0, init="unif")
    assert exact.fun < 0.1 * direct.fun
    assert np.diff(exact.lambdas).min() < 0.02 < np.diff(direct.lambdas).min()


def test_cli_method_flag():
    runner = CliRunner()
    args = ["solve", "--schedule", "edm", "--nfe", "6", "--tau", "3", "--init", "unif", "--json"]
    out = runner.invoke(cli, [*args, "--method", "epigraph"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["method"] == "epigraph"
    bad = runner.invoke(cli, [*args, "--method", "newton"])
    assert bad.exit_code == 2 and "newton" in bad.output
