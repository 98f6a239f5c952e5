"""A disk cache of numpy arrays: one ``<prefix>-<key[:32]>.npz`` file per computation, in a folder that
concurrent processes may share.

A file is named by the sha256 of a JSON spec of what it holds (:func:`key_of`) and stores that full key
beside its arrays; :func:`load` returns the arrays only when the stored key is the one asked for, and treats
a missing, unreadable or foreign file as a miss (the caller computes again and :func:`store`
overwrites it). Files are read without pickle and written atomically (the registry format's
`optsteps_loader.format.atomic_write_bytes`: a temporary file in the same folder, then ``os.replace``), so a
reader never sees half a file.

Users: the ground truths of the data family (`builder.select.truth`) and calibration's teacher
(`builder.calibrate.teacher`); each names its own folder and environment variable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from optsteps_loader.format import atomic_write_bytes

__all__ = ["folder", "key_of", "load", "store"]


def key_of(spec: dict) -> str:
    """sha256 (hex) of ``json.dumps(spec, sort_keys=True)``: put in ``spec`` everything the result depends on."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def folder(cache: bool | str | os.PathLike[str], env: str, name: str) -> Path | None:
    """Where a cache lives: None for ``cache=False`` (compute, never write); for ``True`` ``$env``, or
    ``~/.cache/optsteps/<name>`` where it is unset; else the folder given."""
    if cache is False:
        return None
    if cache is True:
        value = os.environ.get(env)
        return Path(value) if value else Path.home() / ".cache" / "optsteps" / name
    return Path(cache)


def _path(where: Path, prefix: str, key: str) -> Path:
    return where / f"{prefix}-{key[:32]}.npz"


def load(where: Path | None, prefix: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key`` (all read into memory), or None on a miss (see the module docstring)."""
    if where is None:
        return None
    path = _path(where, prefix, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {name: z[name] for name in z.files if name != "key"}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # a zip whose directory is garbled
        return None


def store(where: Path | None, prefix: str, key: str, **arrays: np.ndarray) -> None:
    """Write ``arrays`` and ``key`` as one .npz atomically (nothing for ``where=None``)."""
    if where is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, key=np.array(key), **arrays)
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(_path(where, prefix, key), buffer.getvalue())
