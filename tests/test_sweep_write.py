"""Writing a registry: readers see the old one or the new one, a killed write leaves the old one readable,
and a killed sweep leaves no worker behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import optsteps_loader
from builder.cli import REPO_ROOT
from builder.registry import sweep
from builder.registry._canonical import canonical_bytes, sha256_of
from builder.registry.sweep import write


def _registry_files(folder: Path) -> dict[str, bytes]:
    index = json.loads((folder / "index.json").read_bytes())
    files = {rec["path"]: (folder / rec["path"]).read_bytes() for rec in index["files"]}
    return files | {"index.json": (folder / "index.json").read_bytes()}


def _other_version(files: dict[str, bytes]) -> dict[str, bytes]:
    """The same registry with another data_version: every file's bytes (and the index's hashes) differ."""
    index = json.loads(files["index.json"])
    old, new = f'"data_version": "{index["data_version"]}"'.encode(), b'"data_version": "2099.01.01"'
    out = {rel: data.replace(old, new) for rel, data in files.items() if rel != "index.json"}
    index["data_version"] = "2099.01.01"
    for rec in index["files"]:
        rec.update(sha256=sha256_of(out[rec["path"]]), bytes=len(out[rec["path"]]))
    return out | {"index.json": canonical_bytes(index)}


OLD = _registry_files(REPO_ROOT / "registry")
NEW = _other_version(OLD)


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    found = sweep.read_snapshot(folder)
    assert found is not None
    index_bytes, files = found
    return files | {"index.json": index_bytes}


def _reader(folder: str, reads: int, conn) -> None:
    seen = {"old": 0, "new": 0, "mixed": 0}
    for _ in range(reads):
        try:
            snapshot = _snapshot(Path(folder))
        except sweep.SweepError:  # the index changed on every try: not a mix, but count it
            seen["busy"] = seen.get("busy", 0) + 1
            continue
        seen["old" if snapshot == OLD else "new" if snapshot == NEW else "mixed"] += 1
    conn.send(seen)


def test_a_reader_sees_the_old_or_the_new_registry_never_a_mix(tmp_path):
    folder = tmp_path / "registry"
    sweep.write_registry(folder, OLD)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    reader = context.Process(target=_reader, args=(str(folder), 400, send))
    reader.start()
    writes = 0
    while reader.is_alive() and not receive.poll() and writes < 4000:
        sweep.write_registry(folder, NEW if writes % 2 == 0 else OLD)
        writes += 1
    seen = receive.recv()
    reader.join(timeout=60)
    assert seen["mixed"] == 0, seen
    assert seen["old"] + seen["new"] + seen.get("busy", 0) == 400 and seen.get("busy", 0) < 20 and writes > 0, seen


def test_a_write_killed_midway_leaves_the_old_registry(tmp_path, monkeypatch):
    folder = tmp_path / "registry"
    sweep.write_registry(folder, OLD)
    real = write.atomic_write_bytes
    replaced = []

    def dies_after_two_data_files(path, data):
        if Path(path).parent.name == "v1":
            if len(replaced) == 2:
                raise KeyboardInterrupt("killed")
            replaced.append(path)
        real(path, data)

    monkeypatch.setattr(write, "atomic_write_bytes", dies_after_two_data_files)
    with pytest.raises(KeyboardInterrupt):
        sweep.write_registry(folder, NEW)
    monkeypatch.setattr(write, "atomic_write_bytes", real)
    assert any((folder / rel).read_bytes() == NEW[rel] for rel in NEW if rel != "index.json")  # it was mid-way
    assert _snapshot(folder) == OLD  # a reader following the protocol still sees the old registry
    sweep.recover(folder)  # what the next write does first
    assert _registry_files(folder) == OLD and not (folder / write.STAGING).exists()
    assert optsteps_loader.verify(folder)["files"] == len(OLD) - 1
    sweep.write_registry(folder, NEW)
    assert _registry_files(folder) == NEW and _snapshot(folder) == NEW


def test_a_changed_file_reads_as_none_not_as_a_retry(tmp_path):
    folder = tmp_path / "registry"
    sweep.write_registry(folder, OLD)
    (folder / "v1/edm.json").write_bytes(b"{}")
    snapshot = _snapshot(folder)
    assert snapshot["v1/edm.json"] is None and snapshot["v1/vp-linear.json"] == OLD["v1/vp-linear.json"]


_KILLED_SWEEP = """
import os, sys, time
from pathlib import Path
from builder.registry import sweep
from builder.registry.sweep import run

marks = Path(sys.argv[1])

def stuck(*args, **kwargs):
    (marks / str(os.getpid())).write_text("")
    time.sleep(600)

run.solve = stuck
tasks = sweep.tasks_of(sweep.load_spec())[:4]
run.run_tasks(tasks, marks / "cache", workers=2, progress=False)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_killed_sweep(tmp_path):
    script = tmp_path / "killed_sweep.py"
    script.write_text(_KILLED_SWEEP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(workers := [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.05)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(pid) for pid in workers), "workers outlived their sweep"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_log_ratios_below_the_noise_floor_are_written_as_ties():
    """A log ratio between two grids that are one grid up to their last bits is rounding noise (~1e-15): the
    writer stores it as 0, whatever its digits came out as; other figures, and real ratios, pass unchanged."""
    from builder.registry.files import NOISE_FLOOR, data_file, without_noise
    from builder.solve.schedules import get_schedule

    record = {
        "quality": {
            "log_ratio_best_baseline": -1.845e-15,
            "log_ratio_best_baseline_se": 3.6e-16,
            "mean_l2": 3e-12,
            "baselines": {"uniform-lambda": {"log_ratio": 2e-16}, "karras-rho7": {"log_ratio": -0.2164}},
        },
        "optimizer": {"fit_loss_start": -4e-17, "fit_loss": -0.05, "nit": 0},
        "lambda": [-2.5, 1e-12, 3.5],
    }
    clean = without_noise(record)
    assert clean["quality"]["log_ratio_best_baseline"] == clean["quality"]["log_ratio_best_baseline_se"] == 0.0
    assert clean["quality"]["baselines"] == {
        "uniform-lambda": {"log_ratio": 0.0},
        "karras-rho7": {"log_ratio": -0.2164},
    }
    assert clean["optimizer"] == {"fit_loss_start": 0.0, "fit_loss": -0.05, "nit": 0}
    assert clean["quality"]["mean_l2"] == 3e-12 and clean["lambda"] == record["lambda"]
    entry = json.loads((REPO_ROOT / "registry" / "v1" / "vp-linear.json").read_bytes())["entries"][0]
    noisy = {**entry, "quality": {**entry["quality"], "log_ratio_best_baseline": NOISE_FLOOR / 2}}
    written = json.loads(data_file(get_schedule("vp-linear"), [noisy], data_version="2026.12.08", defaults={}))
    assert written["entries"][0]["quality"]["log_ratio_best_baseline"] == 0.0


def test_the_shipped_registry_holds_no_log_ratio_below_the_noise_floor():
    from builder.registry.files import without_noise

    files = sorted((REPO_ROOT / "registry" / "v1").glob("*.json"))
    assert files and all(without_noise(doc := json.loads(f.read_bytes())) == doc for f in files)
