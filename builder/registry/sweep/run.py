"""Running the two stages of every task, in worker processes, into the cache.

    solve     = each task's multi-start optimisation, as plain data      (expensive; ``solve-<key>.json``)
    finalize  = the registry entry from the solved task: selection and
                quality figures                                          (cheap; ``entry-<key>.json``)

A worker takes every p of one (file, NFE, order) at once: the finalize stage measures the same baseline grids
for all of them (builder.select.selection memoises measurements per process). Largest NFE first (better load
balance). Workers run the pinned kernels (builder.kernels: one thread per library) and die with the sweep: a killed sweep leaves no worker running.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from ...kernels import require_pinned
from ..entry import make_entry
from .cache import prepare_cache, read_cached, stage_keys, write_cached
from .spec import SweepError, Task
from ...solve.optimize import solve


def solve_task(task: Task) -> dict[str, Any]:
    """Stage 1 (expensive): the multi-start optimisation, as plain data.

    ``result``: the fields of the lowest-bound start's OptimizeResult that make an entry; ``candidates``:
    every start's local optimum (``init``, ``lambdas``, ``fun``, ``valid``), for selection in
    :func:`finalize_entry`. Only builder.solve runs here, so only its code (and this stage's) keys the cache.
    """
    result = solve(task.make_schedule(), task.nfe, order=task.order, p=task.p, tau=task.tau, init=task.init)
    fields = ("t", "nfe", "order", "p", "tau", "init", "step_orders", "fun", "objective_uniform_lambda")
    fields += ("objective_uniform_t", "success", "status", "message", "nit", "nfev", "starts")
    candidates = [
        {"init": c["init"], "lambdas": [float(v) for v in c["lambdas"]], "fun": float(c["fun"]), "valid": c["valid"]}
        for c in result.candidates
    ]
    return {"result": {name: _plain(result[name]) for name in fields}, "candidates": candidates}


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as Python lists and numbers (float64 values round-trip exactly through JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def finalize_entry(task: Task, solved: dict[str, Any]) -> dict[str, Any]:
    """Stage 2 (cheap): the registry entry of the solved task, measured (builder.select.selection): the
    lowest-bound start, or another local optimum where it measures better beyond noise, with its quality."""
    from ...select.selection import choose_and_measure

    schedule = task.make_schedule()
    lowest_bound = make_entry(schedule, OptimizeResult(solved["result"]), task.tau)
    entry, _quality = choose_and_measure(schedule, lowest_bound, solved["candidates"])
    return entry


def task_keys(task: Task) -> tuple[str, str]:
    """(solve key, entry key) of a task's cache files."""
    return stage_keys(task, solve_task, finalize_entry)


def _compute_group(tasks: list[Task], cache_dir: str, keys: list[tuple[str, str]]) -> list[str]:
    return [_compute_into_cache(task, cache_dir, k) for task, k in zip(tasks, keys, strict=True)]


def _compute_into_cache(task: Task, cache_dir: str, keys: tuple[str, str]) -> str:
    folder = Path(cache_dir)
    solve_key, entry_key = keys
    cached = read_cached(folder, solve_key)
    if cached is None:
        solved = solve_task(task)
        write_cached(folder, solve_key, {"task": task.label(), "solved": solved})
    else:
        solved = cached["solved"]
    entry = finalize_entry(task, solved)
    write_cached(folder, entry_key, {"task": task.label(), "entry": entry})
    return task.label()


def _worker_init(parent_pid: int | None) -> None:
    # a worker inherits the parent's pinned kernels (one thread per library: the processes use every core)
    require_pinned()
    die_with_parent(parent_pid)


def die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``); ``parent_pid``,
    where known, catches a parent that died before the request took effect."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the worker still ends when its queue closes
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def run_tasks(
    tasks: list[Task],
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    recompute: bool = False,
) -> int:
    """Compute every task whose entry is not cached yet (all of them if ``recompute``; a cached solve is still
    reused); returns how many ran."""
    prepare_cache(cache_dir)
    keys = {task: task_keys(task) for task in tasks}
    todo = [t for t in tasks if recompute or read_cached(cache_dir, keys[t][1]) is None]
    groups: dict[tuple[str, int, int], list[Task]] = {}
    for task in todo:
        groups.setdefault((task.file, task.nfe, task.order), []).append(task)
    units = sorted(groups.values(), key=lambda g: (-g[0].nfe, g[0].label()))  # big problems first: load balance
    if not units:
        return 0
    bar = _progress_bar(len(todo), len(tasks), progress)
    try:
        args = ([str(cache_dir)] * len(units), [[keys[t] for t in unit] for unit in units])
        for labels in map_in_workers(_compute_group, units, *args, workers=workers):
            for label in labels:
                bar(label)
    finally:
        bar(None)
    return len(todo)


def map_in_workers(function: Callable[..., Any], *columns: list, workers: int | None = None) -> Iterator[Any]:
    """``function`` over the rows of ``columns`` (as ``map``), in order: in ``workers`` processes (default: all
    cores) that inherit the pinned kernels and die with this one, or in this process for one worker."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield from map(function, *columns)
        return
    context = multiprocessing.get_context()
    parent = os.getpid() if context.get_start_method() == "fork" else None
    with ProcessPoolExecutor(workers, context, initializer=_worker_init, initargs=(parent,)) as pool:
        yield from pool.map(function, *columns, chunksize=1)


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
    """The finished entry of a task (run_tasks has computed it)."""
    payload = read_cached(cache_dir, task_keys(task)[1])
    if payload is None:
        raise SweepError(f"the entry for {task.label()} vanished from the cache folder {cache_dir}: run again")
    return payload["entry"]
