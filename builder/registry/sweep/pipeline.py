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

from ... import __version__
from ...kernels import require_pinned
from ..files import data_file, index_file, index_record
from . import choice
from .cache import default_cache_dir
from .chains import Chain, bound_grids, chains_of, continued_starts, generic_grids, load_chain, run_chains
from .compare import describe
from .run import load_cached, run_tasks
from .spec import Spec, SweepError, Task, load_spec, slice_of, tasks_of
from .write import INDEX, check_target, read_snapshot, write_registry
from ...solve.schedules import get_schedule


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

    With a ``selection`` (a slice), every stage honours it: the slice's tasks are recomputed, and so are the
    refine chains that start from one of their entries (:func:`chains_depending_on`), and the profile and
    continued chains of those whose starts then differ from the kept files' (:func:`_settled`); every other bound and
    solver entry is kept from the registry files already in ``registry`` once they are checked against its
    index and the data invariants (or taken from the cache if no registry is there yet, else computed). A
    selection that matches nothing, a folder that is neither empty nor a registry (unless ``force``), or a
    kept file that fails its check is a :class:`SweepError` raised before any work is done. Only the pinned
    numerical kernels compute registry bytes (:func:`builder.kernels.require_pinned`).
    """
    require_pinned()
    spec = spec or load_spec()
    all_tasks = tasks_of(spec)
    sliced = set(slice_of(spec, selection)) if selection else set(all_tasks)
    check_target(registry, [s["file"] for s in spec.schedules], force=force)
    cache_dir = cache_dir or default_cache_dir(registry)
    kept = _checked_files(registry) if selection else {}
    existing = _bound_entries(kept)

    to_solve = [t for t in all_tasks if t in sliced or _existing_key(t) not in existing]
    run_tasks(to_solve, cache_dir, workers=workers, progress=progress, recompute=bool(selection))

    entries_by_file: dict[str, list[dict[str, Any]]] = {}
    for task in all_tasks:
        if task in sliced or _existing_key(task) not in existing:
            entry = load_cached(task, cache_dir)
        else:
            entry = existing[_existing_key(task)]
        entries_by_file.setdefault(task.file, []).append(entry)
    chains = chains_depending_on(spec, to_solve) if selection else None
    direct = chains_depending_on(spec, to_solve, dependents=False) if selection else None
    solver_entries_by_file = solver_entries(
        spec, entries_by_file, cache_dir, workers=workers, progress=progress, recompute=chains, direct=direct, kept=kept
    )
    files = assemble(spec, entries_by_file, solver_entries_by_file)
    _check_data(files)
    write_registry(registry, files, force=force)
    return files


def shard_files(spec: Spec, shard: tuple[int, int]) -> list[str]:
    """The data files of shard K of N (1-based): every N-th schedule variant of the spec, from the K-th. A
    variant's bound tasks and refine chains depend on nothing outside it, so shards share no work."""
    k, n = shard
    if not 1 <= k <= n:
        raise SweepError(f"--shard {k}/{n}: write K/N with 1 <= K <= N")
    return [s["file"] for s in spec.schedules][k - 1 :: n]


def build_shard(
    shard: tuple[int, int],
    cache_dir: Path,
    *,
    spec: Spec | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[str]:
    """Compute shard K of N (:func:`shard_files`) into ``cache_dir``: its bound tasks, then its refine chains.
    Writes no registry: the cache folders of all N shards, copied into one, make :func:`build` an assembly
    (the cache files are named by content keys, so the union has no conflicts). Returns the shard's files."""
    require_pinned()
    spec = spec or load_spec()
    files = shard_files(spec, shard)
    tasks = [t for t in tasks_of(spec) if t.file in files]
    run_tasks(tasks, cache_dir, workers=workers, progress=progress)
    entries_by_file: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        entries_by_file.setdefault(task.file, []).append(load_cached(task, cache_dir))
    solver_entries(spec, entries_by_file, cache_dir, workers=workers, progress=progress)
    return files


def chains_depending_on(spec: Spec, tasks: list[Task], *, dependents: bool = True) -> set[Chain]:
    """The refine chains whose start grids come from one of ``tasks``' entries (:func:`bound_grids`: the
    entry of the chain's order and the schedule's default p at NFE N, or N − 1 for a ``"zero"`` chain), and
    (``dependents``) the profile and continued chains of those."""
    defaults_p = {s["file"]: float(s["defaults"]["p"]) for s in spec.schedules}
    used = {(t.file, t.order, t.nfe) for t in tasks if float(t.p) == defaults_p[t.file]}
    every = chains_of(spec)
    direct = {
        c for c in every if not c.profile and any((c.file, c.order, n - (c.ending == "zero")) in used for n in c.nfes)
    }
    generic = {c for c in direct if not c.after}
    if not dependents:
        return direct
    return direct | {
        c for c in every if (c.profile and c.generic() in generic) or (c.after and c.continues(every) in generic)
    }


def solver_entries(
    spec: Spec,
    entries_by_file: dict[str, list[dict[str, Any]]],
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    recompute: set[Chain] | None = None,
    direct: set[Chain] | None = None,
    kept: dict[str, dict[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Stage 3: the chains of the files in ``entries_by_file`` refined (from the cache where it is there), as
    solver entries by file. Each generic chain starts from the bound entries of its file (the schedule's
    default p, the chain's order); each profile chain from its generic chain's grids, so the generic chains
    run first. With ``recompute`` (a slice), a chain outside it keeps its solver entries from the checked
    registry files ``kept`` where they are there. Continued chains start from their generic chain's grid at
    its last NFE, so they run after the generic ones too. A chain of ``recompute`` that is not in ``direct`` (the
    slice's own chains) is there only through its generic chain: when the generic chain's grids come out as the
    kept files have them, its starts are the ones it was built from, and it keeps its entries too
    (:func:`_settled`)."""
    from ..entry import solver_entry

    defaults_p = {s["file"]: s["defaults"]["p"] for s in spec.schedules}
    every = [c for c in chains_of(spec) if c.file in entries_by_file]
    shipped = _solver_entries(kept or {})
    keep = {c: _complete(shipped, c) for c in every if recompute is not None and c not in recompute}
    keep = {c: entries for c, entries in keep.items() if entries is not None}
    profiled = [c for c in every if c.profile and c not in keep]
    continued = [c for c in every if c.after and c not in keep]
    needed = {c.generic() for c in profiled} | {c.continues(every) for c in continued}
    generic = [
        (c, bound_grids(c, entries_by_file[c.file], defaults_p[c.file]))
        for c in every
        if not c.profile and not c.after and (c not in keep or c in needed)
    ]
    run_chains(generic, cache_dir, workers=workers, progress=progress)
    records = {chain: load_chain(chain, starts, cache_dir)["records"] for chain, starts in generic}
    if recompute is not None and direct is not None:
        dependents = [c for c in profiled + continued if c not in direct]
        settled = _settled(dependents, every, records, entries_by_file, defaults_p, kept or {}, shipped)
        keep |= {c: _complete(shipped, c) for c in settled}
        profiled = [c for c in profiled if c not in settled]
        continued = [c for c in continued if c not in settled]
    starts = [(c, generic_grids(records[c.generic()])) for c in profiled] + [
        (c, continued_starts(c, entries_by_file[c.file], defaults_p[c.file], records[c.continues(every)]))
        for c in continued
    ]
    run_chains(starts, cache_dir, workers=workers, progress=progress)
    records |= {chain: load_chain(chain, grids, cache_dir)["records"] for chain, grids in starts}
    decisions = choose_grids(records, dict(generic) | dict(starts), cache_dir, workers=workers, progress=progress)
    out: dict[str, list[dict[str, Any]]] = {}
    for chain in every:
        if chain in keep:
            out.setdefault(chain.file, []).extend(keep[chain])
        else:
            schedule = chain.make_schedule()
            applied = choice.apply(chain, records[chain], decisions[_group_of(chain)])
            out.setdefault(chain.file, []).extend(solver_entry(schedule, chain, r) for r in applied)
    return out


def choose_grids(
    records: dict[Chain, list[dict[str, Any]]],
    starts: dict[Chain, dict[int, Any]],
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> dict[tuple[str, str, int, str], dict[str, dict[str, Any]]]:
    """Stage 4 (:mod:`.choice`): the held-out decisions of every (file, solver, order, ending) that ``records``
    (the refined chains' records) has, from the cache where they are there; keyed like :func:`_group_of`."""
    groups = choice.groups_of(records, starts)
    choice.run_groups(groups, cache_dir, workers=workers, progress=progress)
    return {_group_of(g.chain): choice.load_decisions(g, cache_dir) for g in groups}


def _settled(
    dependents: list[Chain],
    every: list[Chain],
    records: dict[Chain, list[dict[str, Any]]],
    entries_by_file: dict[str, list[dict[str, Any]]],
    defaults_p: dict[str, Any],
    kept: dict[str, dict[str, Any]],
    shipped: dict[tuple, list[dict[str, Any]]],
) -> set[Chain]:
    """The profile and continued chains of ``dependents`` that start where the kept files' entries were built
    from: their generic chain's fresh ``records``, written as solver entries, give the grids the kept generic
    entries hold (while :data:`choice.REPLACE` is off an entry ships its chain's grid), a continued chain's
    bound entries in ``entries_by_file`` are the kept ones at its NFEs, and the kept files hold the chain's
    entries at every NFE (``shipped``: theirs by chain key). A written grid is λ(t(λ)) of the chain's, so two grids that differ only in their last
    bits can be written alike: "the same" here is what the registry can tell, as everywhere else in a slice."""
    from ..entry import solver_nodes

    if choice.REPLACE:
        return set()
    bound = {rel: data["entries"] for rel, data in kept.items()}
    written: dict[Chain, dict[int, list[float]]] = {}  # a generic chain's fresh grids as entries write them
    out = set()
    for c in dependents:
        base = c.generic() if c.profile else c.continues(every)
        if base not in records or c.file not in bound or _complete(shipped, c) is None:
            continue
        if base not in written:
            schedule = base.make_schedule()
            written[base] = {
                int(r["nfe"]): solver_nodes(schedule, base.ending, r["lambda"])["lambda"] for r in records[base]
            }
        now, was = written[base], generic_grids(shipped.get(_chain_key(base), []))
        used = now.keys() if c.profile else {c.after}
        if any(n not in now or now[n] != was.get(n) for n in used):
            continue
        p = defaults_p[c.file]
        if c.profile or bound_grids(c, entries_by_file[c.file], p) == bound_grids(c, bound[c.file], p):
            out.add(c)
    return out


def _complete(shipped: dict[tuple, list[dict[str, Any]]], chain: Chain) -> list[dict[str, Any]] | None:
    """The kept solver entries of ``chain`` (``shipped``: by chain key), if there is one at each of its NFEs."""
    entries = [e for e in shipped.get(_chain_key(chain), []) if e["nfe"] in chain.nfes]
    return entries if len(entries) == len(chain.nfes) else None


def _group_of(chain: Chain) -> tuple[str, str, int, str]:
    return (chain.file, chain.solver, chain.order, chain.ending)


def _chain_key(chain: Chain) -> tuple[str, str, int, str, str | None]:
    return (chain.file, chain.solver, chain.order, chain.ending, chain.profile)


def _solver_entries(files: dict[str, dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = {}
    for rel, data in files.items():
        for e in data.get("solver_entries") or []:
            if "calibration" not in e:
                key = (rel, e["solver"], e["order"], e["ending"], e.get("profile"))
                out.setdefault(key, []).append(e)
    return out


def _existing_key(task: Task) -> tuple[str, int, int, float]:
    return (task.file, task.nfe, task.order, float(task.p))


def kept_entries(registry: Path) -> dict[tuple[str, int, int, float], dict[str, Any]]:
    """The bound entries of the registry already in ``registry``, every file checked first
    (:func:`_checked_files`)."""
    return _bound_entries(_checked_files(registry))


def _bound_entries(files: dict[str, dict[str, Any]]) -> dict[tuple[str, int, int, float], dict[str, Any]]:
    return {(rel, e["nfe"], e["order"], float(e["p"])): e for rel, data in files.items() for e in data["entries"]}


def _checked_files(registry: Path) -> dict[str, dict[str, Any]]:
    """{file: its parsed data} of the registry already in ``registry`` (empty if none), every file checked
    first: its bytes must hash to what the index lists and pass the data invariants
    (builder.registry.validate), else :class:`SweepError` naming the file and the fix. Nothing unchecked is
    ever written back under a fresh hash."""
    from ..validate import validate_file_bytes

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
        out[rel] = json.loads(data)
    return out


def _check_data(files: dict[str, bytes]) -> None:
    """Every data file about to be written passes the data invariants (a damaged entry is never written)."""
    from ..validate import validate_file_bytes

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
