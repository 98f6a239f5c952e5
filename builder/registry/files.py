"""The two documents of a registry folder, as the sweep and ``calibrate`` both write them: a data file (one
schedule variant's entries) and the index (one record per data file, with its sha256). Canonical bytes
come from :func:`optsteps_loader.format.canonical_bytes`; the layout is docs/registry-format.md."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ._canonical import canonical_bytes, sha256_of
from ..solve.schedules import Schedule
from optsteps_loader.invariants import solver_entry_key  # a solver entry's key and sort order, one place

SCHEMA_VERSION = 1
# Stored log ratios below this in magnitude are written as 0 (:func:`without_noise`).
NOISE_FLOOR = 1e-9
_LOG_RATIO_FIELDS = ("log_ratio", "fit_loss")  # name prefixes of the stored figures that are (means of) log ratios


def without_noise(record: Any, name: str = "") -> Any:
    """A copy of the JSON value ``record`` in which every float stored under a key named ``log_ratio…`` or
    ``fit_loss…`` (a refine loss: a mean log ratio) whose magnitude is below :data:`NOISE_FLOOR` is 0.0.

    The builder's figures are rounded to 4 significant digits (:mod:`builder.rounding`), which is relative: it
    cannot keep the noise of a log ratio between two grids that are one grid up to their last bits (an entry
    whose optimum is the uniform-λ grid, measured against uniform λ) out of the bytes. Such a ratio is ~1e-15,
    every digit of it rounding noise that changes with the order the evaluation's operations ran in; written
    as 0, it reads as the tie it is. Stored log ratios of distinct grids start around 1e-9 (docs/registry-format.md)."""
    if isinstance(record, dict):
        return {k: without_noise(v, k) for k, v in record.items()}
    if isinstance(record, list):
        return [without_noise(v, name) for v in record]
    if type(record) is float and abs(record) < NOISE_FLOOR and name.startswith(_LOG_RATIO_FIELDS):
        return 0.0
    return record


def provenance() -> dict[str, str]:
    """The builder, numpy and scipy versions a data file was computed with."""
    import numpy
    import scipy

    return {"builder": f"optsteps {__version__}", "numpy": numpy.__version__, "scipy": scipy.__version__}


def data_file(
    schedule: Schedule,
    entries: list[dict[str, Any]],
    *,
    data_version: str,
    defaults: dict,
    solver_entries: list[dict[str, Any]] | None = None,
) -> bytes:
    """A data file's canonical bytes: the schedule's record, its defaults, its bound entries sorted by
    (order, p, nfe) and, when given, its solver entries sorted by (solver, order, ending, nfe), their log ratios
    below the noise floor written as 0 (:func:`without_noise`)."""
    extra = {"solver_entries": without_noise(sorted(solver_entries, key=solver_entry_key))} if solver_entries else {}
    return canonical_bytes(
        {
            **extra,
            "schema_version": SCHEMA_VERSION,
            "data_version": data_version,
            "provenance": provenance(),
            "schedule": {
                "name": schedule.name,
                "family": schedule.family,
                "params": schedule.params,
                "t_start": schedule.t_start,
                "t_end": schedule.t_end,
                "lambda_start": schedule.lambda_start,
                "lambda_end": schedule.lambda_end,
                "time_input": schedule.time_input,
                "description": schedule.description,
            },
            "defaults": defaults,
            "entries": without_noise(sorted(entries, key=lambda e: (e["order"], e["p"], e["nfe"]))),
        }
    )


def index_record(
    rel: str,
    schedule: Schedule,
    data: bytes,
    entries: list[dict[str, Any]],
    solver_entries: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The index's record of one data file: its path, schedule variant, sha256, size and grid (and, when the
    file has solver entries, their count, NFEs and data profiles)."""
    extra = {}
    if solver_entries:
        extra = {"solver_entries": len(solver_entries), "solver_nfe": sorted({e["nfe"] for e in solver_entries})}
        profiles = sorted({e["profile"] for e in solver_entries if "profile" in e})
        extra |= {"solver_profiles": profiles} if profiles else {}
    return {
        **extra,
        "path": rel,
        "schedule": schedule.name,
        "params": schedule.variant_params,
        "sha256": sha256_of(data),
        "bytes": len(data),
        "entries": len(entries),
        "nfe": sorted({e["nfe"] for e in entries}),
        "orders": sorted({e["order"] for e in entries}),
        "p": sorted({e["p"] for e in entries}),
    }


def index_file(
    records: list[dict[str, Any]],
    *,
    data_version: str,
    generator: str,
    license: str,
    citation: str,
    aliases: dict[str, Any] | None = None,
) -> bytes:
    """The index's canonical bytes (records sorted by path; ``aliases`` when given)."""
    return canonical_bytes(
        {
            **({"aliases": aliases} if aliases else {}),
            "schema_version": SCHEMA_VERSION,
            "data_version": data_version,
            "generator": generator,
            "license": license,
            "citation": citation,
            "files": sorted(records, key=lambda f: f["path"]),
        }
    )
