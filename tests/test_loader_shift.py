"""Flow at a shift no file holds: served from the nearest shipped variant (optsteps_loader/flow_shift.py).

The properties hold for any registry: the bundled one (real solver and bound entries, both endings) and a
fixture registry (`tests.registry_factory`) for the aliases an index will only list once it is rebuilt.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest

import optsteps_loader
from optsteps_loader import EntryNotFoundError, FallbackWarning, flow_shift, invariants, reader, schedules
from optsteps_loader.reader import SEQUENCES
from tests import registry_factory as factory

BUNDLED = Path(reader.resolve_source(None).root)


def _file(shift: float) -> dict:
    return json.loads((BUNDLED / "v1" / f"flow-shift{shift:g}.json").read_bytes())


def _request(e: dict) -> dict:
    if "p" in e:
        return {"order": e["order"], "p": e["p"]}
    return {"solver": e["solver"], "order": e["order"], "ending": e["ending"], "profile": e.get("profile", "generic")}


def _as_entry(steps, source: dict) -> dict:
    """The record as a registry entry (for the loader's own entry invariants): the source entry's fields, the
    record's node sequences."""
    return {**source, **{key: list(getattr(steps, name)) for key, name in SEQUENCES.items()}}


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_shipped_shifts_are_the_shipped_entries(shift):
    """The identity path: a shift a file holds returns that file's entries as they are, not served."""
    doc = _file(shift)
    for e in [*doc["solver_entries"][::7], *doc["entries"][::29]]:
        steps = optsteps_loader.get("flow", e["nfe"], shift=shift, **_request(e))
        assert steps.served_from is None and dict(steps.params) == {"shift": shift}
        assert all(list(getattr(steps, name)) == e[key] for key, name in SEQUENCES.items())
        assert "served_from" not in repr(steps)


def test_serving_at_the_same_shift_reproduces_the_entry():
    """The derivation itself, asked for the shift the entry has, gives back its nodes (to the formulas' ulps)."""
    doc = _file(3.0)
    for e in doc["solver_entries"]:
        steps = optsteps_loader.get("flow", e["nfe"], shift=3.0, **_request(e))
        nodes = flow_shift.served(steps, doc["schedule"], 3.0, "")
        for name in ("t", "alpha_t", "sigma_t", "sigmas", "lambdas", "timesteps"):
            assert nodes[name] == pytest.approx(getattr(steps, name), rel=1e-12, abs=1e-12), name


def test_shift_5_keeps_the_nearest_variants_interior_and_moves_its_ends():
    """Every served node is either an interior node with the shift-3 entry's σ (and λ), or an end node (or one
    the refinement held at its floor next to an end) with its t; every node lies on the shift-5 schedule, and
    the record passes the loader's entry invariants against the shift-5 schedule block (all but input_hash,
    which stays the source's: it names the problem that was solved)."""
    doc = _file(3.0)
    block = flow_shift.schedule_block(doc["schedule"], 5.0)
    at5 = schedules.at("flow", {"shift": 5.0})
    kept_t = refused = 0
    for e in [*doc["solver_entries"], *doc["entries"][::5]]:
        source = optsteps_loader.get("flow", e["nfe"], shift=3.0, **_request(e))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FallbackWarning)
                steps = optsteps_loader.get("flow", e["nfe"], shift=5, **_request(e))
        except EntryNotFoundError as err:  # a fine bound grid whose last node the moved end passes
            assert "p" in e and "does not fit this shift" in str(err) and "builder solve" in str(err)
            continue
        if caught:  # a solver grid the moved end passes: the bound's entry served at shift 5, said so
            assert "p" not in e and steps.method == ("bound+denoise" if e["ending"] == "zero" else "bound"), e["nfe"]
            assert [w.category for w in caught] == [FallbackWarning]
            assert "does not fit shift=5" in str(caught[0].message)
            refused += 1
            continue
        assert dict(steps.served_from) == {"shift": 3.0, "file": "v1/flow-shift3.json"}
        assert dict(steps.params) == {"shift": 5.0} and steps.method == source.method
        n = steps.nfe
        finite = n if steps.ending == "zero" else n + 1
        assert steps.t[0] == block["t_start"] and steps.sigma_t[0] == at5(block["t_start"])[1]
        if steps.ending == "eps":
            assert steps.t[-1] == block["t_end"] and steps.lambdas[-1] == pytest.approx(block["lambda_end"], abs=1e-12)
        else:
            assert (steps.t[-1], steps.alpha_t[-1], steps.sigma_t[-1], steps.sigmas[-1]) == (0.0, 1.0, 0.0, 0.0)
        for i in range(finite):
            same_sigma = steps.sigma_t[i] == pytest.approx(source.sigma_t[i], rel=1e-12)
            same_t = steps.t[i] == source.t[i]
            assert same_sigma or same_t, (e["nfe"], i)
            kept_t += same_t and 0 < i < n
            if same_sigma:
                assert steps.lambdas[i] == pytest.approx(source.lambdas[i], abs=1e-12)
            assert (steps.alpha_t[i], steps.sigma_t[i]) == at5(steps.t[i])
        assert steps.timesteps == tuple(1000.0 * s for s in steps.sigma_t[:finite])
        problems = invariants.entry_problems(_as_entry(steps, e), block)
        assert [p for p in problems if not p.startswith("input_hash")] == [], problems
    assert kept_t > 0  # the σ = 0-ending NFE-3 grids' last node, held one minimal step below λ_ε
    assert refused <= len(doc["solver_entries"]) // 100  # shift 5 serves (nearly) every shift-3 solver entry


def test_nearest_variant_in_log_shift():
    for shift, source in [(1.5, 1.0), (1.9, 3.0), (math.sqrt(3.0), 1.0), (2.0, 3.0), (7.0, 3.0), (12.0, 3.0)]:
        steps = optsteps_loader.get("flow", 8, shift=shift)
        assert steps.served_from["shift"] == source and steps.params["shift"] == shift
    assert flow_shift.nearest([1.0, 3.0], 0.99) is None and flow_shift.nearest([], 5.0) is None


def test_no_warning_when_served_but_the_record_says_so():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = optsteps_loader.get("flow", 8, shift=5)
    assert "served_from={'shift': 3.0, 'file': 'v1/flow-shift3.json'}" in repr(steps)
    assert "params={'shift': 5.0}" in repr(steps)
    assert steps.provenance["file"] == "v1/flow-shift3.json"  # the bytes it was read from


def test_a_fallback_at_a_served_shift_says_both():
    with pytest.warns(FallbackWarning, match=r"flow-shift3\.json in .*, served at shift=5\)"):
        steps = optsteps_loader.get("flow", 35, shift=5, order=2)
    assert steps.method == "bound" and steps.requested["p"] is None and steps.served_from["shift"] == 3.0


def test_a_solver_entry_that_does_not_fit_the_shift_falls_back_to_the_bound_s_loudly():
    # UniPC-3 σ = 0 at NFE 29: the shift-3 solver entry's last step shrinks below its floor at shift 7
    message = r"solver entry of v1/flow-shift3\.json does not fit shift=7 \(.*does not fit this shift.*\); returned"
    with pytest.warns(FallbackWarning, match=message):
        steps = optsteps_loader.get("flow", 29, shift=7, order=3, ending="zero")
    assert steps.method == "bound+denoise" and steps.served_from["shift"] == 3.0 and steps.nfe == 29
    assert steps.requested == {"solver": "unipc", "order": 3, "ending": "zero", "profile": None, "p": None}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named = optsteps_loader.get("flow", 29, shift=7, order=3, ending="zero", p=steps.p)
    assert named.sigmas == steps.sigmas and named.requested is None


def test_cached_per_source_entry_and_shift():
    a = optsteps_loader.get("flow", 6, shift=5)
    assert optsteps_loader.get("flow", 6, shift=5.0) is a
    b = optsteps_loader.get("flow", 6, shift=7)
    assert b is not a and b.sigma_t[1:-1] == pytest.approx(a.sigma_t[1:-1], rel=1e-12) and b.t[-1] == a.t[-1]
    optsteps_loader.clear_cache()
    again = optsteps_loader.get("flow", 6, shift=5)
    assert again is not a and again == a


def test_refusals_name_the_rule():
    with pytest.raises(EntryNotFoundError, match=r"shift=0\.5; shifts available: 1, 3 \(flow shifts ≥ 1 are served"):
        optsteps_loader.get("flow", 8, shift=0.5)
    with pytest.raises(EntryNotFoundError, match=r"does not fit this shift.*python -m builder refine --schedule flow"):
        optsteps_loader.get("flow", 8, shift=1000)
    with pytest.raises(ValueError, match="only applies to flow"):
        optsteps_loader.get("vp-linear", 8, shift=5)


def test_info_at_a_served_shift():
    got = optsteps_loader.info("flow", shift=5)
    assert got["params"] == {"shift": 5.0} and got["served_from"] == {"shift": 3.0, "file": "v1/flow-shift3.json"}
    assert got["schedule"]["params"] == {"shift": 5.0} and got["path"] == "v1/flow-shift3.json"
    assert schedules.schedule_problems(got["schedule"]) == []


# ---- model aliases at shifts no file holds (a fixture index: the bundled one lists them once rebuilt) ------

ALIASES = {
    "wan2.1-t2v": {"schedule": "flow", "shift": 5.0, "profile": "latent", "description": "Wan 2.1 T2V (shift 5)"},
    "hunyuanvideo": {"schedule": "flow", "shift": 7.0, "profile": "latent", "description": "HunyuanVideo"},
    "sd3": {"schedule": "flow", "shift": 3.0, "profile": "latent", "description": "SD3 (shift 3)"},
}


@pytest.fixture(scope="module")
def aliased(tmp_path_factory):
    root = factory.make_registry(tmp_path_factory.mktemp("aliased"), schedules=("flow",), nfes=[4, 5, 6])
    index = factory.read_json(root, "index.json")
    factory.write_index(root, index["files"], aliases=ALIASES)
    return root


def test_alias_at_a_served_shift(aliased):
    steps = optsteps_loader.get("wan2.1-t2v", 5, source=aliased)
    assert dict(steps.params) == {"shift": 5.0} and steps.served_from["shift"] == 3.0
    assert optsteps_loader.get("wan2.1-t2v", 5, source=aliased, shift=5) is steps
    assert optsteps_loader.get("flow", 5, source=aliased, shift=5) is steps  # the alias adds no profile entry here
    with pytest.raises(ValueError, match="shift 5; shift=3 contradicts it"):
        optsteps_loader.get("wan2.1-t2v", 5, source=aliased, shift=3)
    assert optsteps_loader.get("hunyuanvideo", 4, source=aliased).params["shift"] == 7.0
    assert optsteps_loader.get("sd3", 4, source=aliased).served_from is None
    assert optsteps_loader.aliases(aliased)["hunyuanvideo"]["shift"] == 7.0
    optsteps_loader.verify(aliased)  # raises on any problem, the aliases' included


def test_list_shows_aliases_at_served_shifts(aliased):
    from click.testing import CliRunner

    from optsteps_loader.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["list", "--source", str(aliased)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("wan2.1-t2v"))
    assert "flow shift=5 (served from 3)" in row
    row = next(line for line in result.output.splitlines() if line.startswith("sd3"))
    assert "flow shift=3 " in row and "served" not in row


def test_show_says_served():
    from click.testing import CliRunner

    from optsteps_loader.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["show", "flow", "--nfe", "6", "--shift", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flow shift=5 (served from shift 3) nfe=6 ")


def test_alias_below_shift_1_is_refused_by_the_index_checks():
    files = [{"schedule": "flow", "params": {"shift": 1.0}}, {"schedule": "flow", "params": {"shift": 3.0}}]
    bad = {"x": {"schedule": "flow", "shift": 0.5, "description": "d"}}
    assert invariants.alias_problems(bad, files) == [
        "aliases['x'] names 'flow' shift=0.5, which no file holds and the loader does not serve (a flow shift below 1)"
    ]
    assert invariants.alias_problems({"y": {**bad["x"], "shift": 12.0}}, files) == []
    assert invariants.alias_problems({"z": {"schedule": "edm", "shift": 2.0, "description": "d"}}, files) != []
