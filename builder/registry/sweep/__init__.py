"""Sweep the declarative grid (``builder/registry/spec.json``) through the optimiser into a registry folder.

    spec      the grid and its tasks; ``--only`` slices                        (spec.py)
    cache     stage keys hashed from the code each stage runs; self-checking   (cache.py)
    run       solve (expensive) and finalize (cheap) per task, in workers      (run.py)
    chains    the refine stage: solver entries, one chain per sampler          (chains.py)
    choice    what each solver entry ships, decided on held-out kinds of data  (choice.py)
    pipeline  keep a slice's other entries (checked), shards, assemble, validate (pipeline.py)
    compare   how much a rebuilt file differs, by stage and field              (compare.py)
    write     replace files so readers see old or new, never a mix             (write.py)

Resumable: each finished stage is stored in the cache folder under a key that hashes the task and the
source code it runs, so a killed sweep rerun does only what is missing and a change to the selection code
re-finalizes without re-optimising.
"""

from ..files import SCHEMA_VERSION
from .cache import default_cache_dir
from .pipeline import (
    assemble,
    build,
    build_shard,
    chains_depending_on,
    check,
    kept_entries,
    shard_files,
)
from .run import finalize_entry, load_cached, run_tasks, solve_task, task_keys
from .spec import SPEC_PATH, Spec, SweepError, Task, load_spec, parse_only, slice_of, tasks_of
from .write import read_snapshot, recover, write_registry

__all__ = [
    "SCHEMA_VERSION",
    "SPEC_PATH",
    "Spec",
    "SweepError",
    "Task",
    "assemble",
    "build",
    "build_shard",
    "chains_depending_on",
    "check",
    "default_cache_dir",
    "finalize_entry",
    "kept_entries",
    "load_cached",
    "load_spec",
    "parse_only",
    "read_snapshot",
    "recover",
    "run_tasks",
    "shard_files",
    "slice_of",
    "solve_task",
    "task_keys",
    "tasks_of",
    "write_registry",
]
