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
    (order, p, nfe) and, when given, its solver entries sorted by (solver, order, ending, nfe)."""
    extra = {"solver_entries": sorted(solver_entries, key=solver_entry_key)} if solver_entries else {}
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
            "entries": sorted(entries, key=lambda e: (e["order"], e["p"], e["nfe"])),
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
