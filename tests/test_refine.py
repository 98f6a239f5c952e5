"""The refine stage (builder/select/refine.py): parametrisation, determinism, and that it lowers the fit loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.select import family
from builder.select.differentiable import DT
from builder.select.refine import (
    MIN_STEP_FRACTION,
    SATURATION_FLOOR,
    bind,
    errors,
    grid_from_q,
    insert_node,
    q_from_grid,
    refine,
    rule_grid,
    rule_grids,
    rule_starts,
    unsaturated,
)
from builder.solve.grids import FORMULA_BASELINES, applicable_baselines
from builder.solve.schedules import get_schedule, separate_timesteps


@pytest.fixture(scope="module")
def bound(tmp_path_factory):
    """Two small problems (low-dim and latent-like), exact answers in a private cache, vp-linear endpoints."""
    problems = (
        family.problem("lowdim", (2, 6, 0.03, 0.1, 7), batch=24, seed=1, split_name="test"),
        family.problem("latent", (8, 3, 0.3, 0.5, 7), batch=24, seed=2, split_name="test"),
    )
    sched = get_schedule("vp-linear")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTSTEPS_QUALITY_CACHE", str(tmp_path_factory.mktemp("truth")))
        return sched, {e: bind(problems, sched.lambda_start, sched.lambda_end, e) for e in ("eps", "zero")}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-30.0, 30.0), min_size=2, max_size=12), st.sampled_from(["eps", "zero"]))
def test_any_logits_give_a_valid_grid(q, ending):
    lam = grid_from_q(torch.tensor(q, dtype=DT), -5.0, 4.5, ending).numpy()
    n = len(q)
    assert lam.size == (n + 1 if ending == "eps" else n)
    assert lam[0] == -5.0 and np.all(np.isfinite(lam))
    full = np.append(lam, 4.5) if ending == "zero" else lam
    assert full[-1] == 4.5
    assert np.all(np.diff(full) >= 9.5 * MIN_STEP_FRACTION / n * (1 - 1e-9))


@pytest.mark.parametrize("ending", ["eps", "zero"])
def test_q_round_trips(ending):
    lam = np.array([-5.0, -2.0, 0.5, 2.0, 3.7, 4.5])
    if ending == "zero":
        lam = lam[:-1]
    back = grid_from_q(torch.from_numpy(q_from_grid(lam, -5.0, 4.5, ending)), -5.0, 4.5, ending).numpy()
    np.testing.assert_allclose(back, lam, atol=1e-12)


def _refined(sched, b, **kw):
    nfe = 5
    starts = rule_starts(sched, nfe, b.ending)
    return starts, refine(b, starts, solver="unipc", order=3, top=1, maxiter=6, **kw)


@pytest.mark.parametrize("ending", ["eps", "zero"])
def test_refine_lowers_the_loss_keeps_endpoints_and_is_deterministic(bound, ending):
    sched, bounds = bound
    b = bounds[ending]
    starts, res = _refined(sched, b)
    assert res.fun < res.fun_start - 1e-3
    assert res.fun <= min(v[0] for v in res.starts.values())
    lam = res.x
    assert lam.size == (6 if ending == "eps" else 5)
    assert lam[0] == sched.lambda_start and np.all(np.diff(lam) > 0)
    if ending == "eps":
        assert lam[-1] == sched.lambda_end
    else:
        assert lam[-1] <= sched.lambda_end - (sched.lambda_end - sched.lambda_start) * MIN_STEP_FRACTION / 5 * 0.999
    if ending == "eps":  # deterministic: the same call gives the same bits
        again = refine(b, starts, solver="unipc", order=3, top=1, maxiter=6)
        assert np.array_equal(again.x, lam) and again.fun == res.fun


def test_penalty_and_dpmpp_run(bound):
    sched, bounds = bound
    starts = rule_starts(sched, 6, "eps")
    res = refine(bounds["eps"], starts, solver="dpmpp", order=2, penalty=0.5, top=1, maxiter=3)
    assert res.fun >= res.mean_log_ratio  # the penalty is ≥ 0
    assert np.all(np.diff(res.x) > 0)
    with pytest.raises(ValueError, match="ending"):
        refine(bounds["eps"], starts, ending="zero")


def test_the_robust_loss_is_the_soft_maximum_over_kinds_against_each_kinds_best_rule(bound):
    """refine(kinds=...): L = T log mean_k exp(ℓ_k / T), ℓ_k the kind's mean log ratio to its best rule, checked
    against a computation from errors() alone; its gradient against central differences; refining it lowers it."""
    from builder.select import refine as module

    sched, bounds = bound
    b = bounds["eps"]
    starts = rule_starts(sched, 5, "eps")
    kinds = ["lowdim", "latent"]
    log_e = {
        r: np.log([e.mean() for e in errors(g, b, solver="unipc", order=3, variant="bh2")]) for r, g in starts.items()
    }
    best = [min(starts, key=lambda r, i=i: log_e[r][i]) for i in range(2)]  # one problem per kind
    grid = starts["uniform-t"]
    mine = np.log([e.mean() for e in errors(grid, b, solver="unipc", order=3, variant="bh2")])
    ell = np.array([mine[i] - log_e[best[i]][i] for i in range(2)])  # kinds sorted: latent (1), lowdim (0)
    t = 0.05
    expected = t * np.log(np.mean(np.exp(ell / t)))
    spec = {"solver": "unipc", "order": 3, "variant": "bh2"}
    objective = module._objective(b, starts, spec, "uniform-lambda", 0.0, 10.0, kinds, None, t)
    assert module._loss(grid, b, objective, spec) == pytest.approx(expected, rel=1e-12)
    assert max(ell) - 1e-12 <= expected + t * np.log(2) and expected >= ell.mean() - 1e-12  # between mean and max
    q = q_from_grid(grid, b.lambda_start, b.lambda_end, "eps")
    value, grad = module._loss_and_grad(q, b, objective, spec)
    assert value == pytest.approx(expected, rel=1e-9)
    for j in (0, 2):
        dq = np.zeros_like(q)
        dq[j] = 1e-6
        plus, _ = module._loss_and_grad(q + dq, b, objective, spec)
        minus, _ = module._loss_and_grad(q - dq, b, objective, spec)
        assert grad[j] == pytest.approx((plus - minus) / 2e-6, rel=1e-4, abs=1e-8)
    res = refine(b, starts, kinds=kinds, top=1, maxiter=6, **spec)
    assert res.fun < res.fun_start - 1e-3 and res.fun == pytest.approx(res.mean_log_ratio)
    with pytest.raises(ValueError, match="2 problems"):
        refine(b, starts, kinds=["latent"], **spec)


@pytest.mark.parametrize("ending", ["eps", "zero"])
def test_insert_node_adds_one_node_and_keeps_endpoints(ending):
    lam = np.array([-5.0, -1.0, 1.0, 2.5, 4.5])
    out = insert_node(lam, ending, lambda_end=6.0)
    assert out.size == lam.size + 1 and out[0] == lam[0] and np.all(np.diff(out) > 0)
    if ending == "eps":
        assert out[-1] == lam[-1]


@pytest.mark.parametrize("name", ["scaled-linear", "ddpm-linear"])
def test_separating_gives_every_node_its_own_timestep_by_the_least_move(name):
    sched = get_schedule(name)
    lam = np.linspace(sched.lambda_start, sched.lambda_end, 12)
    lam[-4:-1] = lam[-1] - np.array([0.03, 0.02, 0.01])  # three nodes on the last node's timestep, or next to it
    steps = sched.model_time(sched.inverse_lambda(lam))
    assert len(set(steps)) < lam.size
    out = separate_timesteps(lam, sched)
    moved = sched.model_time(sched.inverse_lambda(out))
    assert np.all(np.diff(moved) < 0) and np.all(np.diff(out) > 0)  # distinct timesteps, λ still increasing
    assert out[0] == lam[0] and out[-1] == lam[-1] and np.array_equal(out[:-4], lam[:-4])
    np.testing.assert_array_equal(moved[-4:], moved[-1] + np.arange(3, -1, -1))  # the nearest free timesteps
    assert separate_timesteps(out, sched) is out  # already distinct: the same array
    with pytest.raises(ValueError, match="do not fit on distinct timesteps"):
        separate_timesteps(np.linspace(sched.lambda_start, sched.lambda_end, 1200), sched)


def test_separating_leaves_continuous_schedules_and_distinct_grids_alone():
    for name in ("vp-linear", "scaled-linear"):
        sched = get_schedule(name)
        lam = np.linspace(sched.lambda_start, sched.lambda_end, 8)
        assert np.array_equal(separate_timesteps(lam, sched), lam)


def test_unsaturated_raises_only_the_gaps_at_the_floor():
    q = np.array([0.3, -0.2, 0.1, 0.0])
    np.testing.assert_array_equal(unsaturated(q), q)  # every weight above the floor: unchanged
    sched = get_schedule("vp-linear")
    zero = rule_starts(sched, 5, "zero")["uniform-lambda"]  # its last node is λ_ε: the leftover gap is at h_min
    q = q_from_grid(zero, sched.lambda_start, sched.lambda_end, "zero")
    w, w2 = (np.exp(v - v.max()) / np.exp(v - v.max()).sum() for v in (q, unsaturated(q)))
    assert w[-1] < 1e-3 and w2[-1] == pytest.approx(SATURATION_FLOOR / q.size, rel=0.02)  # raised, renormalised
    assert np.all(np.argsort(w2[:-1]) == np.argsort(w[:-1]))  # the others keep their order


def test_a_zero_refinement_moves_the_last_node_off_the_floor(bound):
    """From the σ = 0 rule grids (last node at λ_ε) the refinement is free to pull the last node down."""
    sched, b = bound
    res = refine(b["zero"], rule_starts(sched, 4, "zero"), ending="zero", solver="dpmpp", order=2, maxiter=30)
    floor = (sched.lambda_end - sched.lambda_start) * MIN_STEP_FRACTION / 4
    assert res.mean_log_ratio < res.fun_start and res.x[-1] < sched.lambda_end - 2 * floor


@pytest.mark.parametrize("ending", ["eps", "zero"])
def test_rule_grids_are_the_applicable_rules_and_tables_that_fit(ending):
    sched = get_schedule("scaled-linear")
    grids = rule_grids(sched, 6, ending)
    assert list(grids) == list(applicable_baselines(sched))  # the rules and the AYS / GITS tables, in order
    for name, grid in grids.items():
        assert np.array_equal(grid, rule_grid(name, sched, 6, ending))
        assert grid.size == (7 if ending == "eps" else 6)  # N model calls either way
    assert rule_grids(sched, 6, ending, FORMULA_BASELINES).keys() == rule_starts(sched, 6, ending).keys()
    # GITS has rows for 2..20 steps: 2 calls are its 2-step row (σ = 0 ending: without its last node), 1 is none
    assert "gits" in rule_grids(sched, 2, ending) and "gits" not in rule_grids(sched, 1, "eps")


def test_a_sigma_zero_table_is_run_as_the_hosts_run_it():
    """For N calls ending at σ = 0, AYS / GITS are their N-step row with the last σ set to 0 (ComfyUI's nodes;
    diffusers' AysSchedules are those N timesteps), the formula rules N nodes from λ_T to λ_ε (then σ = 0)."""
    from diffusers.schedulers import AysSchedules

    sched = get_schedule("scaled-linear")
    for name, row in (("ays-sdxl", "StableDiffusionXLTimesteps"), ("ays-sd1", "StableDiffusionTimesteps")):
        grid = rule_grid(name, sched, 10, "zero")
        steps = np.rint(sched.model_time(sched.inverse_lambda(grid))).astype(int)
        assert steps.tolist() == list(AysSchedules[row])
    lu = rule_grid("uniform-lambda", sched, 10, "zero")
    np.testing.assert_allclose(lu, np.linspace(sched.lambda_start, sched.lambda_end, 10), rtol=0, atol=1e-12)


def test_errors_are_memoised_per_bound_grid_and_sampler(bound):
    """The memo returns what a fresh measurement gives, bit for bit, hands out copies, and stays with its bound
    (a bound made by ``dataclasses.replace`` with other problems measures afresh)."""
    import dataclasses

    sched, by_ending = bound
    b = by_ending["eps"]
    lam = rule_grid("uniform-lambda", sched, 5)
    first = errors(lam, b, solver="dpmpp", order=2)
    first[0][:] = -1.0  # a caller's change never reaches the memo
    again = errors(list(lam), b, solver="dpmpp", order=2)
    fresh = errors(lam, dataclasses.replace(b), solver="dpmpp", order=2)
    assert all(np.array_equal(a, f) and a.min() > 0 for a, f in zip(again, fresh, strict=True))
    assert not np.array_equal(errors(lam, b, solver="dpmpp", order=1)[1], again[1])  # another sampler, its own
    swapped = dataclasses.replace(b, x_exact=tuple(x + 1.0 for x in b.x_exact))
    assert not any(
        np.array_equal(s, a) for s, a in zip(errors(lam, swapped, solver="dpmpp", order=2), again, strict=True)
    )
