"""The sweep from spec to registry folder: compute what is missing, keep what a slice leaves alone (checked),
assemble every file in canonical bytes, validate, write.

Deterministic: results depend only on the inputs (no clocks, seeds are fixed, worker order does not matter
because assembly sorts), so assembling from the cache gives exactly the bytes an uninterrupted run gives.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from builder import __version__
from builder.kernels import require_pinned
from builder.registry._canonical import canonical_bytes, sha256_of
from builder.registry.files import SCHEMA_VERSION, data_file, index_file, index_record
from builder.registry.sweep.cache import default_cache_dir
from builder.registry.sweep.compare import describe
from builder.registry.sweep.run import load_cached, run_tasks
from builder.registry.sweep.spec import Spec, SweepError, Task, load_spec, slice_of, tasks_of
from builder.registry.sweep.write import INDEX, check_target, read_snapshot, write_registry
from builder.solve.schedules import get_schedule



def build(
    registry: Path,
    *,
    spec: Spec | None = None,
    selection: dict[str, set[str]] | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict[str, bytes]:
    """Solve what is missing and write the registry folder; returns the bytes written (path → bytes).

    With a ``selection`` (a slice), the slice is recomputed and every other entry is kept from the registry
    files already in ``registry`` once they are checked against its index and the data invariants (or taken
    from the cache if no registry is there yet, else computed). A selection that matches nothing, a folder
    that is neither empty nor a registry (unless ``force``), or a kept file that fails its check is a
    :class:`SweepError` raised before any work is done. Only the pinned numerical kernels compute registry
    bytes (:func:`builder.kernels.require_pinned`).
    """
    require_pinned()
    spec = spec or load_spec()
    all_tasks = tasks_of(spec)
    sliced = set(slice_of(spec, selection)) if selection else set(all_tasks)
    check_target(registry, [s["file"] for s in spec.schedules], force=force)
    cache_dir = cache_dir or default_cache_dir(registry)
    existing = kept_entries(registry) if selection else {}

    to_solve = [t for t in all_tasks if t in sliced or _existing_key(t) not in existing]
    run_tasks(to_solve, cache_dir, workers=workers, progress=progress, recompute=bool(selection))

    entries_by_file: dict[str, list[dict[str, Any]]] = {}
    for task in all_tasks:
        if task in sliced or _existing_key(task) not in existing:
            entry = load_cached(task, cache_dir)
        else:
            entry = existing[_existing_key(task)]
        entries_by_file.setdefault(task.file, []).append(entry)
    solver_entries_by_file = solver_entries(spec, entries_by_file, cache_dir, workers=workers, progress=progress)
    files = assemble(spec, entries_by_file, solver_entries_by_file)
    _check_data(files)
    write_registry(registry, files, force=force)
    return files


def solver_entries(
    spec: Spec,
    entries_by_file: dict[str, list[dict[str, Any]]],
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Stage 3: every chain of the spec refined (from the cache where it is there), as solver entries by file.
    Each generic chain starts from the bound entries of its file (the schedule's default p, the chain's order);
    each profile chain from its generic chain's grids, so the generic chains run first."""
    from builder.registry.entry import solver_entry
    from builder.registry.sweep.chains import bound_grids, chains_of, generic_grids, load_chain, run_chains

    defaults_p = {s["file"]: s["defaults"]["p"] for s in spec.schedules}
    every = chains_of(spec)
    generic = [(c, bound_grids(c, entries_by_file.get(c.file, []), defaults_p[c.file])) for c in every if not c.profile]
    run_chains(generic, cache_dir, workers=workers, progress=progress)
    records = {chain: load_chain(chain, starts, cache_dir)["records"] for chain, starts in generic}
    profiled = [(c, generic_grids(records[c.generic()])) for c in every if c.profile]
    run_chains(profiled, cache_dir, workers=workers, progress=progress)
    records |= {chain: load_chain(chain, starts, cache_dir)["records"] for chain, starts in profiled}
    out: dict[str, list[dict[str, Any]]] = {}
    for chain, chain_records in records.items():
        schedule = chain.make_schedule()
        for record in chain_records:
            out.setdefault(chain.file, []).append(solver_entry(schedule, chain, record))
    return out


def _existing_key(task: Task) -> tuple[str, int, int, float]:
    return (task.file, task.nfe, task.order, float(task.p))


def kept_entries(registry: Path) -> dict[tuple[str, int, int, float], dict[str, Any]]:
    """The entries of the registry already in ``registry``, every file checked first: its bytes must hash to
    what the index lists and pass the data invariants (builder.registry.validate), else :class:`SweepError`
    naming the file and the fix. Nothing unchecked is ever written back under a fresh hash."""
    from builder.registry.validate import validate_file_bytes

    snapshot = read_snapshot(registry)
    if snapshot is None:
        return {}
    fix = "restore <file> (e.g. from git), or rebuild every entry with `python -m builder sweep` without --only"
    out = {}
    for rel, data in sorted(snapshot[1].items()):
        if data is None:
            raise SweepError(
                f"{registry / rel} does not match the sha256 that {INDEX} lists for it (changed after the "
                f"registry was written). A slice keeps the other entries of a file and would re-sign it: "
                f"{fix.replace('<file>', str(registry / rel))}"
            )
        problems = validate_file_bytes(rel, data)
        if problems:
            more = f"; and {len(problems) - 3} more" if problems[3:] else ""
            shown = "; ".join(str(p) for p in problems[:3]) + more
            raise SweepError(
                f"{registry / rel} fails its checks ({shown}): {fix.replace('<file>', str(registry / rel))}"
            )
        for e in json.loads(data)["entries"]:
            out[(rel, e["nfe"], e["order"], float(e["p"]))] = e
    return out


def _check_data(files: dict[str, bytes]) -> None:
    """Every data file about to be written passes the data invariants (a damaged entry is never written)."""
    from builder.registry.validate import validate_file_bytes

    for rel, data in files.items():
        problems = [] if rel == INDEX else validate_file_bytes(rel, data)
        if problems:
            shown = "\n  ".join(str(p) for p in problems[:10])
            raise SweepError(f"the rebuilt {rel} fails its checks; nothing was written:\n  {shown}")


def assemble(
    spec: Spec,
    entries_by_file: dict[str, list[dict[str, Any]]],
    solver_entries_by_file: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, bytes]:
    """Every file's canonical bytes, keyed by relative path, index.json included."""
    solver_entries_by_file = solver_entries_by_file or {}
    files: dict[str, bytes] = {}
    records = []
    for sched in spec.schedules:
        rel = sched["file"]
        entries = entries_by_file.get(rel, [])
        if not entries:
            continue
        schedule = get_schedule(sched["name"], **(sched.get("params") or {}))
        defaults = {**sched["defaults"], "solver": "unipc", "tau": spec.tau}
        extra = solver_entries_by_file.get(rel)
        files[rel] = data_file(
            schedule, entries, data_version=spec.data_version, defaults=defaults, solver_entries=extra
        )
        records.append(index_record(rel, schedule, files[rel], entries, extra))
    files[INDEX] = index_file(
        records,
        data_version=spec.data_version,
        generator=f"optsteps {__version__}",
        license=spec.license,
        citation=spec.citation,
        aliases=spec.aliases,
    )
    return files


def check(registry: Path, cache_dir: Path | None = None, **build_kwargs: Any) -> list[str]:
    """Rebuild into a temporary folder and return, per differing file, how much it differs by stage and field
    (:func:`builder.registry.sweep.compare.describe`) and the start of its diff (empty: identical).

    From scratch (a cache inside the temporary folder) unless ``cache_dir`` names a cache to reuse.
    """
    import difflib

    with tempfile.TemporaryDirectory(prefix="optsteps-check-") as tmp:
        tmp_registry = Path(tmp) / "registry"
        if build_kwargs.get("selection"):
            # a slice is checked against the committed files: start from a copy of them
            if not (registry / INDEX).is_file():
                raise SweepError(f"{registry} has no {INDEX}: a slice can only be checked against a registry")
            shutil.copytree(registry, tmp_registry)
        rebuilt = build(tmp_registry, cache_dir=cache_dir, **build_kwargs)
    diffs = []
    committed = {p.relative_to(registry).as_posix() for p in registry.glob("**/*.json")}
    for rel in sorted(set(rebuilt) | committed):
        path = registry / rel
        old = path.read_bytes() if path.exists() else b""
        new = rebuilt.get(rel, b"")
        if old != new:
            lines = difflib.unified_diff(
                old.decode(errors="replace").splitlines(),
                new.decode(errors="replace").splitlines(),
                f"committed/{rel}",
                f"rebuilt/{rel}",
                lineterm="",
                n=2,
            )
            diffs.append("\n".join([describe(rel, old, new), *list(lines)[:40]]))
    return diffs
