"""The loader reading a registry while the sweep's writer rebuilds it: one registry, old or new, never a
false "corrupt" (the writer's side is tests/test_sweep_write.py)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from builder.registry.sweep import write
from optsteps_loader import clear_cache, get, reader
from optsteps_loader import format as fmt
from optsteps_loader.errors import RegistryIntegrityError
from tests import registry_factory as factory

pytestmark = pytest.mark.usefixtures("fresh_loader_cache")

OLD_VERSION, NEW_VERSION = factory.DATA_VERSION, "2099.01.01"
WRITES_PER_READ = fmt.REBUILD_RETRIES - 1


def _versions(tmp_path: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Two registries whose every file differs (their data_version), as path -> bytes."""
    files = {"v1/edm.json": factory.make_file("edm", (4, 6), (3,), (1,))}
    files["v1/vp-linear.json"] = factory.make_file("vp-linear", (3, 5), (3,), (1,))
    out = []
    for version in (OLD_VERSION, NEW_VERSION):
        for doc in files.values():
            doc["data_version"] = version
        root = tmp_path / version
        factory.write_registry(root, files)
        index = json.loads((root / "index.json").read_bytes())
        index["data_version"] = version
        (root / "index.json").write_bytes(factory.canonical_bytes(index))
        out.append({rel: (root / rel).read_bytes() for rel in [*files, "index.json"]})
    return out[0], out[1]


def _reader(folder: str, reads: int, conn, progress) -> None:
    seen = {OLD_VERSION: 0, NEW_VERSION: 0, "errors": []}
    for i in range(reads):
        progress.value = i
        if i % 3 == 0:
            clear_cache()  # cold reads as well as warm ones
        try:
            for schedule in ("edm", "vp-linear"):
                steps = get(schedule, 4 if schedule == "edm" else 5, source=folder)
                seen[steps.provenance["data_version"]] += 1
        except RegistryIntegrityError as err:
            seen["errors"].append(str(err))
    conn.send(seen)


def test_get_during_rebuilds_sees_old_or_new_never_a_false_corruption(tmp_path):
    old, new = _versions(tmp_path)
    folder = tmp_path / "registry"
    write.write_registry(folder, old)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    progress = context.Value("i", 0)
    reader = context.Process(target=_reader, args=(str(folder), 300, send, progress))
    reader.start()
    writes = 0
    while reader.is_alive() and not receive.poll() and writes < 4000:
        # At most WRITES_PER_READ rebuilds per reader iteration, so no single read sees more rebuilds than
        # the loader retries for (a writer rebuilding back to back forever could starve any reader).
        if writes < WRITES_PER_READ * (progress.value + 1):
            write.write_registry(folder, new if writes % 2 == 0 else old)
            writes += 1
    seen = receive.recv()
    reader.join(timeout=60)
    assert seen["errors"] == [], seen["errors"][:3]
    assert seen[OLD_VERSION] + seen[NEW_VERSION] == 600 and writes > 0, seen


def test_a_file_replaced_mid_write_is_read_from_the_staged_copy(tmp_path):
    old, new = _versions(tmp_path)
    folder = tmp_path / "registry"
    write.write_registry(folder, old)
    assert get("edm", 4, source=folder).provenance["data_version"] == OLD_VERSION
    staging = folder / fmt.STAGING  # the writer's steps 1 and 2, before the index is replaced
    staging.mkdir()
    (staging / fmt.sha256_id(old["v1/edm.json"])[7:]).write_bytes(old["v1/edm.json"])
    fmt.atomic_write_bytes(folder / "v1/edm.json", new["v1/edm.json"])
    clear_cache()
    assert get("edm", 4, source=folder).provenance["data_version"] == OLD_VERSION
    (staging / fmt.sha256_id(old["v1/edm.json"])[7:]).write_bytes(b"{}")  # a staged copy must match too
    clear_cache()
    with pytest.raises(RegistryIntegrityError, match="sha256 mismatch"):
        get("edm", 4, source=folder)


def test_a_record_of_a_replaced_index_is_read_from_the_new_index(tmp_path):
    old, new = _versions(tmp_path)
    folder = tmp_path / "registry"
    write.write_registry(folder, old)
    src = reader.resolve_source(str(folder))
    stale = reader.load_index(src).by_path["v1/edm.json"]
    write.write_registry(folder, new)
    data = reader.load_data(src, stale)
    assert data.obj["data_version"] == NEW_VERSION and data.rec is not stale
