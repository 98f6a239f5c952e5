"""A stand-in for the Hugging Face Hub on 127.0.0.1: Hub code is tested through the real
``huggingface_hub`` client, without the internet.

What ``hf_hub_download`` (huggingface_hub 2.x, ``file_download.py``) asks of the Hub, and what is served:

- ``HEAD {endpoint}/{prefix}{repo_id}/resolve/{revision}/{path}`` (``prefix`` ``datasets/``, ``spaces/`` or
  none for models; ``revision`` URL-quoted): 200 with ``X-Repo-Commit`` (required, else
  ``FileMetadataError``), ``ETag`` (required; the git blob sha1 of the file, quoted, as the Hub does for
  non-LFS files: HF names the cached blob after it) and ``Content-Length`` (the expected size). No redirect:
  the file is served in place.
- ``GET`` of the same URL: the bytes.
- Errors: 404 with ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound`` (the last with
  ``X-Repo-Commit``, which HF uses to cache the file's absence), as ``hf_raise_for_status`` expects.

Repos are in memory: ``commit()`` adds a commit (files by path), moves a branch, sets tags. ``faults`` inject
failures per file path: a status code, other content, a short body, a wrong ETag. ``requests`` logs every
request, so a test can assert that no request was made. More endpoints (e.g. the upload API) can be added with
``route()``: a handler gets ``(request, match)`` and returns ``(status, headers, body)``.

    with HubStub() as hub:
        hub.commit("me/data", {"index.json": b"{}"}, tags=["v1"])
        ...  # point huggingface_hub.constants.ENDPOINT (or HF_ENDPOINT, before import) at hub.endpoint
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

RESOLVE = re.compile(
    r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>.+?)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
REPO_TYPES = {"datasets": "dataset", "spaces": "space", None: "model"}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file: what the Hub sends as ETag for a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Fault:
    """How to misbehave when a file is requested (``None`` fields: behave).

    status: answer every request with this status (e.g. 500, 404);
    content: serve these bytes instead (ETag and length consistent with them: a "wrong file");
    truncate_to: send only this many bytes on GET; with ``honest_head`` the HEAD announces the short length
        too (the client cannot tell), else the full length (the client sees a size mismatch);
    etag: send this ETag instead of the real one (a lying Hub or proxy).
    """

    status: int | None = None
    content: bytes | None = None
    truncate_to: int | None = None
    honest_head: bool = False
    etag: str | None = None


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> {path: bytes}
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha


class HubStub:
    """A small threaded HTTP server emulating the Hub's file-resolve endpoint (see the module docstring)."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}  # (repo_type, repo_id) -> Repo
        self.faults: dict[str, Fault] = {}  # file path in the repo -> Fault
        self.requests: list[tuple[str, str]] = []  # (method, url path)
        self.routes: list[tuple[str, re.Pattern, Callable]] = [
            ("HEAD", RESOLVE, self._resolve), ("GET", RESOLVE, self._resolve)]
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- content -------------------------------------------------------------------------------------

    def commit(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "dataset",
               branch: str = "main", tags: tuple[str, ...] | list[str] = ()) -> str:
        """Add a commit holding exactly ``files`` on ``branch``; return its 40-hex id."""
        repo = self.repos.setdefault((repo_type, repo_id), Repo())
        digest = hashlib.sha1(repr((repo_id, len(repo.commits), repo.refs.get(branch))).encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        for tag in tags:
            repo.refs[tag] = sha
        return sha

    def commit_folder(self, repo_id: str, folder: str | Path, **kwargs) -> str:
        """Commit every file under ``folder`` (paths relative to it, '/'-separated)."""
        folder = Path(folder)
        paths = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}
        return self.commit(repo_id, files, **kwargs)

    def route(self, method: str, pattern: str | re.Pattern, handler: Callable) -> None:
        """Serve ``method`` on URL paths matching ``pattern`` with ``handler(request, match)`` (checked
        before the built-in routes)."""
        self.routes.insert(0, (method, re.compile(pattern), handler))

    # --- server --------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """What HF_ENDPOINT should be, e.g. ``http://127.0.0.1:54321``."""
        assert self._server is not None, "start() the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HubStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
                stub._handle(self, "HEAD")

            def do_GET(self) -> None:  # noqa: N802
                stub._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                stub._handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                stub._handle(self, "PUT")

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="hub-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(request.path).path
        with self._lock:
            self.requests.append((method, path))
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                status, headers, body = handler(request, match)
                break
        else:
            status, headers, body = 404, {}, b"not found"
        request.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        if method != "HEAD":
            request.wfile.write(body)

    def _resolve(self, request: BaseHTTPRequestHandler, match: re.Match) -> tuple[int, dict, bytes]:
        """HEAD/GET ``/{prefix}{repo_id}/resolve/{revision}/{path}``."""
        repo = self.repos.get((REPO_TYPES[match["kind"]], unquote(match["repo"])))
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b""
        revision, path = unquote(match["revision"]), unquote(match["path"])
        sha = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        if sha is None:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b""
        data = repo.commits[sha].get(path)
        fault = self.faults.get(path, Fault())
        if fault.status is not None:
            return fault.status, {"X-Repo-Commit": sha}, b"stub fault"
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                         "X-Repo-Commit": sha}, b""
        if fault.content is not None:
            data = fault.content
        size, sent = len(data), data
        if fault.truncate_to is not None:
            sent = data[: fault.truncate_to]
            if fault.honest_head:
                data, size = sent, len(sent)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{fault.etag or git_blob_sha1(data)}"',
                   "Content-Type": "application/json", "Accept-Ranges": "bytes"}
        if request.command == "HEAD":
            return 200, {**headers, "Content-Length": str(size)}, b""
        return 200, headers, sent
