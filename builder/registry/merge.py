"""Solver entries added to a registry folder: a new folder made from a base registry, or an existing (e.g.
vendored) registry folder with them merged in. ``calibrate`` and ``refine --profile`` write through here.

**The target** ``out``:

- absent or empty: a new registry holding the base registry's data file for the schedule variant (its bound
  entries and solver entries, so every ``get()`` that worked against the base still works) with the new
  solver entries added, and an index listing that file (and the base's model aliases naming the variant);
- an existing registry folder: its index and every listed file are read as one snapshot; a file whose bytes do
  not hash to what the index lists is refused (:class:`MergeError`: it is never re-signed). The variant's file
  (the folder's own, or the base's when the folder has none) gets the new solver entries; every other file
  and model alias is kept byte for byte; the index lists them all.

A new solver entry replaces the one with the same key (profile or ``calibrated``, solver, order, ending, NFE:
:func:`optsteps_loader.invariants.solver_entry_key`); the others stay.

**Writing** (:func:`write_folder`): every file is checked by the validator in a temporary sibling folder
first; a new folder is renamed into place (it exists complete or not at all), an existing registry is
rewritten with the sweep's staged protocol (:func:`builder.registry.sweep.write.write_registry`: readers see
the old registry or the new one). Files the folder's index did not list are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .files import data_file, index_file, index_record, solver_entry_key

__all__ = ["MergeError", "merged_files", "write_folder"]


class MergeError(RuntimeError):
    """The target folder cannot take the new entries (a file altered since it was written, another data
    release without the variant's file, a folder that is not a registry); the message names the fix."""


def _variant(record: dict[str, Any]) -> tuple[str, tuple]:
    return record["schedule"], tuple(sorted(record["params"].items()))


def merged_files(
    out: str | os.PathLike[str],
    schedule: Any,
    new: list[dict[str, Any]],
    *,
    generator: str,
    base: Any = None,
) -> dict[str, bytes]:
    """{relative path: canonical bytes} of the whole registry ``out`` with the solver entries ``new`` of
    ``schedule`` (a :class:`~builder.solve.schedules.Schedule`) merged in (module docstring); ``base``: the
    loader's ``source`` of the registry a new folder starts from (None: the bundled one)."""
    from .sweep.spec import SweepError, alias_names
    from .sweep.write import read_snapshot

    out = Path(out)
    variant = (schedule.name, tuple(sorted(schedule.variant_params.items())))
    try:
        snapshot = read_snapshot(out) if out.is_dir() else None  # None: no index there
    except SweepError as err:
        raise MergeError(str(err)) from None
    base_index, base_files = _base(base)
    base_rec = next((r for r in base_index["files"] if _variant(r) == variant), None)
    if snapshot is None:
        if base_rec is None:
            raise MergeError(f"the base registry has no file for {schedule.name} {dict(variant[1])}")
        index, files, rec = base_index, {}, None
    else:
        index_bytes, files = snapshot
        altered = sorted(rel for rel, data in files.items() if data is None)
        if altered:
            raise MergeError(
                f"{out / altered[0]} does not match the sha256 {out / 'index.json'} lists for it (altered or "
                "corrupted since it was written): restore it from where the registry came from, then merge again"
            )
        index = json.loads(index_bytes)
        rec = next((r for r in index["files"] if _variant(r) == variant), None)
    if rec is not None:
        rel, doc = rec["path"], json.loads(files[rec["path"]])
    else:
        rel, doc = base_rec["path"], json.loads(base_files(base_rec["path"]))
        if snapshot is not None and doc["data_version"] != index["data_version"]:
            raise MergeError(
                f"{out} (data {index['data_version']}) has no file for {schedule.name} {dict(variant[1])}, and the "
                f"base registry's (data {doc['data_version']}) is of another release: copy {rel} of release "
                f"{index['data_version']} into it first, or write to a new folder"
            )
        if snapshot is not None and rel in files:
            raise MergeError(f"{out / rel} holds another schedule variant than {schedule.name} {dict(variant[1])}")
    keys = {solver_entry_key(e) for e in new}
    solver_entries = [e for e in doc.get("solver_entries", []) if solver_entry_key(e) not in keys] + list(new)
    data = data_file(
        schedule, doc["entries"], data_version=doc["data_version"], defaults=doc["defaults"], solver_entries=solver_entries
    )
    records = [r for r in index["files"] if r["path"] != rel] if snapshot is not None else []
    records.append(index_record(rel, schedule, data, doc["entries"], solver_entries))
    aliases = dict(index.get("aliases", {})) if snapshot is not None else {}
    shift = schedule.variant_params.get("shift")
    for name, alias in base_index.get("aliases", {}).items():
        if name not in aliases and alias_names(alias, schedule.name, shift):
            aliases[name] = alias
    kept = {r["path"]: files[r["path"]] for r in records if r["path"] != rel}
    return kept | {
        rel: data,
        "index.json": index_file(
            records,
            aliases=aliases,
            data_version=index["data_version"],
            generator=generator,
            license=index["license"],
            citation=index["citation"],
        ),
    }


def _base(source: Any) -> tuple[dict[str, Any], Any]:
    """(the base registry's index, checked by the loader; a reader of its files by relative path, each
    checked against the sha256 and size the index lists)."""
    from optsteps_loader import format as fmt, reader

    src = reader.resolve_source(source)
    index = reader.load_index(src).obj

    def read(rel: str) -> bytes:
        rec = next(r for r in index["files"] if r["path"] == rel)
        data = fmt.read_regular(src.locate(rel), fmt.MAX_FILE_BYTES)
        problem = fmt.hash_problem(rec["sha256"], rec.get("bytes"), data)
        if problem:
            raise MergeError(f"{src.label}/{rel}: {problem}")
        return data

    return index, read


def write_folder(out: str | os.PathLike[str], files: dict[str, bytes]) -> None:
    """Validate ``files`` (a whole registry), then make ``out`` hold them (module docstring: atomically)."""
    from .sweep.spec import SweepError
    from .sweep.write import check_target, write_registry
    from .validate import validate_registry

    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
            os.chmod(tmp / rel, 0o644)
        report = validate_registry(tmp)
        if not report.ok:
            raise MergeError("the registry to write fails validation: " + "; ".join(report.messages()[:5]))
        if not out.exists():
            os.chmod(tmp, 0o755)
            os.rename(tmp, out)
            return
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        check_target(out, [rel for rel in files if rel != "index.json"])
        write_registry(out, files)
    except SweepError as err:
        raise MergeError(str(err)) from None
