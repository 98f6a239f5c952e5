"""``source="hub"`` through the real ``huggingface_hub`` client against tests/hub_stub.py on 127.0.0.1.

In-process tests point ``huggingface_hub.constants`` (read once at import, so env vars are too late here)
at the stub and at a temporary HF cache; one subprocess test sets ``HF_ENDPOINT``/``HF_HOME`` for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import optsteps_loader
from optsteps_loader import RegistryIntegrityError, RegistryUnavailableError, available, clear_cache, get
from tests import registry_factory as factory
from tests.hub_stub import Fault, HubStub

hf_constants = pytest.importorskip("huggingface_hub.constants")

REPO_ID = "optsteps-test/registry"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    return factory.make_registry(tmp_path_factory.mktemp("local"), schedules=("vp-linear", "flow"), nfes=(3, 4, 5, 6))


@pytest.fixture
def hub(tmp_path, monkeypatch, local):
    """The stub serving ``local`` as REPO_ID (tag v1), the HF client pointed at it, an empty HF cache."""
    with HubStub() as stub:
        monkeypatch.setattr(hf_constants, "ENDPOINT", stub.endpoint)
        monkeypatch.setattr(
            hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", stub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("OPTSTEPS_HUB_REPO", REPO_ID)
        monkeypatch.delenv("OPTSTEPS_REGISTRY_DIR", raising=False)
        stub.first_commit = stub.commit_folder(REPO_ID, local, tags=["v1"])
        clear_cache()
        yield stub
        finish_abandoned_downloads(stub)
        clear_cache()


def finish_abandoned_downloads(stub: HubStub) -> None:
    """Let the downloads a timed-out ``get`` left running finish against a healthy stub before it stops.

    Left to retry against a stopped stub, such a thread gets "connection refused", on which huggingface_hub
    closes its one shared HTTP client, under whatever the next test in this process is sending."""
    stub.faults.clear()
    stub.release_stalls()
    for worker in threading.enumerate():
        if worker.name.startswith("optsteps-hub-"):
            worker.join(60)
            assert not worker.is_alive(), f"{worker.name} still running 60 s after its test"


def resolves(stub: HubStub) -> list[tuple[str, str]]:
    """The file requests made so far (the client also asks for /api/agent-harnesses once per process)."""
    return [r for r in stub.requests if "/resolve/" in r[1]]


def cache_blobs(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "hf-cache"
    assert not list(root.rglob("*.incomplete")), "a partial download was left in the cache"
    return {p.name: p.read_bytes() for p in root.rglob("blobs/*")}


def test_happy_path_matches_the_local_registry(hub, local):
    steps = get("vp-linear", 6, source="hub")
    assert steps.t == get("vp-linear", 6, source=local).t
    assert steps.provenance["source"] == f"hub:{REPO_ID}@main (commit {hub.first_commit})"
    assert resolves(hub) == [
        ("HEAD", f"/datasets/{REPO_ID}/resolve/main/index.json"),
        ("GET", f"/datasets/{REPO_ID}/resolve/main/index.json"),
        ("HEAD", f"/datasets/{REPO_ID}/resolve/{hub.first_commit}/v1/vp-linear.json"),
        ("GET", f"/datasets/{REPO_ID}/resolve/{hub.first_commit}/v1/vp-linear.json"),
    ]
    n = len(hub.requests)
    assert get("vp-linear", 5, source="hub").nfe == 5 and len(hub.requests) == n  # remembered in-process
    assert list(available("hub")) == ["flow", "vp-linear"]
    assert optsteps_loader.verify("hub")["files"] == 3


def test_pinned_revision_tag_and_commit(hub, local, tmp_path):
    newer = factory.make_registry(tmp_path / "newer", schedules=("vp-linear",), nfes=(3, 4, 5, 6, 7))
    second = hub.commit_folder(REPO_ID, newer, tags=["v2"])
    assert get("vp-linear", 7, source="hub").nfe == 7  # main moved
    for revision in ("v1", hub.first_commit):
        with pytest.raises(optsteps_loader.EntryNotFoundError):
            get("vp-linear", 7, source="hub", revision=revision)
        assert hub.first_commit in get("vp-linear", 6, source="hub", revision=revision).provenance["source"]
    assert get("vp-linear", 7, source="hub", revision=second).nfe == 7
    clear_cache()  # as a new process would: a cached commit needs no request at all
    n = len(hub.requests)
    get("vp-linear", 6, source="hub", revision=hub.first_commit)
    assert len(hub.requests) == n


def test_data_files_come_from_the_indexs_commit(hub, tmp_path):
    """The branch moves between the index download and a data file's: both still come from one commit."""
    before = available("hub")
    assert before["vp-linear"][0]["nfe"] == [3, 4, 5, 6]
    later = factory.make_registry(tmp_path / "next", schedules=("vp-linear",), nfes=(3, 9))
    hub.commit_folder(REPO_ID, later)
    steps = get("vp-linear", 4, source="hub")  # index of commit 1, data file of commit 1: hashes agree
    assert hub.first_commit in steps.provenance["source"]


def test_404_repo(hub, monkeypatch):
    monkeypatch.setenv("OPTSTEPS_HUB_REPO", "nobody/nothing")
    with pytest.raises(RegistryUnavailableError, match="index.json of the Hub dataset nobody/nothing") as err:
        get("vp-linear", 6, source="hub")
    assert "RepositoryNotFoundError" in str(err.value)
    assert err.value.__cause__ is not None  # the Hub client's exception


def test_404_revision(hub):
    with pytest.raises(RegistryUnavailableError, match="RevisionNotFoundError"):
        get("vp-linear", 6, source="hub", revision="no-such-tag")


def test_404_file_listed_in_the_index(hub, tmp_path):
    hub.faults["v1/vp-linear.json"] = Fault(status=404)
    with pytest.raises(RegistryUnavailableError, match="cannot fetch v1/vp-linear.json"):
        get("vp-linear", 6, source="hub")
    assert all(b in good_bytes_of(hub) for b in cache_blobs(tmp_path).values())


def good_bytes_of(stub: HubStub) -> set[bytes]:
    commits = [files for repo in stub.repos.values() for files in repo.commits.values()]
    return {data for files in commits for data in files.values()}


def test_500_without_cache_is_unavailable(hub, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # the client's retry backoff
    hub.faults["index.json"] = Fault(status=500)
    with pytest.raises(RegistryUnavailableError, match="500"):
        get("vp-linear", 6, source="hub")


def test_500_with_cache_uses_the_cached_copy(hub):
    first = get("vp-linear", 6, source="hub")
    clear_cache()
    hub.faults["index.json"] = hub.faults["v1/vp-linear.json"] = Fault(status=500)
    assert get("vp-linear", 6, source="hub").t == first.t


def test_truncated_transfer_leaves_nothing(hub, tmp_path):
    """Content-Length of HEAD and the short body disagree: the client refuses it; nothing is cached."""
    data = hub.repos[("dataset", REPO_ID)].commits[hub.first_commit]["v1/vp-linear.json"]
    hub.faults["v1/vp-linear.json"] = Fault(truncate_to=len(data) // 2)
    with pytest.raises(RegistryUnavailableError, match="cannot fetch v1/vp-linear.json"):
        get("vp-linear", 6, source="hub")
    assert data[: len(data) // 2] not in cache_blobs(tmp_path).values()


@pytest.mark.parametrize(
    "fault",
    [
        Fault(truncate_to=1000, honest_head=True),  # a short file the client cannot tell from a real one
        Fault(content=b'{"schema_version": 1}\n'),  # other content, consistent headers
    ],
)
def test_wrong_content_is_rejected_and_removed_from_the_cache(hub, tmp_path, fault):
    hub.faults["v1/vp-linear.json"] = fault
    with pytest.raises(RegistryIntegrityError, match=r"v1/vp-linear.json: sha256 mismatch"):
        get("vp-linear", 6, source="hub")
    assert set(cache_blobs(tmp_path).values()) <= good_bytes_of(hub)
    snapshot = tmp_path / "hf-cache" / f"datasets--{REPO_ID.replace('/', '--')}" / "snapshots"
    assert not list(snapshot.rglob("vp-linear.json"))
    del hub.faults["v1/vp-linear.json"]
    assert get("vp-linear", 6, source="hub").nfe == 6  # fetched again, now intact


def test_index_whose_bytes_do_not_match_its_etag_is_removed(hub, tmp_path):
    hub.faults["index.json"] = Fault(etag="0" * 40)
    with pytest.raises(RegistryIntegrityError, match="the Hub named this file 0000"):
        get("vp-linear", 6, source="hub")
    assert cache_blobs(tmp_path) == {}
    del hub.faults["index.json"]
    assert get("vp-linear", 6, source="hub").nfe == 6


def test_offline_uses_the_hf_cache(hub, monkeypatch):
    online = get("vp-linear", 6, source="hub")
    clear_cache()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    n = len(resolves(hub))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get("vp-linear", 6, source="hub").t == online.t
    assert len(resolves(hub)) == n


def test_offline_without_cache_falls_back_to_the_local_registry(hub, monkeypatch, tmp_path):
    fallback = factory.make_registry(tmp_path / "bundled", schedules=("vp-linear",), nfes=(6,))
    monkeypatch.setenv("OPTSTEPS_REGISTRY_DIR", str(fallback))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.warns(UserWarning, match=r"HF_HUB_OFFLINE is set and index.json .* not in the HF cache"):
        steps = get("vp-linear", 6, source="hub")
    assert steps.provenance["source"] == str(fallback)
    assert resolves(hub) == []


def test_offline_with_index_but_not_the_file_falls_back(hub, monkeypatch, tmp_path):
    available("hub")  # caches the index only
    clear_cache()
    fallback = factory.make_registry(tmp_path / "bundled", schedules=("vp-linear",), nfes=(6,))
    monkeypatch.setenv("OPTSTEPS_REGISTRY_DIR", str(fallback))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.warns(UserWarning, match=r"v1/vp-linear.json .* not in the HF cache"):
        assert get("vp-linear", 6, source="hub").provenance["source"] == str(fallback)


def test_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    clear_cache()
    with pytest.raises(RegistryUnavailableError, match=r"pip install 'optsteps\[hub\]'"):
        get("vp-linear", 6, source="hub")


def test_environment_variables_end_to_end(hub, tmp_path):
    """HF_ENDPOINT / HF_HOME / OPTSTEPS_HUB_REPO read for real, in a fresh interpreter, through the CLI."""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "OPTSTEPS_HUB_REPO": REPO_ID,
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "optsteps_loader",
            "show",
            "vp-linear",
            "--nfe",
            "4",
            "--source",
            "hub",
            "--revision",
            "v1",
            "--format",
            "k-diffusion",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # a t_eps entry prints its N + 1 nodes, with no trailing 0 (optsteps_loader.kdiffusion)
    assert out.stdout.splitlines()[-1].startswith("sigmas=[") and out.stdout.rstrip().endswith("]")
    assert list((tmp_path / "hf-home" / "hub").glob("datasets--*"))


@pytest.mark.parametrize(
    "content",
    [b"", b'{"schema_version": 1, "data_version": "x", "files": "nope"}\n', "index with a wrong sha256"],
    ids=["empty", "wrong", "bad-hash"],
)
def test_bad_index_is_never_kept(hub, local, content):
    if content == "index with a wrong sha256":
        index = factory.read_json(local, "index.json")
        index["files"][0]["sha256"] = "sha256:" + "0" * 64
        content = factory.canonical_bytes(index)
    hub.faults["index.json"] = Fault(content=content)  # ETag consistent with the bad bytes
    with pytest.raises(RegistryIntegrityError):
        get("flow", 4, source="hub") if content.startswith(b"{\n") else get("vp-linear", 4, source="hub")
    del hub.faults["index.json"]
    assert get("flow", 4, source="hub").nfe == 4  # fetched anew: online, same process, no clear_cache()
    assert get("vp-linear", 4, source="hub", revision="v1").nfe == 4


@pytest.mark.parametrize(
    "revision",
    ["../../victim.txt", "/abs", "a\\b", "a\0b", "a..b", "a b", ".hidden", "x.lock", "a//b", "", "-x", "a@{1}"],
)
def test_bad_revision_is_refused_before_any_request(hub, tmp_path, revision):
    with pytest.raises(ValueError, match="revision must be a branch or tag name"):
        get("vp-linear", 4, source="hub", revision=revision)
    assert resolves(hub) == [] and not (tmp_path / "hf-cache").exists()


def test_good_revisions_are_accepted():
    from optsteps_loader.hub import check_revision

    for revision in (None, "main", "v1", "refs/pr/1", "release-2026.01", "a" * 40):
        check_revision(revision)


def test_404_on_the_index_says_not_found(hub):
    hub.faults["index.json"] = Fault(status=404)
    with pytest.raises(RegistryUnavailableError, match="not found") as err:
        get("vp-linear", 6, source="hub")
    assert "check your connection" not in str(err.value)


def test_a_stalled_hub_times_out(hub, monkeypatch):
    import time

    monkeypatch.setenv("OPTSTEPS_HUB_TIMEOUT", "0.5")
    hub.faults["index.json"] = Fault(stall=True)
    start = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="OPTSTEPS_HUB_TIMEOUT"):
        get("vp-linear", 6, source="hub")
    assert time.monotonic() - start < 10
    monkeypatch.setenv("OPTSTEPS_HUB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="OPTSTEPS_HUB_TIMEOUT must be a positive number"):
        get("vp-linear", 6, source="hub")


def test_data_file_whose_bytes_do_not_match_its_etag_is_removed(hub, tmp_path):
    """The same rule as for the index (hub.py's docstring says why): right bytes under a wrong ETag are
    refused too, and no misnamed blob stays in the HF cache."""
    hub.faults["v1/vp-linear.json"] = Fault(etag="0" * 40)
    with pytest.raises(RegistryIntegrityError, match="v1/vp-linear.json: the Hub named this file 0000"):
        get("vp-linear", 6, source="hub")
    assert "0" * 40 not in cache_blobs(tmp_path)
    del hub.faults["v1/vp-linear.json"]
    assert get("vp-linear", 6, source="hub").nfe == 6


def refused_endpoint(monkeypatch) -> str:
    """Point the client at a local port nothing listens on (a refused connection; nothing leaves the host)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    return endpoint


def test_a_refused_connection_fails_at_once_with_the_offline_hint(hub, monkeypatch):
    """No retry backoff (huggingface_hub's own sleeps 1+2+4+8+8 s on a refused connection): time.sleep is
    made to fail, so any retry would show."""
    refused_endpoint(monkeypatch)

    def no_sleep(seconds):
        raise AssertionError(f"slept {seconds} s: the client retried a refused connection")

    monkeypatch.setattr("time.sleep", no_sleep)
    with pytest.raises(RegistryUnavailableError, match=r"refused the connection.*HF_HUB_OFFLINE=1"):
        get("vp-linear", 6, source="hub")


def test_a_refused_connection_reads_the_hf_cache(hub, monkeypatch):
    first = get("vp-linear", 6, source="hub")
    clear_cache()
    refused_endpoint(monkeypatch)
    monkeypatch.setattr("time.sleep", lambda seconds: pytest.fail(f"slept {seconds} s (a retry)"))
    assert get("vp-linear", 6, source="hub").t == first.t
