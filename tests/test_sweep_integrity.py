"""The sweep under hostile input: corrupt kept files, foreign folders, bad arguments, unusable caches."""

from __future__ import annotations

import dataclasses
import errno
import inspect
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli import REPO_ROOT, cli
from builder.registry import sweep
from builder.registry._canonical import canonical_bytes, sha256_of
from builder.registry.sweep import cache
from tests import registry_factory as factory

TINY = factory.tiny_spec()


def _invoke(*args: str):
    out = CliRunner().invoke(cli, ["sweep", "--no-progress", *args])
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception  # never a traceback
    assert "Traceback" not in out.output
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def registry_copy(tmp_path) -> Path:
    """The shipped registry's EDM and VP-linear files at NFE 5 and 13 (`registry_factory.cut_copy`)."""
    files = ("v1/edm.json", "v1/vp-linear.json")
    return factory.cut_copy(REPO_ROOT / "registry", tmp_path / "registry", files, nfe=(5, 13))


def _edm_sigma_80_7(registry: Path, *, rehash: bool) -> None:
    """σ 80.0 → 80.7 in v1/edm.json (optionally with the index's hash and size updated to match)."""
    path = registry / "v1/edm.json"
    data = path.read_bytes()
    assert b"80.0," in data
    new = data.replace(b"80.0,", b"80.7,", 1)
    path.write_bytes(new)
    if rehash:
        index = json.loads((registry / "index.json").read_bytes())
        record = next(r for r in index["files"] if r["path"] == "v1/edm.json")
        record.update(sha256=sha256_of(new), bytes=len(new))
        (registry / "index.json").write_bytes(canonical_bytes(index))


@pytest.mark.parametrize("rehash", [False, True], ids=["stale-hash", "consistent-hash"])
def test_only_refuses_to_resign_a_changed_file(registry_copy, rehash):
    _edm_sigma_80_7(registry_copy, rehash=rehash)
    before = _files(registry_copy)
    out = _invoke("--only", "nfe=5", "--schedule", "vp-linear", "--registry", str(registry_copy))
    assert out.exit_code == 1
    assert "v1/edm.json" in out.output and "without --only" in out.output and "restore" in out.output
    assert _files(registry_copy) == before  # nothing written, nothing solved
    check = _invoke("--check", "--only", "nfe=5", "--schedule", "vp-linear", "--registry", str(registry_copy))
    assert check.exit_code == 1 and "byte-identical" not in check.output and "v1/edm.json" in check.output


def test_kept_entries_of_an_intact_registry(registry_copy):
    kept = sweep.kept_entries(registry_copy)
    assert ("v1/edm.json", 13, 1, 1.0) in kept and kept[("v1/edm.json", 13, 1, 1.0)]["nfe"] == 13


def test_a_foreign_folder_is_refused_without_force(tmp_path):
    folder = tmp_path / "project"
    (folder / "vendor").mkdir(parents=True)
    (folder / "vendor/package.json").write_text("{}")
    with pytest.raises(sweep.SweepError, match="neither empty nor a registry.*--force"):
        sweep.build(folder, spec=TINY, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert _files(folder) == {"vendor/package.json": b"{}"}
    out = _invoke("--registry", str(folder), "--cache-dir", str(tmp_path / "cache"))
    assert out.exit_code == 1 and "--force" in out.output
    sweep.build(folder, spec=TINY, cache_dir=tmp_path / "cache", workers=1, progress=False, force=True)
    assert (folder / "vendor/package.json").read_text() == "{}"
    assert set(_files(folder)) == {"vendor/package.json", "index.json", "v1/vp-linear.json"}


def test_only_files_the_old_index_listed_are_deleted(registry_copy, tmp_path):
    (registry_copy / "v1/my-notes.json").write_text("{}")
    (registry_copy / "v2").mkdir()
    (registry_copy / "v2/other.json").write_text("{}")
    (registry_copy / "vendor").mkdir()
    (registry_copy / "vendor/package.json").write_text("{}")
    files = sweep.build(tmp_path / "tiny", spec=TINY, cache_dir=tmp_path / "cache", workers=1, progress=False)
    sweep.write_registry(registry_copy, files)
    assert set(_files(registry_copy)) == {
        "index.json",
        "v1/vp-linear.json",  # rewritten
        "v1/my-notes.json",  # never listed: kept
        "v2/other.json",
        "vendor/package.json",
    }  # v1/edm.json and the other schedule files were listed by the old index and not by the new one


def test_an_unlisted_file_in_the_way_is_not_overwritten(tmp_path):
    folder = tmp_path / "registry"
    files = sweep.build(folder, spec=TINY, cache_dir=tmp_path / "cache", workers=1, progress=False)
    edm = dataclasses.replace(TINY, schedules=(*TINY.schedules, {**sweep.load_spec().schedules[4]}))
    (folder / "v1/edm.json").write_text("mine")
    with pytest.raises(sweep.SweepError, match="edm.json exists but .* does not list it"):
        sweep.build(folder, spec=edm, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert (folder / "v1/edm.json").read_text() == "mine" and _files(folder)["index.json"] == files["index.json"]


def test_bad_spec_is_an_error_naming_key_and_file(tmp_path):
    raw = json.loads(sweep.SPEC_PATH.read_text())
    del raw["data_version"]
    spec = tmp_path / "bad-spec.json"
    spec.write_text(json.dumps(raw))
    out = _invoke("--spec", str(spec), "--registry", str(tmp_path / "r"))
    assert out.exit_code == 1 and "'data_version'" in out.output and "bad-spec.json" in out.output
    for text, needle in [("{", "not valid JSON"), ("[]", "JSON object"), ('{"nfe": 1}', "missing key")]:
        spec.write_text(text)
        with pytest.raises(sweep.SweepError, match=needle):
            sweep.load_spec(spec)
    raw = json.loads(sweep.SPEC_PATH.read_text())
    raw["schedules"][0]["name"] = "vp-lineer"
    spec.write_text(json.dumps(raw))
    with pytest.raises(sweep.SweepError, match="vp-lineer"):
        sweep.load_spec(spec)


@pytest.mark.parametrize("only", ["nfe=abc", "order=1.5", "p=x", "shift=nan", "nfe=" + "9" * 5000])
def test_only_with_a_value_of_the_wrong_kind_is_a_bad_parameter(tmp_path, only):
    out = _invoke("--only", only, "--registry", str(tmp_path / "r"))
    assert out.exit_code == 2 and "--only" in out.output and len(out.output) < 2000


def test_only_matching_nothing_is_an_error_and_builds_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _invoke("--only", "nfe=99", "--registry", str(empty), "--cache-dir", str(tmp_path / "cache"))
    assert out.exit_code == 1 and "matches no task" in out.output and "nfe=3,4" in out.output
    assert not any(empty.iterdir()) and not (tmp_path / "cache").exists()
    check = _invoke("--check", "--only", "nfe=99", "--registry", str(REPO_ROOT / "registry"))
    assert check.exit_code == 1 and "matches no task" in check.output


def test_an_unusable_cache_folder_is_named_with_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = _invoke("--registry", str(tmp_path / "r"), "--cache-dir", str(blocker / "cache"))
    assert out.exit_code == 1 and str(blocker / "cache") in out.output
    assert "--cache-dir" in out.output and "OPTSTEPS_BUILD_CACHE" in out.output

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "atomic_write_bytes", no_space)
    with pytest.raises(sweep.SweepError, match="No space left on device.*--cache-dir"):
        sweep.build(tmp_path / "r", spec=TINY, cache_dir=tmp_path / "cache", workers=1, progress=False)
    with pytest.raises(sweep.SweepError, match="No space left"):
        cache.write_cached(tmp_path, "entry-x", {"entry": 1})


def test_no_dead_code():
    assert not hasattr(sweep, "compute")
    assert list(inspect.signature(sweep.assemble).parameters) == ["spec", "entries_by_file", "solver_entries_by_file"]
