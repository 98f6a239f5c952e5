"""The registry format in one place: bytes, hashes, strict reading, paths, schemas, invariants. Stdlib only.

The builder writes with these functions and the loader reads and checks with them (docs/registry-format.md
is the contract), so "what a registry file is" has one definition:

- bytes: `canonical_bytes` (sorted keys, indent 1, ASCII, shortest round-trip floats, trailing newline),
  written with `atomic_write_bytes` (temporary file in the destination folder, fsync, ``os.replace``, 0644);
- hash ids: `sha256_id` (``"sha256:<hex>"``, the index's per-file hash) and `git_blob_sha1` (the Hub's ETag);
- reading: `read_regular` refuses anything but a regular file of at most `MAX_FILE_BYTES` *before* reading
  (no hang on a FIFO, no /dev/zero), `loads` refuses what Python's json accepts but JSON does not (NaN,
  Infinity, numbers overflowing float64, duplicate keys, a BOM, non-UTF-8) and bounds nesting and integers;
- paths: `path_problem` (a relative '/'-separated path inside a ``v<N>/`` folder), `inside` (symlinks
  resolved, still under the registry folder);
- invariants: `record_problems` (an index record), `file_problems` (a data file's top level and its
  agreement with its index record), `entry_problems` (one entry, in full). Each returns sentences, empty
  when all holds; the loader raises the first ones, the builder's validator reports them all.

Importing this module costs nothing beyond ``os`` and ``math``; ``json`` and ``hashlib`` load on use.
"""

from __future__ import annotations

import math
import os

SCHEMA_VERSION = 1
INDEX_NAME = "index.json"
MAX_FILE_BYTES = 32 * 1024 * 1024  # the largest shipped file is ~1.6 MB
MAX_DEPTH = 32  # nesting of objects and arrays (a registry file uses 5)
MAX_INT_DIGITS = 40  # digits of a JSON integer
REL_TOL = 1e-12
ABS_TOL = 1e-12
NODE_ARRAYS = ("t", "lambda", "alpha_t", "sigma_t", "sigmas", "timesteps")
FAMILIES = ("vp-continuous", "vp-discrete", "edm", "flow")
TIME_INPUTS = ("t", "timestep", "sigma", "1000*sigma")
SCHEMA_FILES = {"index": "registry-index.schema.json", "file": "registry-file.schema.json"}
PUBLISHED_MODE = 0o644  # rw-r--r--: what the registry's files get (mkstemp alone would leave 0600)
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


# ---- bytes and hashes


def canonical_bytes(obj: object) -> bytes:
    """The registry's canonical JSON bytes: keys sorted, one-space indent, ASCII, a trailing newline; floats
    through ``repr`` (shortest round-trip). NaN/infinity raise ``ValueError``, non-JSON types ``TypeError``.

    >>> canonical_bytes({"b": [1, 0.1], "a": "\\u03bb"})
    b'{\\n "a": "\\\\u03bb",\\n "b": [\\n  1,\\n  0.1\\n ]\\n}\\n'
    """
    import json

    text = json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode("ascii")


def sha256_id(data: bytes) -> str:
    """The self-describing hash the index lists: ``"sha256:"`` + 64 lowercase hex digits.

    >>> sha256_id(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """`sha256_id` of a file's bytes, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's bytes, ``sha1(b"blob <size>\\0" + bytes)`` (the Hub's ETag for it)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_sha256_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 71 and value.startswith("sha256:") and is_hex(value[7:])


def is_hex(text: str, length: int | None = None) -> bool:
    return (length is None or len(text) == length) and all(c in "0123456789abcdef" for c in text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a part.

    The bytes go to a temporary file in the destination folder (same file system: the rename is atomic),
    flushed and fsynced, made 0644, then ``os.replace``-d over ``path``; the folder is fsynced afterwards
    where the platform allows it. On failure the temporary file is removed and ``path`` is untouched.
    """
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, PUBLISHED_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder to fsync it
        try:
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass  # some file systems refuse fsync on folders; the file itself is synced
        finally:
            os.close(dfd)


# ---- reading


class FormatError(ValueError):
    """A file is not a registry file: the message says why (callers add the file's name)."""


def read_regular(path: str, limit: int | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes (`FormatError`
    otherwise, decided from ``fstat`` before anything is read: a FIFO, a device or /dev/zero is refused,
    not read; ``limit`` defaults to `MAX_FILE_BYTES`). ``OSError`` when it cannot be opened or read."""
    import stat

    limit = MAX_FILE_BYTES if limit is None else limit
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError("not a regular file (a device, FIFO or folder?)")
        if st.st_size > limit:
            raise FormatError(f"{st.st_size} bytes, over the {limit}-byte limit of a registry file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FormatError(f"grew past the {limit}-byte limit of a registry file while read")
    return data


def _pairs(items: list) -> dict:
    obj = dict(items)
    if len(obj) != len(items):
        seen: set = set()
        key = next(k for k, _ in items if k in seen or seen.add(k))
        raise FormatError(f"duplicate key {short(key)!r} in an object")
    return obj


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise FormatError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _constant(name: str) -> None:
    raise FormatError(f"non-finite number {name} (JSON allows none)")


def loads(data: bytes) -> object:
    """Parse registry JSON strictly (`FormatError` saying why): UTF-8 without BOM; no NaN/Infinity, no
    number overflowing float64, no duplicate key, integers of at most `MAX_INT_DIGITS` digits, nesting
    at most `MAX_DEPTH` deep."""
    import json

    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise FormatError("starts with a byte-order mark (must be UTF-8 without BOM)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_constant=_constant)
    except json.JSONDecodeError as err:
        hint = " (the file ends early: truncated?)" if err.pos >= len(text.rstrip()) else ""
        raise FormatError(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}{hint}") from None
    except RecursionError:
        raise FormatError(f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as err:  # FormatError from a hook; int() beyond sys.get_int_max_str_digits()
        raise FormatError(str(err)) from None
    stack = [(obj, 1)]
    while stack:  # depth and overflowed floats, iteratively (no recursion on hostile input)
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormatError(f"nested more than {MAX_DEPTH} levels deep")
        for v in node.values() if type(node) is dict else node:
            if type(v) is float:
                if not math.isfinite(v):
                    raise FormatError("a number overflows float64")
            elif type(v) is dict or type(v) is list:
                stack.append((v, depth + 1))
    return obj


# ---- paths and schemas


def path_problem(rel: object) -> str | None:
    """Why ``rel`` may not name a data file, or None: it must be a relative '/'-separated path inside a
    ``v<N>/`` folder, without '.', '..', empty segments, backslashes, a drive letter or NUL (checked before
    touching the disk, as zoneinfo's ``_validate_tzfile_path``)."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or any(c in rel for c in "\\:\0"):
        return f"unsafe or missing path {short(rel)!r}: not a relative '/'-separated path"
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"unsafe path {short(rel)!r}: contains '..', '.' or an empty segment"
    if len(parts) < 2 or not (parts[0][:1] == "v" and parts[0][1:].isdigit() and parts[0][1:].isascii()):
        return f"unsafe path {short(rel)!r}: not inside a v<N>/ folder"
    return None


def inside(root: str, path: str) -> bool:
    """Whether ``path``, symlinks resolved, lies inside the folder ``root`` (symlinks resolved too)."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    return real.startswith(real_root.rstrip(os.sep) + os.sep)


def schema_dir() -> str | None:
    """The folder holding the registry's JSON Schemas: ``optsteps_loader/schemas`` in a wheel, ``schemas/``
    in a checkout; None when neither has them."""
    for folder in (os.path.join(_PACKAGE, "schemas"), os.path.join(os.path.dirname(_PACKAGE), "schemas")):
        if all(os.path.isfile(os.path.join(folder, name)) for name in SCHEMA_FILES.values()):
            return folder
    return None


# ---- invariants


def short(value: object, limit: int = 80) -> object:
    """A string cut to ``limit`` characters for messages (other values unchanged)."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def is_num(x: object) -> bool:
    """A finite JSON number (bools excluded)."""
    return (type(x) is float or type(x) is int) and math.isfinite(x)


def is_pos_ints(v: object) -> bool:
    return isinstance(v, list) and all(type(x) is int and x >= 1 for x in v)


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _first(pairs, ok) -> int | None:
    return next((i for i, (a, b) in enumerate(pairs) if not ok(a, b)), None)


def record_problems(rec: object) -> list[str]:
    """What is wrong with one record of the index's ``files`` list (empty: nothing)."""
    if not isinstance(rec, dict):
        return ["not an object"]
    path = rec.get("path")
    why = path_problem(path)
    if why is not None:
        return [why]
    out = []
    if not is_sha256_id(rec.get("sha256")):
        out.append(f"{path}: 'sha256' must be 'sha256:' + 64 lowercase hex digits, got {short(rec.get('sha256'))!r}")
    if not (isinstance(rec.get("schedule"), str) and rec["schedule"] and isinstance(rec.get("params"), dict)):
        return [*out, f"{path}: needs a 'schedule' name and a 'params' object"]
    p = rec.get("p")
    if not (is_pos_ints(rec.get("nfe")) and is_pos_ints(rec.get("orders")) and isinstance(p, list)):
        out.append(f"{path}: 'nfe' and 'orders' must be lists of positive ints, 'p' a list of numbers")
    elif not all(map(is_num, p)):
        out.append(f"{path}: 'p' must be a list of numbers")
    for key in ("entries", "bytes"):
        if key in rec and not (type(rec[key]) is int and rec[key] >= 0):
            out.append(f"{path}: {key!r} must be an int >= 0")
    shift = rec["params"].get("shift", 1.0)
    if not (is_num(shift) and shift > 0):
        out.append(f"{path}: params.shift must be a positive number")
    return out


def entry_key(e: object) -> tuple | None:
    """``(order, p, nfe)`` of a well-typed entry (the registry's sort order), else None."""
    if isinstance(e, dict) and type(e.get("order")) is int and is_num(e.get("p")) and type(e.get("nfe")) is int:
        return (e["order"], e["p"], e["nfe"])
    return None


def file_problems(doc: object, rec: dict | None = None, index: dict | None = None) -> list[str]:
    """A data file's top level: versions, the ``schedule`` block, ``defaults``, entries unique and sorted by
    (order, p, nfe); with its index record and index, their agreement (name, params, nfe/orders/p lists,
    entry count, versions). Entries themselves are `entry_problems`' job."""
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        return [f"not a schema_version {SCHEMA_VERSION} registry file"]
    s, defaults, entries = doc.get("schedule"), doc.get("defaults"), doc.get("entries")
    if not (isinstance(s, dict) and isinstance(defaults, dict) and isinstance(entries, list)):
        return ["needs 'schedule' and 'defaults' objects and an 'entries' list"]
    out = []
    if not (isinstance(s.get("name"), str) and isinstance(s.get("params"), dict)):
        out.append("schedule needs a 'name' and a 'params' object")
    if s.get("family") not in FAMILIES or s.get("time_input") not in TIME_INPUTS:
        out.append(f"schedule.family must be one of {FAMILIES} and schedule.time_input one of {TIME_INPUTS}")
    ends = [s.get(k) for k in ("t_start", "t_end", "lambda_start", "lambda_end")]
    if not all(map(is_num, ends)):
        out.append("schedule.t_start, t_end, lambda_start and lambda_end must be finite numbers")
    elif not (ends[0] > ends[1] and ends[2] < ends[3]):
        out.append(f"schedule: t_start must be above t_end and lambda_start below lambda_end, got {ends}")
    if not isinstance(doc.get("provenance", {}), dict):
        out.append("'provenance' must be an object")
    keys: list = []
    seen: set = set()
    for i, e in enumerate(entries):
        key = entry_key(e)
        if key is None or key[0] < 1 or key[2] < 1:
            out.append(f"entries[{i}]: needs an int 'nfe' >= 1, an int 'order' >= 1 and a number 'p'")
        elif key in seen:
            out.append(f"entries[{i}]: duplicate (order, p, nfe) = {key}")
        elif keys and key < keys[-1]:
            out.append(f"entries[{i}]: not sorted by (order, p, nfe): {key} after {keys[-1]}")
        else:
            keys.append(key)
        if key is not None:
            seen.add(key)
    if out:
        return out
    if not (is_num(defaults.get("p")) and defaults["p"] >= 0):
        out.append(f"defaults.p must be a number >= 0, got {short(defaults.get('p'))!r}")
    elif not any(k[1] == defaults["p"] for k in keys):
        out.append(f"defaults.p = {defaults['p']!r} has no entries")
    elif not any(k[0] == defaults.get("order") and k[1] == defaults["p"] for k in keys):
        out.append(f"defaults name order={short(defaults.get('order'))!r} p={defaults['p']!r} but no entry has them")
    if rec is not None:
        out += _agreement(doc, keys, rec, index or {})
    return out


def _agreement(doc: dict, keys: list, rec: dict, index: dict) -> list[str]:
    out = []
    s = doc["schedule"]
    if s.get("name") != rec["schedule"]:
        out.append(f"schedule.name {short(s.get('name'))!r} is not the index's {short(rec['schedule'])!r}")
    params = s.get("params") if isinstance(s.get("params"), dict) else {}
    for k, v in rec["params"].items():
        if params.get(k) != v:
            out.append(f"the index says params {short(k)}={short(v)!r} but schedule.params has {params.get(k)!r}")
    for k in ("schema_version", "data_version"):
        if k in doc and k in index and doc[k] != index[k]:
            out.append(f"{k} {short(doc[k])!r} differs from the index's {short(index[k])!r}")
    grid = [sorted({k[j] for k in keys}) for j in (2, 0, 1)]
    want = [rec["nfe"], rec["orders"], rec["p"]]
    count = rec.get("entries", len(keys))
    if grid != want or count != len(keys):
        out.append(
            f"its entries (nfe {grid[0]}, orders {grid[1]}, p {grid[2]}; {len(keys)} in all) do not match the"
            f" index (nfe {want[0]}, orders {want[1]}, p {want[2]}; {count} in all)"
        )
    return out


def entry_problems(e: dict, schedule: dict) -> list[str]:
    """Everything one entry must satisfy (its file's `file_problems` passed): nfe+1 finite numbers per node
    array, ``nfe`` step orders each ≤ order and ≤ i+1; λ strictly increasing, t and σ/α strictly decreasing,
    timesteps non-increasing; the endpoints the schedule declares (relative 1e-12); λ = log α − log σ
    (absolute 1e-12), sigmas = σ/α (relative 1e-12); the family's rule (vp: α² + σ² = 1, flow: α + σ = 1,
    edm: α = 1 and t = σ; absolute 1e-12); timesteps as ``time_input`` says and their collisions listed."""
    nfe, order = e["nfe"], e["order"]
    arrays = {}
    for key in NODE_ARRAYS:
        v = e.get(key)
        if not (isinstance(v, list) and len(v) == nfe + 1 and all(map(is_num, v))):
            return [f"'{key}' must be a list of nfe+1 = {nfe + 1} finite numbers"]
        arrays[key] = v
    so = e.get("step_orders")
    if not (is_pos_ints(so) and len(so) == nfe):
        return [f"'step_orders' must be a list of nfe = {nfe} positive ints"]
    out = []
    if (i := next((i for i, k in enumerate(so) if k > order), None)) is not None:
        out.append(f"step_orders[{i}] = {so[i]} exceeds order {order}")
    if (i := next((i for i, k in enumerate(so) if k > i + 1), None)) is not None:
        out.append(f"step_orders[{i}] = {so[i]} but step {i} has only {i + 1} earlier node(s)")
    if not (type(e.get("tau")) is int and is_num(e.get("objective"))):
        out.append("needs an int 'tau' and a finite number 'objective'")
    if any(e.get(k) is not None and not is_num(e[k]) for k in ("objective_uniform_lambda", "objective_uniform_t")):
        out.append("'objective_uniform_lambda' and 'objective_uniform_t' must be finite numbers")
    collisions, quality = e.get("timestep_collisions", []), e.get("quality")
    if not (isinstance(collisions, list) and (quality is None or isinstance(quality, dict))):
        out.append("'timestep_collisions' must be a list and 'quality' null or an object")
    t, lam, alpha, sigma, sigmas, ts = arrays.values()
    for name, seq, ok, what in (
        ("lambda", lam, lambda a, b: b > a, "not strictly increasing"),
        ("t", t, lambda a, b: b < a, "not strictly decreasing"),
        ("sigmas", sigmas, lambda a, b: b < a, "not strictly decreasing"),
        ("timesteps", ts, lambda a, b: b <= a, "increase"),
    ):
        if (i := _first(zip(seq, seq[1:], strict=False), ok)) is not None:
            out.append(f"{name} {what} at index {i + 1} ({seq[i]!r} then {seq[i + 1]!r})")
    for seq, name, pos, decl in (
        (t, "t", 0, "t_start"),
        (t, "t", -1, "t_end"),
        (lam, "lambda", 0, "lambda_start"),
        (lam, "lambda", -1, "lambda_end"),
    ):
        if not _close(seq[pos], schedule[decl]):
            where = "first" if pos == 0 else "last"
            out.append(f"{name} {where} value {seq[pos]!r} differs from schedule.{decl} = {schedule[decl]!r}")
    if min(alpha) <= 0 or min(sigma) <= 0:
        return [*out, "alpha_t and sigma_t must be positive"]
    logs = [math.log(a) - math.log(s) for a, s in zip(alpha, sigma, strict=True)]
    if (i := _first(zip(lam, logs, strict=True), lambda a, b: abs(a - b) <= ABS_TOL)) is not None:
        out.append(f"lambda[{i}] = {lam[i]!r} but log(alpha_t) - log(sigma_t) = {logs[i]!r} (tolerance {ABS_TOL:g})")
    ratio = [s / a for a, s in zip(alpha, sigma, strict=True)]
    if (i := _first(zip(sigmas, ratio, strict=True), _close)) is not None:
        out.append(f"sigmas[{i}] = {sigmas[i]!r} but sigma_t/alpha_t = {ratio[i]!r}")
    family = schedule["family"]
    rule = {
        "vp-continuous": ("alpha_t^2 + sigma_t^2", lambda a, s: a * a + s * s),
        "vp-discrete": ("alpha_t^2 + sigma_t^2", lambda a, s: a * a + s * s),
        "flow": ("alpha_t + sigma_t", lambda a, s: a + s),
        "edm": ("alpha_t", lambda a, s: a),
    }[family]
    if (i := _first(zip(alpha, sigma, strict=True), lambda a, s: abs(rule[1](a, s) - 1) <= ABS_TOL)) is not None:
        out.append(f"{rule[0]} = {rule[1](alpha[i], sigma[i])!r} at index {i}, not 1 ({family})")
    if family == "edm" and (i := _first(zip(t, sigma, strict=True), _close)) is not None:
        out.append(f"t[{i}] = {t[i]!r} differs from sigma_t[{i}] = {sigma[i]!r} (edm: t is sigma)")
    return out + _timestep_problems(ts, collisions, t, sigma, sigmas, schedule)


def _timestep_problems(ts: list, collisions: object, t: list, sigma: list, sigmas: list, schedule: dict) -> list:
    out = []
    time_input, ok = schedule["time_input"], _close
    expected = {"t": t, "sigma": sigmas, "1000*sigma": [1000.0 * s for s in sigma]}.get(time_input)
    if time_input == "timestep":
        expected = [(x - 1.0 / 1000) * 1000 for x in t]

        def ok(a: float, b: float) -> bool:  # the nearest integer, either way of breaking ties
            return abs(a - b) <= 0.5 + 1e-9

        if (
            schedule["family"] == "vp-discrete"
            and (i := next((i for i, v in enumerate(ts) if type(v) is not int), None)) is not None
        ):
            out.append(f"timesteps[{i}] = {ts[i]!r} is not an integer (vp-discrete)")
    if (i := _first(zip(ts, expected, strict=True), ok)) is not None:
        out.append(f"timesteps[{i}] = {ts[i]!r} does not match time_input {time_input!r} (expected {expected[i]!r})")
    want = [[i, j] for i in range(len(ts)) for j in range(i + 1, len(ts)) if ts[i] == ts[j]]
    if isinstance(collisions, list) and collisions != want:
        out.append(f"timestep_collisions must list exactly the pairs i < j with equal timesteps: {want}")
    return out
