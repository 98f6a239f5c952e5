"""How much a rebuilt registry file differs from the committed one, by stage and field (``sweep --check``).

A data file holds the bound entries (the solve and finalize stages: ``optimizer`` and the nodes come from the
solve, ``quality`` and the chosen grid from the finalize) and the solver entries (the refine stage); the index
is assembled from them. For each section the report names the entries that differ and, per numeric field,
the largest relative difference |a − b| / max(|a|, |b|) over them, so an ulp-level drift (≈ 1e-16) reads
differently from another optimum (≈ 1e-3); a field whose type or length changed is named as such. The first
stage of the pipeline with a difference is the one that diverged: the later ones only follow from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

STAGES = (("entries", "solve/finalize (bound entries)"), ("solver_entries", "refine (solver entries)"))
_KEY_FIELDS = ("nfe", "order", "p", "solver", "ending", "profile", "calibration")


def _key(entry: dict[str, Any]) -> tuple:
    return tuple(json.dumps(entry.get(k), sort_keys=True) for k in _KEY_FIELDS)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(field path, leaf) of a JSON value; list positions are not part of the path (a field's max covers them)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, path)
    else:
        yield path, value


def field_differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, float | str]:
    """{field: largest relative difference} over the numeric leaves of two entries (``"changed"`` where a
    non-numeric leaf differs, or a field's leaves differ in number or exist on one side only); fields that
    are equal are left out. Leaves are compared field by field, so one field's change never shifts another's."""
    a: dict[str, list[Any]] = {}
    b: dict[str, list[Any]] = {}
    for leaves, out in ((_leaves(old), a), (_leaves(new), b)):
        for path, leaf in leaves:
            out.setdefault(path, []).append(leaf)
    diffs: dict[str, float | str] = {}
    for path in sorted(a.keys() | b.keys()):
        xs, ys = a.get(path), b.get(path)
        if xs is None or ys is None or len(xs) != len(ys):
            diffs[path] = "changed"
            continue
        for x, y in zip(xs, ys, strict=True):
            if x == y:
                continue
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
                diffs[path] = "changed"
                break
            diffs[path] = max(abs(x - y) / max(abs(x), abs(y)), diffs.get(path, 0.0))  # type: ignore[type-var]
    return diffs


def describe(rel: str, old_bytes: bytes, new_bytes: bytes) -> str:
    """A few lines on how ``new_bytes`` (rebuilt) differs from ``old_bytes`` (committed) for the file ``rel``."""
    try:
        old, new = json.loads(old_bytes or b"{}"), json.loads(new_bytes or b"{}")
    except ValueError:
        return f"{rel}: not JSON on one side"
    if not old_bytes or not new_bytes:
        return f"{rel}: {'missing from the rebuild' if not new_bytes else 'not committed'}"
    lines, first = [], None
    for section, stage in STAGES:
        olds = {_key(e): e for e in old.get(section) or []}
        news = {_key(e): e for e in new.get(section) or []}
        fields: dict[str, float | str] = {}
        differ = sorted(k for k in olds.keys() & news.keys() if olds[k] != news[k])
        for k in differ:
            for path, d in field_differences(olds[k], news[k]).items():
                if isinstance(d, str) or isinstance(fields.get(path), str):
                    fields[path] = "changed"
                else:
                    fields[path] = max(d, fields.get(path, 0.0))  # type: ignore[type-var]
        only = len(olds.keys() ^ news.keys())
        if not differ and not only:
            continue
        first = first or stage
        shown = ", ".join(
            f"{p} {d}" if isinstance(d, str) else f"{p} {d:.1e}"
            for p, d in sorted(fields.items(), key=lambda i: (isinstance(i[1], str), i[1]), reverse=True)[:8]
        )
        extra = f", {only} in one build only" if only else ""
        lines.append(f"  {stage}: {len(differ)} of {len(olds)} entries differ{extra}; max relative: {shown}")
    rest = sorted(k for k in old.keys() | new.keys() if k not in dict(STAGES) and old.get(k) != new.get(k))
    if rest:
        lines.append(f"  file fields that differ: {', '.join(rest)}")
    head = f"{rel}: first diverged in the {first} stage" if first else f"{rel}: differs"
    return "\n".join([head, *lines])
