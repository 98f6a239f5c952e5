"""Canonical bytes, content hashes and atomic writes: the three primitives the registry is built on.

The registry format (docs/registry-format.md) fixes one byte representation for every JSON file::

    json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False) + "\\n"

Floats come out through ``repr`` (shortest round-trip), so the same object always gives the same bytes,
on any platform. The builder's writer and the validator both use :func:`canonical_bytes`, so "is this
file canonical?" is a byte comparison.

Stdlib only: the loader may vendor this module's ideas without pulling in numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["canonical_bytes", "sha256_of", "atomic_write_bytes"]


def canonical_bytes(obj: Any) -> bytes:
    """Serialise ``obj`` to the registry's canonical JSON bytes.

    Keys sorted, one-space indent, ASCII only, a trailing newline. NaN and infinities are refused
    (``ValueError``) because JSON has no spelling for them; non-JSON types raise ``TypeError``.

    >>> canonical_bytes({"b": [1, 0.1], "a": "\\u03bb"})
    b'{\\n "a": "\\\\u03bb",\\n "b": [\\n  1,\\n  0.1\\n ]\\n}\\n'
    """
    text = json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode("ascii")


def sha256_of(data: bytes) -> str:
    """The self-describing content hash used in the index: ``"sha256:" + 64 lowercase hex digits``.

    >>> sha256_of(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


PUBLISHED_MODE = 0o644  # rw-r--r--: what the registry's files get (mkstemp alone would leave 0600)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    The bytes go to a temporary file in the destination folder (same file system, so the rename is
    atomic), which is flushed and fsynced, then ``os.replace``-d over ``path``. The folder itself is
    fsynced afterwards where the platform allows it, so the rename survives a crash. On any failure the
    temporary file is removed and the exception propagates; ``path`` is left untouched.

    The destination folder must exist. Compute ``data`` (e.g. with :func:`canonical_bytes`) *before*
    calling: nothing is created if serialisation fails.
    """
    dest = Path(path)
    folder = dest.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, PUBLISHED_MODE)  # mkstemp creates 0600: shipped data must be readable by all
        os.replace(tmp_name, dest)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """fsync a directory so a rename inside it is durable; a no-op where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: directories cannot be opened for fsync
        return
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the data file itself is already synced
    finally:
        os.close(dfd)
