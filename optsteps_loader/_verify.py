"""`verify()`: check a whole registry (index, every listed file, every entry; JSON Schema when possible)."""

from __future__ import annotations

import os

from . import format as fmt
from . import reader as _r
from .errors import RegistryIntegrityError
from .format import SCHEMA_FILES, schema_dir

__all__ = ["schema_dir", "verify"]

MAX_LISTED = 50  # problems shown in the error; the count says how many more


def verify(
    source: str | os.PathLike[str] | None = None, *, revision: str | None = None, allow_missing: bool = False
) -> dict:
    """Check a registry: the index; for each listed file its presence, sha256, structure and every entry
    (the checks `get()` makes, on all entries at once); and, when the schemas are found
    (``optsteps_loader/schemas/`` in a wheel, ``<repo>/schemas/`` in a checkout), the index and every file
    against ``registry-index.schema.json`` / ``registry-file.schema.json`` (compiled by `_schema`: no
    dependency, about a second for the bundled registry).

    ``allow_missing=True`` accepts a *vendored subset*: a copy of ``index.json`` with only the data files
    a project needs. Files the index lists but the folder lacks are then reported under ``"missing"``
    instead of failing; every file that is present must still be intact.

    Returns a report: ``source``, ``data_version``, ``files`` and ``entries`` checked, ``missing``,
    ``unlisted`` (files in the folder that the index does not list: harmless, but they would be shipped),
    ``schema`` (what was validated, or why schema validation was skipped), ``pin`` (whether the source is
    pinned to an immutable Hub commit, and how to pin it: the checks cannot see a consistent rewrite).

    Raises:
        RegistryIntegrityError: listing every problem found (one line per problem).
        RegistryUnavailableError: there is no index at ``source``.
    """
    if not isinstance(allow_missing, bool):
        raise TypeError(f"allow_missing must be a bool, not {type(allow_missing).__name__}")
    src = _r.resolve_source(source, revision)
    index = _r.load_index(src)
    schema_check, schema_note = _schema_checker()
    problems = schema_check("index", index.obj, f"{src.label}/index.json")
    report = {
        "source": src.label,
        "data_version": index.data_version,
        "files": 0,
        "entries": 0,
        "missing": [],
        "unlisted": [],
        "schema": schema_note,
        "pin": pin_note(src.label),
    }
    for rec in index.files:
        path = src.locate(rec["path"])
        if allow_missing and not os.path.lexists(path):
            report["missing"].append(rec["path"])
            continue
        try:
            data = _r.load_data(src, rec)
        except RegistryIntegrityError as err:
            problems.append(str(err))
            continue
        every = [*data.entries.values(), *data.solver_entries.values()]
        for entry in every:
            try:
                _r.check_entry(data, entry)
            except RegistryIntegrityError as err:
                problems.append(str(err))
        problems += schema_check("file", data.obj, f"{src.label}/{rec['path']}")
        report["files"] += 1
        report["entries"] += len(every)
    if src.discard is None:  # a local folder: also list what the index does not know about
        listed = {rec["path"] for rec in index.files} | {"index.json"}
        root = os.path.dirname(src.index_path)
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                if rel not in listed:
                    report["unlisted"].append(rel)
    if problems:
        listing = "".join(f"\n  - {problem}" for problem in problems[:MAX_LISTED])
        if len(problems) > MAX_LISTED:
            listing += f"\n  - ... and {len(problems) - MAX_LISTED} more"
        raise RegistryIntegrityError(f"{src.label}: {len(problems)} problem(s):{listing}")
    return report


def _schema_checker():
    """``(check(kind, obj, where) -> problems, note)``: the schemas compiled by `_schema` (no dependency);
    check is a no-op, and the note says why, when they are not found or use a keyword `_schema` lacks."""
    import re  # here, not at import: `import optsteps_loader` stays cheap

    from . import _schema

    def skip(kind: str, obj: object, where: str) -> list[str]:
        return []

    folder = schema_dir()
    if folder is None:
        return skip, f"skipped: {' and '.join(SCHEMA_FILES.values())} not found"
    checks = {}
    for kind, name in SCHEMA_FILES.items():
        try:
            checks[kind] = _schema.compile_schema(_r.parse_json(fmt.read_regular(os.path.join(folder, name)), name))
        except (RegistryIntegrityError, fmt.FormatError, OSError, _schema.Unsupported, re.error) as err:
            return skip, f"skipped: {name} is not a usable JSON Schema ({str(err).splitlines()[0]})"

    def check(kind: str, obj: object, where: str) -> list[str]:
        return _schema.errors(checks[kind], obj, where)

    return check, f"validated against {folder}"


def pin_note(label: str) -> str:
    """What protects the registry that was read against a rewrite the checks cannot see (a grid copied whole
    from another entry, its hashes redone): only its source. Says whether it is pinned, and how to pin it."""
    if label.startswith("hub:"):
        if " (commit " not in label and fmt.is_hex(label.rsplit("@", 1)[-1], 40):
            return f"pinned: {label} is a commit, immutable"
        return (
            f"not pinned: {label} is a branch or tag, which can move; pin the commit: revision=<40-hex commit>"
            " (optsteps verify --revision <commit>; docs/vendoring.md)"
        )
    return (
        "a local folder: its checks prove it consistent, not that it is what was published; vendor it from a"
        " pinned Hub commit (source='hub', revision=<40-hex commit>) and keep it under version control"
        " (docs/vendoring.md)"
    )
