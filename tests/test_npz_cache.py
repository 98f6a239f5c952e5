"""builder.npz_cache: keyed .npz files, read without pickle, written atomically; a foreign or garbled file is a miss."""

from __future__ import annotations

import numpy as np
import pytest

from builder import npz_cache


def test_a_stored_result_is_read_back_under_its_key_only(tmp_path):
    key, other = npz_cache.key_of({"a": 1, "b": [2, 3]}), npz_cache.key_of({"a": 1, "b": [2, 4]})
    assert key == npz_cache.key_of({"b": [2, 3], "a": 1})  # the key of a spec, not of its order
    assert npz_cache.load(tmp_path, "truth", key) is None
    npz_cache.store(tmp_path, "truth", key, x=np.arange(3.0), n=np.array(7))
    hit = npz_cache.load(tmp_path, "truth", key)
    assert set(hit) == {"x", "n"} and hit["x"].tolist() == [0.0, 1.0, 2.0] and int(hit["n"]) == 7
    assert npz_cache.load(tmp_path, "teacher", key) is None  # another prefix is another file
    assert npz_cache.load(tmp_path, "truth", other) is None
    assert [p.name for p in tmp_path.iterdir()] == [f"truth-{key[:32]}.npz"]  # no temporary file left behind


def test_a_foreign_garbled_or_pickled_file_is_a_miss_and_is_overwritten(tmp_path):
    key = npz_cache.key_of({"k": 1})
    path = tmp_path / f"truth-{key[:32]}.npz"
    np.savez(path, key=np.array(key[:32] + "0" * 32), x=np.zeros(2))  # same file name, another full key
    assert npz_cache.load(tmp_path, "truth", key) is None
    path.write_bytes(b"not an npz file")
    assert npz_cache.load(tmp_path, "truth", key) is None
    np.savez(path, key=np.array(key), x=np.array([{"pickled": True}], dtype=object))
    assert npz_cache.load(tmp_path, "truth", key) is None  # an object array would need pickle: refused
    npz_cache.store(tmp_path, "truth", key, x=np.ones(2))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] + whole[-22:])  # a zip whose central directory points nowhere
    assert npz_cache.load(tmp_path, "truth", key) is None
    npz_cache.store(tmp_path, "truth", key, x=np.ones(2))
    assert npz_cache.load(tmp_path, "truth", key)["x"].tolist() == [1.0, 1.0]


def test_the_folder_follows_cache_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTSTEPS_TEST_CACHE", str(tmp_path / "env"))
    assert npz_cache.folder(True, "OPTSTEPS_TEST_CACHE", "x") == tmp_path / "env"
    assert npz_cache.folder(tmp_path / "given", "OPTSTEPS_TEST_CACHE", "x") == tmp_path / "given"
    assert npz_cache.folder(False, "OPTSTEPS_TEST_CACHE", "x") is None
    monkeypatch.delenv("OPTSTEPS_TEST_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert npz_cache.folder(True, "OPTSTEPS_TEST_CACHE", "x") == tmp_path / "home" / ".cache" / "optsteps" / "x"
    npz_cache.store(None, "truth", "0" * 64, x=np.zeros(1))  # cache=False: nothing written anywhere
    assert npz_cache.load(None, "truth", "0" * 64) is None
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("prefix", ["truth", "teacher"])
def test_store_creates_the_folder(tmp_path, prefix):
    where = tmp_path / "a" / "b"
    npz_cache.store(where, prefix, "f" * 64, x=np.zeros(1))
    assert (where / f"{prefix}-{'f' * 32}.npz").is_file()
