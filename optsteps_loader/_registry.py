"""Find a registry, read it, check it against its index, cache what was read. Standard library only.

A registry is a folder holding ``index.json`` and the data files it lists (docs/registry-format.md).
Reading a data file: stat it; on a cache miss read the bytes, compare their sha256 with the index *before*
parsing, parse (NaN/Infinity rejected), check the top level and the grid against the index. Each entry is
checked in full (nfe+1 finite numbers per sequence, strictly increasing λ, ...) the first time it is asked
for, then kept as an immutable `Steps`. Any failure is a `RegistryIntegrityError` naming the file; nothing
partly read is ever returned.

Cache: an LRU of parsed files keyed by (path, mtime_ns, size, inode[, expected sha256]). The builder replaces
files atomically (new inode), so a rebuilt registry is picked up without `clear_cache()`; a file rewritten
*in place*, same size, within one filesystem timestamp tick, is served from the cache until `clear_cache()`.

``json``, ``hashlib`` and the `Steps` record (whose ``dataclasses`` import costs more than the rest of the
package) are imported on first use, to keep ``import optsteps_loader`` cheap.
"""

from __future__ import annotations

import math
import os

from .errors import RegistryIntegrityError, RegistryUnavailableError

SCHEMA_VERSION = 1
ENV_DIR = "OPTSTEPS_REGISTRY_DIR"
# entry key -> Steps field
SEQUENCES = {
    "t": "t",
    "lambda": "lambdas",
    "alpha_t": "alpha_t",
    "sigma_t": "sigma_t",
    "sigmas": "sigmas",
    "timesteps": "timesteps",
}
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_CACHE_SIZE = 32
_cache: dict[tuple, object] = {}  # insertion order is the LRU order
_sources: dict[str, Source] = {}


class OfflineMiss(RegistryUnavailableError):
    """``source="hub"`` under ``HF_HUB_OFFLINE`` and the file is not in the HF cache (the API falls back)."""


class Source:
    """Where a registry lives: its index file, and how to find each listed file on disk."""

    def __init__(self, label: str, index_path: str, locate=None, discard=None) -> None:
        root = os.path.dirname(index_path)
        self.label = label  # for messages: a folder, or "hub:<repo>@<revision>"
        self.index_path = index_path
        self.locate = locate or (lambda rel: os.path.join(root, *rel.split("/")))
        self.discard = discard  # called with the path of a file that failed its checks (hub: drop it)


def bundled_dir() -> str:
    """The registry shipped with the package: ``optsteps_loader/registry`` in a wheel (hatch force-include),
    else ``<repo>/registry`` (source checkout, editable install)."""
    inside = os.path.join(_PACKAGE, "registry")
    if os.path.isfile(os.path.join(inside, "index.json")):
        return inside
    return os.path.join(os.path.dirname(_PACKAGE), "registry")


def resolve_source(source: object = None, revision: str | None = None) -> Source:
    """``None``: ``$OPTSTEPS_REGISTRY_DIR`` or the bundled folder; a path: that folder; ``"hub"``: the Hub."""
    if isinstance(source, str) and source == "hub":
        from . import hub

        return hub.source(revision)
    if revision is not None:
        raise ValueError("revision= only applies to source='hub'")
    if source is None:
        root = os.environ.get(ENV_DIR) or bundled_dir()
    elif isinstance(source, (str, os.PathLike)) and isinstance(os.fspath(source), str):
        root = os.fspath(source)
    else:
        raise TypeError(f"source must be None, 'hub' or a folder path, not {type(source).__name__}")
    src = _sources.get(root)
    if src is None:
        folder = os.path.abspath(root)
        src = _sources[root] = Source(folder, os.path.join(folder, "index.json"))
    return src


def clear_cache() -> None:
    """Forget every parsed file and resolved source, and the Hub downloads remembered by this process."""
    import sys

    _cache.clear()
    _sources.clear()
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
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_size, st.st_ino)


def _fail(where: str, problem: str) -> RegistryIntegrityError:
    return RegistryIntegrityError(f"{where}: {problem}")


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def parse_json(data: bytes, where: str) -> object:
    """JSON from bytes; NaN/Infinity and every decoding failure become a `RegistryIntegrityError`."""
    import json

    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, NaN, absurd nesting
        raise _fail(where, f"not valid JSON ({err}); truncated or corrupted?") from None


def read_bytes(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise RegistryUnavailableError(f"{where}: cannot read {path} ({err.strerror or err})") from None


def is_num(x: object) -> bool:
    """A finite JSON number (bools excluded)."""
    return (type(x) is float or type(x) is int) and math.isfinite(x)


def _ints(v: object) -> bool:
    return isinstance(v, list) and all(type(x) is int and x >= 1 for x in v)


def _increasing(seq: tuple, strict: bool) -> bool:
    return all((a < b) if strict else (a <= b) for a, b in zip(seq, seq[1:]))  # noqa: B905


def safe_relpath(rel: object) -> bool:
    """A relative, '/'-separated path that stays inside the registry folder: no '..', no absolute path,
    no backslash, drive letter or NUL (zoneinfo's ``_validate_tzfile_path`` idea)."""
    if not isinstance(rel, str) or rel == "" or rel.startswith("/") or any(c in rel for c in "\\:\0"):
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


class Index:
    """A parsed and checked ``index.json``: its file records, grouped by schedule key."""

    def __init__(self, obj: object, where: str) -> None:
        version = obj.get("schema_version") if isinstance(obj, dict) else type(obj).__name__
        if version != SCHEMA_VERSION:
            raise _fail(
                where,
                f"schema_version is {version!r}; this loader reads {SCHEMA_VERSION}"
                " (a newer registry needs a newer optsteps)",
            )
        if not isinstance(obj.get("files"), list) or not isinstance(obj.get("data_version"), str):
            raise _fail(where, "'files' must be a list and 'data_version' a string")
        self.data_version: str = obj["data_version"]
        self.files: list[dict] = obj["files"]
        self.by_schedule: dict[str, list[dict]] = {}
        seen: set = set()
        for i, rec in enumerate(self.files):
            problem = _record_problem(rec)
            if problem is None and (rec["path"] in seen or variant_key(rec) in seen):
                problem = f"{rec['path']}: duplicate path or (schedule, params)"
            if problem is not None:
                raise _fail(where, f"files[{i}]: {problem}")
            seen.update((rec["path"], variant_key(rec)))
            self.by_schedule.setdefault(rec["schedule"], []).append(rec)


def variant_key(rec: dict) -> tuple:
    return (rec["schedule"], tuple(sorted((k, repr(v)) for k, v in rec["params"].items())))


def _record_problem(rec: object) -> str | None:
    """What is wrong with one record of the index's ``files`` list, or None."""
    if not isinstance(rec, dict):
        return "not an object"
    path, sha = rec.get("path"), rec.get("sha256")
    if not safe_relpath(path):
        return f"unsafe or missing path {path!r} (must be relative, '/'-separated, without '..')"
    if not (
        isinstance(sha, str)
        and sha.startswith("sha256:")
        and len(sha) == 71
        and all(c in "0123456789abcdef" for c in sha[7:])
    ):
        return f"{path}: 'sha256' must be 'sha256:' + 64 lowercase hex digits, got {sha!r}"
    if not (isinstance(rec.get("schedule"), str) and rec["schedule"] and isinstance(rec.get("params"), dict)):
        return f"{path}: needs a 'schedule' name and a 'params' object"
    p = rec.get("p")
    if not (_ints(rec.get("nfe")) and _ints(rec.get("orders")) and isinstance(p, list) and all(map(is_num, p))):
        return f"{path}: 'nfe' and 'orders' must be lists of positive ints, 'p' a list of numbers"
    shift = rec["params"].get("shift", 1.0)
    if not (is_num(shift) and shift > 0):
        return f"{path}: params.shift must be a positive number"
    return None


def load_index(src: Source) -> Index:
    """The source's index, parsed and checked (cached)."""
    key = _stat_key(src.index_path)
    if key is None:
        raise RegistryUnavailableError(f"no registry at {src.label}: cannot find {src.index_path}")
    where = f"{src.label}/index.json"
    return _cached(key, lambda: Index(parse_json(read_bytes(src.index_path, where), where), where))


class DataFile:
    """One hash-verified data file: its blocks, and its entries by (nfe, order, p), checked lazily."""

    def __init__(self, obj: object, rec: dict, where: str) -> None:
        if not isinstance(obj, dict) or obj.get("schema_version") != SCHEMA_VERSION:
            raise _fail(where, f"not a schema_version {SCHEMA_VERSION} registry file")
        sched, defaults, entries = obj.get("schedule"), obj.get("defaults"), obj.get("entries")
        if not (isinstance(sched, dict) and isinstance(defaults, dict) and isinstance(entries, list)):
            raise _fail(where, "needs 'schedule' and 'defaults' objects and an 'entries' list")
        if sched.get("name") != rec["schedule"] or not isinstance(sched.get("time_input"), str):
            raise _fail(
                where,
                f"schedule.name {sched.get('name')!r} is not the index's {rec['schedule']!r},"
                " or schedule.time_input is missing",
            )
        if not isinstance(obj.get("provenance", {}), dict):
            raise _fail(where, "'provenance' must be an object")
        if not (is_num(defaults.get("p")) and defaults["p"] >= 0):
            raise _fail(where, f"defaults.p must be a number >= 0, got {defaults.get('p')!r}")
        self.obj, self.rec, self.where = obj, rec, where
        self.entries: dict[tuple, dict] = {}
        self.steps: dict[tuple, object] = {}  # (nfe, order, p, solver) -> Steps, filled by get()
        for i, e in enumerate(entries):
            if not (
                isinstance(e, dict)
                and type(e.get("nfe")) is int
                and e["nfe"] >= 1
                and type(e.get("order")) is int
                and is_num(e.get("p"))
            ):
                raise _fail(where, f"entries[{i}]: needs an int 'nfe' >= 1, an int 'order' and a number 'p'")
            key = (e["nfe"], e["order"], e["p"])
            if key in self.entries:
                raise _fail(where, f"entries[{i}]: duplicate (nfe, order, p) = {key}")
            self.entries[key] = e
        grid = [sorted({k[j] for k in self.entries}) for j in range(3)]
        if defaults["p"] not in grid[2]:
            raise _fail(where, f"defaults.p = {defaults['p']} has no entries (p in the file: {grid[2]})")
        count = rec.get("entries", len(entries))
        if grid != [rec["nfe"], rec["orders"], sorted(rec["p"])] or len(entries) != count:
            raise _fail(
                where,
                f"its entries (nfe {grid[0]}, orders {grid[1]}, p {grid[2]};"
                f" {len(entries)} in all) do not match the index (nfe {rec['nfe']},"
                f" orders {rec['orders']}, p {rec['p']}; {count} in all)",
            )


def load_data(src: Source, rec: dict) -> DataFile:
    """The data file an index record names: present, hash-verified, parsed, top level checked (cached)."""
    where = f"{src.label}/{rec['path']}"
    path = src.locate(rec["path"])
    key = _stat_key(path)
    if key is None:
        raise _fail(where, "listed in the index but absent (a vendored subset? copy this file too)")

    def load() -> DataFile:
        import hashlib

        data = read_bytes(path, where)
        try:
            got = "sha256:" + hashlib.sha256(data).hexdigest()
            if got != rec["sha256"]:
                raise _fail(
                    where,
                    f"sha256 mismatch: the index says {rec['sha256']}, the file"
                    f" ({len(data)} bytes) has {got}. The file is corrupt, or changed after"
                    " the index was written: restore it, or rebuild with"
                    " `python -m builder sweep`.",
                )
            return DataFile(parse_json(data, where), rec, where)
        except RegistryIntegrityError:
            if src.discard is not None:
                src.discard(path)
            raise

    return _cached((*key, rec["sha256"]), load)


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
    seqs = {}
    for key, name in SEQUENCES.items():
        v = entry.get(key)
        if not (isinstance(v, list) and len(v) == nfe + 1 and all(map(is_num, v))):
            raise _fail(where, f"'{key}' must be a list of nfe+1 = {nfe + 1} finite numbers")
        seqs[name] = tuple(v)
    if not _increasing(seqs["lambdas"], strict=True):
        raise _fail(where, "'lambda' must increase strictly")
    if not (_increasing(seqs["t"][::-1], strict=False) and _increasing(seqs["sigmas"][::-1], strict=False)):
        raise _fail(where, "'t' and 'sigmas' must not increase")
    orders, quality = entry.get("step_orders"), entry.get("quality")
    if not (_ints(orders) and len(orders) == nfe):
        raise _fail(where, f"'step_orders' must be a list of nfe = {nfe} positive ints")
    if not (type(entry.get("tau")) is int and is_num(entry.get("objective"))):
        raise _fail(where, "needs an int 'tau' and a finite number 'objective'")
    extra = {k: entry.get(k) for k in ("objective_uniform_lambda", "objective_uniform_t")}
    if any(v is not None and not is_num(v) for v in extra.values()):
        raise _fail(where, "'objective_uniform_lambda' and 'objective_uniform_t' must be finite numbers")
    collisions = entry.get("timestep_collisions", [])
    if not (isinstance(collisions, list) and (quality is None or isinstance(quality, dict))):
        raise _fail(where, "'timestep_collisions' must be a list and 'quality' null or an object")
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
