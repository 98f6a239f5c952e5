"""Writing a registry folder so that readers see the old registry or the new one, never a mix.

The file names are part of the format (``index.json``, ``v1/<schedule>.json``) and the folder keeps its
identity, so a write replaces files in place. ``index.json`` is the commit point: it lists every data file
with its sha256, and a registry *is* what its index says. The sequence:

1. stage: copy the current bytes of every data file about to be replaced or deleted into
   ``.optsteps-staged/<sha256 hex>`` (fsynced);
2. replace each changed data file (atomically, one by one) and delete the files the old index listed and
   the new one does not;
3. replace ``index.json`` (atomically): the new registry is committed;
4. remove the staging folder.

A reader that follows the registry format's rule (``optsteps_loader.format.staged_bytes``, which the loader
follows too; :func:`read_snapshot` here: read the index; take each listed file's bytes from its path, or, if
they do not hash to the listed sha256, from ``.optsteps-staged/<hex>``; if neither matches and the index has
changed meanwhile, start again) gets every file of one index, old or new. A write
killed before step 3 leaves the previous index with each of its files' bytes at their path or staged, so the
previous registry stays readable, and the next write (:func:`recover`) puts the staged bytes back first.

Only files the previous index listed are ever deleted; a folder that is neither empty nor a registry, or an
unlisted file where the new registry wants to write, is refused unless the caller forces it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .._canonical import atomic_write_bytes, sha256_of
from .spec import SweepError
from optsteps_loader import format as fmt

INDEX = "index.json"
STAGING = fmt.STAGING
_DATA_PATH = re.compile(r"v[0-9]+(/[A-Za-z0-9_][A-Za-z0-9._-]*)+\.json")
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
_STAGED_NAME = re.compile(r"[0-9a-f]{64}|\..*\.tmp")  # staged copies, and atomic writes cut off mid-way


def read_index(registry: Path) -> tuple[bytes, dict[str, str]] | None:
    """The index's bytes and its {path: sha256} listing; None if the folder has no index.json. An index.json
    that is not a registry index is a :class:`SweepError` (nothing in such a folder is ours to replace)."""
    data = _read_or_none(registry / INDEX)
    if data is None:
        return None
    return data, _listing(registry, data)


def _listing(registry: Path, data: bytes) -> dict[str, str]:
    try:
        doc = json.loads(data)
        records = doc["files"]
        listing = {rec["path"]: rec["sha256"] for rec in records}
    except (ValueError, RecursionError, KeyError, TypeError):
        listing = None
    if listing is None or not all(
        isinstance(p, str) and _DATA_PATH.fullmatch(p) and isinstance(h, str) and _HASH.fullmatch(h)
        for p, h in listing.items()
    ):
        raise SweepError(
            f"{registry / INDEX} is not a registry index the sweep can read: restore it (e.g. from git), or "
            "write into an empty folder"
        )
    return listing


def read_snapshot(registry: Path, *, attempts: int = fmt.REBUILD_RETRIES) -> tuple[bytes, dict[str, bytes | None]] | None:
    """The index's bytes and every listed file's bytes, all of one registry version (None: no index).

    The index is held open while the files are read: if a file's bytes match neither at its path nor staged,
    and ``index.json`` still names the same open file (same device and inode; an open file's inode cannot be
    reused, so an index rewritten with the same bytes is still seen as changed), the file was altered after
    the registry was written and maps to None; if the index was replaced meanwhile, the read starts again.
    If the index keeps changing (another writer), :class:`SweepError` after ``attempts`` tries.
    """
    index_path = registry / INDEX
    for _ in range(attempts):
        try:
            handle = open(index_path, "rb")  # noqa: SIM115 - held open across the reads below
        except (FileNotFoundError, NotADirectoryError):
            return None
        with handle:
            index_bytes = handle.read()
            listing = _listing(registry, index_bytes)
            files = {rel: _listed_bytes(registry, rel, sha) for rel, sha in listing.items()}
            unchanged = fmt.still_at(index_path, fmt.identity(os.fstat(handle.fileno())))
            if all(data is not None for data in files.values()) or unchanged:
                return index_bytes, files
    raise SweepError(f"{registry} changed {attempts} times while it was being read: is another sweep writing it?")


def _listed_bytes(registry: Path, rel: str, sha: str) -> bytes | None:
    """The bytes of a listed file that hash to ``sha``: at its path, else staged by a write in progress."""
    data = _read_or_none(registry / rel)
    if data is not None and sha256_of(data) == sha:
        return data
    return fmt.staged_bytes(registry, sha)


def check_target(registry: Path, paths: Iterable[str], *, force: bool = False) -> None:
    """Refuse (:class:`SweepError`) a folder that is neither empty nor a registry, and an existing file at one
    of ``paths`` that the folder's index does not list (someone else's file), unless ``force``."""
    if force or not registry.exists():
        return
    if not registry.is_dir():
        raise SweepError(f"{registry} is not a folder")
    found = read_index(registry)
    if found is None:
        if any(entry.name != STAGING for entry in registry.iterdir()):
            raise SweepError(
                f"{registry} is neither empty nor a registry (no {INDEX}): refusing to write into it. Choose an "
                "empty or new folder, or pass --force (files the registry needs are then overwritten; nothing "
                "else is deleted)"
            )
        return
    listed = found[1]
    for rel in paths:
        if rel not in listed and (registry / rel).exists():
            raise SweepError(
                f"{registry / rel} exists but {registry / INDEX} does not list it: refusing to overwrite it. "
                "Move it away, or pass --force"
            )


def write_registry(registry: Path, files: dict[str, bytes], *, force: bool = False) -> None:
    """Make ``registry`` hold ``files`` (path → bytes, ``index.json`` included), in the module's sequence."""
    registry.mkdir(parents=True, exist_ok=True)
    recover(registry)
    data_files = {rel: data for rel, data in files.items() if rel != INDEX}
    check_target(registry, data_files, force=force)
    found = read_index(registry)
    listed_before = found[1] if found else {}
    stale = sorted(set(listed_before) - set(data_files))
    changed = sorted(rel for rel, data in data_files.items() if _read_or_none(registry / rel) != data)
    if not changed and not stale and (found and found[0]) == files[INDEX]:
        return
    staging = registry / STAGING
    for rel in changed + stale:
        current = _read_or_none(registry / rel)
        if current is not None:
            staging.mkdir(exist_ok=True)
            atomic_write_bytes(staging / sha256_of(current).removeprefix("sha256:"), current)
    for rel in changed:
        (registry / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(registry / rel, data_files[rel])
    for rel in stale:
        (registry / rel).unlink(missing_ok=True)
    atomic_write_bytes(registry / INDEX, files[INDEX])
    _clear_staging(registry)


def recover(registry: Path) -> None:
    """Finish what a killed write left: put back the staged bytes of every file the index lists whose path
    holds other bytes (or none), then remove the staging folder."""
    staging = registry / STAGING
    if not staging.is_dir():
        return
    found = read_index(registry)
    for rel, sha in (found[1] if found else {}).items():
        path = registry / rel
        current = _read_or_none(path)
        if current is not None and sha256_of(current) == sha:
            continue
        staged = fmt.staged_bytes(registry, sha)
        if staged is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, staged)
    _clear_staging(registry)


def _clear_staging(registry: Path) -> None:
    """Remove what the writer put in the staging folder (nothing else), then the folder if it is empty."""
    staging = registry / STAGING
    if not staging.is_dir():
        return
    for path in staging.iterdir():
        if _STAGED_NAME.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
    try:
        staging.rmdir()
    except OSError:
        pass


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
