"""Validate a registry folder: the loader's checks, all of them reported, plus what only the builder checks.

``validate_registry(path)`` is a pure function over a folder (it only reads). It never raises on bad data:
every problem found becomes a :class:`Problem` naming the file (relative to the folder, ``/``-separated) and
what is wrong, e.g. ``v1/vp-linear.json: entry nfe=6 order=3 p=1: lambda not strictly increasing at index 3``.

The data checks are the loader's own (docs/registry-format.md is the contract), from the registry-format
modules, so ``optsteps verify`` and ``python -m builder validate`` refuse the same data:

- reading (`optsteps_loader.format`): the loader's path-safety rule (`unsafe_path`: the index's path syntax
  and, symlinks resolved, inside the registry, for ``index.json`` and every listed file), regular files within
  the size bound, strict JSON (UTF-8 without BOM, no ``NaN``/``Infinity``, no overflowing number, no duplicate
  key, bounded nesting and integers); each file's size and sha256 against the index;
- the data (`optsteps_loader.invariants`): the index and its records (unique paths and schedule variants),
  each file's top level and its agreement with its record and the index, every entry in full.

What only the builder checks, because it wrote the files:

- JSON Schema (``schemas/registry-*.schema.json``, Draft 2020-12, ``integer`` meaning an integer token);
- canonical bytes (re-serialising gives the same bytes) and the index's records sorted by path;
- no hole in the grid: each file's entries cover the whole product orders × p × NFE of the values they use;
- no unlisted ``*.json`` in a ``v*/`` folder (unless ``allow_missing``, every listed file is present);
- no interrupted write: a ``.optsteps-staged`` folder means a sweep was killed while writing.

Stdlib plus ``jsonschema``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from optsteps_loader import format as fmt
from optsteps_loader import invariants as inv

__all__ = [
    "Problem",
    "ValidationReport",
    "validate_registry",
    "validate_file_bytes",
    "format_report",
    "load_schema",
    "schema_validator",
]

INDEX_NAME = fmt.INDEX_NAME
MAX_SCHEMA_ERRORS = 50  # per file; a systematic error would otherwise repeat once per entry
MAX_LISTED_HOLES = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the file (relative to the registry folder) and a sentence saying what."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`validate_registry`. ``ok`` is true when ``problems`` is empty."""

    root: str
    problems: tuple[Problem, ...] = ()
    files_checked: int = 0
    entries_checked: int = 0
    missing: tuple[str, ...] = field(default=())  # listed but absent, tolerated because allow_missing

    @property
    def ok(self) -> bool:
        return not self.problems

    def messages(self) -> list[str]:
        """The problems as ``"<file>: <message>"`` strings."""
        return [str(p) for p in self.problems]


# ---- schemas


def _schema_dir() -> Path:
    """The registry's JSON Schemas (`optsteps_loader.format.schema_dir`: the loader looks in the same place)."""
    folder = fmt.schema_dir()
    if folder is None:
        raise FileNotFoundError("registry schemas not found (looked for schemas/ and optsteps_loader/schemas/)")
    return Path(folder)


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema for ``kind`` = ``"index"`` or ``"file"`` (parsed; cached)."""
    if kind not in fmt.SCHEMA_FILES:
        raise ValueError(f"unknown schema kind {kind!r}; expected one of {sorted(fmt.SCHEMA_FILES)}")
    return json.loads((_schema_dir() / fmt.SCHEMA_FILES[kind]).read_text(encoding="utf-8"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@cache
def schema_validator(kind: str) -> Any:
    """A Draft 2020-12 validator (with format checking) for ``kind``, where ``integer`` means an int token.

    Plain JSON Schema counts ``3.0`` as an integer; the registry's integers (nfe, order, integer
    timesteps, …) must be written as integers, so the type checker is tightened.
    """
    from jsonschema import Draft202012Validator, validators

    type_checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda _checker, v: _is_int(v))
    strict = validators.extend(Draft202012Validator, type_checker=type_checker)
    return strict(load_schema(kind), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _check_schema(name: str, doc: Any, kind: str) -> list[Problem]:
    """At most `MAX_SCHEMA_ERRORS` schema errors (taken lazily: a huge bad file never builds them all)."""
    errors = list(itertools.islice(schema_validator(kind).iter_errors(doc), MAX_SCHEMA_ERRORS + 1))
    shown = sorted(errors[:MAX_SCHEMA_ERRORS], key=lambda e: list(map(str, e.absolute_path)))
    problems = []
    for err in shown:
        where = "/" + "/".join(str(p) for p in err.absolute_path)
        problems.append(Problem(name, f"schema: at {where}: {fmt.short(err.message, 160)}"))
    if len(errors) > MAX_SCHEMA_ERRORS:
        problems.append(Problem(name, f"schema: more than {MAX_SCHEMA_ERRORS} errors, the rest not shown"))
    return problems


# ---- one file


def _read(root: Path, rel: str) -> tuple[bytes | None, list[Problem]]:
    """A file's bytes, read as the loader reads them (a regular file within the size bound)."""
    try:
        return fmt.read_regular(str(root / rel)), []
    except fmt.FormatError as err:
        return None, [Problem(rel, str(err))]
    except OSError as err:
        return None, [Problem(rel, f"cannot be read ({err.strerror or err})")]


def _parse(name: str, data: bytes) -> tuple[Any, list[Problem]]:
    """Parse strictly (`optsteps_loader.format.loads`). Returns ``(document or None, problems)``."""
    try:
        return fmt.loads(data), []
    except fmt.FormatError as err:
        return None, [Problem(name, str(err))]


def _check_canonical(name: str, doc: Any, data: bytes) -> list[Problem]:
    expected = fmt.canonical_bytes(doc)
    if expected == data:
        return []
    got_lines, want_lines = data.split(b"\n"), expected.split(b"\n")
    line = next(
        (i + 1 for i, (a, b) in enumerate(zip(got_lines, want_lines, strict=False)) if a != b),
        min(len(got_lines), len(want_lines)),
    )
    return [
        Problem(
            name,
            f"not in canonical bytes (first difference at line {line}); rewrite it with the builder "
            "(sorted keys, indent 1, ASCII, shortest floats, trailing newline)",
        )
    ]


def _entry_label(entry: dict[str, Any]) -> str:
    """The loader's name for an entry in its messages."""
    if "p" not in entry:
        return f"solver entry {entry['solver']} order={entry['order']} ending={entry['ending']} nfe={entry['nfe']}"
    return f"entry nfe={entry['nfe']} order={entry['order']} p={entry['p']}"


def _check_grid_complete(name: str, entries: list[dict[str, Any]]) -> list[Problem]:
    """The entries cover the whole product orders × p × NFE of the values they use (no hole in the grid)."""
    keys = {inv.entry_key(e) for e in entries}
    orders, ps, nfes = (sorted({key[i] for key in keys}) for i in range(3))
    holes = itertools.islice(
        ((o, p, n) for o in orders for p in ps for n in nfes if (o, p, n) not in keys), MAX_LISTED_HOLES + 1
    )
    holes = list(holes)
    if not holes:
        return []
    shown = ", ".join(f"order={o} p={p} nfe={n}" for o, p, n in holes[:MAX_LISTED_HOLES])
    more = " and more" if len(holes) > MAX_LISTED_HOLES else ""
    return [Problem(name, f"grid incomplete: no entry for {shown}{more} (rebuild with python -m builder sweep)")]


def _check_data_doc(name: str, doc: Any, record: dict | None = None, index: dict | None = None) -> list[Problem]:
    """The loader's invariants of one parsed data file (all entries), its agreement with its index record
    when given, and the grid's completeness."""
    structure = inv.file_problems(doc)
    if structure:
        return [Problem(name, message) for message in structure]
    out = []
    for entry in [*doc["entries"], *doc.get("solver_entries", [])]:
        out += [Problem(name, f"{_entry_label(entry)}: {m}") for m in inv.entry_problems(entry, doc["schedule"])]
    out += _check_grid_complete(name, doc["entries"])
    if record is not None:
        out += [Problem(name, message) for message in inv.file_problems(doc, record, index)]
    return out


def _validate_data(name: str, data: bytes, record: dict | None = None, index: dict | None = None):
    """Every check of one data file's bytes: ``(problems, document or None, number of entries)``."""
    doc, problems = _parse(name, data)
    if doc is None:
        return problems, None, 0
    problems += _check_schema(name, doc, "file")
    problems += _check_canonical(name, doc, data)
    problems += _check_data_doc(name, doc, record, index)
    entries = doc.get("entries") if isinstance(doc, dict) else None
    extra = doc.get("solver_entries") if isinstance(doc, dict) else None
    count = (len(entries) if isinstance(entries, list) else 0) + (len(extra) if isinstance(extra, list) else 0)
    return problems, doc, count


def validate_file_bytes(name: str, data: bytes) -> list[Problem]:
    """Validate one data file on its own (schema, canonical bytes, invariants); no index needed.

    ``name`` is only used in the messages. The builder's writer can call this before writing.
    """
    return _validate_data(name, data)[0]


# ---- the folder


def _data_json_files(root: Path) -> Iterator[str]:
    """Every ``*.json`` below a ``v<N>/`` folder, as '/'-separated paths relative to root."""
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and re.fullmatch(r"v[0-9]+", folder.name):
            for f in sorted(folder.rglob("*.json")):
                if f.is_file():
                    yield f.relative_to(root).as_posix()


def _check_index(root: Path) -> tuple[Any, list[Problem]]:
    """The index, parsed, and its problems; None when it is absent or unreadable."""
    if not (root / INDEX_NAME).exists():
        return None, [Problem(INDEX_NAME, "missing: the registry has no index")]
    why = fmt.unsafe_path(str(root), INDEX_NAME)
    if why is not None:
        return None, [Problem(INDEX_NAME, why)]
    data, problems = _read(root, INDEX_NAME)
    if data is None:
        return None, problems
    index, problems = _parse(INDEX_NAME, data)
    if index is None:
        return None, problems
    files = index.get("files") if isinstance(index, dict) else None
    if isinstance(files, list) and len(files) > fmt.MAX_FILES:  # refused before the costly checks
        return None, [Problem(INDEX_NAME, message) for message in inv.index_problems(index)]
    problems += _check_schema(INDEX_NAME, index, "index")
    problems += _check_canonical(INDEX_NAME, index, data)
    if not isinstance(index, dict) or index.get("schema_version") != fmt.SCHEMA_VERSION:
        return None, [*problems, Problem(INDEX_NAME, f"not a schema_version {fmt.SCHEMA_VERSION} registry index")]
    problems += [Problem(INDEX_NAME, message) for message in inv.index_problems(index)]
    records = index["files"] if isinstance(index.get("files"), list) else []
    paths = [r["path"] for r in records if isinstance(r, dict) and isinstance(r.get("path"), str)]
    if paths != sorted(paths):
        problems.append(Problem(INDEX_NAME, "files are not sorted by path"))
    return index, problems


def validate_registry(path: str | Path, *, allow_missing: bool = False) -> ValidationReport:
    """Validate the registry folder at ``path`` and report every problem found.

    ``allow_missing=True`` accepts a vendored subset: the full ``index.json`` with only some of its data
    files present (those present are checked in full; the absent ones are listed in ``report.missing``).
    Unlisted ``*.json`` files under ``v*/`` are a problem either way.
    """
    root = Path(path)
    if not root.is_dir():
        return ValidationReport(str(root), (Problem(str(root), "not a folder"),))

    problems: list[Problem] = []
    if (root / fmt.STAGING).exists():
        problems.append(Problem(fmt.STAGING, "interrupted write: run the sweep again to recover"))
    missing: list[str] = []
    present = set(_data_json_files(root))
    index, index_problems = _check_index(root)
    problems += index_problems
    files_checked = int(index is not None)
    entries_checked = 0
    listed: set[str] = set()

    for record in index["files"] if index is not None and isinstance(index.get("files"), list) else []:
        if inv.record_problems(record) or record["path"] in listed:
            continue  # reported with the index
        rel = record["path"]
        listed.add(rel)
        why = fmt.unsafe_path(str(root), rel)
        if why is not None:
            problems.append(Problem(rel, why))
            continue
        if not (root / rel).exists():
            if allow_missing:
                missing.append(rel)
            else:
                problems.append(Problem(rel, "listed in index.json but missing"))
            continue
        data, read_problems = _read(root, rel)
        problems += read_problems
        if data is None:
            continue
        files_checked += 1
        mismatch = fmt.hash_problem(record["sha256"], record.get("bytes"), data)
        if mismatch is not None:
            problems.append(Problem(rel, mismatch))
        file_problems, _doc, n = _validate_data(rel, data, record, index)
        problems += file_problems
        entries_checked += n

    for rel in sorted(present - listed):
        problems.append(Problem(rel, "not listed in index.json (stray data file)"))
    if index is None:  # no usable index: still check each data file on its own
        for rel in sorted(present):
            data, read_problems = _read(root, rel)
            problems += read_problems
            if data is not None:
                file_problems, _doc, n = _validate_data(rel, data)
                problems += file_problems
                files_checked += 1
                entries_checked += n

    return ValidationReport(str(root), tuple(problems), files_checked, entries_checked, tuple(missing))


def format_report(report: ValidationReport) -> str:
    """A human-readable report: one line per problem, then a summary line."""
    lines = [str(p) for p in report.problems]
    extra = f"; {len(report.missing)} listed file(s) absent (allowed)" if report.missing else ""
    if report.ok:
        lines.append(
            f"{report.root}: OK ({report.files_checked} files, {report.entries_checked} entries checked{extra})"
        )
    else:
        n_files = len({p.file for p in report.problems})
        lines.append(f"{report.root}: {len(report.problems)} problem(s) in {n_files} file(s){extra}")
    return "\n".join(lines)
