"""Read a registry, check it against its index, cache what was read. Standard library only.

A registry is a folder holding ``index.json`` and the data files it lists (docs/registry-format.md);
`_sources` says where it is, `_format` what its files must be. Reading a data file: stat it; on a cache miss
check it is a regular file inside the registry folder and not too large, read the bytes, compare their size
and sha256 with the index *before* parsing, parse strictly, check the top level and its agreement with the
index. Each entry is checked in full (`_format.entry_problems`) the first time it is asked for, then kept
as an immutable `Steps`. Any failure is a `RegistryIntegrityError` naming the file; nothing partly read is
ever returned.

Cache: an LRU of parsed files keyed by (path, mtime_ns, size, inode[, expected sha256]). The builder replaces
files atomically (new inode), so a rebuilt registry is picked up without `clear_cache()`; a file rewritten
*in place*, same size, within one filesystem timestamp tick, is served from the cache until `clear_cache()`.

The `Steps` record (whose ``dataclasses`` import costs more than the rest of the package) is imported on
first use, to keep ``import optsteps_loader`` cheap.
"""

from __future__ import annotations

import os

from . import _format as fmt
from . import _sources
from ._format import SCHEMA_VERSION, is_num
from ._sources import OfflineMiss, Source
from .errors import RegistryIntegrityError, RegistryUnavailableError

__all__ = ["OfflineMiss", "SCHEMA_VERSION", "Source", "is_num"]

# entry key -> Steps field
SEQUENCES = {
    "t": "t",
    "lambda": "lambdas",
    "alpha_t": "alpha_t",
    "sigma_t": "sigma_t",
    "sigmas": "sigmas",
    "timesteps": "timesteps",
}
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
    """JSON from bytes, parsed strictly (`_format.loads`); every failure is a `RegistryIntegrityError`."""
    try:
        return fmt.loads(data)
    except fmt.FormatError as err:
        raise _fail(where, f"not valid JSON ({err}); truncated or corrupted?") from None


def read_bytes(path: str, where: str, root: str | None = None) -> bytes:
    """A registry file's bytes: a regular file of at most `_format.MAX_FILE_BYTES`, inside ``root`` (symlinks
    resolved) when given."""
    if root is not None and not fmt.inside(root, path):
        raise _fail(where, f"leads outside the registry folder {root} (a symlink?)")
    try:
        return fmt.read_regular(path)
    except fmt.FormatError as err:
        raise _fail(where, str(err)) from None
    except OSError as err:
        raise RegistryUnavailableError(f"{where}: cannot read {path} ({err.strerror or err})") from None


class Index:
    """A parsed and checked ``index.json``: its file records, grouped by schedule key."""

    def __init__(self, obj: object, where: str) -> None:
        version = obj.get("schema_version") if isinstance(obj, dict) else type(obj).__name__
        if version != SCHEMA_VERSION:
            raise _fail(
                where,
                f"schema_version is {fmt.short(version)!r}; this loader reads {SCHEMA_VERSION}"
                " (a newer registry needs a newer optsteps)",
            )
        if not isinstance(obj.get("files"), list) or not isinstance(obj.get("data_version"), str):
            raise _fail(where, "'files' must be a list and 'data_version' a string")
        self.obj = obj
        self.data_version: str = obj["data_version"]
        self.files: list[dict] = obj["files"]
        self.by_schedule: dict[str, list[dict]] = {}
        seen: set = set()
        for i, rec in enumerate(self.files):
            problems = fmt.record_problems(rec)
            if not problems and (rec["path"] in seen or variant_key(rec) in seen):
                problems = [f"{rec['path']}: duplicate path or (schedule, params)"]
            if problems:
                raise _fail_all(f"{where}: files[{i}]", problems)
            seen.update((rec["path"], variant_key(rec)))
            self.by_schedule.setdefault(rec["schedule"], []).append(rec)


def variant_key(rec: dict) -> tuple:
    return (rec["schedule"], tuple(sorted((k, repr(v)) for k, v in rec["params"].items())))


def load_index(src: Source) -> Index:
    """The source's index, parsed and checked (cached)."""
    key = _stat_key(src.index_path)
    if key is None:
        raise RegistryUnavailableError(f"no registry at {src.label}: cannot find {src.index_path}")
    where = f"{src.label}/index.json"

    def load() -> Index:
        try:
            return Index(parse_json(read_bytes(src.index_path, where, src.root), where), where)
        except RegistryIntegrityError:
            if src.discard is not None:
                src.discard(src.index_path)
            raise

    return _cached(key, load)


class DataFile:
    """One hash-verified data file: its blocks, and its entries by (nfe, order, p), checked lazily."""

    def __init__(self, obj: object, rec: dict, index: Index, where: str) -> None:
        problems = fmt.file_problems(obj, rec, index.obj)
        if problems:
            raise _fail_all(where, problems)
        self.obj, self.rec, self.where = obj, rec, where
        self.entries: dict[tuple, dict] = {(e["nfe"], e["order"], e["p"]): e for e in obj["entries"]}
        self.steps: dict[tuple, object] = {}  # (nfe, order, p, solver) -> Steps, filled by get()


def load_data(src: Source, rec: dict) -> DataFile:
    """The data file an index record names: present, hash-verified, parsed, top level checked (cached).

    The cache key holds ``id(rec)``: the record belongs to one parsed index and the cached `DataFile` keeps
    it alive, so a changed index (new records) never reuses a file checked against the old one."""
    where = f"{src.label}/{rec['path']}"
    path = src.locate(rec["path"])
    key = _stat_key(path)
    if key is None:
        raise _fail(where, "listed in the index but absent (a vendored subset? copy this file too)")

    def load() -> DataFile:
        try:
            data = read_bytes(path, where, src.root)
            got, size = fmt.sha256_id(data), rec.get("bytes", len(data))
            if got != rec["sha256"] or size != len(data):
                raise _fail(
                    where,
                    f"sha256 mismatch: the index says {rec['sha256']} ({size} bytes), the file"
                    f" ({len(data)} bytes) has {got}. The file is corrupt, or changed after"
                    " the index was written: restore it, or rebuild with"
                    " `python -m builder sweep`.",
                )
            return DataFile(parse_json(data, where), rec, load_index(src), where)
        except RegistryIntegrityError:
            if src.discard is not None:  # the index that led here is suspect too: fetch both anew
                src.discard(path)
                src.discard(src.index_path)
            raise

    return _cached((*key, id(rec)), load)


def freeze(obj: object) -> object:
    """JSON data made read-only: objects become mappingproxies, lists tuples."""
    from types import MappingProxyType

    if isinstance(obj, dict):
        return MappingProxyType({k: freeze(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return tuple(freeze(v) for v in obj)
    return obj


def make_steps(data: DataFile, entry: dict, solver: str, label: str):
    """Check one entry in full and turn it into a `Steps` (or raise `RegistryIntegrityError`)."""
    from .steps import Steps

    nfe = entry["nfe"]
    where = f"{data.where}: entry nfe={nfe} order={entry['order']} p={entry['p']}"
    problems = fmt.entry_problems(entry, data.obj["schedule"])
    if problems:
        raise _fail_all(where, problems)
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
    return Steps(
        schedule=data.rec["schedule"],
        nfe=nfe,
        order=entry["order"],
        p=float(entry["p"]),
        solver=solver,
        **seqs,
        step_orders=tuple(orders),
        tau=entry["tau"],
        objective=float(entry["objective"]),
        params=freeze(data.rec["params"]),
        time_input=file_["schedule"]["time_input"],
        quality=freeze(quality),
        provenance=freeze(provenance),
        timestep_collisions=freeze(collisions),
        **extra,
    )
