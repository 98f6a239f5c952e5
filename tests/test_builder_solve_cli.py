"""`python -m builder solve` / `demo`: a loadable entry, clear errors, and honest comparisons."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import optsteps_loader
from builder.cli import cli
from builder.demo import differences
from optsteps_loader.steps import Steps

# registry entry key -> Steps field (the loader's mapping)
ENTRY_FIELDS = {"t": "t", "lambda": "lambdas", "alpha_t": "alpha_t", "sigma_t": "sigma_t", "sigmas": "sigmas"}


def solve(*args: str):
    return CliRunner().invoke(cli, ["solve", *args])


def test_solve_json_is_a_loadable_entry():
    result = solve("--schedule", "scaled-linear", "--nfe", "6", "--p", "1", "--tau", "0", "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output)
    for key in ("objective", "objective_uniform_lambda", "seconds", "step_orders", "timesteps", "tau", "init"):
        assert key in entry
    steps = Steps(
        schedule=entry["schedule"],
        nfe=entry["nfe"],
        order=entry["order"],
        p=float(entry["p"]),
        solver=entry["solver"],
        **{field: tuple(entry[key]) for key, field in ENTRY_FIELDS.items()},
        timesteps=tuple(entry["timesteps"]),
        step_orders=tuple(entry["step_orders"]),
        tau=entry["tau"],
        objective=entry["objective"],
        params=entry["params"],
        time_input=entry["time_input"],
    )
    assert all(len(getattr(steps, f)) == 7 for f in ENTRY_FIELDS.values())
    assert all(type(v) is int for v in steps.timesteps) and steps.time_input == "timestep"
    assert list(steps.lambdas) == sorted(steps.lambdas)
    assert steps.sigmas == pytest.approx([s / a for a, s in zip(steps.alpha_t, steps.sigma_t, strict=True)])
    shipped = optsteps_loader.get("scaled-linear", 6, p=1)
    assert set(entry) >= {k for k in ("nfe", "order", "p", "tau", "t", "lambda", "alpha_t", "sigma_t", "sigmas")}
    registry = entry["registry"]
    assert registry["found"] and registry["tau"] == shipped.tau and "note" in registry
    if not registry["same_grid"]:
        assert "differs from the shipped entry" in registry["note"]


def test_solve_table_says_how_it_differs_from_the_registry():
    result = solve("--schedule", "vp-linear", "--nfe", "6", "--p", "1")  # τ auto = 3, the registry's τ = 0
    assert result.exit_code == 0, result.output
    assert "registry: differs from the shipped entry: τ 0 there, 3 here (--tau 0 solves its problem)" in result.output


def test_solve_shift_on_a_non_flow_schedule_is_a_clear_error():
    result = solve("--schedule", "scaled-linear", "--nfe", "6", "--shift", "3")
    assert result.exit_code == 2
    assert "--shift only applies to flow schedules" in result.output
    assert "TypeError" not in result.output and "unexpected keyword" not in result.output


def test_demo_says_when_tau_differs():
    refined = optsteps_loader.get("vp-linear", 6)  # the solver entry: not the bound's optimum at all
    assert any("refined for unipc" in n and "not the live solve's optimum" in n for n in differences(refined, None))
    steps = optsteps_loader.get("vp-linear", 6, p=1)  # the bound's entry

    class Live:
        tau = 3

    assert any("τ = 3" in n and f"τ = {steps.tau}" in n and "not comparable" in n for n in differences(steps, Live))
    Live.tau = steps.tau
    assert not any("τ" in n for n in differences(steps, Live))
