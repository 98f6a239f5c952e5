"""The sweep's resumable cache: stage keys derived from the code each stage runs, self-checking entries.

    solve-<key>.json     what the optimiser returned for a task      key: task + the code the solve runs
    entry-<key>.json     the finished registry entry for a task      key: the solve key + the code finalize runs

A stage's code is the import closure of its root modules (:func:`import_closure`: every module of
``builder`` and the loader reachable by ``import`` statements, lazy ones included, plus the data folders the
modules read) and the source of the function that runs the stage: the solve key covers
:data:`SOLVE_ROOTS` (builder.solve and the loader's ``coefficients`` it imports), the entry key also
:data:`FINALIZE_ROOTS` (the selection, its problems and the entry format). A change to the selection code
therefore re-finalizes every entry and re-solves nothing, and a change to code no stage runs (the hub
client, the glue, the checks) reuses everything. The numerical libraries' versions and the pinned kernels
(builder.kernels) are part of every key.

Each cache file carries its own sha256 and its key; a truncated, garbage or altered file is reported,
removed and recomputed, never used.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import __version__
from .._canonical import atomic_write_bytes, canonical_bytes, sha256_of
from .spec import SweepError, Task

log = logging.getLogger("builder.sweep")

SOURCE_ROOT = Path(__file__).resolve().parents[3]  # the folder holding builder/ and optsteps_loader/
SOLVE_ROOTS = ("builder.solve.optimize",)
FINALIZE_ROOTS = ("builder.select.selection", "builder.registry.entry")
DATA_FOLDERS = ("builder/select/data", "builder/solve/data")
SOLVE_DATA = ("builder/solve/data",)
# exception classes, and the registry format's file I/O (the truths' disk cache writes through it): no number
# a stage computes depends on them
NO_NUMBERS = ("optsteps_loader/errors.py", "optsteps_loader/format.py")
CACHE_ENV = "OPTSTEPS_BUILD_CACHE"


@functools.cache
def import_closure(root: Path, roots: tuple[str, ...], data: tuple[str, ...] = DATA_FOLDERS) -> tuple[str, ...]:
    """Every source file (relative to ``root``) reachable by imports from the modules ``roots`` within
    ``builder`` and ``optsteps_loader`` (``__init__`` files and :data:`NO_NUMBERS` aside), plus every file of
    the folders ``data``."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        rel = module.replace(".", "/") + ".py"
        if rel in seen or rel in NO_NUMBERS or not (root / rel).is_file():
            continue
        seen.add(rel)
        for node in ast.walk(ast.parse((root / rel).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                base = node.module or ""
                if node.level:  # relative (``from .x import y``, ``from . import x``): against the module's package
                    base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
                todo += [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
    files = [p.relative_to(root).as_posix() for f in data for p in (root / f).rglob("*") if p.is_file()]
    return tuple(sorted(seen | {f for f in files if "__pycache__" not in f}))


@functools.cache
def code_fingerprint(root: Path, files: tuple[str, ...], extra_code: str = "") -> str:
    """sha256 over the files (names and bytes, relative to ``root``), ``extra_code``, the builder, numpy,
    scipy and torch versions and the pinned kernels (builder.kernels): a result computed with other kernels is
    never reused."""
    from importlib.metadata import version

    from ...kernels import PINNED_ENV

    versions = " ".join(version(name) for name in ("numpy", "scipy", "torch"))
    python = ".".join(map(str, sys.version_info[:2]))  # ast.dump's form is the interpreter's
    digest = hashlib.sha256(f"{__version__} {versions} {python} {sorted(PINNED_ENV.items())}".encode())
    for rel in files:
        data = (root / rel).read_bytes()
        if rel.endswith(".py"):
            data = code_of(data.decode(), _module_name(rel)).encode()
        digest.update(f"{rel}\0{len(data)}\0".encode() + data)
    digest.update(extra_code.encode())
    return digest.hexdigest()


def code_of(source: str, module: str) -> str:
    """What Python runs of ``source``, the code of ``module``: its syntax tree without docstrings (comments never
    reach the tree), relative imports written out absolute and each block of imports in one order, so an edit
    to the prose, or to how imports are spelled and ordered, leaves every key alone and an edit to the code
    changes it."""
    import textwrap

    tree = ast.parse(textwrap.dedent(source))
    package = module.split(".")[:-1]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            node.module, node.level = ".".join(base + ([node.module] if node.module else [])), 0
    for node in ast.walk(tree):  # the order of a block of imports is layout (the linter's), not code
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = _imports_sorted(body)
    return ast.dump(tree)


OWN_PACKAGES = ("builder", "optsteps_loader")


def _imports_sorted(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` with the project's own ``from … import`` statements of each block of imports in module order,
    every other statement where it was (a linter puts relative imports in a block of their own)."""
    out = list(body)
    start = 0
    while start < len(out):
        end = start
        while end < len(out) and isinstance(out[end], ast.Import | ast.ImportFrom):
            end += 1
        own = [i for i in range(start, end) if _own(out[i])]
        for i, stmt in zip(own, sorted((out[i] for i in own), key=ast.dump), strict=True):
            out[i] = stmt
        start = end + 1
    return out


def _own(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and (stmt.module or "").split(".")[0] in OWN_PACKAGES


def _module_name(rel: str) -> str:
    """``builder/select/truth.py`` → ``builder.select.truth``."""
    return rel[: -len(".py")].replace("/", ".")


def stage_keys(
    task: Task, solve_code: Callable[..., Any], finalize_code: Callable[..., Any], root: Path | None = None
) -> tuple[str, str]:
    """(solve key, entry key) of a task; ``solve_code``, ``finalize_code``: the functions that run the two
    stages (their source, and that of the functions they name in their module, are part of the keys)."""
    root = root or SOURCE_ROOT
    solve_fp = code_fingerprint(root, import_closure(root, SOLVE_ROOTS, SOLVE_DATA), _source_of(solve_code))
    finalize_fp = code_fingerprint(root, import_closure(root, FINALIZE_ROOTS), _source_of(finalize_code))
    task_json = task.fields()

    def key(stage: str, *fingerprints: str) -> str:
        payload = json.dumps([task_json, *fingerprints, stage])
        return f"{stage}-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"

    return key("solve", solve_fp), key("entry", solve_fp, finalize_fp)


@functools.cache
def _source_of(function: Callable[..., Any]) -> str:
    """The code (:func:`code_of`) of the function plus that of the module-level functions it calls by name
    (one level)."""
    module = inspect.getmodule(function)
    names = function.__code__.co_names
    helpers = [getattr(module, n) for n in names if inspect.isfunction(getattr(module, n, None))]
    same_module = [h for h in helpers if h.__module__ == function.__module__]
    return code_of("\n".join(inspect.getsource(f) for f in [function, *same_module]), function.__module__)


def read_cached(folder: Path, key: str) -> dict[str, Any] | None:
    """The payload cached under ``key``, or None if absent. A damaged file (unreadable, not JSON, a hash or key
    that does not match) is logged, removed and reported as absent, so it is recomputed."""
    path = folder / f"{key}.json"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SweepError(cache_problem(folder, exc)) from None
    why = _damage(data, key)
    if why is None:
        return json.loads(data)["payload"]
    log.warning("cache entry %s is damaged (%s): recomputing it", path, why)
    try:
        path.unlink()
    except OSError:
        pass
    return None


def _damage(data: bytes, key: str) -> str | None:
    """Why ``data`` is not a valid cache file for ``key``, or None."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"not JSON: {str(exc)[:80]}"
    if not (isinstance(doc, dict) and set(doc) == {"key", "sha256", "payload"}):
        return "not a cache entry"
    if doc["key"] != key:
        return f"it holds {str(doc['key'])[:60]!r}"
    try:
        got = sha256_of(canonical_bytes(doc["payload"]))
    except (TypeError, ValueError) as exc:
        return f"payload not canonical JSON: {exc}"
    if got != doc["sha256"]:
        return "its sha256 does not match its payload"
    return None


def write_cached(folder: Path, key: str, payload: dict[str, Any]) -> None:
    """Store ``payload`` under ``key`` with its sha256 (atomically); an OSError becomes a :class:`SweepError`."""
    data = canonical_bytes({"key": key, "sha256": sha256_of(canonical_bytes(payload)), "payload": payload})
    try:
        atomic_write_bytes(folder / f"{key}.json", data)
    except OSError as exc:
        raise SweepError(cache_problem(folder, exc)) from None


def prepare_cache(folder: Path) -> None:
    """Create the cache folder and prove it writable before any work is done (a clear error if not)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        atomic_write_bytes(probe, b"ok\n")
        probe.unlink()
    except OSError as exc:
        raise SweepError(cache_problem(folder, exc)) from None


def cache_problem(folder: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return (
        f"cannot use the sweep cache folder {folder}: {reason}. Free space there, or choose another folder "
        f"with --cache-dir PATH or ${CACHE_ENV}=PATH"
    )


def default_cache_dir(registry: Path) -> Path:
    """``$OPTSTEPS_BUILD_CACHE`` or ``.optsteps-cache`` beside the registry folder."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else registry.resolve().parent / ".optsteps-cache"
