"""The release check that a built wheel or sdist packages exactly the registry folder (``release.yml``)."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["dist_registry_problems"]

DEFAULT_REGISTRY = Path(__file__).resolve().parents[2] / "registry"


def dist_registry_problems(archive: str | Path, registry: str | Path = DEFAULT_REGISTRY) -> list[str]:
    """Compare the registry inside a wheel (``optsteps_loader/registry/``) or sdist (``<name>/registry/``)
    with ``registry``: the same set of files (``index.json`` and exactly the files it lists) with the same
    bytes. Returns the differences (empty: they agree)."""
    archive, root = Path(archive), Path(registry)
    index_bytes = (root / "index.json").read_bytes()
    expected = {"index.json": index_bytes}
    for rec in json.loads(index_bytes)["files"]:
        expected[rec["path"]] = (root / rec["path"]).read_bytes()
    found: dict[str, bytes] = {}
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith("optsteps_loader/registry/") and not name.endswith("/"):
                    found[name.removeprefix("optsteps_loader/registry/")] = zf.read(name)
    elif archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                parts = PurePosixPath(member.name).parts
                if member.isfile() and len(parts) > 2 and parts[1] == "registry":
                    found["/".join(parts[2:])] = tf.extractfile(member).read()
    else:
        return [f"{archive.name}: neither a wheel (.whl) nor an sdist (.tar.gz)"]
    problems = [
        f"{archive.name}: registry/{p} is listed in the index but not packaged"
        for p in sorted(set(expected) - set(found))
    ]
    problems += [
        f"{archive.name}: registry/{p} is packaged but not listed in the index"
        for p in sorted(set(found) - set(expected))
    ]
    problems += [
        f"{archive.name}: registry/{p} differs from {root / p}"
        for p in sorted(set(found) & set(expected))
        if found[p] != expected[p]
    ]
    return problems
