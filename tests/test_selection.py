"""Per-entry quality, selection by measurement, measured defaults, the quality CLI (builder/select/{selection,gate,
report}.py, builder/cli/quality.py)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from builder.cli import cli  # noqa: E402
from builder.registry import sweep  # noqa: E402
from builder.registry.entry import make_entry  # noqa: E402
from builder.registry.sweep.spec import SweepError, write_default_p  # noqa: E402
from builder.registry.validate import validate_registry  # noqa: E402
from builder.select import (
    gate,  # noqa: E402
    selection,  # noqa: E402
)
from builder.solve.grids import STARTS, baseline_grids, start_grid  # noqa: E402
from builder.solve.objective import objective  # noqa: E402
from builder.solve.optimize import solve  # noqa: E402
from builder.solve.schedules import get_schedule  # noqa: E402

SCHEDULE = get_schedule("vp-linear")
NFE = 6


@pytest.fixture(scope="module")
def solved():
    result = solve(SCHEDULE, NFE, order=3, p=1.0, tau=0)
    entry = make_entry(SCHEDULE, result, 0)
    candidates = [
        {"init": c["init"], "lambdas": [float(v) for v in c["lambdas"]], "fun": float(c["fun"]), "valid": c["valid"]}
        for c in result.candidates
    ]
    return entry, candidates


def _sig4(x: float) -> bool:
    return x == float(f"{x:.4g}")


def test_quality_record_is_consistent(solved):
    entry, candidates = solved
    shipped, q = selection.choose_and_measure(SCHEDULE, entry, candidates)
    assert shipped["quality"] is q
    assert q["benchmark"] == "standard" and q["sampler"] == {
        "name": "unipc",
        "variant": "bh2",
        "order": 3,
        "corrector": True,
    }
    assert set(q["baselines"]) == {"uniform-lambda", "uniform-t", "uniform-sqrt-t", "karras-rho7"}
    assert q["best_baseline"] in q["baselines"]
    # the best baseline has the lowest geometric-mean error: the entry's log-ratio against it is the largest
    assert q["log_ratio_best_baseline"] == max(b["log_ratio"] for b in q["baselines"].values())
    assert q["worse_than_best_baseline"] == (q["log_ratio_best_baseline"] > 2 * q["log_ratio_best_baseline_se"])
    assert math.isclose(
        q["ratio_uniform_lambda"], math.exp(q["baselines"]["uniform-lambda"]["log_ratio"]), rel_tol=1e-3
    )
    assert q["selection"] in ("lowest-bound", "benchmark", "start") and 1 <= q["candidates"] <= len(candidates)
    assert all(_sig4(v) for v in (q["mean_l2"], q["median_l2"], q["log_ratio_best_baseline"]))
    json.dumps(q, allow_nan=False)  # JSON-ready
    # measuring the shipped grid again gives the stored figure
    assert float(f"{selection.measure(shipped['lambda'], 3).mean_l2:.4g}") == q["mean_l2"]


def test_a_better_local_optimum_is_chosen_and_shown_on_held_out(solved):
    entry, candidates = solved
    good = min(candidates, key=lambda c: c["fun"])
    uniform = start_grid(SCHEDULE, NFE, "unif")
    # a fake "lowest-bound" optimum at the uniform-λ grid, and the real optimum with a higher F
    fake = [
        {"init": "unif", "lambdas": list(uniform), "fun": 0.0, "valid": True},
        {**good, "init": "quad", "fun": 1.0},
        {**good, "init": "edm", "fun": 1.0},  # a duplicate: measured once
        {"init": "unif_t", "lambdas": list(uniform), "fun": 2.0, "valid": False},  # invalid: ignored
    ]
    lowest = selection.entry_for_candidate(SCHEDULE, entry, fake[0])
    shipped, q = selection.choose_and_measure(SCHEDULE, lowest, fake)
    assert q["candidates"] == 2
    assert q["selection"] == "benchmark" and "quad" in q["selection_reason"]
    assert shipped["init"] == "quad" and shipped["objective"] == 1.0
    np.testing.assert_allclose(shipped["lambda"], good["lambdas"], atol=1e-9)
    assert shipped["t"][0] == SCHEDULE.t_start and shipped["t"][-1] == SCHEDULE.t_end
    assert shipped["input_hash"] == entry["input_hash"]
    held = q["held_out"]
    assert held["benchmark"] == "held-out" and set(held["problems"]).isdisjoint(q["problems"])
    assert held["log_ratio_lowest_bound"] < -2 * held["log_ratio_lowest_bound_se"]  # the win holds out of sample
    assert "log_ratio_best_baseline" in held


def test_a_single_optimum_stays(solved):
    entry, candidates = solved
    first = min(candidates, key=lambda c: c["fun"])
    _shipped, q = selection.choose_and_measure(SCHEDULE, entry, [first, {**first, "init": "quad"}])
    assert q["candidates"] == 1 and q["selection"] == "lowest-bound" and "held_out" not in q


def test_a_starting_grid_that_samples_better_is_shipped_instead_of_a_bad_optimum(solved):
    entry, _candidates = solved
    # a valid but poor "optimum": every interior node crowded into the noisiest tenth of the λ range
    lam_t, lam_e = SCHEDULE.lambda_start, SCHEDULE.lambda_end
    crowded = [lam_t, *np.linspace(lam_t + 0.02, lam_t + 0.1 * (lam_e - lam_t), NFE - 1), lam_e]
    bad = {"init": "unif", "lambdas": crowded, "fun": 0.0, "valid": True}
    lowest = selection.entry_for_candidate(SCHEDULE, entry, bad)
    shipped, q = selection.choose_and_measure(SCHEDULE, lowest, [bad])
    assert q["selection"] == "start" and q["candidates"] == 1
    assert "unoptimised" in q["selection_reason"] and "4 starting grids" in q["selection_reason"]
    name = STARTS[shipped["init"]]
    assert name in q["selection_reason"]
    np.testing.assert_allclose(shipped["lambda"], baseline_grids(SCHEDULE, NFE)[name], rtol=0, atol=1e-12)
    assert math.isclose(shipped["objective"], objective(shipped["lambda"], entry["p"], entry["tau"], 3), rel_tol=1e-12)
    # it is the best of the starts, so it cannot be worse than the best (formula) baseline
    assert q["best_baseline"] == name and q["log_ratio_best_baseline"] == 0 and not q["worse_than_best_baseline"]
    held = q["held_out"]
    assert held["log_ratio_lowest_bound"] < -2 * held["log_ratio_lowest_bound_se"]


def test_a_lowest_bound_grid_with_a_collapsed_step_is_replaced(solved):
    entry, candidates = solved
    good = min(candidates, key=lambda c: c["fun"])
    collapsed = list(good["lambdas"])
    collapsed[2] = collapsed[1] + 1e-4  # step 1 collapses: the grid spends an evaluation on nothing
    lowest = selection.entry_for_candidate(SCHEDULE, entry, {**good, "lambdas": collapsed, "fun": 0.0})
    assert "collapsed step 1" in selection.wasted_evaluation(lowest)
    shipped, q = selection.choose_and_measure(SCHEDULE, lowest, [{**good, "lambdas": collapsed, "fun": 0.0}, good])
    assert q["selection"] in ("benchmark", "start") and "collapsed step 1" in q["selection_reason"]
    assert selection.wasted_evaluation(shipped) is None


def test_an_alternative_that_wastes_an_evaluation_is_never_chosen(solved):
    entry, candidates = solved
    good = min(candidates, key=lambda c: c["fun"])
    lam_t, lam_e = SCHEDULE.lambda_start, SCHEDULE.lambda_end
    crowded = [lam_t, *np.linspace(lam_t + 0.02, lam_t + 0.1 * (lam_e - lam_t), NFE - 1), lam_e]
    bad = {"init": "unif", "lambdas": crowded, "fun": 0.0, "valid": True}
    lowest = selection.entry_for_candidate(SCHEDULE, entry, bad)
    # the good optimum, with one step collapsed, would beat the crowded grid by far; it must not be chosen
    collapsed = list(good["lambdas"])
    collapsed[3] = collapsed[2] + 1e-4
    shipped, q = selection.choose_and_measure(SCHEDULE, lowest, [bad, {**good, "lambdas": collapsed, "fun": 1.0}])
    assert "wasting a model evaluation left out" in q["selection_reason"]
    assert selection.wasted_evaluation(shipped) is None and q["selection"] == "start"


def test_repeated_integer_timesteps_waste_an_evaluation_except_at_the_final_node():
    sched = get_schedule("scaled-linear")
    entry = make_entry(sched, solve(sched, 8, p=1.0, tau=0, init="unif"), 0)
    assert selection.wasted_evaluation(entry) is None
    near = dict(entry, timesteps=[999, 999, *entry["timesteps"][2:]], timestep_collisions=[[0, 1]])
    assert "twice at timestep 999 (nodes 0 and 1)" in selection.wasted_evaluation(near)
    last = dict(entry, timesteps=[*entry["timesteps"][:-1], 0], timestep_collisions=[[7, 8]])
    last["timesteps"][7] = 0
    assert selection.wasted_evaluation(last) is None  # the model is not called at node N


def test_the_best_baseline_is_one_that_wastes_no_evaluation():
    sched = get_schedule("scaled-linear")
    # uniform-λ at NFE 30 rounds nodes 28 and 29 to timestep 1: the model would be called twice there
    assert "twice at timestep 1" in selection._grid_wastes(sched, baseline_grids(sched, 30)["uniform-lambda"])
    errors = {"uniform-lambda": 0.1, "uniform-t": 0.3, "uniform-sqrt-t": 0.2}
    measured = {name: selection.Measurement({"p": np.full(4, e)}) for name, e in errors.items()}
    assert selection.best_baseline(sched, 30, measured) == "uniform-sqrt-t"
    assert selection.best_baseline(sched, 10, measured) == "uniform-lambda"  # no collision at NFE 10
    assert selection.best_baseline(sched, 30, {"uniform-lambda": measured["uniform-lambda"]}) == "uniform-lambda"


def test_write_default_p_changes_only_p(tmp_path):
    spec = tmp_path / "spec.json"
    shutil.copy(sweep.SPEC_PATH, spec)
    before = json.loads(spec.read_text())
    assert write_default_p(spec, {"v1/edm.json": 2, "v1/vp-linear.json": 0.5})
    after = json.loads(spec.read_text())
    want = {s["file"]: dict(s["defaults"]) for s in before["schedules"]}
    want["v1/edm.json"]["p"], want["v1/vp-linear.json"]["p"] = 2, 0.5
    assert {s["file"]: s["defaults"] for s in after["schedules"]} == want
    assert {k: v for k, v in after.items() if k != "schedules"} == {k: v for k, v in before.items() if k != "schedules"}
    assert not write_default_p(spec, {"v1/edm.json": 2})
    with pytest.raises(SweepError, match="not set for \\['v1/nowhere.json'\\]"):
        write_default_p(spec, {"v1/nowhere.json": 1})
    assert not write_default_p(spec, {"v1/edm.json": 2})  # nothing written by the refused call


SMALL = dataclasses.replace(
    sweep.load_spec(),
    nfe=(5, 6),
    orders=(3,),
    p=(1.0, 2.0),
    tau=0,
    schedules=({"name": "vp-linear", "file": "v1/vp-linear.json", "defaults": {"order": 3, "p": 2}},),
    aliases={},
    solver_entries=None,
)


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    sweep.build(root / "registry", spec=SMALL, cache_dir=root / "cache", workers=1, progress=False)
    return root / "registry"


def test_sweep_entries_carry_quality(small_registry):
    assert validate_registry(small_registry).ok
    entries = [e for _h, e in gate.registry_entries(small_registry)]
    assert len(entries) == 4 and all(e["quality"] and e["quality"]["sampler"]["variant"] == "bh2" for e in entries)


def test_measured_defaults_and_cli(small_registry, tmp_path):
    choice = gate.measured_defaults(small_registry, nfe=(5, 6))
    c = choice["v1/vp-linear.json"]
    assert c["current"] == 2 and set(c["scores"]) == {1, 2} and c["scores"][c["p"]] == min(c["scores"].values())

    runner = CliRunner()
    res = runner.invoke(cli, ["quality", "--full", "--registry", str(small_registry)])
    assert res.exit_code == 0, res.output
    assert "every flag is truthful" in res.output
    res = runner.invoke(cli, ["report", "--registry", str(small_registry), "--out", str(tmp_path), "--no-held-out"])
    assert res.exit_code == 0, res.output
    report = (tmp_path / "report.md").read_text()
    assert "| vp-linear | 2 | 5 |" in report
    assert (tmp_path / "img" / "steps-vp-linear.png").stat().st_size > 1000
    assert (tmp_path / "img" / "error-vp-linear.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(cli, ["measure-defaults", "--registry", str(small_registry), "--no-held-out"])
    assert res.exit_code != 0 and "no file has order-3 entries" in res.output  # NFE 7-10 are not built
    args = ["measure-defaults", "--registry", str(small_registry), "--no-held-out", "--nfe", "5", "--nfe", "6"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert f"default p 2 -> {c['p']:g}" in res.output
