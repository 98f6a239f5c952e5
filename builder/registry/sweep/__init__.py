"""Sweep the declarative grid (``builder/registry/spec.json``) through the optimiser into a registry folder.

    spec      the grid and its tasks; ``--only`` slices                        (spec.py)
    cache     stage keys hashed from the code each stage runs; self-checking   (cache.py)
    run       solve (expensive) and finalize (cheap) per task, in workers      (run.py)
    pipeline  keep a slice's other entries (checked), assemble, validate       (pipeline.py)
    write     replace files so readers see old or new, never a mix             (write.py)

Resumable: each finished stage is stored in the cache folder under a key that hashes the task and the
source code it runs, so a killed sweep rerun does only what is missing and a change to the selection code
re-finalizes without re-optimising.
"""

from builder.registry.sweep.cache import default_cache_dir
from builder.registry.sweep.pipeline import SCHEMA_VERSION, assemble, build, check, kept_entries
from builder.registry.sweep.run import finalize_entry, load_cached, run_tasks, solve_task, task_keys
from builder.registry.sweep.spec import SPEC_PATH, Spec, SweepError, Task, load_spec, parse_only, slice_of, tasks_of
from builder.registry.sweep.write import read_snapshot, recover, write_registry

__all__ = [
    "SCHEMA_VERSION",
    "SPEC_PATH",
    "Spec",
    "SweepError",
    "Task",
    "assemble",
    "build",
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
    "slice_of",
    "solve_task",
    "task_keys",
    "tasks_of",
    "write_registry",
]
