"""The registry format in one place: bytes, hashes, strict reading, paths, schemas, the reader rule. Stdlib only.

The builder writes with these functions and the loader reads and checks with them (docs/registry-format.md
is the contract), so "what a registry file is" has one definition:

- bytes: `canonical_bytes` (sorted keys, indent 1, ASCII, shortest round-trip floats, trailing newline),
  written with `atomic_write_bytes` (temporary file in the destination folder, fsync, ``os.replace``, 0644);
- hash ids: `sha256_id` (``"sha256:<hex>"``, the index's per-file hash), `input_hash` (an entry's problem
  key) and `git_blob_sha1` (the Hub's ETag);
- reading: `read_regular` refuses anything but a regular file of at most `MAX_FILE_BYTES` *before* reading
  (no hang on a FIFO, no /dev/zero), `loads` refuses what Python's json accepts but JSON does not (NaN,
  Infinity, numbers overflowing float64, duplicate keys, a BOM, non-UTF-8) and bounds nesting and integers;
- a registry being rewritten: `staged_bytes` (the bytes a write in progress moved aside) and `identity` /
  `still_at` (has ``index.json`` been replaced since it was read?), the rule every reader follows;
- values: `is_num` (a finite JSON number, bools excluded), `is_pos_ints`, `is_sha256_id`;
- paths: `unsafe_path`, the one path-safety rule every reader applies: `path_problem` (the index's path
  syntax) and, symlinks resolved, still under the registry folder; `schema_dir` (the JSON Schemas).

The data invariants (index, file, entry) are `invariants`, which imports this module (never the reverse).
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
MAX_FILES = 10_000  # records of an index (the shipped one lists 8)
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


def input_hash(key: dict) -> str:
    """An entry's ``input_hash``: `sha256_id` of its problem key (what determines the problem it solves:
    schedule, params, interval, NFE, order, and p/tau or solver/ending/profile) as compact sorted JSON. The
    builder hashes the key it solved; the checks (`_figures.input_key`) rebuild the key from the entry."""
    import json

    return sha256_id(json.dumps(key, sort_keys=True, separators=(",", ":")).encode())


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's bytes, ``sha1(b"blob <size>\\0" + bytes)`` (the Hub's ETag for it)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hash_problem(sha: str, size: object, data: bytes) -> str | None:
    """Why ``data`` is not the file an index record lists with ``sha`` and ``size`` bytes (None: it is)."""
    got = sha256_id(data)
    size = len(data) if size is None else size
    if got == sha and size == len(data):
        return None
    return (
        f"sha256 mismatch: the index says {sha} ({size} bytes), the file ({len(data)} bytes) has {got}. The file"
        " is corrupt, or changed after the index was written: restore it, or rebuild with `python -m builder sweep`."
    )


def is_num(x: object) -> bool:
    """A finite JSON number (bools excluded)."""
    return (type(x) is float or type(x) is int) and math.isfinite(x)


def is_pos_ints(v: object) -> bool:
    return isinstance(v, list) and all(type(x) is int and x >= 1 for x in v)


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
    return read_regular_stat(path, limit)[0]


def read_regular_stat(path: str, limit: int | None = None) -> tuple[bytes, os.stat_result]:
    """`read_regular`, with the ``fstat`` of the file that was read (for `identity`)."""
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
    return data, st


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


class _NonFinite(Exception):
    pass


def _constant(name: str) -> None:
    raise _NonFinite(name)


def _where_nonfinite(text: str) -> str:
    """``"NaN at line 3 column 7"``: the first NaN / Infinity token outside a string (on the error path)."""
    import re

    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)', text):
        if m.group(1):
            line = text.count("\n", 0, m.start()) + 1
            return f"{m.group(1)} at line {line} column {m.start() - text.rfind(chr(10), 0, m.start())}"
    return "in the text"


def _pointer(obj: object) -> str:
    """The JSON pointer of the first float that is not finite in ``obj`` (on the error path)."""
    stack: list = [(obj, "")]
    while stack:
        node, at = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node)
        for k, v in reversed(list(items)):
            if type(v) is float and not math.isfinite(v):
                return f"{at}/{k}"
            if type(v) is dict or type(v) is list:
                stack.append((v, f"{at}/{k}"))
    return "/"


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
    except _NonFinite:
        raise FormatError(f"non-finite number {_where_nonfinite(text)} (JSON allows none)") from None
    except json.JSONDecodeError as err:
        end = text.rstrip()
        hint = " (the file ends early: truncated?)" if err.pos >= len(end) or not end.endswith(("}", "]")) else ""
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
                    raise FormatError(f"the number at {_pointer(obj)} overflows float64")
            elif type(v) is dict or type(v) is list:
                stack.append((v, depth + 1))
    return obj


# ---- a registry being rewritten


STAGING = ".optsteps-staged"
# How often a reader re-reads a registry that was rebuilt while it read (the loader and the sweep alike).
REBUILD_RETRIES = 10


def identity(st: os.stat_result) -> tuple:
    """What tells one version of a file from the next: device and inode (a file replaced with ``os.replace``
    gets a new inode, even with the same bytes), and size and mtime (an inode number can be reused once the
    replaced file is closed)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def still_at(path: str | os.PathLike[str], then: tuple) -> bool:
    """Whether ``path`` still names the file whose `identity` was ``then``."""
    try:
        return identity(os.stat(path)) == then
    except (FileNotFoundError, NotADirectoryError):
        return False


def staged_bytes(root: str | os.PathLike[str], sha: str) -> bytes | None:
    """The bytes a registry write in progress moved aside before replacing a file whose index hash is
    ``sha``: ``<root>/.optsteps-staged/<hex>``, a regular file within `MAX_FILE_BYTES` that hashes to ``sha``;
    None when there is none.

    A write (builder/registry/sweep/write.py) stages the old bytes of every file it replaces, replaces the
    data files, then ``index.json``, then clears the staging folder. A reader that finds a listed file's bytes
    not matching its hash therefore takes them from here, else checks whether ``index.json`` was replaced
    since it was read (`still_at`): if so it reads the new index and starts again; if not, the file is corrupt.
    """
    if not is_sha256_id(sha):
        return None
    try:
        data = read_regular(os.path.join(root, STAGING, sha[7:]))
    except (OSError, FormatError):
        return None
    return data if sha256_id(data) == sha else None


# ---- paths and schemas


MAX_PATH = 255  # characters of a data file's path in the index (and of each of its segments: NAME_MAX)
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def path_problem(rel: object) -> str | None:
    """Why ``rel`` may not name a data file, or None. The index's path rule (the index schema's ``path``
    pattern, written out): '/'-separated, relative, inside a ``v<N>/`` folder, ending in ``.json``; each
    segment ASCII letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` or ``-``; no '..'; at most
    `MAX_PATH` characters. Checked before touching the disk, as zoneinfo's ``_validate_tzfile_path``."""
    if not isinstance(rel, str) or not rel:
        return f"unsafe or missing path {short(rel)!r}: not a relative '/'-separated path"
    if len(rel) > MAX_PATH:
        return f"unsafe path {short(rel)!r}: longer than {MAX_PATH} characters"
    if rel.startswith("/") or any(c in rel for c in "\\:\0"):
        return f"unsafe path {short(rel)!r}: not a relative '/'-separated path"
    parts = rel.split("/")
    if ".." in rel or any(part in ("", ".") for part in parts):
        return f"unsafe path {short(rel)!r}: contains '..', '.' or an empty segment"
    if len(parts) < 2 or not (parts[0][:1] == "v" and parts[0][1:].isdigit() and parts[0][1:].isascii()):
        return f"unsafe path {short(rel)!r}: not inside a v<N>/ folder"
    if not rel.endswith(".json") or any(p[:1] in ".-" or not _PATH_CHARS.issuperset(p) for p in parts[1:]):
        return (
            f"unsafe path {short(rel)!r}: names must be ASCII letters, digits, '_', '.' and '-' (not leading '.'"
            " or '-') and end in '.json'"
        )
    return None


def unsafe_path(root: str | None, rel: str) -> str | None:
    """The path-safety rule of a registry folder, for every reader (the loader's ``get`` and ``verify``,
    ``python -m builder validate``): why the file ``rel`` (``"index.json"``, or a data file's path as the
    index lists it) may not be read from the folder ``root``, or None. ``rel`` must pass `path_problem`
    (checked first, without touching the disk); then, when ``root`` is given (not for the Hub's cache, whose
    snapshots link to blobs elsewhere), the path, symlinks resolved, must stay inside ``root``: an
    ``index.json`` or a data file that is a symlink to a file outside the folder is refused."""
    why = None if rel == INDEX_NAME else path_problem(rel)
    if why is not None or root is None:
        return why
    if not inside(root, os.path.join(root, *rel.split("/"))):
        return f"{short(rel)} leads outside the registry folder {short(root, 200)} (a symlink?)"
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


# ---- messages


def short(value: object, limit: int = 80) -> object:
    """``value`` as an error message may echo it: a string longer than ``limit`` characters is cut to its
    head and tail around "…", with its length said (other values unchanged). Every message that echoes
    user input (an argument, a path, a key or value read from a file) passes it through here, so no input
    makes a message longer than a few hundred characters.

    >>> short("x" * 100, 20)
    'xxxxxxxxx…xxxxxxxxxx (100 characters)'
    """
    if isinstance(value, str) and len(value) > limit:
        head = (limit - 1) // 2
        return f"{value[:head]}…{value[len(value) - (limit - 1 - head) :]} ({len(value)} characters)"
    return value
