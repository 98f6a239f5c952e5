"""Validate a registry folder: schema, hashes, canonical bytes and the invariants JSON Schema cannot state.

``validate_registry(path)`` is a pure function over a folder (it only reads). It never raises on bad data:
every problem found becomes a :class:`Problem` naming the file (relative to the folder, ``/``-separated) and
what is wrong, e.g. ``v1/vp-linear.json: entry nfe=6 order=3 p=1: lambda not strictly increasing at index 3``.

What is checked (docs/registry-format.md is the contract):

- ``index.json`` and every data file against ``schemas/registry-index.schema.json`` and
  ``schemas/registry-file.schema.json`` (JSON Schema 2020-12; ``integer`` means a JSON integer token, so
  ``3.0`` is refused where an integer is required);
- the raw text: valid UTF-8 JSON, no ``NaN``/``Infinity`` tokens (Python's json accepts them), no
  duplicate keys, no number that overflows to infinity, and canonical bytes (re-serialising gives the
  same bytes);
- the index against the folder: every listed file exists (unless ``allow_missing``, for vendored subsets),
  its byte size and sha256 match, paths are safe, unique and sorted, and no unlisted ``*.json`` sits in a
  ``v*/`` folder;
- the index's per-file summary (``schedule``, ``params``, ``entries``, ``nfe``, ``orders``, ``p``) against
  the file's contents, and the same ``schema_version`` / ``data_version`` everywhere;
- entries unique and sorted by ``(order, p, nfe)`` (also unique across files of one schedule variant), covering
  the whole product orders × p × NFE of the values they use (no hole in the grid), and
  the schedule's ``defaults`` naming an (order, p) that exists;
- per entry: ``nfe + 1`` values in every node array and ``nfe`` in ``step_orders`` (values ≤ ``order``, and
  ≤ i + 1 at step i: a multistep solver only has the nodes already computed); λ strictly increasing, t and
  σ/α strictly decreasing, timesteps non-increasing; endpoints equal to the file's declared ``t_start``,
  ``t_end``, ``lambda_start``, ``lambda_end`` (relative 1e-12); λ = log α − log σ (absolute 1e-12),
  sigmas = σ/α (relative 1e-12); family rules (vp: α² + σ² = 1, edm: α = 1 and t = σ, flow: α + σ = 1, all to
  1e-12); ``timesteps`` as ``schedule.time_input`` says (t, σ/α, 1000·σ, or the integer nearest to
  (t − 1/1000)·1000) and ``timestep_collisions`` listing exactly the pairs i < j with equal timesteps.

Nothing here needs the builder's schedule code: the checks are internal consistency and agreement with
the file's own declared endpoints. Stdlib plus ``jsonschema``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from builder.registry._canonical import canonical_bytes, sha256_of
from optsteps_loader import _format as fmt

__all__ = [
    "Problem",
    "ValidationReport",
    "validate_registry",
    "validate_file_bytes",
    "format_report",
    "load_schema",
    "schema_validator",
]

INDEX_NAME = "index.json"
REL_TOL = 1e-12
ABS_TOL = 1e-12
NODE_ARRAYS = ("t", "lambda", "alpha_t", "sigma_t", "sigmas", "timesteps")
MAX_SCHEMA_ERRORS = 50  # per file; a systematic error would otherwise repeat once per entry


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
    """The registry's JSON Schemas (`optsteps_loader._format.schema_dir`: the loader looks in the same place)."""
    folder = fmt.schema_dir()
    if folder is None:
        raise FileNotFoundError("registry schemas not found (looked for schemas/ and optsteps_loader/schemas/)")
    return Path(folder)


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema for ``kind`` = ``"index"`` or ``"file"`` (parsed; cached)."""
    names = {"index": "registry-index.schema.json", "file": "registry-file.schema.json"}
    if kind not in names:
        raise ValueError(f"unknown schema kind {kind!r}; expected one of {sorted(names)}")
    return json.loads((_schema_dir() / names[kind]).read_text(encoding="utf-8"))


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


# ---- parsing


class _NonFiniteToken(Exception):
    pass


_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _locate_nonfinite(text: str) -> list[str]:
    """``"NaN at line 3 column 7"`` for each NaN / Infinity token outside strings."""
    found = []
    for m in _TOKEN_RE.finditer(text):
        if m.group(1):
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            found.append(f"{m.group(1)} at line {line} column {col}")
    return found


def _parse(name: str, data: bytes) -> tuple[Any, list[Problem]]:
    """Parse strictly. Returns ``(document or None, problems)``; never raises on bad input."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(name, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]

    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    def reject(token: str) -> None:
        raise _NonFiniteToken(token)

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=reject)
    except _NonFiniteToken:
        where = "; ".join(_locate_nonfinite(text)[:5]) or "in the text"
        return None, [Problem(name, f"non-finite number token (JSON allows none): {where}")]
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(text.rstrip()) or not text.rstrip().endswith(("}", "]"))
        hint = " (the file ends early: truncated?)" if ends_early else ""
        return None, [Problem(name, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}")]
    except RecursionError:
        return None, [Problem(name, "invalid JSON: nested too deeply")]

    problems = [Problem(name, f"duplicate key {key!r} in an object") for key in sorted(set(duplicates))]
    for pointer in _nonfinite_numbers(doc, ""):
        problems.append(Problem(name, f"number at {pointer or '/'} is not finite (overflows float64)"))
    return doc, problems


def _nonfinite_numbers(node: Any, pointer: str) -> Iterator[str]:
    if isinstance(node, float):
        if not math.isfinite(node):
            yield pointer
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _nonfinite_numbers(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nonfinite_numbers(value, f"{pointer}/{i}")


def _check_schema(name: str, doc: Any, kind: str) -> list[Problem]:
    errors = sorted(schema_validator(kind).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    problems = []
    for err in errors[:MAX_SCHEMA_ERRORS]:
        where = "/" + "/".join(str(p) for p in err.absolute_path)
        problems.append(Problem(name, f"schema: at {where}: {_short(err.message)}"))
    if len(errors) > MAX_SCHEMA_ERRORS:
        problems.append(Problem(name, f"schema: {len(errors) - MAX_SCHEMA_ERRORS} more errors not shown"))
    return problems


def _check_canonical(name: str, doc: Any, data: bytes) -> list[Problem]:
    try:
        expected = canonical_bytes(doc)
    except (ValueError, TypeError):
        return []  # non-finite numbers: already reported
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


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- numbers


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num_list(entry: dict[str, Any], key: str) -> list[float] | None:
    value = entry.get(key)
    if isinstance(value, list) and value and all(_is_num(v) for v in value):
        return value
    return None


def _close_rel(a: float, b: float, rtol: float = REL_TOL) -> bool:
    return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _first_bad(values: list[float], ok: Any) -> int | None:
    """First index i ≥ 1 where ``ok(values[i-1], values[i])`` fails."""
    for i in range(1, len(values)):
        if not ok(values[i - 1], values[i]):
            return i
    return None


def _first_mismatch(pairs: Iterable[tuple[float, float]], ok: Any) -> int | None:
    for i, (a, b) in enumerate(pairs):
        if not ok(a, b):
            return i
    return None


# ---- entries


def _entry_label(entry: Any, index: int) -> str:
    if isinstance(entry, dict) and all(_is_num(entry.get(k)) for k in ("nfe", "order", "p")):
        return f"entry nfe={entry['nfe']} order={entry['order']} p={_fmt(entry['p'])}"
    return f"entry #{index}"


def _check_entry(name: str, label: str, entry: dict[str, Any], schedule: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []

    def bad(message: str) -> None:
        out.append(Problem(name, f"{label}: {message}"))

    nfe, order = entry.get("nfe"), entry.get("order")
    arrays = {key: _num_list(entry, key) for key in NODE_ARRAYS}

    # lengths
    if _is_int(nfe):
        for key, values in arrays.items():
            if values is not None and len(values) != nfe + 1:
                bad(f"{key} has {len(values)} values, expected nfe+1 = {nfe + 1}")
                arrays[key] = None  # do not compare arrays of different lengths below
        step_orders = entry.get("step_orders")
        if isinstance(step_orders, list):
            if len(step_orders) != nfe:
                bad(f"step_orders has {len(step_orders)} values, expected nfe = {nfe}")
            if all(_is_int(k) for k in step_orders):
                if _is_int(order):
                    over = [i for i, k in enumerate(step_orders) if k > order]
                    if over:
                        bad(f"step_orders[{over[0]}] = {step_orders[over[0]]} exceeds order {order}")
                early = [i for i, k in enumerate(step_orders) if k > i + 1]
                if early:
                    i = early[0]
                    bad(f"step_orders[{i}] = {step_orders[i]} but step {i} has only {i + 1} earlier node(s)")

    t, lam, alpha, sigma, sigmas, ts = (arrays[k] for k in NODE_ARRAYS)

    # monotonicity
    if lam is not None and (i := _first_bad(lam, lambda a, b: b > a)) is not None:
        bad(f"lambda not strictly increasing at index {i} ({lam[i - 1]!r} then {lam[i]!r})")
    if t is not None and (i := _first_bad(t, lambda a, b: b < a)) is not None:
        bad(f"t not strictly decreasing at index {i} ({t[i - 1]!r} then {t[i]!r})")
    if sigmas is not None and (i := _first_bad(sigmas, lambda a, b: b < a)) is not None:
        bad(f"sigmas not strictly decreasing at index {i} ({sigmas[i - 1]!r} then {sigmas[i]!r})")
    if ts is not None and (i := _first_bad(ts, lambda a, b: b <= a)) is not None:
        bad(f"timesteps increase at index {i} ({ts[i - 1]!r} then {ts[i]!r})")

    # endpoints, against the file's own declaration
    for values, key, pos, decl in (
        (t, "t", 0, "t_start"),
        (t, "t", -1, "t_end"),
        (lam, "lambda", 0, "lambda_start"),
        (lam, "lambda", -1, "lambda_end"),
    ):
        want = schedule.get(decl)
        if values is not None and _is_num(want) and not _close_rel(values[pos], want):
            where = "first" if pos == 0 else "last"
            bad(f"{key} {where} value {values[pos]!r} differs from schedule.{decl} = {want!r}")

    # mutual consistency of alpha, sigma, lambda, sigmas
    positive = alpha is not None and sigma is not None and min(alpha) > 0 and min(sigma) > 0
    if positive and lam is not None:
        i = _first_mismatch(
            zip(lam, (math.log(a) - math.log(s) for a, s in zip(alpha, sigma, strict=True)), strict=True),
            lambda a, b: abs(a - b) <= ABS_TOL,
        )
        if i is not None:
            bad(
                f"lambda[{i}] = {lam[i]!r} but log(alpha_t) - log(sigma_t) = "
                f"{math.log(alpha[i]) - math.log(sigma[i])!r} (tolerance {ABS_TOL:g})"
            )
    if positive and sigmas is not None:
        i = _first_mismatch(zip(sigmas, (s / a for a, s in zip(alpha, sigma, strict=True)), strict=True), _close_rel)
        if i is not None:
            bad(f"sigmas[{i}] = {sigmas[i]!r} but sigma_t/alpha_t = {sigma[i] / alpha[i]!r}")

    family = schedule.get("family")
    if alpha is not None and sigma is not None and len(alpha) == len(sigma):
        if family in ("vp-continuous", "vp-discrete"):
            i = _first_mismatch(zip(alpha, sigma, strict=True), _unit_norm)
            if i is not None:
                norm = alpha[i] ** 2 + sigma[i] ** 2
                bad(f"alpha_t^2 + sigma_t^2 = {norm!r} at index {i}, not 1 ({family})")
        elif family == "flow":
            i = _first_mismatch(zip(alpha, sigma, strict=True), lambda a, s: abs(a + s - 1) <= ABS_TOL)
            if i is not None:
                bad(f"alpha_t + sigma_t = {alpha[i] + sigma[i]!r} at index {i}, not 1 (flow)")
    if family == "edm":
        if alpha is not None and (i := _first_mismatch(((a, 1.0) for a in alpha), _abs_close)) is not None:
            bad(f"alpha_t[{i}] = {alpha[i]!r}, not 1 (edm)")
        if t is not None and sigma is not None and len(t) == len(sigma):
            if (i := _first_mismatch(zip(t, sigma, strict=True), _close_rel)) is not None:
                bad(f"t[{i}] = {t[i]!r} differs from sigma_t[{i}] = {sigma[i]!r} (edm: t is sigma)")

    if ts is not None:
        for message in _check_timesteps(entry, schedule, ts, t, sigma, sigmas):
            bad(message)
    return out


def _unit_norm(a: float, s: float) -> bool:
    return abs(a * a + s * s - 1) <= ABS_TOL


def _abs_close(a: float, b: float) -> bool:
    return abs(a - b) <= ABS_TOL


def _check_timesteps(
    entry: dict[str, Any],
    schedule: dict[str, Any],
    ts: list[float],
    t: list[float] | None,
    sigma: list[float] | None,
    sigmas: list[float] | None,
) -> list[str]:
    out = []
    time_input = schedule.get("time_input")
    expected: list[float] | None = None
    ok = _close_rel
    if time_input == "t":
        expected = t
    elif time_input == "sigma":
        expected = sigmas
    elif time_input == "1000*sigma" and sigma is not None:
        expected = [1000.0 * s for s in sigma]
    elif time_input == "timestep" and t is not None:
        expected = [(x - 1.0 / 1000) * 1000 for x in t]

        def ok(a: float, b: float) -> bool:  # nearest integer, either way of breaking ties
            return abs(a - b) <= 0.5 + 1e-9

        if schedule.get("family") == "vp-discrete":
            floats = [i for i, v in enumerate(ts) if not _is_int(v)]
            if floats:
                out.append(f"timesteps[{floats[0]}] = {ts[floats[0]]!r} is not an integer (vp-discrete)")
    if expected is not None and len(expected) == len(ts):
        i = _first_mismatch(zip(ts, expected, strict=True), ok)
        if i is not None:
            out.append(
                f"timesteps[{i}] = {ts[i]!r} does not match time_input {time_input!r} (expected {expected[i]!r})"
            )

    collisions = entry.get("timestep_collisions")
    if isinstance(collisions, list):
        want = [[i, j] for i in range(len(ts)) for j in range(i + 1, len(ts)) if ts[i] == ts[j]]
        if collisions != want:
            out.append(
                f"timestep_collisions is {_short(json.dumps(collisions), 80)}, "
                f"expected {_short(json.dumps(want), 80)} (all pairs i < j with equal timesteps)"
            )
    return out


def _entry_key(entry: Any) -> tuple[Any, Any, Any] | None:
    if (
        isinstance(entry, dict)
        and _is_int(entry.get("order"))
        and _is_num(entry.get("p"))
        and _is_int(entry.get("nfe"))
    ):
        return (entry["order"], entry["p"], entry["nfe"])
    return None


def _check_grid_complete(name: str, entries: list[Any]) -> list[Problem]:
    """The entries cover the whole product orders × p × NFE of the values they use (no hole in the grid)."""
    keys = {key for key in map(_entry_key, entries) if key is not None}
    orders, ps, nfes = (sorted({key[i] for key in keys}) for i in range(3))
    holes = [(o, p, n) for o in orders for p in ps for n in nfes if (o, p, n) not in keys]
    if not holes:
        return []
    shown = ", ".join(f"order={o} p={_fmt(p)} nfe={n}" for o, p, n in holes[:5])
    more = f" and {len(holes) - 5} more" if len(holes) > 5 else ""
    return [Problem(name, f"grid incomplete: no entry for {shown}{more} (rebuild with python -m builder sweep)")]


def _check_data_doc(name: str, doc: Any) -> tuple[list[Problem], int]:
    """Invariants of one parsed data file. Returns (problems, number of entries checked)."""
    if not isinstance(doc, dict):
        return [], 0
    out: list[Problem] = []
    schedule = doc.get("schedule") if isinstance(doc.get("schedule"), dict) else {}
    entries = doc.get("entries") if isinstance(doc.get("entries"), list) else []

    t0, t1 = schedule.get("t_start"), schedule.get("t_end")
    if _is_num(t0) and _is_num(t1) and not t0 > t1:
        out.append(Problem(name, f"schedule.t_start = {t0!r} is not above t_end = {t1!r}"))
    l0, l1 = schedule.get("lambda_start"), schedule.get("lambda_end")
    if _is_num(l0) and _is_num(l1) and not l0 < l1:
        out.append(Problem(name, f"schedule.lambda_start = {l0!r} is not below lambda_end = {l1!r}"))

    prev: tuple[Any, Any, Any] | None = None
    prev_label = ""
    for index, entry in enumerate(entries):
        label = _entry_label(entry, index)
        if isinstance(entry, dict):
            out.extend(_check_entry(name, label, entry, schedule))
        key = _entry_key(entry)
        if key is None:
            continue
        if prev is not None:
            if key == prev:
                out.append(Problem(name, f"{label}: duplicate (order, p, nfe)"))
            elif key < prev:
                out.append(
                    Problem(
                        name,
                        f"entries not sorted by (order, p, nfe): {label} comes after "
                        f"{prev_label.removeprefix('entry ')}",
                    )
                )
        prev, prev_label = key, label
    out.extend(_check_grid_complete(name, entries))

    defaults = doc.get("defaults")
    if isinstance(defaults, dict) and entries:
        order, p, solver = defaults.get("order"), defaults.get("p"), defaults.get("solver")
        matching = [e for e in entries if isinstance(e, dict) and e.get("order") == order and e.get("p") == p]
        if not matching:
            out.append(Problem(name, f"defaults name order={order} p={_fmt(p)} but no entry has them"))
        elif not any(e.get("solver") == solver for e in matching):
            out.append(
                Problem(name, f"defaults name solver {solver!r} but no entry with order={order} p={_fmt(p)} has it")
            )
    return out, len(entries)


def validate_file_bytes(name: str, data: bytes) -> list[Problem]:
    """Validate one data file on its own (schema, canonical bytes, invariants); no index needed.

    ``name`` is only used in the messages. The builder's writer can call this before writing.
    """
    problems, _doc, _n = _validate_data(name, data)
    return problems


def _validate_data(name: str, data: bytes) -> tuple[list[Problem], Any, int]:
    doc, problems = _parse(name, data)
    if doc is None:
        return problems, None, 0
    problems += _check_schema(name, doc, "file")
    problems += _check_canonical(name, doc, data)
    invariant_problems, n = _check_data_doc(name, doc)
    return problems + invariant_problems, doc, n


# ---- the folder


def _summary(entries: list[Any]) -> dict[str, Any]:
    good = [e for e in entries if isinstance(e, dict)]

    def values(key: str, check: Any) -> list[Any]:
        return sorted({e[key] for e in good if check(e.get(key))})

    return {
        "entries": len(entries),
        "nfe": values("nfe", _is_int),
        "orders": values("order", _is_int),
        "p": values("p", _is_num),
    }


def _data_json_files(root: Path) -> Iterator[str]:
    """Every ``*.json`` below a ``v<N>/`` folder, as '/'-separated paths relative to root."""
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and re.fullmatch(r"v[0-9]+", folder.name):
            for f in sorted(folder.rglob("*.json")):
                if f.is_file():
                    yield f.relative_to(root).as_posix()


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
    missing: list[str] = []
    files_checked = entries_checked = 0
    present = set(_data_json_files(root))
    listed: set[str] = set()

    index_path = root / INDEX_NAME
    index: Any = None
    if not index_path.is_file():
        problems.append(Problem(INDEX_NAME, "missing: the registry has no index"))
    else:
        data = index_path.read_bytes()
        files_checked += 1
        index, parse_problems = _parse(INDEX_NAME, data)
        problems += parse_problems
        if index is not None:
            problems += _check_schema(INDEX_NAME, index, "index")
            problems += _check_canonical(INDEX_NAME, index, data)

    records = index.get("files") if isinstance(index, dict) else None
    records = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
    paths = [r.get("path") for r in records if isinstance(r.get("path"), str)]
    if paths != sorted(paths):
        problems.append(Problem(INDEX_NAME, "files are not sorted by path"))
    seen_keys: dict[tuple[Any, ...], str] = {}

    for record in records:
        rel = record.get("path")
        if not isinstance(rel, str):
            continue
        if rel in listed:
            problems.append(Problem(INDEX_NAME, f"{rel} is listed more than once"))
            continue
        listed.add(rel)
        why = fmt.path_problem(rel)
        if why:
            problems.append(Problem(INDEX_NAME, why))
            continue
        file_path = root / rel
        try:
            inside = file_path.resolve().is_relative_to(root.resolve())
        except OSError:
            inside = False
        if not inside:
            problems.append(Problem(INDEX_NAME, f"path {rel!r} leads outside the registry folder"))
            continue
        if not file_path.is_file():
            if allow_missing:
                missing.append(rel)
            else:
                problems.append(Problem(rel, "listed in index.json but missing"))
            continue

        data = file_path.read_bytes()
        files_checked += 1
        want_hash, want_bytes = record.get("sha256"), record.get("bytes")
        if _is_int(want_bytes) and want_bytes != len(data):
            problems.append(Problem(rel, f"size is {len(data)} bytes, index.json says {want_bytes}"))
        got_hash = sha256_of(data)
        if isinstance(want_hash, str) and want_hash != got_hash:
            problems.append(
                Problem(
                    rel,
                    f"sha256 mismatch: index.json lists {want_hash}, the file hashes to "
                    f"{got_hash} (corrupted file, or a stale index: rebuild with the "
                    "builder)",
                )
            )
        file_problems, doc, n = _validate_data(rel, data)
        problems += file_problems
        entries_checked += n
        if isinstance(doc, dict):
            problems += _check_against_index(rel, doc, record, index, seen_keys)

    for rel in sorted(present - listed):
        problems.append(Problem(rel, "not listed in index.json (stray data file)"))
    if index is None:  # no usable index: still check each data file on its own
        for rel in sorted(present):
            file_problems, _doc, n = _validate_data(rel, (root / rel).read_bytes())
            problems += file_problems
            files_checked += 1
            entries_checked += n

    return ValidationReport(str(root), tuple(problems), files_checked, entries_checked, tuple(missing))


def _check_against_index(
    rel: str,
    doc: dict[str, Any],
    record: dict[str, Any],
    index: dict[str, Any],
    seen_keys: dict[tuple[Any, ...], str],
) -> list[Problem]:
    out = []
    for key in ("schema_version", "data_version"):
        if key in doc and key in index and doc[key] != index[key]:
            out.append(Problem(rel, f"{key} {doc[key]!r} differs from index.json's {index[key]!r}"))
    schedule = doc.get("schedule") if isinstance(doc.get("schedule"), dict) else {}
    if "schedule" in record and schedule.get("name") != record["schedule"]:
        out.append(Problem(rel, f"schedule.name {schedule.get('name')!r} but index.json says {record['schedule']!r}"))
    params, file_params = record.get("params"), schedule.get("params")
    if isinstance(params, dict) and isinstance(file_params, dict):
        for key, value in params.items():
            if file_params.get(key) != value:
                out.append(
                    Problem(rel, f"index.json params {key}={value!r} but schedule.params has {file_params.get(key)!r}")
                )
    entries = doc.get("entries") if isinstance(doc.get("entries"), list) else []
    summary = _summary(entries)
    for key, got in summary.items():
        if key in record and record[key] != got:
            out.append(
                Problem(
                    rel,
                    f"index.json says {key} = {_short(json.dumps(record[key]), 80)} but the "
                    f"file has {_short(json.dumps(got), 80)}",
                )
            )
    variant = (record.get("schedule"), json.dumps(params, sort_keys=True))
    for entry in entries:
        key = _entry_key(entry)
        if key is None:
            continue
        other = seen_keys.setdefault((*variant, *key), rel)
        if other != rel:
            label = _entry_label(entry, 0)
            out.append(Problem(rel, f"{label} is also in {other} (same schedule and params)"))
    return out


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
