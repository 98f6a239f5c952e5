"""Hostile and clumsy inputs to the loader: folders with FIFOs, devices, escaping symlinks, huge or deeply
nested files; consistently hashed files that break an invariant; absurd arguments. Each must end in one of
the documented errors (or a clean ``Error:`` from the CLI), quickly: every call runs under a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optsteps_loader import (
    RegistryIntegrityError,
    ScheduleNotFoundError,
    get,
    verify,
)
from optsteps_loader import format as fmt
from tests import registry_factory as factory
from tests.registry_factory import bounded

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("fresh_loader_cache")  # an empty loader cache (tests/conftest.py)


@pytest.fixture
def work(tmp_path) -> Path:
    return factory.make_registry(tmp_path / "reg", schedules=("vp-linear", "flow"), nfes=(3, 4, 5))


def refused(call, error=RegistryIntegrityError, match: str = "") -> str:
    kind, value = bounded(call)
    assert kind == "raised", f"accepted: {value!r}"
    assert isinstance(value, error), f"{type(value).__name__}: {value}"
    assert match in str(value), str(value)
    return str(value)


def edit_entry(root: Path, rel: str, change, nfe: int = 4, order: int = 3, p: float = 1) -> None:
    """Apply ``change`` to one entry of ``rel`` and re-hash the index (a consistently hashed edit)."""
    obj = factory.read_json(root, rel)
    entry = next(e for e in obj["entries"] if (e["nfe"], e["order"], e["p"]) == (nfe, order, p))
    change(entry)
    factory.rewrite(root, rel, obj)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optsteps_loader", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


# --- hostile folders -------------------------------------------------------------------------------------


def test_deeply_nested_quality_is_refused_everywhere(work):
    deep: object = 1
    for _ in range(500):
        deep = {"k": deep}
    edit_entry(work, "v1/vp-linear.json", lambda e: e.__setitem__("quality", deep))
    refused(lambda: get("vp-linear", 4, source=work), match="nested more than")
    refused(lambda: verify(work), match="nested more than")
    for command in ("show", "verify"):
        args = ["show", "vp-linear", "--nfe", "4"] if command == "show" else ["verify"]
        done = cli(*args, "--source", str(work))
        assert done.returncode == 1 and "Traceback" not in done.stderr and "nested" in done.stderr, done.stderr


@pytest.mark.parametrize("target", ["v1/vp-linear.json", "index.json"])
def test_symlink_to_dev_zero_is_refused_unread(work, target):
    (work / target).unlink()
    os.symlink("/dev/zero", work / target)
    refused(lambda: get("vp-linear", 4, source=work))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("target", ["v1/vp-linear.json", "index.json"])
def test_fifo_is_refused_without_hanging(work, target):
    (work / target).unlink()
    os.mkfifo(work / target)
    refused(lambda: get("vp-linear", 4, source=work), match="not a regular file")
    refused(lambda: verify(work), match="not a regular file")


def test_symlink_leaving_the_folder_is_refused(work, tmp_path):
    outside = tmp_path / "outside.json"
    os.replace(work / "v1/vp-linear.json", outside)
    os.symlink(outside, work / "v1/vp-linear.json")
    refused(lambda: get("vp-linear", 4, source=work), match="outside the registry folder")
    refused(lambda: verify(work), match="outside the registry folder")


def test_symlink_inside_the_folder_is_fine(work):
    os.replace(work / "v1/vp-linear.json", work / "v1/real.json")
    os.symlink("real.json", work / "v1/vp-linear.json")
    assert get("vp-linear", 4, source=work).nfe == 4


def test_oversized_file_is_refused_before_reading(work):
    path = work / "v1/vp-linear.json"
    with open(path, "r+b") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: 200 MB that are never written nor read
    refused(lambda: get("vp-linear", 4, source=work), match="limit of a registry file")


# --- consistently hashed files that break an invariant -------------------------------------------------


def _scaled(key: str, factor: float):
    return lambda e: e.__setitem__(key, [x * factor for x in e[key]])


def _swap(a: str, b: str):
    return lambda e: e.update({a: e[b], b: e[a]})


def _reverse(key: str):
    return lambda e: e[key].reverse()


def _lambda_off(e: dict) -> None:
    e["lambda"][2] += 1e-6


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_scaled("sigma_t", 1e300), "alpha_t^2 + sigma_t^2"),
        (_swap("alpha_t", "sigma_t"), "log(alpha_t) - log(sigma_t)"),
        (_reverse("sigmas"), "sigmas not strictly decreasing"),
        (_reverse("timesteps"), "timesteps increase"),
        (_lambda_off, "log(alpha_t) - log(sigma_t)"),
        (lambda e: e.__setitem__("step_orders", [1, 2, 3, 4]), "exceeds order 3"),
        (lambda e: e.__setitem__("step_orders", [2, 2, 3, 3]), "has only 1 earlier node"),
        (lambda e: e.__setitem__("timestep_collisions", [[0, 1]]), "timestep_collisions"),
    ],
)
def test_broken_invariant_is_refused_by_get_and_verify(work, change, match):
    edit_entry(work, "v1/vp-linear.json", change)
    refused(lambda: get("vp-linear", 4, source=work), match=match)
    refused(lambda: verify(work), match=match)
    assert get("vp-linear", 5, source=work).nfe == 5  # the other entries stay readable


@pytest.mark.parametrize(
    "encode",
    [lambda b: b"\xef\xbb\xbf" + b, lambda b: b.decode().encode("utf-16")],
    ids=["bom", "utf-16"],
)
def test_bom_and_utf16_are_refused(work, encode):
    path = work / "v1/vp-linear.json"
    path.write_bytes(encode(path.read_bytes()))
    factory.rehash_index(work)
    refused(lambda: get("vp-linear", 4, source=work), match="byte-order mark")
    refused(lambda: verify(work), match="byte-order mark")


def test_duplicate_keys_and_huge_integers_are_refused(work):
    path = work / "v1/vp-linear.json"
    text = path.read_text()
    assert text.startswith('{\n "data_version": ')
    path.write_text(text.replace("{", '{\n "data_version": "x",', 1))
    factory.rehash_index(work)
    refused(lambda: get("vp-linear", 4, source=work), match="duplicate key 'data_version'")
    path.write_text(text.replace("{", '{\n "big": 1' + "0" * 5000 + ",", 1))
    factory.rehash_index(work)
    refused(lambda: get("vp-linear", 4, source=work), match="digits")


def test_index_with_swapped_flow_shifts_is_refused(work):
    index = factory.read_json(work, "index.json")
    flows = [rec for rec in index["files"] if rec["schedule"] == "flow"]
    flows[0]["params"], flows[1]["params"] = flows[1]["params"], flows[0]["params"]
    factory.write_bytes(work / "index.json", factory.canonical_bytes(index))
    refused(lambda: get("flow", 4, shift=3, source=work), match="schedule.params")
    refused(lambda: verify(work), match="schedule.params")


def test_padded_file_with_a_consistent_hash_is_refused(work, monkeypatch):
    path = work / "v1/vp-linear.json"
    path.write_bytes(path.read_bytes() + b" " * (1 << 16))
    factory.rehash_index(work)
    monkeypatch.setattr(fmt, "MAX_FILE_BYTES", 1 << 16)
    refused(lambda: get("vp-linear", 4, source=work), match="limit of a registry file")


# --- absurd arguments -------------------------------------------------------------------------------------


def test_absurd_arguments_give_clean_errors(work):
    assert "nfe is the number of model calls, got an int of" in refused(
        lambda: get("vp-linear", 10**5000, source=work), ValueError
    )
    assert "embedded" not in refused(lambda: get("vp-linear", 4, source="\0"), ValueError, "source must name")
    refused(lambda: get("vp-linear", 4, source=""), ValueError, "source must name")
    text = refused(lambda: get("x" * 100_000, 4, source=work), ScheduleNotFoundError, "100000 characters")
    assert len(text) < 1000


def test_empty_registry_dir_variable_means_unset(monkeypatch):
    monkeypatch.setenv("OPTSTEPS_REGISTRY_DIR", "")
    assert get("vp-linear", 6).nfe == 6  # the bundled registry, not the current directory


def test_format_helpers_agree_with_independent_computations(tmp_path):
    import hashlib

    data = b'{"a": 1}\n'
    assert fmt.sha256_id(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=False)
    if blob.returncode == 0:
        assert fmt.git_blob_sha1(data) == blob.stdout.decode().strip()
    fmt.atomic_write_bytes(tmp_path / "x.json", fmt.canonical_bytes({"b": [1, 0.1], "a": 2}))
    assert (tmp_path / "x.json").read_bytes() == b'{\n "a": 2,\n "b": [\n  1,\n  0.1\n ]\n}\n'
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
    assert json.loads(fmt.canonical_bytes({"x": 0.1 + 0.2}))["x"] == 0.1 + 0.2


# --- one path-safety rule (`format.unsafe_path`) for get, verify and builder validate -------------------


def _move_data_file(root: Path, new_rel: str, *, move: bool = True) -> None:
    """List v1/vp-linear.json under ``new_rel`` in a consistently written index (the file moved there when
    ``move`` and the name can exist)."""
    if move:
        (root / new_rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / "v1/vp-linear.json", root / new_rel)
    index = factory.read_json(root, "index.json")
    for rec in index["files"]:
        if rec["path"] == "v1/vp-linear.json":
            rec["path"] = new_rel
    index["files"].sort(key=lambda r: r["path"])
    factory.write_bytes(root / "index.json", fmt.canonical_bytes(index))


def _index_outside(root: Path) -> None:
    outside = root.parent / "elsewhere"
    outside.mkdir()
    os.replace(root / "index.json", outside / "index.json")
    os.symlink(outside / "index.json", root / "index.json")


def _data_outside(root: Path) -> None:
    os.replace(root / "v1/vp-linear.json", root.parent / "outside.json")
    os.symlink(root.parent / "outside.json", root / "v1/vp-linear.json")


HOSTILE_PATHS = {
    "300 characters": lambda root: _move_data_file(root, "v1/" + "a" * 300 + ".json", move=False),
    "non-ASCII": lambda root: _move_data_file(root, "v1/vp-lin\u00e9ar.json"),
    "dot-dot": lambda root: _move_data_file(root, "v1/../v1/vp-linear.json", move=False),
    "hidden": lambda root: _move_data_file(root, "v1/.vp-linear.json"),
    "not .json": lambda root: _move_data_file(root, "v1/vp-linear.txt"),
    "space": lambda root: _move_data_file(root, "v1/vp linear.json"),
    "outside v<N>/": lambda root: _move_data_file(root, "data/vp-linear.json"),
    "index.json a symlink out of the folder": _index_outside,
    "data file a symlink out of the folder": _data_outside,
}


@pytest.mark.parametrize("case", HOSTILE_PATHS)
def test_get_verify_and_validate_agree_on_hostile_paths(work, case):
    from builder.registry.validate import validate_registry

    HOSTILE_PATHS[case](work)
    refused(lambda: get("vp-linear", 4, source=work))
    refused(lambda: verify(work))
    kind, report = bounded(lambda: validate_registry(work))
    assert kind == "ok", f"validate raised {report!r}"
    assert not report.ok, "validate said OK"
    assert any("unsafe path" in m or "outside the registry folder" in m for m in report.messages()), report
