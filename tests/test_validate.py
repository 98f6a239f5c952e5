"""builder.registry.validate, builder.registry._canonical and the two schemas.

A small valid registry (tests/registry_factory.py's standard files) must validate clean; each corruption must
be refused with a message that names the file and the problem; hostile input gives problems, not tracebacks.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from builder.registry._canonical import atomic_write_bytes, canonical_bytes, sha256_of
from builder.registry.validate import (
    ValidationReport,
    format_report,
    load_schema,
    schema_validator,
    validate_file_bytes,
    validate_registry,
)
from optsteps_loader import _figures
from optsteps_loader import format as fmt
from tests import registry_factory as factory

REPO = Path(__file__).resolve().parents[1]
VP = "v1/vp-linear.json"
EDM = "v1/edm.json"
DISC = "v1/ddpm-linear.json"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "registry"
    root.mkdir()
    factory.write_registry(root)
    return root


@pytest.fixture
def reg(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the valid registry for a test to corrupt."""
    root = tmp_path / "registry"
    shutil.copytree(pristine, root)
    return root


def messages(report: ValidationReport) -> list[str]:
    return report.messages()


def assert_refused(report: ValidationReport, file: str, *fragments: str) -> None:
    """Some problem names ``file`` and contains every fragment."""
    assert not report.ok
    hits = [p for p in report.problems if p.file == file and all(f in p.message for f in fragments)]
    assert hits, f"no problem for {file} containing {fragments}; got:\n{format_report(report)}"


def only_about(report: ValidationReport, *kinds: str) -> None:
    """No hash / size / schema / canonical / JSON problems: only the invariant under test fails."""
    for p in report.problems:
        for word in ("sha256", "size is", "schema:", "canonical", "invalid JSON"):
            assert word not in p.message or word in kinds, str(p)


def edit_entry(root: Path, path: str, index: int, change) -> dict:
    doc = factory.read_json(root, path)
    change(doc["entries"][index])
    factory.rewrite(root, path, doc)
    return doc["entries"][index]


# ---- schemas


@pytest.mark.parametrize("kind", ["index", "file"])
def test_schemas_are_valid_2020_12(kind: str) -> None:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["description"]


def _objects(node, path=""):
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}/{i}")


@pytest.mark.parametrize("kind", ["index", "file"])
def test_schemas_are_closed(kind: str) -> None:
    """additionalProperties is false on every object except the open quality record and the params maps."""
    for path, node in _objects(load_schema(kind)):
        if "properties" not in node or path.startswith("/$defs/quality"):
            continue
        if path.startswith("/allOf") or "/allOf/" in path:  # if/then fragments, not object definitions
            continue
        assert node.get("additionalProperties") is False, path


# ---- clean


def test_fixture_registry_validates_clean(pristine: Path) -> None:
    report = validate_registry(pristine)
    assert report.ok, format_report(report)
    assert report.files_checked == 4 and report.entries_checked == 16
    assert "OK" in format_report(report)


def test_fixture_has_crowded_integer_timesteps(pristine: Path) -> None:
    doc = factory.read_json(pristine, DISC)
    crowded = next(e for e in doc["entries"] if e["nfe"] == 30)
    assert crowded["timesteps"][-3:] == [2, 1, 0] and crowded["timestep_collisions"] == []
    assert all(isinstance(v, int) for e in doc["entries"] for v in e["timesteps"])


def test_fixture_endpoints_match_method_md() -> None:
    assert factory.vp_lambda(1.0) == pytest.approx(-5.024978406659204, rel=1e-14)
    assert factory.vp_lambda(1e-3) == pytest.approx(4.557714932729866, rel=1e-14)
    assert factory.vp_t_of_lambda(factory.vp_lambda(0.3)) == pytest.approx(0.3, rel=1e-13)


def test_validate_file_bytes_standalone(pristine: Path) -> None:
    assert validate_file_bytes(VP, (pristine / VP).read_bytes()) == []
    problems = validate_file_bytes("x.json", b"{")
    assert len(problems) == 1 and problems[0].file == "x.json" and "invalid JSON" in problems[0].message


# ---- corrupted registries: each corruption is refused with a message naming it


def test_flipped_byte_is_refused(reg: Path) -> None:
    data = bytearray((reg / VP).read_bytes())
    pos = data.index(b'"lambda"') + 20  # inside the first digits of a lambda array
    while not chr(data[pos]).isdigit():
        pos += 1
    data[pos] = ord("7") if data[pos] != ord("7") else ord("3")
    (reg / VP).write_bytes(bytes(data))
    report = validate_registry(reg)
    assert_refused(report, VP, "sha256 mismatch", "the index says")


def test_truncated_file_is_refused(reg: Path) -> None:
    data = (reg / VP).read_bytes()
    (reg / VP).write_bytes(data[: len(data) // 2])
    report = validate_registry(reg)
    assert_refused(report, VP, "invalid JSON", "truncated")
    assert_refused(report, VP, "sha256 mismatch", f"({len(data) // 2} bytes) has")


def test_missing_entry_is_refused(reg: Path) -> None:
    doc = factory.read_json(reg, VP)
    del doc["entries"][4]
    factory.rewrite(reg, VP, doc)  # hash updated: only the summary disagrees
    report = validate_registry(reg)
    assert_refused(report, VP, "11 in all) do not match the index", "12 in all)")
    only_about(report)


def test_missing_grid_point_is_refused(reg: Path) -> None:
    doc = factory.read_json(reg, EDM)
    doc["entries"] = [e for e in doc["entries"] if e["nfe"] != 6]
    factory.rewrite(reg, EDM, doc)
    report = validate_registry(reg)
    assert_refused(report, EDM, "its entries (nfe [4],", "do not match the index (nfe [4, 6],")


def test_hole_in_the_grid_is_refused_even_with_a_consistent_index(reg: Path) -> None:
    doc = factory.read_json(reg, VP)
    hole = doc["entries"].pop(4)
    factory.rewrite(reg, VP, doc)
    index = json.loads((reg / "index.json").read_text())
    record = next(f for f in index["files"] if f["path"] == VP)
    record["entries"] -= 1  # the index agrees with the file: only the hole is wrong
    (reg / "index.json").write_bytes(canonical_bytes(index))
    report = validate_registry(reg)
    assert_refused(report, VP, f"grid incomplete: no entry for order={hole['order']} p={hole['p']:g} nfe={hole['nfe']}")
    only_about(report)


def test_wrong_hash_is_refused(reg: Path) -> None:
    index = json.loads((reg / "index.json").read_text())
    index["files"][2]["sha256"] = sha256_of(b"something else")
    (reg / "index.json").write_bytes(canonical_bytes(index))
    report = validate_registry(reg)
    assert_refused(report, VP, "sha256 mismatch")
    assert [p.file for p in report.problems] == [VP]


def test_unlisted_file_is_refused(reg: Path) -> None:
    shutil.copy(reg / EDM, reg / "v1" / "edm-copy.json")
    (reg / "v2").mkdir()
    (reg / "v2" / "deep").mkdir()
    (reg / "v2" / "deep" / "x.json").write_text("{}\n")
    report = validate_registry(reg)
    assert_refused(report, "v1/edm-copy.json", "not listed in index.json")
    assert_refused(report, "v2/deep/x.json", "not listed in index.json")


def test_non_monotone_lambda_is_refused(reg: Path) -> None:
    def swap(entry):
        entry["lambda"][2], entry["lambda"][3] = entry["lambda"][3], entry["lambda"][2]

    doc = factory.read_json(reg, VP)
    i = next(i for i, e in enumerate(doc["entries"]) if (e["nfe"], e["order"], e["p"]) == (5, 3, 1))
    edit_entry(reg, VP, i, swap)
    report = validate_registry(reg)
    assert_refused(report, VP, "entry nfe=5 order=3 p=1: lambda not strictly increasing at index 3")
    assert_refused(report, VP, "entry nfe=5 order=3 p=1: lambda[2]", "log(alpha_t) - log(sigma_t)")
    only_about(report)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_token_is_refused(reg: Path, token: str) -> None:
    text = (reg / EDM).read_text()
    old = json.dumps(factory.read_json(reg, EDM)["entries"][0]["objective"])
    text = text.replace(f'"objective": {old}', f'"objective": {token}', 1)
    (reg / EDM).write_text(text)
    factory.rehash_index(reg, EDM)
    report = validate_registry(reg)
    assert_refused(report, EDM, f"non-finite number {token} at line")


def test_overflowing_number_is_refused(reg: Path) -> None:
    text = (reg / EDM).read_text()
    old = json.dumps(factory.read_json(reg, EDM)["entries"][0]["objective"])
    (reg / EDM).write_text(text.replace(f'"objective": {old}', '"objective": 1e999', 1))
    factory.rehash_index(reg, EDM)
    report = validate_registry(reg)
    assert_refused(report, EDM, "the number at /entries/0/objective overflows float64")


def test_wrong_array_length_is_refused(reg: Path) -> None:
    edit_entry(reg, EDM, 0, lambda e: e["sigma_t"].pop())
    report = validate_registry(reg)
    assert_refused(report, EDM, "entry nfe=4 order=3 p=1: 'sigma_t' must be a list of nfe+1 = 5", "(has 4 values)")


def test_wrong_step_orders_are_refused(reg: Path) -> None:
    def bad(entry):
        entry["step_orders"] = [3] * (entry["nfe"] - 1)

    edit_entry(reg, EDM, 0, bad)
    report = validate_registry(reg)
    assert_refused(report, EDM, "'step_orders' has 3 values, expected nfe = 4")
    assert_refused(report, EDM, "step_orders[0] = 3 but step 0 has only 1 earlier node")


def test_extra_property_is_refused(reg: Path) -> None:
    edit_entry(reg, VP, 0, lambda e: e.update(seconds=1.5))
    report = validate_registry(reg)
    assert_refused(report, VP, "schema: at /entries/0", "'seconds' was unexpected")


def test_extra_property_in_index_is_refused(reg: Path) -> None:
    index = json.loads((reg / "index.json").read_text())
    index["files"][0]["mtime"] = 0
    (reg / "index.json").write_bytes(canonical_bytes(index))
    assert_refused(validate_registry(reg), "index.json", "schema: at /files/0", "'mtime' was unexpected")


def test_non_canonical_bytes_are_refused(reg: Path) -> None:
    doc = factory.read_json(reg, EDM)
    (reg / EDM).write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    factory.rehash_index(reg, EDM)
    report = validate_registry(reg)
    assert_refused(report, EDM, "not in canonical bytes", "line 2")
    only_about(report, "canonical")


# ---- more invariants


def test_float_timesteps_refused_for_discrete(reg: Path) -> None:
    def floats(entry):
        entry["timesteps"] = [float(v) for v in entry["timesteps"]]

    edit_entry(reg, DISC, 0, floats)
    report = validate_registry(reg)
    assert_refused(report, DISC, "schema: at /entries/0/timesteps/0", "is not of type 'integer'")
    assert_refused(report, DISC, "timesteps[0] = 999.0 is not an integer")


def test_integer_fields_refuse_floats(reg: Path) -> None:
    edit_entry(reg, VP, 0, lambda e: e.update(tau=3.0))
    assert_refused(validate_registry(reg), VP, "schema: at /entries/0/tau", "not of type 'integer'")


def test_wrong_collisions_are_refused(reg: Path) -> None:
    assert factory.read_json(reg, DISC)["entries"][1]["timestep_collisions"] == []
    edit_entry(reg, DISC, 1, lambda e: e.update(timestep_collisions=[[0, 1]]))
    report = validate_registry(reg)
    assert_refused(report, DISC, "entry nfe=30 order=3 p=1: timestep_collisions is [[0, 1]]", "expected []")


def test_timesteps_must_follow_time_input(reg: Path) -> None:
    def shift(entry):
        entry["timesteps"][2] += 3

    edit_entry(reg, DISC, 0, shift)
    assert_refused(validate_registry(reg), DISC, "timesteps[2]", "does not match time_input 'timestep'")


def test_endpoint_mismatch_is_refused(reg: Path) -> None:
    doc = factory.read_json(reg, VP)
    doc["schedule"]["lambda_end"] += 1e-9
    factory.rewrite(reg, VP, doc)
    report = validate_registry(reg)
    assert_refused(report, VP, "schedule.lambda_end = ", "but vp-linear with these params gives")


def test_endpoint_within_tolerance_is_accepted(reg: Path) -> None:
    doc = factory.read_json(reg, VP)
    doc["schedule"]["t_start"] = 0.9999999999999998  # what inverse_lambda(λ_T) returns
    for entry in doc["entries"]:  # as the builder would hash them, with this t_start
        entry["input_hash"] = fmt.input_hash(_figures.input_key(entry, doc["schedule"])[0])
    factory.rewrite(reg, VP, doc)
    assert validate_registry(reg).ok


def test_inconsistent_sigmas_are_refused(reg: Path) -> None:
    def nudge(entry):
        entry["sigmas"][1] *= 1 + 1e-10

    edit_entry(reg, VP, 0, nudge)
    assert_refused(validate_registry(reg), VP, "sigmas[1]", "sigma_t/alpha_t")


def test_vp_norm_is_checked(reg: Path) -> None:
    def both(entry):  # scale alpha and sigma together: lambda and sigmas stay consistent, the norm breaks
        entry["alpha_t"][1] *= 1.001
        entry["sigma_t"][1] *= 1.001

    edit_entry(reg, VP, 0, both)
    assert_refused(validate_registry(reg), VP, "alpha_t^2 + sigma_t^2", "at index 1")


def test_edm_alpha_is_checked(reg: Path) -> None:
    def both(entry):
        entry["alpha_t"][1] = 0.5
        entry["sigma_t"][1] *= 0.5
        entry["t"][1] *= 0.5

    edit_entry(reg, EDM, 0, both)
    report = validate_registry(reg)
    assert_refused(report, EDM, "alpha_t = 0.5 at index 1, not 1 (edm)")


def test_unsorted_and_duplicate_entries_are_refused(reg: Path) -> None:
    doc = factory.read_json(reg, VP)
    doc["entries"][0], doc["entries"][1] = doc["entries"][1], doc["entries"][0]
    doc["entries"].append(doc["entries"][-1])
    factory.rewrite(reg, VP, doc)
    report = validate_registry(reg)
    assert_refused(report, VP, "entries[1]: not sorted by (order, p, nfe): (2, 0, 3) after (2, 0, 5)")
    assert_refused(report, VP, "duplicate (order, p, nfe) = (3, 1, 10)")


def test_defaults_must_exist(reg: Path) -> None:
    doc = factory.read_json(reg, EDM)
    doc["defaults"]["p"] = 2
    factory.rewrite(reg, EDM, doc)
    assert_refused(validate_registry(reg), EDM, "defaults.p = 2 has no entries")


def test_data_version_must_match_index(reg: Path) -> None:
    doc = factory.read_json(reg, EDM)
    doc["data_version"] = "2026.12.01"
    factory.rewrite(reg, EDM, doc)
    assert_refused(validate_registry(reg), EDM, "data_version '2026.12.01' differs from the index's")


def test_family_and_time_input_must_agree(reg: Path) -> None:
    doc = factory.read_json(reg, EDM)
    doc["schedule"]["time_input"] = "t"
    factory.rewrite(reg, EDM, doc)
    assert_refused(validate_registry(reg), EDM, "schema: at /schedule/time_input")


def test_duplicate_keys_are_refused(reg: Path) -> None:
    text = (reg / EDM).read_text()
    text = text.replace('"schema_version": 1', '"schema_version": 1,\n "schema_version": 1', 1)
    (reg / EDM).write_text(text)
    factory.rehash_index(reg, EDM)
    assert_refused(validate_registry(reg), EDM, "duplicate key 'schema_version'")


def test_not_utf8_is_refused(reg: Path) -> None:
    (reg / EDM).write_bytes(b'{"a": "\xff"}\n')
    assert_refused(validate_registry(reg), EDM, "not UTF-8")


# ---- hostile input: problems, never a traceback


def test_huge_alpha_is_a_problem_not_an_overflow(reg: Path) -> None:
    edit_entry(reg, VP, 0, lambda e: e["alpha_t"].__setitem__(1, 1e308))
    report = validate_registry(reg)
    assert_refused(report, VP, "entry nfe=3 order=2 p=0: alpha_t^2 + sigma_t^2 = inf at index 1")


def test_a_5000_digit_integer_is_a_problem(reg: Path) -> None:
    text = (reg / EDM).read_text().replace('"nfe": 4', '"nfe": ' + "9" * 5000, 1)
    (reg / EDM).write_text(text)
    factory.rehash_index(reg, EDM)
    assert_refused(validate_registry(reg), EDM, "an integer of 5000 digits")


def test_an_index_of_200k_records_is_refused_without_checking_each(tmp_path: Path) -> None:
    record = {"path": "v1/x.json", "schedule": "x", "params": {}, "sha256": "x", "nfe": [3], "orders": [1], "p": [0]}
    index = {"schema_version": 1, "data_version": "x", "files": [record] * 200_000}
    (tmp_path / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    report = validate_registry(tmp_path)
    assert [str(p) for p in report.problems] == [
        f"index.json: lists 200000 files, more than the {fmt.MAX_FILES} an index may"
    ]


def test_a_fifo_or_oversized_file_is_a_problem(reg: Path) -> None:
    (reg / EDM).unlink()
    if hasattr(os, "mkfifo"):
        os.mkfifo(reg / EDM)
        assert_refused(validate_registry(reg), EDM, "not a regular file")
        (reg / EDM).unlink()
    with open(reg / EDM, "wb") as fh:
        fh.truncate(fmt.MAX_FILE_BYTES + 1)
    assert_refused(validate_registry(reg), EDM, "over the", "limit")


def test_an_interrupted_write_is_reported(reg: Path) -> None:
    (reg / fmt.STAGING).mkdir()
    assert_refused(validate_registry(reg), fmt.STAGING, "interrupted write: run the sweep again to recover")


# ---- the folder


def test_missing_file_is_refused_unless_allowed(reg: Path) -> None:
    (reg / EDM).unlink()
    assert_refused(validate_registry(reg), EDM, "listed in index.json but missing")
    subset = validate_registry(reg, allow_missing=True)
    assert subset.ok, format_report(subset)
    assert subset.missing == (EDM,)
    assert "1 listed file(s) absent (allowed)" in format_report(subset)


def test_vendored_subset_still_checks_present_files(reg: Path) -> None:
    (reg / EDM).unlink()
    (reg / VP).write_bytes(b"{}")
    report = validate_registry(reg, allow_missing=True)
    assert_refused(report, VP, "sha256 mismatch")


def test_missing_index_still_checks_data_files(reg: Path) -> None:
    (reg / "index.json").unlink()
    (reg / EDM).write_bytes(b"[")
    report = validate_registry(reg)
    assert_refused(report, "index.json", "missing")
    assert_refused(report, EDM, "invalid JSON")
    assert_refused(report, VP, "not listed in index.json")


def test_invalid_index_is_refused(reg: Path) -> None:
    (reg / "index.json").write_bytes((reg / "index.json").read_bytes()[:-40])
    report = validate_registry(reg)
    assert_refused(report, "index.json", "invalid JSON", "truncated")


@pytest.mark.parametrize("bad", ["../outside.json", "/etc/passwd.json", "v1\\x.json", "v1/./x.json", "x.json"])
def test_unsafe_index_paths_are_refused(reg: Path, bad: str) -> None:
    index = json.loads((reg / "index.json").read_text())
    index["files"].insert(0, dict(index["files"][0], path=bad))
    (reg / "index.json").write_bytes(canonical_bytes(index))
    report = validate_registry(reg)
    assert_refused(report, "index.json", f"path {bad!r}")
    assert_refused(report, "index.json", "schema: at /files/0/path")


def test_index_files_sorted_and_unique(reg: Path) -> None:
    index = json.loads((reg / "index.json").read_text())
    index["files"].append(index["files"][0])
    (reg / "index.json").write_bytes(canonical_bytes(index))
    report = validate_registry(reg)
    assert_refused(report, "index.json", "files are not sorted by path")
    assert_refused(report, "index.json", f"{index['files'][0]['path']} is listed more than once")


def test_not_a_folder(tmp_path: Path) -> None:
    report = validate_registry(tmp_path / "nope")
    assert not report.ok and "not a folder" in report.problems[0].message


def test_report_lists_every_problem(reg: Path) -> None:
    (reg / EDM).write_bytes(b"{")
    (reg / VP).unlink()
    text = format_report(validate_registry(reg))
    assert f"{EDM}: invalid JSON" in text and f"{VP}: listed in index.json but missing" in text
    assert text.splitlines()[-1].endswith("file(s)")


# ---- committed registry


def test_committed_registry_validates() -> None:
    report = validate_registry(REPO / "registry")
    assert report.ok, format_report(report)


# ---- _canonical


def test_canonical_bytes_exact_shape() -> None:
    assert canonical_bytes({"b": [1, 0.1, 1e-3], "a": "λ", "c": {}}) == (
        b'{\n "a": "\\u03bb",\n "b": [\n  1,\n  0.1,\n  0.001\n ],\n "c": {}\n}\n'
    )


def test_canonical_bytes_deterministic_and_order_free() -> None:
    a = {"x": 1.0, "y": [3, 2], "z": {"q": None, "p": True}}
    b = {"z": {"p": True, "q": None}, "y": [3, 2], "x": 1.0}
    assert canonical_bytes(a) == canonical_bytes(b) == canonical_bytes(json.loads(canonical_bytes(a)))


def test_canonical_bytes_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"x": float("nan")})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_round_trip(value) -> None:
    data = canonical_bytes(value)
    assert data.endswith(b"\n") and data.isascii()
    assert json.loads(data) == value
    assert canonical_bytes(json.loads(data)) == data


def test_sha256_of() -> None:
    assert sha256_of(b"abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"one\n")
    atomic_write_bytes(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert os.listdir(tmp_path) == ["f.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_leaves_a_world_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"one\n")
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_write_cleans_up_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old\n")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]  # the write itself fails
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["f.json"]


def test_atomic_write_cleans_up_when_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src, dst):
        raise OSError("simulated rename failure")

    monkeypatch.setattr(fmt.os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(tmp_path / "f.json", b"new\n")
    assert os.listdir(tmp_path) == []


def test_serialisation_failure_touches_nothing(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old\n")
    with pytest.raises(ValueError):
        atomic_write_bytes(target, canonical_bytes({"x": float("inf")}))
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["f.json"]


def _mutations(doc: object, path: tuple = ()):
    """``(path, mutated copy)`` for every key and item of ``doc``: deleted, replaced by a value of each JSON
    type (and out-of-range numbers), and an extra key in every object."""
    import copy

    values = [None, True, "x", "", -1, 0, 2.5, 10**6, [], {}, [1.5], ["a", "a"]]
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, child in list(children)[:40]:
        for value in [*values, "delete"]:
            if value == "delete" and not isinstance(doc, dict):
                continue
            mutated = copy.deepcopy(doc)
            if value == "delete":
                del mutated[key]
            else:
                mutated[key] = value
            yield (*path, key), mutated
        for sub_path, sub in _mutations(child, (*path, key)):
            mutated = copy.deepcopy(doc)
            mutated[key] = sub
            yield sub_path, mutated
    if isinstance(doc, dict):
        yield (*path, "+"), {**doc, "unexpected_key": 1}


@pytest.mark.parametrize("kind", ["index", "file"])
def test_the_loaders_compiled_schemas_refuse_what_jsonschema_refuses(kind: str) -> None:
    """verify() validates with `optsteps_loader._schema` (compiled, stdlib); builder validate with jsonschema.
    On every one-step mutation of a real document they accept and refuse the same."""
    from optsteps_loader import _schema

    compiled = _schema.compile_schema(load_schema(kind))
    strict = schema_validator(kind)
    if kind == "index":
        doc = json.loads((REPO / "registry/index.json").read_text())
        doc["files"] = doc["files"][:2]
    else:
        doc = json.loads((REPO / "registry/v1/flow-shift3.json").read_text())
        doc["entries"] = doc["entries"][:1]
        doc["solver_entries"] = [doc["solver_entries"][0], doc["solver_entries"][-1]]
    assert compiled(doc) is None and strict.is_valid(doc)
    count = refused = 0
    for path, mutated in itertools.islice(_mutations(doc), 0, None, 4):  # every 4th: a spread, in seconds
        count += 1
        refused += compiled(mutated) is not None
        assert (compiled(mutated) is None) == strict.is_valid(mutated), (path, compiled(mutated))
    assert count > 500 and refused > count // 4
