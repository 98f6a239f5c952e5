"""``source="hub"``: read the registry from a Hugging Face Hub dataset repo, through ``huggingface_hub``.

Imported only when ``source="hub"`` is used, and ``huggingface_hub`` (``pip install 'optsteps[hub]'``) only
inside its functions. The repo id is `DEFAULT_REPO_ID`, or ``$OPTSTEPS_HUB_REPO``; the repo holds the
registry folder as is (``index.json`` at its root, ``v1/*.json``). What a call does:

1. ``index.json`` is fetched with ``hf_hub_download(repo_type="dataset", revision=...)`` into the ordinary HF
   cache (``HF_HOME`` / ``HF_HUB_CACHE``), and checked against the content hash the Hub names it by (below).
2. Data files are fetched *at the commit the index came from* (the snapshot folder HF stored it in), so the
   index and the files are one snapshot even if the branch moves in between. Each file is checked against its
   ETag, as the index is, and its sha256 compared with the index before it is parsed. A file that fails (the
   index itself, or a data file: then the index is suspect too) is deleted from the HF cache (blob and snapshot
   link) and forgotten by this process before the `RegistryIntegrityError` is raised, so the cache never keeps
   it and the next call fetches anew.
3. Paths are remembered for the rest of the process (one request per file, not per `get()`); a new commit on
   the branch is seen after `optsteps_loader.clear_cache()` or in a new process.

Offline (``HF_HUB_OFFLINE=1``): files come from the HF cache; if one is not there, the API falls back to the
local registry (``$OPTSTEPS_REGISTRY_DIR`` or the bundled one) with a ``UserWarning``. Any other failure
(404, 5xx, a truncated transfer, no ``huggingface_hub``) is a `RegistryUnavailableError`, with the Hub
client's exception as its ``__cause__``; a 404 says what was not found.

Limits. ``revision`` is checked before any I/O (`check_revision`): a 40-hex commit id, or a branch or tag
name by git's ref-name rules (no ``..``, no leading ``/`` or ``-``, no empty or dot-led component, no
backslash, NUL, control character, space or ``~^:?*[``; at most 255 characters). Each file download gives
up after ``$OPTSTEPS_HUB_TIMEOUT`` seconds (default 20; passed to the client as ``etag_timeout``, and the whole
download, retries included, is abandoned after 3× that) with a `RegistryUnavailableError`.

Why the index can be trusted. Every data file is pinned by the index's sha256, so everything rests on the
index. The Hub serves each file with its git object id as ETag (sha1 of the git blob; sha256 for LFS) and HF
names the cached blob after it; we recompute that id from the bytes, which catches corruption in transit or
on disk.

One rule for every file, the index and the data files alike (`_check_blob_name`): a file whose bytes do not
hash to the ETag it was served with is refused (`RegistryIntegrityError`) and removed from the HF cache. For a
data file the index's sha256 would already catch wrong bytes, so a wrong ETag on right bytes served nothing
bad; it is refused all the same, because the HF cache is content-addressed by ETag: a blob stored under a
name its bytes do not have would be served by HF for any other file whose real ETag is that name, and a Hub
or proxy that lies about ETags is not one to keep reading from. Refusing both keeps one rule, with one
message, and never leaves a misnamed blob behind.

With ``revision`` a 40-hex commit id, git's content addressing fixes the index's object id, so the index, and
through it every file, is exactly what was published in that commit, as far as one trusts the Hub (over
HTTPS) to serve its git objects faithfully. A branch or tag gives whatever it points to today (tags can be
moved by the repo's owners): for reproducible results pin a commit; ``Steps.provenance["source"]`` names the
commit each result came from.
"""

from __future__ import annotations

import os

from . import format as fmt
from ._sources import OfflineMiss, Source
from .errors import RegistryIntegrityError, RegistryUnavailableError

DEFAULT_REPO_ID = "optsteps/optsteps-registry"
ENV_REPO = "OPTSTEPS_HUB_REPO"
ENV_TIMEOUT = "OPTSTEPS_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 20.0  # seconds
_sources: dict[tuple, Source] = {}


def repo_id() -> str:
    """The Hub dataset repo read by ``source="hub"``: ``$OPTSTEPS_HUB_REPO`` or `DEFAULT_REPO_ID`."""
    return os.environ.get(ENV_REPO) or DEFAULT_REPO_ID


def clear_cache() -> None:
    """Forget the Hub files fetched by this process (the HF cache on disk is left alone)."""
    _sources.clear()


def source(revision: str | None = None) -> Source:
    """A `Source` over the Hub repo at ``revision`` (a branch, tag or commit; ``None`` = ``main``)."""
    check_revision(revision)
    timeout = hub_timeout()
    try:
        import huggingface_hub as hf
        import huggingface_hub.constants  # noqa: F401 (the package's lazy __init__ does not load it)
    except ImportError:
        raise RegistryUnavailableError("source='hub' needs huggingface_hub: pip install 'optsteps[hub]'") from None
    repo = repo_id()
    offline = _offline(hf)
    key = (repo, revision, hf.constants.ENDPOINT, hf.constants.HF_HUB_CACHE, offline)
    src = _sources.get(key)
    if src is None:
        unreachable = None if offline else _unreachable(hf.constants.ENDPOINT, timeout)
        src = _open(hf, repo, revision, offline, timeout, key, unreachable)
        if unreachable is None:  # a source read from the cache alone is not kept: the network may come back
            _sources[key] = src
    return src


OFFLINE_HINT = (
    "No network? Set HF_HUB_OFFLINE=1 to read the HF cache only (falling back to the local registry), or use"
    " a local copy: source=PATH or $OPTSTEPS_REGISTRY_DIR."
)


def _unreachable(endpoint: str, timeout: float) -> str | None:
    """Why the Hub endpoint cannot be reached at all (connection refused, no route to it, its name does not
    resolve), found with one TCP connect before any download; None when it answers, when a proxy is set for
    it (then only the client knows), or when the connect is merely slow (transient: left to the client).

    ``huggingface_hub`` retries a failed connection with its own backoff (1, 2, 4, 8, 8 s: 23 s in all)
    before it gives up or falls back to its cache; these failures will not heal in 23 s, so the downloads
    then read the HF cache only (`_download`) and fail at once, with `OFFLINE_HINT`, when a file is not there.
    """
    import errno
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    host = url.hostname
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return None
    if not host or (urllib.request.getproxies() and not urllib.request.proxy_bypass(host)):
        return None
    try:
        socket.create_connection((host, port), timeout=min(timeout, 5.0)).close()
    except ConnectionRefusedError:
        return f"{fmt.short(endpoint)} refused the connection"
    except socket.gaierror:
        return f"the name {fmt.short(host)} does not resolve"
    except OSError as err:
        if err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"{fmt.short(endpoint)} is unreachable ({err.strerror})"
    return None


def check_revision(revision: object) -> None:
    """Refuse a ``revision`` that is not ``None``, a 40-hex commit id or a git branch/tag name (TypeError,
    ValueError), before anything touches the network or the HF cache (whose refs/ it names a file in)."""
    if revision is None:
        return
    if not isinstance(revision, str):
        raise TypeError(f"revision must be a str (branch, tag or commit), not {type(revision).__name__}")
    if fmt.is_hex(revision, 40):
        return
    parts = revision.split("/")
    bad = (
        not revision
        or len(revision) > 255
        or revision.startswith("-")
        or revision.endswith((".", ".lock"))
        or ".." in revision
        or "@{" in revision
        or revision == "@"
        or any(ord(c) < 0x20 or ord(c) == 0x7F or c in " ~^:?*[\\" for c in revision)
        or any(part == "" or part.startswith(".") for part in parts)
    )
    if bad:
        raise ValueError(
            f"revision must be a branch or tag name or a 40-hex commit id (git ref-name rules: no '..',"
            f" no leading '/', no backslash, NUL or space), got {fmt.short(revision, 60)!r}"
        )


def hub_timeout() -> float:
    """``$OPTSTEPS_HUB_TIMEOUT`` in seconds (a positive number), else `DEFAULT_TIMEOUT`."""
    text = os.environ.get(ENV_TIMEOUT)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise ValueError(f"${ENV_TIMEOUT} must be a positive number of seconds, got {fmt.short(text, 40)!r}")
    return value


def _offline(hf) -> bool:
    is_offline = getattr(hf.constants, "is_offline_mode", None)
    return bool(is_offline() if callable(is_offline) else hf.constants.HF_HUB_OFFLINE)


def _open(
    hf, repo: str, revision: str | None, offline: bool, timeout: float, key: tuple, unreachable: str | None
) -> Source:
    files: dict[str, str] = {}  # repo path -> local path, for this process

    def discard(path: str) -> None:
        """Delete a bad download from the HF cache (the blob first, then the snapshot link to it) and forget
        it; a bad index also forgets this source, so the next call resolves the revision anew."""
        for p in dict.fromkeys((os.path.realpath(path), path)):
            try:
                os.unlink(p)
            except OSError:
                pass
        for rel in [rel for rel, p in files.items() if p == path]:
            del files[rel]
        if path == index_path:
            _sources.pop(key, None)

    index_path = _download(hf, repo, "index.json", revision, offline, timeout, unreachable)
    _check_blob_name(index_path, discard)
    folder = os.path.basename(os.path.dirname(index_path))
    commit = folder if fmt.is_hex(folder, 40) else None
    pinned = commit or revision
    label = f"hub:{repo}@{revision or 'main'}"
    if commit and commit != revision:
        label += f" (commit {commit})"

    def locate(rel: str) -> str:
        path = files.get(rel)
        if path is None:
            path = _download(hf, repo, rel, pinned, offline, timeout, unreachable)
            _check_blob_name(path, discard)
            files[rel] = path
        return path

    return Source(label, index_path, locate, discard)


def _download(
    hf, repo: str, filename: str, revision: str | None, offline: bool, timeout: float, unreachable: str | None
) -> str:
    """``hf_hub_download`` in a daemon thread, abandoned after 3 × ``timeout`` (the client retries stalled
    metadata requests for minutes on its own); from the HF cache only when the Hub is ``unreachable``
    (`_unreachable` says why)."""
    import threading

    from ._version import __version__

    where = f"{fmt.short(filename)} of the Hub dataset {fmt.short(repo)}@{fmt.short(revision or 'main')}"
    result: list = []

    def run() -> None:
        try:
            result.append(
                hf.hf_hub_download(
                    repo_id=repo,
                    filename=filename,
                    repo_type="dataset",
                    revision=revision,
                    library_name="optsteps",
                    library_version=__version__,
                    etag_timeout=timeout,
                    local_files_only=unreachable is not None,
                )
            )
        except BaseException as err:  # noqa: BLE001 (handed to the caller's thread)
            result.append(err)

    worker = threading.Thread(target=run, name=f"optsteps-hub-{filename}", daemon=True)
    worker.start()
    worker.join(3 * timeout)
    if not result:
        raise RegistryUnavailableError(
            f"cannot fetch {where}: no answer within {3 * timeout:g} s (${ENV_TIMEOUT} = {timeout:g} s per request)"
        )
    err = result[0]
    if isinstance(err, str):
        return err
    if offline:
        raise OfflineMiss(f"HF_HUB_OFFLINE is set and {where} is not in the HF cache") from None
    if unreachable is not None:
        raise RegistryUnavailableError(
            f"cannot fetch {where}: {unreachable}, and the file is not in the HF cache. {OFFLINE_HINT}"
        ) from err
    missing = _not_found(err)
    if missing is not None:
        raise RegistryUnavailableError(
            f"cannot fetch {where}: not found on {hf.constants.ENDPOINT} (no such repo, revision or file;"
            f" {_describe(missing, 1)})"
        ) from err
    raise RegistryUnavailableError(f"cannot fetch {where}: {_describe(err)}") from err


def _not_found(err: BaseException | None) -> BaseException | None:
    """The exception saying the Hub answered 404 (repo, revision or file): ``err`` or one behind it."""
    for _ in range(4):
        if err is None:
            return None
        response = getattr(err, "response", None)
        if getattr(response, "status_code", None) == 404 or type(err).__name__ in (
            "RepositoryNotFoundError",
            "RevisionNotFoundError",
            "EntryNotFoundError",
            "RemoteEntryNotFoundError",
        ):
            return err
        err = err.__cause__ or err.__context__
    return None


def _describe(err: BaseException, limit: int = 3) -> str:
    """The first line of an exception and of the exceptions it was raised from (the HTTP status is often
    in the cause: HF reports a 5xx as "cannot find the file in the local cache")."""
    parts = []
    while err is not None and len(parts) < limit:
        lines = str(err).strip().splitlines()
        parts.append(f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": "))
        err = err.__cause__ or err.__context__
    return " <- ".join(parts)


def _check_blob_name(path: str, discard) -> None:
    """Check a cached file (the index or a data file) against the content hash HF named its blob after (the
    Hub's ETag); on a mismatch, ``discard`` it and raise (the module docstring says why for both)."""
    blob = os.path.realpath(path)
    name = os.path.basename(blob)
    try:
        data = fmt.read_regular(blob)
    except (OSError, fmt.FormatError) as err:
        discard(path)
        raise RegistryIntegrityError(f"{path}: {getattr(err, 'strerror', None) or err}") from None
    if fmt.is_hex(name, 40):  # git object id of a regular file
        got = fmt.git_blob_sha1(data)
    elif fmt.is_hex(name, 64):  # LFS file: sha256 of the bytes
        got = fmt.sha256_id(data)[7:]
    else:  # a copy, not a symlink (no symlink support): nothing to compare with
        return
    if got != name:
        discard(path)
        raise RegistryIntegrityError(
            f"{path}: the Hub named this file {name} but its bytes hash to {got};"
            " it was removed from the HF cache, try again"
        )
