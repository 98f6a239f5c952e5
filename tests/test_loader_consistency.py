"""Hash-consistent edits of the shipped registry (the index re-hashed after the edit) that every reader must
refuse: a node off its schedule, bad schedule params, a replaced input_hash, a missing variant, quality figures
that contradict each other, a negative objective. Each runs on a copy of two shipped files cut down to their
entries at NFE 5-7 (`registry_factory.cut_copy`; the registry's own bytes are never touched) through the
loader's ``get`` and ``verify`` and ``python -m builder validate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.registry.validate import validate_registry
from builder.solve.schedules import SCHEDULE_NAMES
from optsteps_loader import RegistryIntegrityError, get, verify
from tests import registry_factory as factory

REGISTRY = Path(__file__).resolve().parents[1] / "registry"
FLOW, VP = "v1/flow-shift3.json", "v1/vp-linear.json"

pytestmark = pytest.mark.usefixtures("fresh_loader_cache")


@pytest.fixture
def copy(tmp_path) -> Path:
    """The shipped index and two data files, cut down to their entries at NFE 5-7 (every edit below is of an
    NFE-6 entry; the rest of a file only costs validation time)."""
    return factory.cut_copy(REGISTRY, tmp_path / "registry", (FLOW, VP), nfe=(5, 6, 7))


def _flow_unipc3_nfe6(doc: dict) -> dict:
    return next(
        e
        for e in doc["solver_entries"]
        if (e["solver"], e["order"], e["ending"], e["nfe"]) == ("unipc", 3, "eps", 6)
        and "profile" not in e
        and e.get("method") != "calibrated"
    )


def _vp_bound(doc: dict) -> dict:
    return next(e for e in doc["entries"] if (e["nfe"], e["order"], e["p"]) == (6, 3, 1))


def _times_ten(block: dict) -> None:
    for k, v in block.items():
        if isinstance(v, dict):
            _times_ten(v)
        elif type(v) is float:
            block[k] = v * 10


def _set_beta_1(value):
    return lambda doc: doc["schedule"]["params"].__setitem__("beta_1", value)


EDITS = {  # name: (file, edit of the parsed file, the get() call that reads the edited entry, message)
    "flow t[3] x (1 + 1e-3)": (
        FLOW,
        lambda doc: _flow_unipc3_nfe6(doc)["t"].__setitem__(3, _flow_unipc3_nfe6(doc)["t"][3] * (1 + 1e-3)),
        lambda root: get("flow", 6, shift=3.0, source=root),
        "but flow with {'shift': 3.0} gives",
    ),
    "beta_1 x 1.01": (VP, _set_beta_1(20.0 * 1.01), lambda root: get("vp-linear", 6, source=root), "schedule.lambda"),
    "beta_1 = -1": (VP, _set_beta_1(-1), lambda root: get("vp-linear", 6, source=root), "params.beta_1 must be"),
    "beta_1 = 'twenty'": (VP, _set_beta_1("twenty"), lambda root: get("vp-linear", 6, source=root), "params.beta_1"),
    "an extra param": (
        VP,
        lambda doc: doc["schedule"]["params"].__setitem__("beta_2", 1.0),
        lambda root: get("vp-linear", 6, source=root),
        "unknown: ['beta_2']",
    ),
    "input_hash replaced": (
        FLOW,
        lambda doc: _flow_unipc3_nfe6(doc).__setitem__("input_hash", "sha256:" + "0" * 64),
        lambda root: get("flow", 6, shift=3.0, source=root),
        "is not the hash of the entry's inputs",
    ),
    "variant deleted": (
        FLOW,
        lambda doc: _flow_unipc3_nfe6(doc).pop("variant"),
        lambda root: get("flow", 6, shift=3.0, source=root),
        "needs a 'variant'",
    ),
    "quality x 10": (
        VP,
        lambda doc: _times_ten(_vp_bound(doc)["quality"]),
        lambda root: get("vp-linear", 6, p=1, source=root),
        "ratio_uniform_lambda",
    ),
    "objective = -1": (
        VP,
        lambda doc: _vp_bound(doc).__setitem__("objective", -1),
        lambda root: get("vp-linear", 6, p=1, source=root),
        "'objective' = -1 is negative",
    ),
}


def test_the_copied_files_are_accepted(copy):
    assert get("flow", 6, shift=3.0, source=copy).variant == "bh2"
    assert verify(copy, allow_missing=True)["files"] == 2
    assert validate_registry(copy, allow_missing=True).ok


@pytest.mark.parametrize("name", EDITS)
def test_a_hash_consistent_edit_is_refused_by_every_reader(copy, name):
    rel, edit, call, message = EDITS[name]
    doc = factory.read_json(copy, rel)
    edit(doc)
    factory.rewrite(copy, rel, doc)  # canonical bytes, the index re-hashed
    with pytest.raises(RegistryIntegrityError, match=message.replace("(", r"\(").replace("[", r"\[")):
        call(copy)
    with pytest.raises(RegistryIntegrityError):
        verify(copy, allow_missing=True)
    report = validate_registry(copy, allow_missing=True)
    assert any(message in m for m in report.messages()), report.messages()


@pytest.mark.parametrize(
    ("name", "params"),
    [(name, {}) for name in SCHEDULE_NAMES]
    + [("flow", {"shift": 3.0}), ("vp-linear", {"beta_0": 0.2, "beta_1": 15.0})],
)
def test_the_loaders_schedules_agree_with_the_builders(name, params):
    """`optsteps_loader.schedules` (stdlib, scalar) against builder/solve/schedules.py (numpy), which wrote
    the registry: α and σ at nodes across the interval, and the schedule block the builder would write."""
    import numpy as np

    from builder.solve.schedules import get_schedule
    from optsteps_loader import schedules

    schedule = get_schedule(name, **params)
    block = {
        "name": name,
        "family": schedule.family,
        "time_input": schedule.time_input,
        "params": schedule.params,
        "t_start": schedule.t_start,
        "t_end": schedule.t_end,
        "lambda_start": schedule.lambda_start,
        "lambda_end": schedule.lambda_end,
    }
    assert schedules.schedule_problems(block) == []
    t = np.concatenate([np.linspace(schedule.t_end, schedule.t_start, 997), [0.5 * schedule.t_start]])
    alpha, sigma = schedule.marginal_alpha(t), schedule.marginal_sigma(t)
    at = schedules.at(name, schedule.params)
    for x, a, s in zip(t.tolist(), alpha.tolist(), sigma.tolist(), strict=True):
        got = at(x)
        assert got[0] == pytest.approx(a, rel=1e-13) and got[1] == pytest.approx(s, rel=1e-13), (x, got, a, s)
