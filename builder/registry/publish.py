"""Put the registry folder on a Hugging Face Hub dataset repo, tagged.

What :func:`publish` does, in order (``HfApi`` from ``huggingface_hub``, imported only here, only for a real
run; ``pip install 'optsteps[hub]'``):

1. Validates the folder with :func:`builder.registry.validate.validate_registry` (complete, not a vendored subset)
   and refuses an invalid one, or a ``revision`` that does not start with ``v<data_version>``.
2. Plans the upload: ``index.json``, the data files it lists (nothing else from the folder), and a generated
   dataset card ``README.md`` (:mod:`builder.registry.card`: licence and citation from the index, the data version, the file table).
   ``dry_run=True`` stops here: the plan (path, size, sha256 of each file) is returned and printed by the
   CLI; nothing is imported from ``huggingface_hub`` and no request is made.
3. ``create_repo(repo_type="dataset", exist_ok=True)``; reads the refs. If the tag exists already: when its
   commit holds exactly these registry files (git blob ids compared) the run is a no-op ("already
   published"), otherwise it stops unless ``force`` (tags are what users pin; moving one is deliberate).
4. One commit on ``branch`` (``main``) with ``parent_commit`` = the head read in 3 (a concurrent push makes
   it fail rather than interleave): every planned file, plus deletions of registry files on the branch that
   the new index no longer lists (``v<N>/*.json``); the client skips files whose content is unchanged.
5. ``create_tag(tag=revision)`` on that commit (``delete_tag`` first when moving it with ``force``).

The token comes from ``token=`` or, as ``huggingface_hub`` does, ``$HF_TOKEN`` / the saved login; the
endpoint from ``endpoint=`` or ``$HF_ENDPOINT``. Errors raised by the Hub client become `PublishError`
naming the step that failed, with the client's exception as ``__cause__``.

The loader reads the same layout (``optsteps_loader.hub``): ``get(..., source="hub", revision="v…")``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .card import CARD_NAME, dataset_card

from optsteps_loader import format as fmt

__all__ = [
    "PlannedFile",
    "PublishError",
    "PublishPlan",
    "PublishResult",
    "plan",
    "publish",
]

REPO_TYPE = "dataset"
_REGISTRY_FILE = re.compile(r"^v\d+/.+\.json$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PublishError(Exception):
    """The registry cannot be (or was not) published: invalid data, a tag conflict, a failed Hub request."""


@dataclass(frozen=True)
class PlannedFile:
    """One file of the upload: its path in the repo, size, sha256 (hex) and bytes."""

    path: str
    size: int
    sha256: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, path: str, data: bytes) -> PlannedFile:
        return cls(path, len(data), fmt.sha256_id(data).removeprefix("sha256:"), data)

    @property
    def git_oid(self) -> str:
        """The git blob id the Hub reports for this content (as a regular, non-LFS file)."""
        return fmt.git_blob_sha1(self.data)


@dataclass(frozen=True)
class PublishPlan:
    """What a publish uploads: the registry files (``index.json`` first) and the dataset card, in order."""

    registry: str
    repo_id: str
    revision: str
    branch: str
    data_version: str
    files: tuple[PlannedFile, ...]

    @property
    def registry_paths(self) -> tuple[str, ...]:
        """The files that come from the registry folder (all but the generated card)."""
        return tuple(f.path for f in self.files if f.path != CARD_NAME)

    def format(self) -> str:
        """The plan as text: one ``path  size  sha256`` line per file, then what would be done."""
        width = max(len(f.path) for f in self.files)
        lines = [f"{f.path:<{width}}  {f.size:>9}  sha256:{f.sha256}" for f in self.files]
        total = sum(f.size for f in self.files)
        lines.append(f"{len(self.files)} files, {total} bytes (registry {self.registry}, data {self.data_version})")
        lines.append(
            f"target: Hub dataset {self.repo_id} (created if missing), one commit on"
            f" {self.branch!r}, tagged {self.revision!r}"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class PublishResult:
    """The outcome of a real publish: the commit the tag names, and what changed."""

    plan: PublishPlan
    status: str  # "published" | "already-published" | "tag-moved"
    commit: str
    commit_url: str | None = None
    deleted: tuple[str, ...] = ()
    previous_tag_commit: str | None = None

    def format(self) -> str:
        what = {
            "published": "published",
            "tag-moved": "published (tag moved)",
            "already-published": "already published, nothing to do",
        }[self.status]
        lines = [f"{self.plan.repo_id}@{self.plan.revision}: {what}; commit {self.commit}"]
        if self.previous_tag_commit:
            lines.append(f"the tag named commit {self.previous_tag_commit} before")
        if self.deleted:
            lines.append(f"deleted (no longer in the index): {', '.join(self.deleted)}")
        if self.commit_url:
            lines.append(self.commit_url)
        return "\n".join(lines)


# ---- planning (no network)


def plan(registry: str | Path, repo_id: str, revision: str, *, branch: str = "main") -> PublishPlan:
    """Validate ``registry`` and list what would be uploaded. Raises `PublishError` if it is invalid."""
    from .validate import format_report, validate_registry

    root = Path(registry)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id or ""):
        raise PublishError(f"repo id must be 'namespace/name', got {repo_id!r}")
    if not _TAG.fullmatch(revision or "") or re.fullmatch(r"[0-9a-f]{40}", revision) or revision == branch:
        raise PublishError(
            f"revision must be a tag name such as v2026.11.25 (not a branch or commit id), got {revision!r}"
        )
    report = validate_registry(root)
    if not report.ok:
        raise PublishError(f"refusing to publish an invalid registry:\n{format_report(report)}")
    index_bytes = (root / "index.json").read_bytes()
    index = json.loads(index_bytes)
    data_version = index["data_version"]
    if not revision.startswith(f"v{data_version}"):
        raise PublishError(
            f"revision {revision!r} does not name the registry's data_version"
            f" {data_version!r}: expected v{data_version} (optionally with a suffix)"
        )
    files = [PlannedFile.of("index.json", index_bytes)]
    files += [PlannedFile.of(rec["path"], (root / rec["path"]).read_bytes()) for rec in index["files"]]
    files.append(PlannedFile.of(CARD_NAME, dataset_card(index, repo_id, revision).encode("utf-8")))
    return PublishPlan(str(root), repo_id, revision, branch, data_version, tuple(files))


# ---- publishing


def publish(
    registry: str | Path,
    repo_id: str,
    revision: str,
    *,
    token: str | None = None,
    dry_run: bool = False,
    endpoint: str | None = None,
    force: bool = False,
    branch: str = "main",
) -> PublishPlan | PublishResult:
    """Publish ``registry`` to the Hub dataset ``repo_id`` tagged ``revision`` (see the module docstring).

    Returns the `PublishPlan` with ``dry_run=True`` (no network), else a `PublishResult`.
    """
    the_plan = plan(registry, repo_id, revision, branch=branch)
    if dry_run:
        return the_plan
    try:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
        from huggingface_hub.hf_api import RepoFile
    except ImportError:
        raise PublishError("publishing needs huggingface_hub: pip install 'optsteps[hub]'") from None
    from .. import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="optsteps-builder", library_version=__version__)
    kw = {"repo_type": REPO_TYPE}
    with _step(f"create the dataset repo {repo_id}"):
        api.create_repo(repo_id, exist_ok=True, **kw)
    with _step("read the repo's refs"):
        refs = api.list_repo_refs(repo_id, **kw)
    tags = {t.name: t.target_commit for t in refs.tags}
    heads = {b.name: b.target_commit for b in refs.branches}
    if revision in heads:
        raise PublishError(f"{revision!r} is a branch of {repo_id}, not a tag")
    if branch not in heads:
        raise PublishError(f"{repo_id} has no branch {branch!r}")
    previous = tags.get(revision)
    if previous is not None:
        with _step(f"list the files at tag {revision}"):
            remote = {
                f.path: f
                for f in api.list_repo_tree(repo_id, revision=previous, recursive=True, **kw)
                if isinstance(f, RepoFile)
            }
        if _same_registry(the_plan, remote):
            return PublishResult(the_plan, "already-published", previous)
        if not force:
            raise PublishError(
                f"tag {revision!r} of {repo_id} already names commit {previous}, which holds"
                " other registry files; pass --force to move it (users who pinned the tag will"
                " get other data), or publish under a new data_version"
            )
    with _step(f"list the files on {branch}"):
        on_branch = [
            f.path
            for f in api.list_repo_tree(repo_id, revision=heads[branch], recursive=True, **kw)
            if isinstance(f, RepoFile)
        ]
    deleted = tuple(sorted(p for p in on_branch if _REGISTRY_FILE.match(p) and p not in the_plan.registry_paths))
    operations = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=f.data) for f in the_plan.files]
    operations += [CommitOperationDelete(path_in_repo=p) for p in deleted]
    with _step(f"commit the registry to {branch}"):
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=f"optsteps registry {the_plan.data_version}",
            commit_description=f"`python -m builder publish` as {revision}.",
            revision=branch,
            parent_commit=heads[branch],
            **kw,
        )
    if previous is not None:
        with _step(f"delete the old tag {revision}"):
            api.delete_tag(repo_id, tag=revision, **kw)
    with _step(f"tag commit {info.oid} as {revision}"):
        api.create_tag(
            repo_id,
            tag=revision,
            revision=info.oid,
            tag_message=f"optsteps registry data {the_plan.data_version}",
            **kw,
        )
    return PublishResult(
        the_plan, "tag-moved" if previous else "published", info.oid, info.commit_url, deleted, previous
    )


def _same_registry(the_plan: PublishPlan, remote: dict) -> bool:
    """Whether the remote files (path -> RepoFile) hold exactly the planned registry files."""
    extra = {p for p in remote if _REGISTRY_FILE.match(p)} - set(the_plan.registry_paths)
    if extra:
        return False
    for f in the_plan.files:
        if f.path == CARD_NAME:
            continue
        r = remote.get(f.path)
        if r is None:
            return False
        same = r.lfs.sha256 == f.sha256 if r.lfs else r.blob_id == f.git_oid
        if not same or r.size != f.size:
            return False
    return True


@contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        yield
    except PublishError:
        raise
    except Exception as err:  # the Hub client's errors (HTTP, network, malformed answers)
        first = (str(err).strip().splitlines() or [""])[0]
        raise PublishError(f"could not {what}: {type(err).__name__}: {first}") from err
