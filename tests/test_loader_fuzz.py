"""Fuzz: random, consistently hashed mutations of a valid registry. Whatever the loader is given, `get()`
either returns exactly what the file holds, and that passes every invariant (checked here independently of
the loader's own code), or raises a documented error; never another exception, never a hang (each call runs
under a deadline in a worker thread)."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from optsteps_loader import OptstepsError, clear_cache, get, verify
from tests import registry_factory as factory
from tests.registry_factory import bounded

FILES = ("v1/vp-linear.json", "v1/flow-shift1.json", "v1/flow-shift3.json")
ARRAYS = ("t", "lambda", "alpha_t", "sigma_t", "sigmas", "timesteps")
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 1, -1, 1e-300, 1e300, 0.5]),
)
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)


pytestmark = pytest.mark.usefixtures("fresh_loader_cache")  # an empty loader cache (tests/conftest.py)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return factory.make_registry(
        tmp_path_factory.mktemp("fuzz"), schedules=("vp-linear", "flow"), nfes=(3, 4), orders=(1, 3), ps=(0, 1)
    )


def mutate(draw, obj: dict) -> None:
    """One random change to a data file's document: a value, an array, a key, or the schedule block."""
    entry = draw(st.sampled_from(obj["entries"]))
    kind = draw(st.sampled_from(["scale", "swap", "reverse", "number", "replace", "delete", "schedule"]))
    arrays = [k for k in ARRAYS if isinstance(entry.get(k), list) and entry[k]]  # an earlier change may delete one
    lists = [*arrays, "step_orders"] if isinstance(entry.get("step_orders"), list) and entry["step_orders"] else arrays
    if kind in ("scale", "swap", "reverse", "number"):
        assume(len(arrays) >= 2)
    if kind == "scale":
        numeric = [k for k in arrays if all(isinstance(x, (int, float)) for x in entry[k])]
        assume(numeric)
        key = draw(st.sampled_from(numeric))
        factor = draw(st.sampled_from([-1.0, 0.0, 1e300, 1e-300, 1.0000001, 2.0]))
        entry[key] = [x * factor for x in entry[key]]
    elif kind == "swap":
        a, b = draw(st.lists(st.sampled_from(arrays), min_size=2, max_size=2, unique=True))
        entry[a], entry[b] = entry[b], entry[a]
    elif kind == "reverse":
        entry[draw(st.sampled_from(lists))].reverse()
    elif kind == "number":
        key = draw(st.sampled_from(lists))
        entry[key][draw(st.integers(0, len(entry[key]) - 1))] = draw(NUMBERS)
    elif kind == "replace":
        entry[draw(st.sampled_from(sorted(entry)))] = draw(VALUES)
    elif kind == "delete":
        del entry[draw(st.sampled_from(sorted(entry)))]
    else:
        obj["schedule"][draw(st.sampled_from(sorted(obj["schedule"])))] = draw(VALUES)


def holds_every_invariant(steps, entry: dict, schedule: dict) -> None:
    """The returned steps are the file's entry, and satisfy the format's invariants (computed here)."""
    n = steps.nfe
    assert steps.t == tuple(entry["t"]) and steps.lambdas == tuple(entry["lambda"])
    assert steps.alpha_t == tuple(entry["alpha_t"]) and steps.sigma_t == tuple(entry["sigma_t"])
    assert steps.sigmas == tuple(entry["sigmas"]) and steps.timesteps == tuple(entry["timesteps"])
    assert all(len(s) == n + 1 for s in (steps.t, steps.lambdas, steps.alpha_t, steps.sigma_t, steps.timesteps))
    assert len(steps.step_orders) == n and all(
        1 <= k <= min(steps.order, i + 1) for i, k in enumerate(steps.step_orders)
    )
    for i in range(n + 1):
        a, s = steps.alpha_t[i], steps.sigma_t[i]
        assert a > 0 and s > 0 and math.isfinite(a) and math.isfinite(s)
        assert abs(steps.lambdas[i] - math.log(a / s)) <= 1e-9
        assert math.isclose(steps.sigmas[i], s / a, rel_tol=1e-9)
        assert abs((a * a + s * s if schedule["family"].startswith("vp") else a + s) - 1) <= 1e-9
    for i in range(n):
        assert steps.lambdas[i] < steps.lambdas[i + 1] and steps.t[i] > steps.t[i + 1]
        assert steps.sigmas[i] > steps.sigmas[i + 1] and steps.timesteps[i] >= steps.timesteps[i + 1]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), target=st.sampled_from(FILES))
def test_consistently_hashed_mutations(base, data, target):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "reg"
        shutil.copytree(base, root)
        obj = factory.read_json(root, target)
        for _ in range(data.draw(st.integers(1, 2), label="changes")):
            mutate(data.draw, obj)
        try:
            factory.canonical_bytes(obj)
        except ValueError:
            assume(False)  # a scaling overflowed to inf, which no JSON file can hold
        factory.rewrite(root, target, obj)  # re-hashed: the index agrees with the mutated file
        clear_cache()
        schedule, shift = ("flow", 3.0 if "shift3" in target else None) if "flow" in target else ("vp-linear", None)
        for nfe, order, p in ((3, 3, 1), (4, 1, 0), (4, 3, 0)):
            kind, value = bounded(lambda: get(schedule, nfe, order=order, p=p, shift=shift, source=root))  # noqa: B023
            if kind == "raised":
                assert isinstance(value, OptstepsError), repr(value)
                continue
            entry = next(
                (e for e in obj["entries"] if (e.get("nfe"), e.get("order"), e.get("p")) == (nfe, order, p)), None
            )
            assert entry is not None
            holds_every_invariant(value, entry, obj["schedule"])
        kind, value = bounded(lambda: verify(root))
        assert kind == "ok" or isinstance(value, OptstepsError), repr(value)
