"""Every way a lookup can fail, and that only the documented exception types ever escape (hypothesis:
arbitrary arguments; corrupted files: byte flips, truncation, deleted keys, replaced values, with and
without a matching hash in the index)."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optsteps_loader import (
    EntryNotFoundError,
    OptstepsError,
    RegistryIntegrityError,
    RegistryUnavailableError,
    ScheduleNotFoundError,
    available,
    clear_cache,
    get,
    info,
    verify,
)
from tests import registry_factory as factory

SMALL = {"schedules": ("vp-linear", "flow"), "nfes": (3, 4), "orders": (1, 3), "ps": (0, 1), "shifts": (1.0, 3.0)}


pytestmark = pytest.mark.usefixtures("fresh_loader_cache")  # an empty loader cache (tests/conftest.py)
REGISTRY_GRID = {"nfes": (3, 4, 5, 6, 8, 10, 11)}  # the `reg` fixture's grid (tests/conftest.py)


@pytest.fixture
def work(tmp_path) -> Path:
    return factory.make_registry(tmp_path, schedules=("vp-linear",), nfes=(3, 4, 5))


# --- lookups -----------------------------------------------------------------------------------------------


def test_unknown_schedule_suggests_close_matches(reg):
    with pytest.raises(ScheduleNotFoundError) as err:
        get("vp-lineer", 6, source=reg)
    text = str(err.value)
    assert "unknown schedule 'vp-lineer'" in text and "Did you mean 'vp-linear'" in text
    assert "Schedules: ddpm-linear, flow, vp-linear" in text
    assert isinstance(err.value, KeyError)
    with pytest.raises(KeyError, match="Did you mean") as far:
        get("VP_LINEAR_", 6, source=reg)
    with pytest.raises(ScheduleNotFoundError) as far:
        get("zzzzzz", 6, source=reg)
    assert "Did you mean" not in str(far.value)
    with pytest.raises(ScheduleNotFoundError, match="Did you mean 'flow'"):
        info("flwo", source=reg)


def test_missing_nfe_lists_the_grid_and_the_builder_command(reg):
    with pytest.raises(EntryNotFoundError) as err:
        get("vp-linear", 7, source=reg)
    text = str(err.value)
    assert "has no entry nfe=7, order=3, p=1" in text
    assert "orders 1, 2, 3 and p 0, 1, 2" in text and "nfe 3-6, 8, 10, 11" in text
    assert text.endswith("python -m builder solve --schedule vp-linear --nfe 7 --order 3 --p 1 --json")
    assert isinstance(err.value, KeyError)


def test_missing_order_p_and_shift(tmp_path):
    root = factory.make_registry(tmp_path, schedules=("vp-linear", "flow"), orders=(1, 3), ps=(0, 0.5), nfes=(3, 4))
    with pytest.raises(EntryNotFoundError, match=r"order=2, p=0: nfe none.*--order 2 --p 0 --json"):
        get("vp-linear", 3, order=2, p=0, source=root)
    with pytest.raises(EntryNotFoundError, match=r"p 0, 0.5;.*--p 2 --json"):
        get("vp-linear", 3, p=2, source=root)
    with pytest.raises(EntryNotFoundError, match=r"flow --nfe 9 --order 3 --p 0.5 --shift 3 --json"):
        get("flow", 9, p=0.5, shift=3, source=root)


BAD_ARGUMENTS = [
    ({"schedule": 3}, TypeError, "schedule"),
    ({"schedule": None}, TypeError, "schedule"),
    ({"nfe": "6"}, TypeError, "nfe"),
    ({"nfe": 6.5}, TypeError, "nfe"),
    ({"nfe": 6.0}, TypeError, "nfe"),
    ({"nfe": True}, TypeError, "nfe"),
    ({"nfe": None}, TypeError, "nfe"),
    ({"nfe": -3}, ValueError, "nfe"),
    ({"nfe": 0}, ValueError, "nfe"),
    ({"order": 0}, ValueError, "order"),
    ({"order": 4}, ValueError, "order"),
    ({"order": "3"}, TypeError, "order"),
    ({"order": 3.0}, TypeError, "order"),
    ({"p": -1}, ValueError, "p"),
    ({"p": "x"}, TypeError, "p"),
    ({"p": True}, TypeError, "p"),
    ({"p": math.nan}, ValueError, "p"),
    ({"p": math.inf}, ValueError, "p"),
    ({"p": 10**400}, ValueError, "p"),
    ({"p": [1]}, TypeError, "p"),
    ({"solver": "euler"}, ValueError, "solver"),
    ({"solver": None}, TypeError, "solver"),
    ({"shift": 0}, ValueError, "shift"),
    ({"shift": -2.0}, ValueError, "shift"),
    ({"shift": "3"}, TypeError, "shift"),
    ({"source": 3}, TypeError, "source"),
    ({"source": b"/tmp"}, TypeError, "source"),
    ({"source": "hub", "revision": 3}, TypeError, "revision"),
]


@pytest.mark.parametrize(("change", "error", "name"), BAD_ARGUMENTS, ids=[repr(c) for c, *_ in BAD_ARGUMENTS])
def test_bad_arguments_name_the_argument(reg, change, error, name):
    args = {"schedule": "vp-linear", "nfe": 6, "source": reg, **change}
    schedule, nfe = args.pop("schedule"), args.pop("nfe")
    with pytest.raises(error, match=rf"\b{name}\b"):
        get(schedule, nfe, **args)


def test_numpy_scalars_are_accepted(reg):
    np = pytest.importorskip("numpy")
    assert get("vp-linear", np.int64(6), order=np.int32(3), p=np.float64(1.0), source=reg).nfe == 6


# --- corrupted registries -----------------------------------------------------------------------------------


def _flip_byte(root: Path, rel: str, at: int = 200) -> None:
    data = bytearray((root / rel).read_bytes())
    data[at] ^= 0x01
    (root / rel).write_bytes(bytes(data))


def test_hash_mismatch_names_the_file_and_both_hashes(work):
    _flip_byte(work, "v1/vp-linear.json")
    with pytest.raises(RegistryIntegrityError) as err:
        get("vp-linear", 3, source=work)
    text = str(err.value)
    assert "v1/vp-linear.json: sha256 mismatch: the index says sha256:" in text and "has sha256:" in text
    assert "python -m builder sweep" in text


@pytest.mark.parametrize("cut", [0, 1, 100, -2])
def test_truncated_file_with_matching_hash_is_invalid_json(work, cut):
    path = work / "v1" / "vp-linear.json"
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[: len(data) + cut - 50])
    factory.rehash_index(work)
    with pytest.raises(RegistryIntegrityError, match=r"vp-linear.json: not valid JSON .*truncated"):
        get("vp-linear", 3, source=work)


def test_nan_literal_is_rejected(work):
    path = work / "v1" / "vp-linear.json"
    text = path.read_text()
    path.write_text(text.replace('"objective": ', '"objective": NaN, "x": ', 1))
    factory.rehash_index(work)
    with pytest.raises(RegistryIntegrityError, match="non-finite number NaN"):
        get("vp-linear", 3, source=work)


def _edit_entry(root: Path, edit) -> None:
    obj = factory.read_json(root, "v1/vp-linear.json")
    entry = next(e for e in obj["entries"] if (e["nfe"], e["order"], e["p"]) == (4, 3, 1))
    edit(entry)
    factory.rewrite(root, "v1/vp-linear.json", obj)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e.pop("lambda"), "'lambda' must be a list of nfe\\+1 = 5 finite numbers"),
        (lambda e: e["t"].pop(), "'t' must be a list of nfe\\+1 = 5"),
        (lambda e: e["sigmas"].append(0.5), "'sigmas' must be a list of nfe\\+1"),
        (lambda e: e["lambda"].reverse(), "lambda not strictly increasing"),
        (lambda e: e["lambda"].__setitem__(2, e["lambda"][1]), "lambda not strictly increasing"),
        (lambda e: e["t"].reverse(), "t not strictly decreasing"),
        (lambda e: e["alpha_t"].__setitem__(0, "0.1"), "'alpha_t' must be a list"),
        (lambda e: e["timesteps"].__setitem__(0, None), "'timesteps' must be a list"),
        (lambda e: e.pop("step_orders"), "'step_orders' must be a list of nfe = 4"),
        (lambda e: e.__setitem__("tau", 3.0), "int 'tau'"),
        (lambda e: e.pop("objective"), "finite number 'objective'"),
        (lambda e: e.__setitem__("objective_uniform_lambda", "x"), "objective_uniform"),
        (lambda e: e.__setitem__("quality", [1]), "'quality' null or an object"),
    ],
)
def test_structurally_invalid_entry(work, edit, message):
    _edit_entry(work, edit)
    with pytest.raises(RegistryIntegrityError, match=r"vp-linear.json: entry nfe=4 order=3 p=1: .*" + message):  # noqa: E501
        get("vp-linear", 4, source=work)
    with pytest.raises(RegistryIntegrityError):
        verify(work)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda o: o.pop("entries"), "needs 'schedule' and 'defaults' objects and an 'entries' list"),
        (lambda o: o.__setitem__("schema_version", 2), "not a schema_version 1 registry file"),
        (lambda o: o["schedule"].__setitem__("name", "edm"), "schedule.name 'edm' is not the index's"),
        (lambda o: o["defaults"].__setitem__("p", -1), "defaults.p must be a number >= 0"),
        (lambda o: o["defaults"].__setitem__("p", 5), "defaults.p = 5 has no entries"),
        (lambda o: o["entries"].pop(), "do not match the index"),
        (lambda o: o["entries"].append(dict(o["entries"][0])), "duplicate \\(order, p, nfe\\)"),
        (lambda o: o["entries"][0].pop("nfe"), "entries\\[0\\]: needs an int 'nfe'"),
        (lambda o: o.__setitem__("provenance", []), "'provenance' must be an object"),
    ],
)
def test_structurally_invalid_file(work, edit, message):
    obj = factory.read_json(work, "v1/vp-linear.json")
    edit(obj)
    factory.rewrite(work, "v1/vp-linear.json", obj)
    with pytest.raises(RegistryIntegrityError, match=r"vp-linear.json: .*" + message):
        get("vp-linear", 3, source=work)


UNSAFE = [
    "../outside.json",
    "/etc/passwd",
    "v1/../../x.json",
    "v1\\x.json",
    "C:x.json",
    "v1//x.json",
    "./v1/x.json",
    "",
    None,
    3,
]


@pytest.mark.parametrize("path", UNSAFE)
def test_index_paths_must_stay_inside_the_registry(work, path):
    index = factory.read_json(work, "index.json")
    index["files"][0]["path"] = path
    factory.write_bytes(work / "index.json", factory.canonical_bytes(index))
    with pytest.raises(RegistryIntegrityError, match=r"index.json: files\[0\]: unsafe (or missing )?path"):
        get("vp-linear", 3, source=work)
    with pytest.raises(RegistryIntegrityError):
        available(work)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda i: i.__setitem__("schema_version", 2), "schema_version is 2; this loader reads 1"),
        (lambda i: i.pop("files"), "'files' must be a list"),
        (lambda i: i["files"][0].__setitem__("sha256", "md5:abc"), "'sha256' must be 'sha256:'"),
        (lambda i: i["files"][0].__setitem__("nfe", [3, "4"]), "'nfe' and 'orders' must be lists"),
        (lambda i: i["files"][0].__setitem__("params", {"shift": -1}), "params.shift must be a positive"),
        (lambda i: i["files"].append(dict(i["files"][0])), "is listed more than once"),
    ],
)
def test_invalid_index(work, edit, message):
    index = factory.read_json(work, "index.json")
    edit(index)
    factory.write_bytes(work / "index.json", factory.canonical_bytes(index))
    with pytest.raises(RegistryIntegrityError, match=message):
        available(work)


def test_index_not_json(work):
    (work / "index.json").write_bytes(b'{"schema_version": 1, "files": [')
    with pytest.raises(RegistryIntegrityError, match=r"index.json: not valid JSON"):
        get("vp-linear", 3, source=work)


def test_unreadable_data_file_is_not_a_crash(work):
    (work / "v1" / "vp-linear.json").unlink()
    (work / "v1" / "vp-linear.json").mkdir()
    with pytest.raises(OptstepsError):
        get("vp-linear", 3, source=work)


def test_a_bad_entry_does_not_poison_the_others(work):
    """Entries are checked when first asked for: a bad one fails, intact ones are served (verify() checks
    them all)."""
    _edit_entry(work, lambda e: e.pop("lambda"))
    assert get("vp-linear", 3, source=work).nfe == 3
    with pytest.raises(RegistryIntegrityError):
        get("vp-linear", 4, source=work)


# --- properties ---------------------------------------------------------------------------------------------

ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 60),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["vp-linear", "flow", "unipc", "dpmpp", "vp-lineer", "hub"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=ANY, nfe=ANY, order=ANY, p=ANY, solver=ANY, shift=ANY)
def test_arbitrary_arguments_raise_only_documented_errors(reg, schedule, nfe, order, p, solver, shift):
    try:
        steps = get(schedule, nfe, order=order, p=p, solver=solver, shift=shift, source=reg)
    except (TypeError, ValueError, ScheduleNotFoundError, EntryNotFoundError):
        return
    assert len(steps.t) == steps.nfe + 1 == nfe + 1


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.lists(st.floats(-2, 2), max_size=3),
    st.just({}),
)


def _nodes(obj, out):
    """Every (container, key) pair of a JSON document."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        out.append((obj, key))
        _nodes(value, out)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return factory.make_registry(tmp_path_factory.mktemp("small"), **SMALL)


def _check_everything(root: Path) -> None:
    """Use the registry every way; each call succeeds with a valid result or raises a documented error."""
    for call in (lambda: available(root), lambda: info("flow", shift=3, source=root), lambda: verify(root)):
        try:
            call()
        except OptstepsError:
            pass
    for schedule, shift in (("vp-linear", None), ("flow", 3), ("flow", None)):
        for nfe, order, p in ((3, 3, None), (4, 1, 0)):
            try:
                steps = get(schedule, nfe, order=order, p=p, shift=shift, source=root)
            except OptstepsError:
                continue
            assert len(steps.lambdas) == nfe + 1 and all(map(math.isfinite, steps.t))
            assert all(a < b for a, b in zip(steps.lambdas, steps.lambdas[1:]))  # noqa: B905


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    target=st.sampled_from(["index.json", "v1/vp-linear.json", "v1/flow-shift3.json"]),
    mutation=st.sampled_from(["flip", "truncate", "delete", "replace"]),
    rehash=st.booleans(),
)
def test_corrupted_registries_raise_only_documented_errors(small, data, target, mutation, rehash):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "reg"
        shutil.copytree(small, root)
        path = root / target
        raw = path.read_bytes()
        if mutation == "flip":
            for at in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4), label="at"):
                raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[at + 1 :]
            path.write_bytes(raw)
        elif mutation == "truncate":
            path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
        else:
            obj = factory.read_json(root, target)
            nodes = _nodes(obj, [])
            container, key = nodes[data.draw(st.integers(0, len(nodes) - 1), label="node")]
            if mutation == "delete":
                del container[key]
            else:
                container[key] = data.draw(JSON_VALUES, label="value")
            path.write_bytes(factory.canonical_bytes(obj))
        if rehash and target != "index.json":
            factory.rehash_index(root)
        clear_cache()
        _check_everything(root)


def test_error_hierarchy():
    assert issubclass(ScheduleNotFoundError, KeyError) and issubclass(EntryNotFoundError, KeyError)
    assert all(
        issubclass(e, OptstepsError)
        for e in (ScheduleNotFoundError, EntryNotFoundError, RegistryIntegrityError, RegistryUnavailableError)
    )
    assert str(ScheduleNotFoundError("plain message")) == "plain message"  # not KeyError's repr


@pytest.mark.parametrize(
    "call",
    [
        lambda reg: get("vp-linear", 3, source="x" * 100_000),
        lambda reg: get("vp-linear", 3, source=str(reg) + "/" + "y/" * 3000),
        lambda reg: get("z" * 100_000, 3, source=reg),
        lambda reg: get("vp-linear", 3, source="hub", revision="r" * 100_000),
        lambda reg: verify("x" * 100_000),
        lambda reg: available("x" * 100_000),
    ],
)
def test_long_inputs_are_cut_in_messages(reg, call):
    """One helper (`format.short`) cuts every echoed input: no message grows with the input."""
    with pytest.raises((OptstepsError, ValueError)) as err:
        call(reg)
    assert len(str(err.value)) < 1000, str(err.value)[:300]
    assert "characters)" in str(err.value)
