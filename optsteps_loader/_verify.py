"""`verify()`: check a whole registry (index, every listed file, every entry; JSON Schema when possible)."""

from __future__ import annotations

import os

from . import _format as fmt
from . import _registry as _r
from ._format import SCHEMA_FILES, schema_dir
from .errors import RegistryIntegrityError

__all__ = ["schema_dir", "verify"]

MAX_LISTED = 50  # problems shown in the error; the count says how many more


def verify(
    source: str | os.PathLike[str] | None = None, *, revision: str | None = None, allow_missing: bool = False
) -> dict:
    """Check a registry: the index; for each listed file its presence, sha256, structure and every entry
    (the checks `get()` makes, on all entries at once); and, when ``jsonschema`` is installed and the
    schemas are found (``optsteps_loader/schemas/`` in a wheel, ``<repo>/schemas/`` in a checkout), the
    index and every file against ``registry-index.schema.json`` / ``registry-file.schema.json``.

    ``allow_missing=True`` accepts a *vendored subset*: a copy of ``index.json`` with only the data files
    a project needs. Files the index lists but the folder lacks are then reported under ``"missing"``
    instead of failing; every file that is present must still be intact.

    Returns a report: ``source``, ``data_version``, ``files`` and ``entries`` checked, ``missing``,
    ``unlisted`` (files in the folder that the index does not list: harmless, but they would be shipped),
    ``schema`` (what was validated, or why schema validation was skipped).

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
                _r.make_steps(data, entry, entry.get("solver", "unipc"), src.label)
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
    """``(check(kind, obj, where) -> problems, note)``; check is a no-op when validation is not possible."""

    def skip(kind: str, obj: object, where: str) -> list[str]:
        return []

    try:
        import jsonschema
    except ImportError:
        return skip, "skipped: jsonschema is not installed (pip install 'optsteps[validate]')"
    folder = schema_dir()
    if folder is None:
        return skip, f"skipped: {' and '.join(SCHEMA_FILES.values())} not found"
    validators = {}
    for kind, name in SCHEMA_FILES.items():
        try:
            schema = _r.parse_json(fmt.read_regular(os.path.join(folder, name)), name)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
        except (RegistryIntegrityError, fmt.FormatError, OSError, jsonschema.SchemaError) as err:
            return skip, f"skipped: {name} is not a usable JSON Schema ({str(err).splitlines()[0]})"
        validators[kind] = cls(schema)

    def check(kind: str, obj: object, where: str) -> list[str]:
        errors = sorted(validators[kind].iter_errors(obj), key=lambda e: str(list(e.absolute_path)))
        return [f"{where}: schema: {e.message} at /{'/'.join(map(str, e.absolute_path))}" for e in errors[:5]]

    return check, f"validated against {folder}"
