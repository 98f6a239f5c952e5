"""The held-out choice stage (builder/registry/sweep/choice.py) and the grids as hosts run them
(builder/select/host_grid.py): grouping, keys, what an entry ships, and one real decision."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from builder.registry.sweep import choice
from builder.registry.sweep.chains import Chain
from builder.registry.sweep.spec import SweepError
from builder.select import family, promise
from builder.select.host_grid import as_run
from builder.solve.schedules import get_schedule, separate_timesteps
from optsteps_loader.invariants import entry_problems

REPO = Path(__file__).resolve().parents[1]
CHAIN = Chain("edm", (), "v1/edm.json", "dpmpp", 2, "zero", (3, 4), 3)


def _record(nfe: int, lam, method: str = "refined") -> dict:
    return {
        "nfe": nfe,
        "lambda": [float(v) for v in lam],
        "method": method,
        "init": "previous-nfe",
        "optimizer": {"fit_loss": -0.1},
        "quality": {"fit": {"x": 1}, "validation": {"x": 2}, "loses_on_validation": False},
    }


@pytest.mark.parametrize("name", ["scaled-linear", "ddpm-linear"])
def test_as_run_puts_every_node_at_its_integer_timestep(name):
    s = get_schedule(name)
    lam = np.linspace(s.lambda_start, s.lambda_end, 12)
    out = as_run(separate_timesteps(lam[:-1], s), s)  # a σ = 0 grid: the last node is free
    t = s.inverse_lambda(out) * s.num_train_timesteps - 1
    np.testing.assert_allclose(t, np.round(t), rtol=0, atol=1e-9)
    assert out[0] == s.lambda_start and np.all(np.diff(out) > 0)
    np.testing.assert_array_equal(as_run(out, s), out)  # idempotent
    eps = as_run(lam, s)
    assert (eps[0], eps[-1]) == (s.lambda_start, s.lambda_end)  # the end nodes keep their exact floats
    with pytest.raises(ValueError, match="share a timestep"):
        as_run([s.lambda_start, 3.0, 3.0 + 1e-6, s.lambda_end], s)


def test_as_run_leaves_continuous_schedules_alone():
    for name in ("vp-linear", "edm", "flow"):
        s = get_schedule(name)
        lam = np.linspace(s.lambda_start, s.lambda_end, 7)
        np.testing.assert_array_equal(as_run(lam, s), lam)


def test_a_sigma_zero_entry_may_evaluate_at_lambda_eps_but_not_beyond():
    """The zero ending's last evaluated node may be t_ε itself (diffusers' Karras and Lu λ grids end there)."""
    from builder.registry.entry import solver_entry

    s = get_schedule("scaled-linear")
    schedule = json.loads((REPO / "registry" / "v1" / "scaled-linear.json").read_text())["schedule"]
    lam = as_run(np.linspace(s.lambda_start, s.lambda_end, 5), s)
    rec = {**_record(5, lam), "init": "uniform-lambda", "optimizer": {}, "quality": {}}
    chain = dataclasses.replace(CHAIN, schedule="scaled-linear", nfes=(5,))
    entry = solver_entry(s, chain, rec)
    assert entry["lambda"][-1] == s.lambda_end and entry["timesteps"][-1] == 0 and entry["sigmas"][-1] == 0.0
    assert not [p for p in entry_problems(entry, schedule) if "lambda_end" in p]
    entry["lambda"][-1] = s.lambda_end + 1e-9
    assert any("must not be above schedule.lambda_end" in p for p in entry_problems(entry, schedule))


def test_groups_join_a_generic_chain_its_continuation_and_its_profiles():
    profile = dataclasses.replace(CHAIN, profile="pixel")
    continued = dataclasses.replace(CHAIN, nfes=(5,), after=4)
    other = dataclasses.replace(CHAIN, solver="unipc")
    grid = {n: np.linspace(-4.4, 6.2, n) for n in (3, 4, 5)}
    records = {
        CHAIN: [_record(3, grid[3]), _record(4, grid[4])],
        profile: [_record(3, grid[3] + 0.01)],
        continued: [_record(5, grid[5])],
        other: [_record(3, grid[3])],
    }
    starts = {CHAIN: {3: grid[3] - 0.01}, profile: {3: grid[3]}, continued: {4: grid[4], 5: grid[5]}}
    groups = choice.groups_of(records, starts)
    assert [g.chain for g in groups] == [CHAIN, other]
    g = groups[0]
    assert [n for n, _ in g.grids] == [3, 4, 5]
    assert dict(dict(g.grids)[3]).keys() == {"", "pixel"} and dict(dict(g.grids)[5]).keys() == {""}
    assert dict(dict(g.starts)[3])["pixel"] == tuple(grid[3])  # the generic grid the profile chain started from
    assert 4 not in dict(g.starts) or "" not in dict(dict(g.starts)[4])  # a continuation's warm start is no baseline
    with pytest.raises(SweepError, match="no generic chain"):
        choice.groups_of({profile: records[profile]}, {})


def test_the_key_covers_grids_options_and_code(monkeypatch):
    records = {CHAIN: [_record(3, np.linspace(-4.4, 6.2, 3))]}
    (g,) = choice.groups_of(records, {})
    key = choice.group_key(g)
    moved = {CHAIN: [_record(3, np.linspace(-4.4, 6.2, 3) + [0, 1e-12, 0])]}
    assert choice.group_key(choice.groups_of(moved, {})[0]) != key
    monkeypatch.setattr(choice, "OPTIONS", choice.OPTIONS | {"per_kind": 1})
    assert choice.group_key(g) != key
    monkeypatch.undo()
    assert choice.group_key(g) == key
    assert "builder/select/promise.py" in choice.import_closure(choice.SOURCE_ROOT, choice.ROOT_MODULES)
    assert "builder/select/kinds.py" in choice.import_closure(choice.SOURCE_ROOT, choice.ROOT_MODULES)


def test_apply_ships_the_decision():
    lam = np.linspace(-4.4, 6.2, 3)
    held = {"ratio": 1.0, "best_rule": "karras-rho7", "by_kind": {"a": 1.0}, "mean_l2": 0.1, "median_l2": 0.1}
    family = {"fit": {"y": 1}, "validation": {"y": 2}, "loses_on_validation": True}
    decisions = {
        "3": {
            "": {"method": "rule", "name": "beta-0.6", "lambda": [0.0, 1.0, 2.0], "held_out": held, "family": family}
        },
        "4": {"": {"method": "refined", "name": "refined", "lambda": list(lam) + [6.0], "held_out": held}},
    }
    rule, kept = choice.apply(CHAIN, [_record(3, lam), _record(4, list(lam) + [6.0])], decisions)
    assert (rule["method"], rule["init"], rule["lambda"]) == ("rule", "beta-0.6", [0.0, 1.0, 2.0])
    assert rule["quality"] == {**family, "held_out": held} and rule["optimizer"] == {"fit_loss": -0.1}
    assert (kept["method"], kept["init"]) == ("refined", "previous-nfe")
    assert kept["quality"]["fit"] == {"x": 1} and kept["quality"]["held_out"] == held
    with pytest.raises(SweepError, match="no decision"):
        choice.apply(dataclasses.replace(CHAIN, profile="pixel"), [_record(3, lam)], decisions)


def test_a_group_is_decided_on_held_out_kinds(tmp_path, monkeypatch):
    """One real group (EDM, DPM++ 2M, σ = 0, NFE 4; two kinds, two family problems, small batches): a poor
    candidate is replaced by the best host rule and measured again; that rule's own grid as candidate is the
    rule, not measured again."""
    monkeypatch.setattr(choice, "OPTIONS", {"per_kind": 1, "batch": 4, "kinds": ("latent-like", "lowdim")})
    monkeypatch.setattr(choice, "REPLACE", True)
    split = family.split
    monkeypatch.setattr(family, "split", lambda name: split(name)[:2])  # two family problems per split
    s = get_schedule("edm")
    rules = promise.host_rules(s, 4, "zero")
    chain = dataclasses.replace(CHAIN, nfes=(4,))

    def decide(candidate):
        (g,) = choice.groups_of({chain: [_record(4, candidate)]}, {chain: {4: rules["uniform-lambda"]}})
        choice._decide(g, str(tmp_path), choice.group_key(g))
        return choice.load_decisions(g, tmp_path)["4"][""]

    poor = decide(rules["uniform-t"])
    assert poor["method"] == "rule" and poor["name"] != "uniform-t" and "family" in poor
    fam = poor["family"]["validation"]
    assert "bound" in fam["baselines"] and fam["problems"] == 2 and fam["mean_l2"] > 0
    held = poor["held_out"]
    assert held["by_kind"].keys() == {"latent-like", "lowdim"} and math.isfinite(held["ratio"])
    objective = held["choice"]["objective"]
    assert objective["refined"] > objective[held["choice"]["best_rule"]] and held["choice"]["reasons"]
    same = decide(rules[poor["name"]])
    assert (same["method"], same["name"]) == ("rule", poor["name"]) and "family" not in same
    assert same["lambda"] == poor["lambda"]
    # as the sweep runs (REPLACE off): the entry keeps its grid, its own figures, and the verdict
    monkeypatch.setattr(choice, "REPLACE", False)
    kept = decide(rules["uniform-t"])
    assert (kept["method"], kept["name"], kept["lambda"]) == ("refined", "refined", list(rules["uniform-t"]))
    assert "family" not in kept and kept["held_out"]["choice"]["verdict"] == poor["name"]
    assert kept["held_out"]["ratio"] > 1 and kept["held_out"]["choice"]["objective"] == objective
