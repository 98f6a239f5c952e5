"""Read a registry, check it against its index, cache what was read. Standard library only.

A registry is a folder holding ``index.json`` and the data files it lists (docs/registry-format.md);
`_sources` says where it is, `format` what its files must be. Reading a data file: stat it; on a cache miss
check it is a regular file inside the registry folder and not too large, read the bytes, compare their size
and sha256 with the index *before* parsing, parse strictly, check the top level and its agreement with the
index (`invariants`). Each entry is checked in full (`invariants.entry_problems`) the first time it is
asked for, then kept as an immutable `Steps`. Any failure is a `RegistryIntegrityError` naming the file;
nothing partly read is ever returned.

A registry rebuilt while it is read: when a data file's bytes do not match the index, the reader follows
the format's rule (`format.staged_bytes`): the bytes the write moved aside, if they match, are the file of
the index that was read; else, if ``index.json`` has been replaced since it was read, the new index is read
and the file again (at most `format.REBUILD_RETRIES` times); else the file is corrupt. A reader sees one
registry, old or new.

Cache: an LRU of parsed files keyed by (path, mtime_ns, size, inode[, expected sha256]). The builder replaces
files atomically (new inode), so a rebuilt registry is picked up without `clear_cache()`; a file rewritten
*in place*, same size, within one filesystem timestamp tick, is served from the cache until `clear_cache()`.

The `Steps` record (whose ``dataclasses`` import costs more than the rest of the package) is imported on
first use, to keep ``import optsteps_loader`` cheap.
"""

from __future__ import annotations

import os

from . import _sources
from . import format as fmt
from . import invariants as inv
from ._sources import OfflineMiss, Source
from .errors import RegistryIntegrityError, RegistryUnavailableError
from .format import SCHEMA_VERSION

__all__ = ["OfflineMiss", "SCHEMA_VERSION", "Source"]

# entry key -> Steps field
SEQUENCES = {
    "t": "t",
    "lambda": "lambdas",
    "alpha_t": "alpha_t",
    "sigma_t": "sigma_t",
    "sigmas": "sigmas",
    "timesteps": "timesteps",
}
_ZERO_NODE = {"t": 0.0, "alpha_t": 1.0, "sigma_t": 0.0, "sigmas": 0.0}  # the σ = 0 node of a "zero" ending
_CACHE_SIZE = 32
_cache: dict[tuple, object] = {}  # insertion order is the LRU order


def resolve_source(source: object = None, revision: object = None) -> Source:
    """``None``: ``$OPTSTEPS_REGISTRY_DIR`` or the bundled folder; a path: that folder; ``"hub"``: the Hub."""
    if isinstance(source, str) and source == "hub":
        from . import hub

        return hub.source(revision)
    if revision is not None:
        raise ValueError("revision= only applies to source='hub'")
    return _sources.local(source)


def clear_cache() -> None:
    """Forget every parsed file and resolved source, and the Hub downloads remembered by this process."""
    import sys

    _cache.clear()
    _sources.clear_cache()
    hub = sys.modules.get(f"{__package__}.hub")
    if hub is not None:
        hub.clear_cache()


def _cached(key: tuple, load):
    """LRU lookup. Threads may race to load the same file twice; none ever sees a partial result."""
    value = _cache.pop(key, None)
    if value is None:
        value = load()
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache), None), None)
    _cache[key] = value
    return value


def _stat_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (path, st.st_mtime_ns, st.st_size, st.st_ino)


def _fail(where: str, problem: str) -> RegistryIntegrityError:
    return RegistryIntegrityError(f"{where}: {problem}")


def _fail_all(where: str, problems: list[str]) -> RegistryIntegrityError:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return _fail(where, "; ".join(problems[:3]) + more)


def parse_json(data: bytes, where: str) -> object:
    """JSON from bytes, parsed strictly (`format.loads`); every failure is a `RegistryIntegrityError`."""
    try:
        return fmt.loads(data)
    except fmt.FormatError as err:
        raise _fail(where, f"not valid JSON ({err}); truncated or corrupted?") from None


def read_bytes(src: Source, rel: str, path: str, where: str) -> tuple[bytes, os.stat_result]:
    """The bytes and ``fstat`` of the registry file ``rel`` (``index.json`` or a listed path) found at
    ``path``: safe by the registry's path rule (`format.unsafe_path`), a regular file of at most
    `format.MAX_FILE_BYTES`."""
    why = fmt.unsafe_path(src.root, rel)
    if why is not None:
        raise _fail(where, why)
    try:
        return fmt.read_regular_stat(path)
    except fmt.FormatError as err:
        raise _fail(where, str(err)) from None
    except OSError as err:
        raise RegistryUnavailableError(f"{where}: cannot read {path} ({err.strerror or err})") from None


class Index:
    """A parsed and checked ``index.json``: its file records, by path and grouped by schedule key, and the
    `format.identity` of the file it was read from."""

    def __init__(self, obj: object, where: str, identity: tuple = ()) -> None:
        version = obj.get("schema_version") if isinstance(obj, dict) else type(obj).__name__
        if version != SCHEMA_VERSION:
            raise _fail(
                where,
                f"schema_version is {fmt.short(version)!r}; this loader reads {SCHEMA_VERSION}"
                " (a newer registry needs a newer optsteps)",
            )
        problems = inv.index_problems(obj)
        if problems:
            raise _fail_all(where, problems)
        self.obj, self.identity = obj, identity
        self.data_version: str = obj["data_version"]
        self.files: list[dict] = obj["files"]
        self.by_path: dict[str, dict] = {rec["path"]: rec for rec in self.files}
        self.by_schedule: dict[str, list[dict]] = {}
        for rec in self.files:
            self.by_schedule.setdefault(rec["schedule"], []).append(rec)


def load_index(src: Source) -> Index:
    """The source's index, parsed and checked (cached)."""
    key = _stat_key(src.index_path)
    if key is None:
        raise RegistryUnavailableError(f"no registry at {src.label}: cannot find {fmt.short(src.index_path, 200)}")
    where = f"{src.label}/index.json"

    def load() -> Index:
        try:
            data, st = read_bytes(src, fmt.INDEX_NAME, src.index_path, where)
            return Index(parse_json(data, where), where, fmt.identity(st))
        except RegistryIntegrityError:
            if src.discard is not None:
                src.discard(src.index_path)
            raise

    return _cached(key, load)


class DataFile:
    """One hash-verified data file: its blocks, and its entries by (nfe, order, p), checked lazily."""

    def __init__(self, obj: object, rec: dict, index: Index, where: str) -> None:
        problems = inv.file_problems(obj, rec, index.obj)
        if problems:
            raise _fail_all(where, problems)
        self.obj, self.rec, self.where = obj, rec, where
        self.entries: dict[tuple, dict] = {(e["nfe"], e["order"], e["p"]): e for e in obj["entries"]}
        self.solver_entries: dict[tuple, dict] = {inv.solver_entry_key(e): e for e in obj.get("solver_entries", ())}
        self.tiers = frozenset(key[0] for key in self.solver_entries)  # "", "calibrated", profiles
        self.steps: dict[tuple, object] = {}  # the lookup key -> Steps, filled by get()


class _Rebuilt(Exception):
    """The index was replaced since ``rec`` was read from it; ``rec`` is now the new index's record."""

    def __init__(self, rec: dict) -> None:
        self.rec = rec


def load_data(src: Source, rec: dict) -> DataFile:
    """The data file an index record names: present, hash-verified, parsed, top level checked (cached).

    The cache key holds ``id(rec)``: the record belongs to one parsed index and the cached `DataFile` keeps
    it alive, so a changed index (new records) never reuses a file checked against the old one. If the
    registry is rebuilt meanwhile, the file is read again for the new index's record of the same path (the
    module's docstring); the `DataFile` returned then carries that record."""
    where = f"{src.label}/{rec['path']}"
    for _ in range(fmt.REBUILD_RETRIES):
        path = src.locate(rec["path"])
        key = _stat_key(path)
        if key is None:
            raise _fail(where, "listed in the index but absent (a vendored subset? copy this file too)")
        try:
            return _cached((*key, id(rec)), lambda rec=rec, path=path: _load_data(src, rec, path, where))
        except _Rebuilt as rebuilt:
            rec = rebuilt.rec
    raise _fail(where, f"the registry was rebuilt {fmt.REBUILD_RETRIES} times while this file was read: try again")


def _load_data(src: Source, rec: dict, path: str, where: str) -> DataFile:
    try:
        index = _index_of(src, rec, where)
        data = read_bytes(src, rec["path"], path, where)[0]
        mismatch = fmt.hash_problem(rec["sha256"], rec.get("bytes"), data)
        if mismatch is not None:
            staged = None if src.root is None else fmt.staged_bytes(src.root, rec["sha256"])
            if staged is None and not fmt.still_at(src.index_path, index.identity):
                raise _Rebuilt(_index_of(src, None, where).by_path.get(rec["path"]) or _gone(where))
            if staged is None or fmt.hash_problem(rec["sha256"], rec.get("bytes"), staged) is not None:
                raise _fail(where, mismatch)
            data = staged
        return DataFile(parse_json(data, where), rec, index, where)
    except RegistryIntegrityError:
        if src.discard is not None:  # the index that led here is suspect too: fetch both anew
            src.discard(path)
            src.discard(src.index_path)
        raise


def _index_of(src: Source, rec: dict | None, where: str) -> Index:
    """The source's current index; if ``rec`` is not one of its records (the index was replaced since ``rec``
    was read from it), `_Rebuilt` with the current record of the same path."""
    index = load_index(src)
    if rec is not None and index.by_path.get(rec["path"]) is not rec:
        raise _Rebuilt(index.by_path.get(rec["path"]) or _gone(where))
    return index


def _gone(where: str) -> dict:
    raise _fail(where, "no longer listed in the index (the registry was rebuilt while it was read)")


def freeze(obj: object) -> object:
    """JSON data made read-only: objects become mappingproxies, lists tuples."""
    from types import MappingProxyType

    if isinstance(obj, dict):
        return MappingProxyType({k: freeze(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return tuple(freeze(v) for v in obj)
    return obj


def check_entry(data: DataFile, entry: dict) -> None:
    """Check one entry of a checked file in full (`invariants.entry_problems`); `RegistryIntegrityError`
    naming the file and the entry if anything fails."""
    problems = inv.entry_problems(entry, data.obj["schedule"])
    if not problems:
        return
    nfe = entry["nfe"]
    if "p" in entry:
        where = f"{data.where}: entry nfe={nfe} order={entry['order']} p={entry['p']}"
    else:
        profile = f" profile={entry['profile']}" if "profile" in entry else ""
        where = (
            f"{data.where}: solver entry {entry['solver']} order={entry['order']} ending={entry['ending']} nfe={nfe}"
            + profile
        )
    raise _fail_all(where, problems)


def make_steps(data: DataFile, entry: dict, solver: str, label: str, denoise_after: bool = False):
    """Check one entry in full and turn it into a `Steps` (or raise `RegistryIntegrityError`).

    ``denoise_after``: a bound entry of N − 1 steps as an N-call σ = 0-ending record (its N nodes, then the
    σ = 0 node; ``method="bound+denoise"``, ``step_orders`` the N-step pattern, no objective or quality)."""
    from .steps import Steps

    check_entry(data, entry)
    nfe = entry["nfe"]
    seqs = {name: tuple(entry[key]) for key, name in SEQUENCES.items()}
    orders, quality = entry["step_orders"], entry.get("quality")
    extra = {k: entry.get(k) for k in ("objective_uniform_lambda", "objective_uniform_t")}
    collisions = entry.get("timestep_collisions", [])
    file_ = data.obj
    provenance = {
        **file_.get("provenance", {}),
        "data_version": file_.get("data_version"),
        "source": label,
        "file": data.rec["path"],
        "sha256": data.rec["sha256"],
        **{k: entry.get(k) for k in ("init", "optimizer", "input_hash", "solver")},
    }
    if denoise_after:
        from .coefficients import solver_step_orders

        seqs = {k: (*v, _ZERO_NODE[k]) if k in _ZERO_NODE else v for k, v in seqs.items()}
        nfe, orders, quality = nfe + 1, solver_step_orders(solver, nfe + 1, entry["order"], "zero"), None
        extra = {"objective_uniform_lambda": None, "objective_uniform_t": None}
    return Steps(
        schedule=data.rec["schedule"],
        nfe=nfe,
        order=entry["order"],
        p=float(entry["p"]) if "p" in entry else None,
        solver=solver,
        **seqs,
        step_orders=tuple(orders),
        tau=entry.get("tau"),
        objective=float(entry["objective"]) if "objective" in entry and not denoise_after else None,
        ending="zero" if denoise_after else entry.get("ending", "eps"),
        method="bound+denoise" if denoise_after else entry.get("method", "bound"),
        variant=entry.get("variant"),
        calibration=freeze(entry.get("calibration")),
        profile=entry.get("profile"),
        params=freeze(data.rec["params"]),
        time_input=file_["schedule"]["time_input"],
        quality=freeze(quality),
        provenance=freeze(provenance),
        timestep_collisions=freeze(collisions),
        **extra,
    )
