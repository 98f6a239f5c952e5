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

The write side, as ``HfApi`` (``hf_api.py``, ``_commit_api.py``, ``lfs.py``) uses it for ``create_repo``,
``create_commit`` / ``upload_folder``, ``create_tag`` / ``delete_tag``, ``list_repo_refs``, ``list_repo_tree``
and ``repo_info`` (all under ``{endpoint}``; ``{kind}`` is ``models``, ``datasets`` or ``spaces``):

- ``POST /api/repos/create`` (JSON ``name``, ``organization``, ``type``): 200 ``{"url"}``, or 409 if it
  exists (``exist_ok=True`` accepts that). A new repo gets a first commit holding ``.gitattributes``, as on
  the Hub.
- ``POST /api/validate-yaml`` (``create_commit`` sends a README.md's text there first): 200, or 400 with
  ``errors`` when its ``---`` front matter is not closed.
- ``POST /api/{kind}/{repo}/preupload/{rev}`` (JSON ``files``: path, size, sample): per file ``uploadMode``
  ``"lfs"`` from ``lfs_threshold`` bytes on (the Hub: 10 MB), else ``"regular"``; ``oid`` of the file already
  at ``rev`` (git blob sha1; sha256 for LFS) so the client skips unchanged files.
- LFS, the legacy protocol (the client takes it when ``hf_xet`` is missing or ``HF_HUB_DISABLE_XET``):
  ``POST /{prefix}{repo}.git/info/lfs/objects/batch`` answers ``basic`` upload + verify actions pointing
  back at the stub (none for an object it already has); ``PUT /lfs-upload/{oid}`` stores the bytes (400 if
  their sha256 is not ``oid``); ``POST /lfs-verify/{oid}`` checks oid and size. Xet storage
  (``xet-write-token``, the CAS server) is not emulated.
- ``POST /api/{kind}/{repo}/commit/{branch}``: NDJSON, a ``header`` line then ``file`` (base64),
  ``lfsFile`` (must have been uploaded), ``deletedFile`` / ``deletedFolder`` lines; ``parentCommit`` must be
  the branch head (412 otherwise). Answers ``commitOid`` / ``commitUrl``. Only branches take commits.
- ``GET /api/{kind}/{repo}/refs``; ``POST /api/{kind}/{repo}/tag/{rev}`` (JSON ``tag``; 409 if it exists);
  ``DELETE /api/{kind}/{repo}/tag/{tag}``; ``GET /api/{kind}/{repo}/tree/{rev}[/{path}]`` (``recursive``;
  files with ``oid``, ``size`` and ``lfs``); ``GET /api/{kind}/{repo}[/revision/{rev}]`` (``id``, ``sha``,
  ``siblings``).
- With ``write_token`` set, every write needs ``Authorization: Bearer <write_token>`` (401 otherwise).
  Files stored as LFS are served by ``resolve`` with their sha256 as ETag, as HF's client expects.
- ``uploads`` logs ``(method, path)`` of every write, ``commits_log`` the parsed NDJSON of each commit.

Repos are in memory: ``commit()`` adds a commit (files by path), moves a branch, sets tags. ``faults`` inject
failures per file path: a status code, other content, a short body, a wrong ETag. ``requests`` logs every
request, so a test can assert that no request was made. More endpoints (e.g. the upload API) can be added with
``route()``: a handler gets ``(request, match)`` and returns ``(status, headers, body)``.

    with HubStub() as hub:
        hub.commit("me/data", {"index.json": b"{}"}, tags=["v1"])
        ...  # point huggingface_hub.constants.ENDPOINT (or HF_ENDPOINT, before import) at hub.endpoint
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

RESOLVE = re.compile(r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>.+?)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
REPO_TYPES = {"datasets": "dataset", "spaces": "space", None: "model"}
API_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API = r"^/api/(?P<kind>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"


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
    etag: send this ETag instead of the real one (a lying Hub or proxy);
    stall: answer nothing until the stub stops (a Hub that hangs).
    """

    status: int | None = None
    content: bytes | None = None
    truncate_to: int | None = None
    honest_head: bool = False
    etag: str | None = None
    stall: bool = False


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> {path: bytes}
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    tags: set[str] = field(default_factory=set)  # the names in ``refs`` that are tags (the rest: branches)
    lfs: dict[str, set[str]] = field(default_factory=dict)  # commit sha -> paths stored as LFS objects


class HubStub:
    """A small threaded HTTP server emulating the Hub's file-resolve endpoint (see the module docstring)."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}  # (repo_type, repo_id) -> Repo
        self.faults: dict[str, Fault] = {}  # file path in the repo -> Fault
        self.requests: list[tuple[str, str]] = []  # (method, url path)
        self.routes: list[tuple[str, re.Pattern, Callable]] = [
            ("HEAD", RESOLVE, self._resolve),
            ("GET", RESOLVE, self._resolve),
            *self._write_routes(),
        ]
        self.write_token: str | None = None  # when set: writes need "Authorization: Bearer <write_token>"
        self.lfs_threshold = 10_000_000  # preupload answers "lfs" for files this large (the Hub: 10 MB)
        self.lfs_objects: dict[str, bytes] = {}  # sha256 hex -> bytes received by PUT /lfs-upload
        self.uploads: list[tuple[str, str]] = []  # (method, url path) of every write request
        self.commits_log: list[list[dict]] = []  # the parsed NDJSON lines of each commit request
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = threading.RLock()  # repos / lfs_objects, changed by concurrent upload requests
        self._stopping = threading.Event()  # releases stalled requests

    # --- content -------------------------------------------------------------------------------------

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "dataset",
        branch: str = "main",
        tags: tuple[str, ...] | list[str] = (),
    ) -> str:
        """Add a commit holding exactly ``files`` on ``branch``; return its 40-hex id."""
        repo = self.repos.setdefault((repo_type, repo_id), Repo())
        digest = hashlib.sha1(repr((repo_id, len(repo.commits), repo.refs.get(branch))).encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        repo.tags.discard(branch)
        for tag in tags:
            repo.refs[tag] = sha
            repo.tags.add(tag)
        return sha

    def files_at(self, repo_id: str, revision: str = "main", *, repo_type: str = "dataset") -> dict[str, bytes]:
        """The files of ``repo_id`` at a branch, tag or commit (raises ``KeyError`` if there is none)."""
        repo = self.repos[(repo_type, repo_id)]
        return dict(repo.commits[repo.refs.get(revision, revision)])

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

            def do_DELETE(self) -> None:  # noqa: N802
                stub._handle(self, "DELETE")

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="hub-stub", daemon=True
        )
        self._thread.start()
        return self

    def release_stalls(self) -> None:
        """Answer every stalled request (503) now, and any later one at once."""
        self._stopping.set()

    def stop(self) -> None:
        self.release_stalls()
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
        request.body = _read_body(request) if method in ("POST", "PUT", "DELETE") else b""
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
        lfs = path in repo.lfs.get(sha, ())
        fault = self.faults.get(path, Fault())
        if fault.stall:
            self._stopping.wait(60)
            return 503, {}, b""
        if fault.status is not None:
            return fault.status, {"X-Repo-Commit": sha}, b"stub fault"
        if data is None:
            return (
                404,
                {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": sha},
                b"",
            )
        if fault.content is not None:
            data = fault.content
        size, sent = len(data), data
        if fault.truncate_to is not None:
            sent = data[: fault.truncate_to]
            if fault.honest_head:
                data, size = sent, len(sent)
        oid = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{fault.etag or oid}"',
            "Content-Type": "application/json",
            "Accept-Ranges": "bytes",
        }
        if request.command == "HEAD":
            return 200, {**headers, "Content-Length": str(size)}, b""
        return 200, headers, sent

    # --- the write API (see the module docstring) ----------------------------------------------------

    def _write_routes(self) -> list[tuple[str, re.Pattern, Callable]]:
        routes = [
            ("POST", r"^/api/repos/create$", self._create_repo),
            ("POST", r"^/api/validate-yaml$", self._validate_yaml),
            ("POST", _API + r"/preupload/(?P<revision>[^/]+)$", self._preupload),
            (
                "POST",
                r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$",
                self._lfs_batch,
            ),
            ("PUT", r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$", self._lfs_upload),
            ("POST", r"^/lfs-verify/(?P<oid>[0-9a-f]{64})$", self._lfs_verify),
            ("POST", _API + r"/commit/(?P<revision>[^/]+)$", self._commit),
            ("GET", _API + r"/refs$", self._refs),
            ("POST", _API + r"/tag/(?P<revision>[^/]+)$", self._create_tag),
            ("DELETE", _API + r"/tag/(?P<tag>[^/]+)$", self._delete_tag),
            ("GET", _API + r"/tree/(?P<revision>[^/]+)(?:/(?P<path>.+))?$", self._tree),
            ("GET", _API + r"(?:/revision/(?P<revision>[^/]+))?$", self._repo_info),
        ]
        return [(method, re.compile(pattern), self._guarded(method, handler)) for method, pattern, handler in routes]

    def _guarded(self, method: str, handler: Callable) -> Callable:
        """Check the token on writes, log them, and run every API handler under the state lock."""

        def run(request: BaseHTTPRequestHandler, match: re.Match) -> tuple[int, dict, bytes]:
            path = urlsplit(request.path).path
            if method != "GET":
                with self._lock:
                    self.uploads.append((method, path))
                auth = request.headers.get("Authorization")
                if (
                    self.write_token is not None
                    and auth != f"Bearer {self.write_token}"
                    and not path.startswith(("/lfs-upload/", "/api/validate-yaml"))
                ):
                    return _error(401, "Unauthorized", "Invalid credentials in Authorization header")
            with self._state:
                return handler(request, match)

        return run

    def _repo_of(self, match: re.Match, kind_map: dict = API_KINDS) -> tuple[Repo | None, str, str]:
        repo_type = kind_map[match["kind"]]
        repo_id = unquote(match["repo"])
        return self.repos.get((repo_type, repo_id)), repo_type, repo_id

    def _sha_of(self, repo: Repo, revision: str) -> str | None:
        return repo.refs.get(revision) or (revision if revision in repo.commits else None)

    def _create_repo(self, request, match) -> tuple[int, dict, bytes]:
        payload = json.loads(request.body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = "/".join(x for x in (payload.get("organization"), payload["name"]) if x)
        url = f"{self.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return _json(409, {"error": "You already created this repo", "url": url})
        self.commit(repo_id, {".gitattributes": GITATTRIBUTES}, repo_type=repo_type)
        return _json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, request, match) -> tuple[int, dict, bytes]:
        content = json.loads(request.body)["content"]
        if content.startswith("---\n") and "\n---\n" not in content[3:]:
            return _json(400, {"errors": [{"message": "metadata block is not closed"}], "warnings": []})
        return _json(200, {"errors": [], "warnings": []})

    def _preupload(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, _ = self._repo_of(match)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        sha = self._sha_of(repo, unquote(match["revision"]))
        if sha is None:
            return _error(404, "RevisionNotFound", "Invalid rev id")
        files = repo.commits[sha]
        answer = []
        for item in json.loads(request.body)["files"]:
            path, lfs = item["path"], item["size"] >= self.lfs_threshold
            old = files.get(path)
            oid = None
            if old is not None:
                oid = hashlib.sha256(old).hexdigest() if path in repo.lfs.get(sha, ()) else git_blob_sha1(old)
            answer.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return _json(200, {"files": answer, "commitOid": sha})

    def _lfs_batch(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, _ = self._repo_of(match, REPO_TYPES)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        payload = json.loads(request.body)
        assert payload["operation"] == "upload" and payload["hash_algo"] == "sha256", payload
        objects = []
        for obj in payload["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_objects:
                item["actions"] = {
                    "upload": {"href": f"{self.endpoint}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.endpoint}/lfs-verify/{obj['oid']}"},
                }
            objects.append(item)
        return _json(200, {"transfer": "basic", "objects": objects})

    def _lfs_upload(self, request, match) -> tuple[int, dict, bytes]:
        if hashlib.sha256(request.body).hexdigest() != match["oid"]:
            return _error(400, "BadRequest", "content does not hash to the oid")
        self.lfs_objects[match["oid"]] = request.body
        return 200, {}, b""

    def _lfs_verify(self, request, match) -> tuple[int, dict, bytes]:
        payload = json.loads(request.body)
        data = self.lfs_objects.get(match["oid"])
        if data is None or payload != {"oid": match["oid"], "size": len(data)}:
            return _error(404, "EntryNotFound", "LFS object not found or of another size")
        return _json(200, {"success": True})

    def _commit(self, request, match) -> tuple[int, dict, bytes]:
        repo, repo_type, repo_id = self._repo_of(match)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        branch = unquote(match["revision"])
        if branch not in repo.refs or branch in repo.tags:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {branch} is not a branch")
        assert request.headers.get("Content-Type") == "application/x-ndjson", request.headers
        lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        self.commits_log.append(lines)
        header, ops = lines[0], lines[1:]
        assert header["key"] == "header" and header["value"]["summary"], header
        head = repo.refs[branch]
        parent = header["value"].get("parentCommit")
        if parent is not None and not head.startswith(parent):
            return _error(412, "PreconditionFailed", f"parent commit {parent} is not the head {head} of {branch}")
        files, lfs = dict(repo.commits[head]), set(repo.lfs.get(head, ()))
        for op in ops:
            key, value = op["key"], op["value"]
            path = value["path"]
            if key == "file":
                assert value["encoding"] == "base64", value
                files[path] = base64.b64decode(value["content"])
                lfs.discard(path)
            elif key == "lfsFile":
                data = self.lfs_objects.get(value["oid"])
                if data is None:
                    return _error(422, "BadRequest", f"LFS object {value['oid']} of {path} was not uploaded")
                files[path] = data
                lfs.add(path)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    return _error(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                lfs.discard(path)
            elif key == "deletedFolder":
                for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                    del files[name]
                    lfs.discard(name)
            else:
                return _error(400, "BadRequest", f"unknown operation {key!r}")
        sha = self.commit(repo_id, files, repo_type=repo_type, branch=branch)
        repo.lfs[sha] = lfs
        prefix = URL_PREFIXES[repo_type]
        return _json(
            200, {"success": True, "commitOid": sha, "commitUrl": f"{self.endpoint}/{prefix}{repo_id}/commit/{sha}"}
        )

    def _refs(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, _ = self._repo_of(match)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")

        def ref(name: str, kind: str) -> dict:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": repo.refs[name]}

        return _json(
            200,
            {
                "branches": [ref(n, "heads") for n in sorted(repo.refs) if n not in repo.tags],
                "tags": [ref(n, "tags") for n in sorted(repo.tags)],
                "converts": [],
            },
        )

    def _create_tag(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, _ = self._repo_of(match)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        sha = self._sha_of(repo, unquote(match["revision"]))
        if sha is None:
            return _error(404, "RevisionNotFound", "Invalid rev id")
        tag = json.loads(request.body)["tag"]
        if tag in repo.refs:
            return _error(409, "Conflict", f"Tag {tag} already exists")
        repo.refs[tag] = sha
        repo.tags.add(tag)
        return _json(200, {"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": sha})

    def _delete_tag(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, _ = self._repo_of(match)
        tag = unquote(match["tag"])
        if repo is None or tag not in repo.tags:
            return _error(404, "RevisionNotFound", f"Tag {tag} not found")
        repo.tags.discard(tag)
        del repo.refs[tag]
        return 200, {}, b""

    def _tree(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, _ = self._repo_of(match)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        sha = self._sha_of(repo, unquote(match["revision"]))
        if sha is None:
            return _error(404, "RevisionNotFound", "Invalid rev id")
        query = parse_qs(urlsplit(request.path).query)
        recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
        base = unquote(match["path"] or "").strip("/")
        prefix = base + "/" if base else ""
        files, lfs = repo.commits[sha], repo.lfs.get(sha, set())
        if base and base in files:  # the path names a file: the Hub answers with that file alone
            return _json(200, [_file_info(base, files[base], base in lfs)])
        items: dict[str, dict] = {}
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    items.setdefault(
                        folder, {"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()}
                    )
            if recursive or len(parts) == 1:
                items[path] = _file_info(path, files[path], path in lfs)
        if base and not items:
            return _error(404, "EntryNotFound", f"{base} does not exist at {sha}")
        return _json(200, list(items.values()))

    def _repo_info(self, request, match) -> tuple[int, dict, bytes]:
        repo, _, repo_id = self._repo_of(match)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        sha = self._sha_of(repo, unquote(match["revision"] or "main"))
        if sha is None:
            return _error(404, "RevisionNotFound", "Invalid rev id")
        return _json(
            200,
            {
                "id": repo_id,
                "sha": sha,
                "private": False,
                "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])],
            },
        )


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with Content-Length or chunked (httpx streams file objects chunked)."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(request.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while request.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _json(status: int, obj: object) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def _error(status: int, code: str, message: str) -> tuple[int, dict, bytes]:
    """An error as the Hub sends it: ``X-Error-Code`` / ``X-Error-Message`` and a JSON ``error``."""
    body = json.dumps({"error": message}).encode()
    headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
    return status, headers, body


def _file_info(path: str, data: bytes, lfs: bool) -> dict:
    info = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
    if lfs:
        info["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return info
