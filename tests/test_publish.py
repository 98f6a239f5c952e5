"""``builder.registry.publish``: the dry run, refusals, and real uploads through ``huggingface_hub.HfApi`` against the
local Hub stand-in (tests/hub_stub.py), then a round trip through the loader's ``source="hub"``.

What the client's protocol allows offline is exercised: create_repo, refs, tree listing, README metadata
validation, preupload, the NDJSON commit (regular files, deletions, parent-commit check), the legacy LFS
batch/PUT/verify upload (with hf_xet switched off), create/delete tag, repo info. Xet storage is not.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import optsteps_loader
from builder.cli import cli
from builder.registry.card import dataset_card
from builder.registry.dist import dist_registry_problems
from builder.registry.publish import PublishError, PublishPlan, publish
from tests import registry_factory as factory
from tests.hub_stub import HubStub

hf_constants = pytest.importorskip("huggingface_hub.constants")

REPO_ID = "optsteps-test/published"
TAG = f"v{factory.DATA_VERSION}"
TOKEN = "hf_test_write_token"


@pytest.fixture
def registry(tmp_path) -> Path:
    return factory.make_registry(tmp_path / "registry", schedules=("vp-linear", "flow"), nfes=(3, 4, 5))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The stub, requiring TOKEN for writes; the HF client (reads, for the loader) pointed at it."""
    with HubStub() as stub:
        stub.write_token = TOKEN
        monkeypatch.setattr(hf_constants, "ENDPOINT", stub.endpoint)
        monkeypatch.setattr(
            hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", stub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setenv("OPTSTEPS_HUB_REPO", REPO_ID)
        monkeypatch.delenv("OPTSTEPS_REGISTRY_DIR", raising=False)
        optsteps_loader.clear_cache()
        yield stub
        optsteps_loader.clear_cache()


def registry_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def do_publish(registry: Path, hub: HubStub, **kwargs):
    return publish(registry, REPO_ID, kwargs.pop("revision", TAG), token=TOKEN, endpoint=hub.endpoint, **kwargs)


# ---- dry run and refusals (no network)


def test_dry_run_prints_path_size_sha256_and_makes_no_request(registry, hub, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not even imported
    out = CliRunner().invoke(
        cli,
        [
            "publish",
            "--registry",
            str(registry),
            "--repo-id",
            REPO_ID,
            "--revision",
            TAG,
            "--dry-run",
            "--endpoint",
            hub.endpoint,
        ],
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    for rel, data in registry_files(registry).items():
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" in next(x for x in lines if x.startswith(rel + " "))
        assert str(len(data)) in next(x for x in lines if x.startswith(rel + " "))
    assert any(x.startswith("README.md ") for x in lines)
    assert lines[-1] == "dry run: nothing was uploaded"
    assert hub.requests == []


def test_plan_lists_the_index_its_files_and_the_card_only(registry):
    (registry / "notes.txt").write_text("not part of the registry")
    the_plan = publish(registry, REPO_ID, TAG, dry_run=True)
    assert isinstance(the_plan, PublishPlan)
    index = json.loads((registry / "index.json").read_bytes())
    assert [f.path for f in the_plan.files] == ["index.json", *(r["path"] for r in index["files"]), "README.md"]
    for f, rec in zip(the_plan.files[1:-1], index["files"], strict=True):
        assert (f.size, "sha256:" + f.sha256) == (rec["bytes"], rec["sha256"])


@pytest.mark.parametrize("damage", ["edit", "missing", "unlisted"])
def test_invalid_registry_is_refused_before_any_request(registry, hub, damage):
    if damage == "edit":  # bytes no longer match the index
        obj = factory.read_json(registry, "v1/vp-linear.json")
        obj["entries"][0]["objective"] *= 2
        factory.rewrite(registry, "v1/vp-linear.json", obj, rehash=False)
    elif damage == "missing":  # a vendored subset is not a publishable registry
        (registry / "v1/flow-shift3.json").unlink()
    else:
        (registry / "v1/extra.json").write_text("{}\n")
    with pytest.raises(PublishError, match="refusing to publish an invalid registry"):
        do_publish(registry, hub)
    out = CliRunner().invoke(
        cli, ["publish", "--registry", str(registry), "--repo-id", REPO_ID, "--revision", TAG, "--dry-run"]
    )
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "refusing to publish an invalid registry" in out.output and "v1/" in out.output
    assert hub.requests == []


@pytest.mark.parametrize(
    "repo_id, revision, message",
    [
        (REPO_ID, "v2025.01.01", "does not name the registry's data_version"),
        (REPO_ID, "main", "must be a tag name"),
        (REPO_ID, "0" * 40, "must be a tag name"),
        (REPO_ID, "v 1", "must be a tag name"),
        ("no-namespace", TAG, "namespace/name"),
    ],
)
def test_bad_repo_id_or_revision(registry, repo_id, revision, message):
    with pytest.raises(PublishError, match=message):
        publish(registry, repo_id, revision, dry_run=True)


def test_suffixed_revision_is_accepted(registry):
    assert publish(registry, REPO_ID, TAG + "-rc1", dry_run=True).revision == TAG + "-rc1"


# ---- real uploads against the stub


def test_publish_creates_commits_tags_and_the_loader_reads_it_back(registry, hub):
    result = do_publish(registry, hub)
    assert result.status == "published"
    repo = hub.repos[("dataset", REPO_ID)]
    assert repo.refs[TAG] == repo.refs["main"] == result.commit and TAG in repo.tags
    published = hub.files_at(REPO_ID, TAG)
    expected = registry_files(registry)
    assert {k: v for k, v in published.items() if k in expected} == expected
    assert set(published) == {*expected, "README.md", ".gitattributes"}
    # the requests, in order: the protocol HfApi speaks (writes only; reads: refs and tree)
    assert hub.uploads == [
        ("POST", "/api/repos/create"),
        ("POST", "/api/validate-yaml"),
        ("POST", f"/api/datasets/{REPO_ID}/preupload/main"),
        ("POST", f"/api/datasets/{REPO_ID}/commit/main"),
        ("POST", f"/api/datasets/{REPO_ID}/tag/{result.commit}"),
    ]
    header, *ops = hub.commits_log[-1]
    assert header["value"]["summary"] == f"optsteps registry {factory.DATA_VERSION}"
    assert header["value"]["parentCommit"]  # guarded against a concurrent push
    assert {op["key"] for op in ops} == {"file"}  # small JSON: regular git files, sent inline
    # round trip through the loader, pinned to the tag
    local = optsteps_loader.get("vp-linear", 4, source=registry)
    steps = optsteps_loader.get("vp-linear", 4, source="hub", revision=TAG)
    assert steps.t == local.t and steps.timesteps == local.timesteps
    assert result.commit in steps.provenance["source"]
    report = optsteps_loader.verify("hub", revision=TAG)
    assert report["files"] == 3 and report["data_version"] == factory.DATA_VERSION


def test_republishing_the_same_data_is_a_no_op(registry, hub):
    first = do_publish(registry, hub)
    n = len(hub.uploads)
    again = do_publish(registry, hub)
    assert (again.status, again.commit) == ("already-published", first.commit)
    assert hub.uploads[n:] == [("POST", "/api/repos/create")]  # exist_ok: 409 accepted; nothing written


def test_existing_tag_with_other_data_is_not_moved_without_force(registry, hub, tmp_path):
    first = do_publish(registry, hub)
    other = factory.make_registry(tmp_path / "other", schedules=("vp-linear",), nfes=(3, 4, 5, 6))
    with pytest.raises(PublishError, match=f"tag '{TAG}' of {REPO_ID} already names commit {first.commit}"):
        do_publish(other, hub)
    assert hub.repos[("dataset", REPO_ID)].refs[TAG] == first.commit
    assert hub.repos[("dataset", REPO_ID)].refs["main"] == first.commit  # nothing was committed either

    moved = do_publish(other, hub, force=True)
    assert moved.status == "tag-moved" and moved.previous_tag_commit == first.commit
    assert moved.deleted == ("v1/flow-shift1.json", "v1/flow-shift3.json")  # no longer in the index
    published = hub.files_at(REPO_ID, TAG)
    assert not any(p.startswith("v1/flow") for p in published)
    assert ("DELETE", f"/api/datasets/{REPO_ID}/tag/{TAG}") in hub.uploads
    assert optsteps_loader.get("vp-linear", 6, source="hub", revision=TAG).nfe == 6
    assert optsteps_loader.get("flow", 4, source="hub", revision=first.commit).nfe == 4  # old commit intact


def test_new_data_version_on_an_existing_repo(registry, hub, tmp_path, monkeypatch):
    first = do_publish(registry, hub)
    monkeypatch.setattr(factory, "DATA_VERSION", "2026.02.01")
    newer = factory.make_registry(tmp_path / "newer", schedules=("vp-linear", "flow"), nfes=(3, 4, 5, 6))
    second = do_publish(newer, hub, revision="v2026.02.01")
    assert second.status == "published" and second.commit != first.commit
    repo = hub.repos[("dataset", REPO_ID)]
    assert repo.refs[TAG] == first.commit and repo.refs["v2026.02.01"] == second.commit
    assert optsteps_loader.get("vp-linear", 6, source="hub").nfe == 6  # main moved
    with pytest.raises(optsteps_loader.EntryNotFoundError):
        optsteps_loader.get("vp-linear", 6, source="hub", revision=TAG)


def test_large_files_go_through_the_lfs_protocol(registry, hub, monkeypatch):
    """With hf_xet off the client uses the legacy LFS batch API: batch, PUT to the given URL, verify."""
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    hub.lfs_threshold = 20_000  # the data files (~20-30 kB) become LFS; index and card stay regular
    result = do_publish(registry, hub)
    lfs_paths = {p for p, data in registry_files(registry).items() if len(data) >= 20_000}
    assert lfs_paths and "index.json" not in lfs_paths
    assert hub.repos[("dataset", REPO_ID)].lfs[result.commit] == lfs_paths
    header, *ops = hub.commits_log[-1]
    assert {op["value"]["path"] for op in ops if op["key"] == "lfsFile"} == lfs_paths
    methods = [(m, p.split("/")[1]) for m, p in hub.uploads]
    assert methods.count(("PUT", "lfs-upload")) == methods.count(("POST", "lfs-verify")) == len(lfs_paths)
    assert ("POST", f"/datasets/{REPO_ID}.git/info/lfs/objects/batch") in hub.uploads
    # the loader reads LFS files (ETag = sha256) as well
    assert optsteps_loader.get("flow", 5, source="hub", revision=TAG, shift=3.0).nfe == 5
    assert optsteps_loader.verify("hub", revision=TAG)["files"] == 3
    # the no-op check compares LFS sha256s too
    assert do_publish(registry, hub).status == "already-published"


def test_unchanged_files_are_not_sent_again(registry, hub, tmp_path):
    do_publish(registry, hub)
    data = factory.read_json(registry, "v1/vp-linear.json")
    data["entries"][0]["objective"] *= 2
    factory.rewrite(registry, "v1/vp-linear.json", data)
    do_publish(registry, hub, revision=TAG + "-fix")
    _, *ops = hub.commits_log[-1]
    assert sorted(op["value"]["path"] for op in ops) == ["README.md", "index.json", "v1/vp-linear.json"]


def test_a_concurrent_push_makes_the_commit_fail(registry, hub):
    hub.commit(REPO_ID, {".gitattributes": b""})  # the repo exists

    def preupload_after_someone_pushed(request, match):
        hub.commit(REPO_ID, {".gitattributes": b"", "other.txt": b"someone else"})
        with hub._state:
            return hub._preupload(request, match)

    hub.route(
        "POST",
        rf"^/api/(?P<kind>datasets)/(?P<repo>{REPO_ID})/preupload/(?P<revision>main)$",
        preupload_after_someone_pushed,
    )
    with pytest.raises(PublishError, match="could not commit the registry to main: .*412"):
        do_publish(registry, hub)
    assert TAG not in hub.repos[("dataset", REPO_ID)].refs


def test_token_from_hf_token_and_wrong_tokens(registry, hub, monkeypatch):
    runner = CliRunner()
    args = ["publish", "--registry", str(registry), "--repo-id", REPO_ID, "--revision", TAG, "--endpoint", hub.endpoint]
    out = runner.invoke(cli, args, env={"HF_TOKEN": "hf_wrong"})
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "could not create the dataset repo" in out.output and "401" in out.output
    assert ("dataset", REPO_ID) not in hub.repos
    out = runner.invoke(cli, args, env={"HF_TOKEN": TOKEN})  # as in the release workflow
    assert out.exit_code == 0, out.output
    assert f"{REPO_ID}@{TAG}: published" in out.output
    assert "index.json" in out.output  # the plan is printed as well


def test_without_huggingface_hub(registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(PublishError, match=r"pip install 'optsteps\[hub\]'"):
        publish(registry, REPO_ID, TAG)


# ---- the dataset card


def test_dataset_card_carries_license_citation_and_version(registry):
    index = json.loads((registry / "index.json").read_bytes())
    card = dataset_card(index, REPO_ID, TAG)
    meta, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "license: cc-by-4.0" in meta.splitlines() and "viewer: false" in meta.splitlines()
    assert index["citation"] in body and factory.DATA_VERSION in body and "CC-BY-4.0" in body
    assert f'revision="{TAG}"' in body
    for rec in index["files"]:
        assert f"`{rec['path']}`" in body
    other = dataset_card({**index, "license": "LicenseRef-custom"}, REPO_ID, TAG)
    assert 'license: other\nlicense_name: "LicenseRef-custom"' in other


# ---- the distribution check used by the release workflow


def make_dists(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path]:
    tmp_path.mkdir()
    wheel, sdist = tmp_path / "optsteps-0.1.0-py3-none-any.whl", tmp_path / "optsteps-0.1.0.tar.gz"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("optsteps_loader/__init__.py", "")
        for rel, data in files.items():
            zf.writestr(f"optsteps_loader/registry/{rel}", data)
    with tarfile.open(sdist, "w:gz") as tf:
        for rel, data in {"pyproject.toml": b"", **{f"registry/{k}": v for k, v in files.items()}}.items():
            info = tarfile.TarInfo(f"optsteps-0.1.0/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return wheel, sdist


def test_dist_registry_check(registry, tmp_path):
    files = registry_files(registry)
    for dist in make_dists(tmp_path / "good", files):
        assert dist_registry_problems(dist, registry) == []
    bad = {k: v for k, v in files.items() if k != "v1/flow-shift1.json"}
    bad["v1/stale.json"] = b"{}\n"
    bad["v1/vp-linear.json"] = b"changed\n"
    for dist in make_dists(tmp_path / "bad", bad):
        problems = dist_registry_problems(dist, registry)
        assert len(problems) == 3, problems
        assert "v1/flow-shift1.json is listed in the index but not packaged" in problems[0]
        assert "v1/stale.json is packaged but not listed" in problems[1]
        assert "v1/vp-linear.json differs" in problems[2]


# ---- docs/vendoring.md: the recipe works as written


def vendor(registry: Path, dest: Path, rel: str) -> Path:
    for name in ("index.json", rel):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes((registry / name).read_bytes())
    return dest


def test_vendored_single_file_verifies_with_allow_missing(registry, tmp_path):
    from builder.registry.validate import validate_registry
    from optsteps_loader.cli import build_cli

    folder = vendor(registry, tmp_path / "_optsteps", "v1/vp-linear.json")
    runner = CliRunner()
    out = runner.invoke(build_cli(), ["verify", "--source", str(folder), "--allow-missing"])
    assert out.exit_code == 0, out.output
    assert "1 files" in out.output and "missing: v1/flow-shift1.json, v1/flow-shift3.json" in out.output
    assert runner.invoke(build_cli(), ["verify", "--source", str(folder)]).exit_code == 1  # subset needs the flag
    assert validate_registry(folder, allow_missing=True).ok
    assert (
        optsteps_loader.get("vp-linear", 4, source=folder).t == optsteps_loader.get("vp-linear", 4, source=registry).t
    )
    (folder / "v1/vp-linear.json").write_bytes((folder / "v1/vp-linear.json").read_bytes().replace(b"1", b"2", 1))
    out = runner.invoke(build_cli(), ["verify", "--source", str(folder), "--allow-missing"])
    assert out.exit_code == 1 and "Error:" in out.output and "Traceback" not in out.output


def test_the_stdlib_snippet_in_the_docs(registry, tmp_path):
    text = (Path(__file__).resolve().parents[1] / "docs" / "vendoring.md").read_text(encoding="utf-8")
    code = text.split("### Without optsteps installed", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/vendoring.md", "exec"), namespace)  # our own documentation
    folder = vendor(registry, tmp_path / "_optsteps", "v1/vp-linear.json")
    index = json.loads((registry / "index.json").read_bytes())
    assert namespace["verify_vendored"](folder, ["v1/vp-linear.json"]) == (
        index["data_version"],
        index["license"],
        index["citation"],
    )
    (folder / "v1/vp-linear.json").write_bytes(b"{}\n")
    with pytest.raises(AssertionError, match="v1/vp-linear.json"):
        namespace["verify_vendored"](folder, ["v1/vp-linear.json"])
