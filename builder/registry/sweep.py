"""Sweep the declarative grid (``builder/registry/spec.json``) through the optimiser into a registry folder.

    tasks     = schedule variants × NFE × order × p       (from the spec; ``only`` filters a slice)
    solve     = each task's multi-start optimisation         (expensive; cached as ``solve-<key>.json``)
    finalize  = entry from the solved task: selection and quality figures (cheap; ``entry-<key>.json``)
    write     = assemble every file and the index in canonical bytes, atomically

Both stages run in worker processes, largest NFE first. Resumable: each finished stage is stored in the
cache folder under a key that hashes the task and the source code it depends on (the numerical modules
for ``solve``; those plus the finalize modules for ``finalize``), so a killed sweep rerun does only what
is missing, a change to the quality code re-finalizes without re-optimising, and assembling from the
cache gives exactly the bytes an uninterrupted run gives. Deterministic: results depend only on the
inputs (no clocks, seeds are fixed, worker order does not matter because assembly sorts).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import __version__
from builder.registry._canonical import atomic_write_bytes, canonical_bytes, sha256_of
from builder.registry.entry import make_entry
from builder.solve.optimize import solve
from builder.solve.schedules import Schedule, get_schedule

SPEC_PATH = Path(__file__).with_name("spec.json")
SCHEMA_VERSION = 1
_SOLVE_CODE = ("solve/schedules.py", "solve/objective.py", "solve/optimize.py", "solve/grids.py", "registry/entry.py")
_FINALIZE_CODE: tuple[str, ...] = (
    "registry/sweep.py",
    "select/selection.py",
    "select/evaluate.py",
    "select/mixtures.py",
    "select/truth.py",
    "solve/data/baselines.json",
    "select/data/digits_gmm.npz",
    "../optsteps_loader/unipc.py",
    "../optsteps_loader/_coefficients.py",
    "../optsteps_loader/_model_io.py",
)  # modules (relative to builder/) that finalize_entry depends on


@dataclass(frozen=True)
class Task:
    """One registry entry to compute."""

    schedule: str
    params: tuple[tuple[str, Any], ...]
    file: str
    nfe: int
    order: int
    p: float
    tau: int | str
    init: str

    def make_schedule(self) -> Schedule:
        return get_schedule(self.schedule, **dict(self.params))

    def cache_key(self, stage: str = "entry") -> str:
        """Hash of the task and of the source code the stage depends on (so stale caches never apply)."""
        modules = _SOLVE_CODE if stage == "solve" else _SOLVE_CODE + _FINALIZE_CODE
        payload = json.dumps([self.__dict__ | {"params": list(self.params)}, code_fingerprint(modules), stage])
        return f"{stage}-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"

    def label(self) -> str:
        params = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.schedule}{params} nfe={self.nfe} order={self.order} p={self.p}"


@dataclass(frozen=True)
class Spec:
    data_version: str
    license: str
    citation: str
    nfe: tuple[int, ...]
    orders: tuple[int, ...]
    p: tuple[float, ...]
    tau: int | str
    init: str
    schedules: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def load_spec(path: str | Path = SPEC_PATH) -> Spec:
    raw = json.loads(Path(path).read_text())
    return Spec(
        data_version=raw["data_version"],
        license=raw["license"],
        citation=raw["citation"],
        nfe=tuple(raw["nfe"]),
        orders=tuple(raw["orders"]),
        p=tuple(float(v) for v in raw["p"]),
        tau=raw["tau"],
        init=raw["init"],
        schedules=tuple(raw["schedules"]),
    )


@functools.cache
def code_fingerprint(modules: tuple[str, ...]) -> str:
    """sha256 over the modules' source (paths relative to builder/), the builder, numpy and scipy versions."""
    import numpy
    import scipy

    digest = hashlib.sha256(f"{__version__} {numpy.__version__} {scipy.__version__}".encode())
    here = Path(__file__).parent.parent
    for name in modules:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


def parse_only(expressions: Iterable[str]) -> dict[str, set[str]]:
    """``["nfe=5,6", "order=3"]`` → {"nfe": {"5", "6"}, "order": {"3"}}; keys: schedule, nfe, order, p, shift."""
    allowed = {"schedule", "nfe", "order", "p", "shift"}
    selection: dict[str, set[str]] = {}
    for expr in expressions:
        key, sep, values = expr.partition("=")
        key = key.strip()
        if not sep or key not in allowed or not values.strip():
            raise ValueError(f"bad --only {expr!r}: write KEY=V1,V2 with KEY one of {', '.join(sorted(allowed))}")
        selection.setdefault(key, set()).update(v.strip() for v in values.split(","))
    return selection


def _matches(task: Task, selection: dict[str, set[str]]) -> bool:
    def number_in(value: float, wanted: set[str]) -> bool:
        return any(float(w) == float(value) for w in wanted)

    params = dict(task.params)
    checks = {
        "schedule": lambda w: task.schedule in w,
        "nfe": lambda w: number_in(task.nfe, w),
        "order": lambda w: number_in(task.order, w),
        "p": lambda w: number_in(task.p, w),
        "shift": lambda w: "shift" in params and number_in(params["shift"], w),
    }
    return all(checks[key](wanted) for key, wanted in selection.items())


def tasks_of(spec: Spec, selection: dict[str, set[str]] | None = None) -> list[Task]:
    """Every task of the spec (or of a slice), in a deterministic order."""
    out = []
    for sched in spec.schedules:
        params = tuple(sorted((sched.get("params") or {}).items()))
        for order in spec.orders:
            for p in spec.p:
                for nfe in spec.nfe:
                    task = Task(sched["name"], params, sched["file"], nfe, order, p, spec.tau, spec.init)
                    if not selection or _matches(task, selection):
                        out.append(task)
    return out


def solve_task(task: Task) -> dict[str, Any]:
    """Stage 1 (expensive): the multi-start optimisation, as plain data.

    ``entry``: the registry entry of the lowest-bound start (``quality`` None); ``candidates``: every
    start's local optimum (``init``, ``lambdas``, ``fun``, ``valid``), for selection in :func:`finalize_entry`.
    """
    schedule = task.make_schedule()
    result = solve(schedule, task.nfe, order=task.order, p=task.p, tau=task.tau, init=task.init)
    candidates = [
        {"init": c["init"], "lambdas": [float(v) for v in c["lambdas"]], "fun": float(c["fun"]), "valid": c["valid"]}
        for c in result.candidates
    ]
    return {"entry": make_entry(schedule, result, task.tau), "candidates": candidates}


def finalize_entry(task: Task, solved: dict[str, Any]) -> dict[str, Any]:
    """Stage 2 (cheap): the registry entry from a solved task, measured (builder.select.selection): the
    lowest-bound start, or another local optimum where it measures better beyond noise, with its quality."""
    from builder.select.selection import choose_and_measure

    entry, _quality = choose_and_measure(task.make_schedule(), solved["entry"], solved["candidates"])
    return entry


def compute(task: Task) -> dict[str, Any]:
    """One task into its registry entry (pure: same task, same entry)."""
    return finalize_entry(task, solve_task(task))


def _compute_into_cache(task: Task, cache_dir: str) -> str:
    folder = Path(cache_dir)
    solve_path = folder / f"{task.cache_key('solve')}.json"
    if solve_path.exists():
        solved = json.loads(solve_path.read_text())["solved"]
    else:
        solved = solve_task(task)
        atomic_write_bytes(solve_path, canonical_bytes({"task": task.label(), "solved": solved}))
    entry = finalize_entry(task, solved)
    atomic_write_bytes(folder / f"{task.cache_key()}.json", canonical_bytes({"task": task.label(), "entry": entry}))
    return task.label()


def _worker_init() -> None:
    # One BLAS thread per worker: the processes already use every core.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def run_tasks(
    tasks: list[Task],
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    recompute: bool = False,
) -> int:
    """Solve every task whose result is not cached yet (all of them if ``recompute``); returns how many ran."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [t for t in tasks if recompute or not (cache_dir / f"{t.cache_key()}.json").exists()]
    todo.sort(key=lambda t: (-t.nfe, t.label()))  # big problems first: better load balance
    if not todo:
        return 0
    workers = workers or os.cpu_count() or 1
    bar = _progress_bar(len(todo), len(tasks), progress)
    try:
        if workers == 1:
            for task in todo:
                bar(_compute_into_cache(task, str(cache_dir)))
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
                for label in pool.map(_compute_into_cache, todo, [str(cache_dir)] * len(todo), chunksize=1):
                    bar(label)
    finally:
        bar(None)
    return len(todo)


def _progress_bar(todo: int, total: int, enabled: bool) -> Callable[[str | None], None]:
    from tqdm import tqdm

    bar = tqdm(total=todo, desc=f"solving ({total - todo} of {total} cached)", unit="entry", disable=not enabled)

    def update(label: str | None) -> None:
        if label is None:
            bar.close()
        else:
            bar.set_postfix_str(label, refresh=False)
            bar.update()

    return update


def load_cached(task: Task, cache_dir: Path) -> dict[str, Any]:
    return json.loads((cache_dir / f"{task.cache_key()}.json").read_text())["entry"]


def assemble(
    spec: Spec,
    entries_by_file: dict[str, list[dict[str, Any]]],
    quality_defaults: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every file's canonical bytes, keyed by relative path, index.json included."""
    import numpy
    import scipy

    provenance = {
        "builder": f"optsteps {__version__}",
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    files: dict[str, bytes] = {}
    index_files = []
    for sched in spec.schedules:
        rel = sched["file"]
        entries = sorted(entries_by_file.get(rel, []), key=lambda e: (e["order"], e["p"], e["nfe"]))
        if not entries:
            continue
        schedule = get_schedule(sched["name"], **(sched.get("params") or {}))
        doc = {
            "schema_version": SCHEMA_VERSION,
            "data_version": spec.data_version,
            "provenance": provenance,
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
            "defaults": {**sched["defaults"], "solver": "unipc", "tau": spec.tau},
            "entries": entries,
        }
        data = canonical_bytes(doc)
        files[rel] = data
        index_files.append(
            {
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
        )
    index = {
        "schema_version": SCHEMA_VERSION,
        "data_version": spec.data_version,
        "generator": f"optsteps {__version__}",
        "license": spec.license,
        "citation": spec.citation,
        "files": sorted(index_files, key=lambda f: f["path"]),
    }
    files["index.json"] = canonical_bytes(index)
    return files


def build(
    registry: Path,
    *,
    spec: Spec | None = None,
    selection: dict[str, set[str]] | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, bytes]:
    """Solve what is missing and write the registry folder; returns the bytes written (path → bytes).

    With a ``selection`` (a slice), the slice is recomputed and every other entry is kept from the
    registry files already in ``registry`` (or from the cache if present there, else computed).
    """
    spec = spec or load_spec()
    cache_dir = cache_dir or default_cache_dir(registry)
    all_tasks = tasks_of(spec)
    sliced = set(tasks_of(spec, selection)) if selection else set(all_tasks)
    existing = _existing_entries(registry) if selection else {}

    to_solve = [t for t in all_tasks if t in sliced or _existing_key(t) not in existing]
    run_tasks(to_solve, cache_dir, workers=workers, progress=progress, recompute=bool(selection))

    entries_by_file: dict[str, list[dict[str, Any]]] = {}
    for task in all_tasks:
        if task in sliced or _existing_key(task) not in existing:
            entry = load_cached(task, cache_dir)
        else:
            entry = existing[_existing_key(task)]
        entries_by_file.setdefault(task.file, []).append(entry)
    files = assemble(spec, entries_by_file)
    write_registry(registry, files)
    return files


def _existing_key(task: Task) -> tuple[str, int, int, float]:
    return (task.file, task.nfe, task.order, float(task.p))


def _existing_entries(registry: Path) -> dict[tuple[str, int, int, float], dict[str, Any]]:
    index_path = registry / "index.json"
    if not index_path.exists():
        return {}
    out = {}
    for item in json.loads(index_path.read_text())["files"]:
        doc = json.loads((registry / item["path"]).read_text())
        for e in doc["entries"]:
            out[(item["path"], e["nfe"], e["order"], float(e["p"]))] = e
    return out


def write_registry(registry: Path, files: dict[str, bytes]) -> None:
    """Write every data file, then the index last (each atomically), and drop stale data files."""
    for rel, data in files.items():
        if rel != "index.json":
            (registry / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(registry / rel, data)
    atomic_write_bytes(registry / "index.json", files["index.json"])
    for stale in registry.glob("v*/*.json"):
        if stale.relative_to(registry).as_posix() not in files:
            stale.unlink()


def default_cache_dir(registry: Path) -> Path:
    """``$OPTSTEPS_BUILD_CACHE`` or ``.optsteps-cache`` beside the registry folder."""
    env = os.environ.get("OPTSTEPS_BUILD_CACHE")
    return Path(env) if env else registry.resolve().parent / ".optsteps-cache"


def check(registry: Path, **build_kwargs: Any) -> list[str]:
    """Rebuild into a temporary folder and return a readable diff per differing file (empty: identical)."""
    import difflib

    with tempfile.TemporaryDirectory(prefix="optsteps-check-") as tmp:
        tmp_registry = Path(tmp) / "registry"
        if build_kwargs.get("selection"):
            # a slice is checked against the committed files: start from a copy of them
            import shutil

            shutil.copytree(registry, tmp_registry)
        rebuilt = build(tmp_registry, **build_kwargs)
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
            diffs.append("\n".join(list(lines)[:80]))
    return diffs
