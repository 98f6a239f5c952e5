"""The sweep: determinism, resume after an interruption, slices, --check, and a valid registry."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import optsteps_loader
from builder.cli import cli
from builder.kernels import fingerprint
from builder.registry import sweep
from builder.registry.sweep import pipeline
from builder.registry.validate import validate_registry

SMALL = dataclasses.replace(
    sweep.load_spec(),
    nfe=(3, 4, 6),
    orders=(3,),
    p=(1.0,),
    schedules=(
        {"name": "vp-linear", "file": "v1/vp-linear.json", "defaults": {"order": 3, "p": 1}},
        {"name": "scaled-linear", "file": "v1/scaled-linear.json", "defaults": {"order": 3, "p": 1}},
        {"name": "flow", "params": {"shift": 3.0}, "file": "v1/flow-shift3.json", "defaults": {"order": 3, "p": 1}},
    ),
    aliases={},
    solver_entries=None,  # the solver-entry stage: tests/test_solver_entries.py
)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.glob("**/*.json"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    sweep.build(root / "registry", spec=SMALL, cache_dir=root / "cache", workers=2, progress=False)
    return root / "registry"


def test_build_is_valid_and_loadable(built):
    report = validate_registry(built)
    assert report.ok, report.messages()
    steps = optsteps_loader.get("flow", 6, shift=3.0, p=1, source=str(built))
    assert steps.nfe == 6 and len(steps.t) == 7
    assert steps.lambdas[0] < steps.lambdas[-1]
    sd = optsteps_loader.get("scaled-linear", 4, source=str(built))
    assert sd.timesteps[0] == 999 and sd.timesteps[-1] == 0 and all(isinstance(v, int) for v in sd.timesteps)


def test_rebuild_is_byte_identical(built, tmp_path):
    sweep.build(tmp_path / "registry", spec=SMALL, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert _files(tmp_path / "registry") == _files(built)


def test_resume_after_interruption_gives_the_same_bytes(built, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    tasks = sweep.tasks_of(SMALL)
    # An interrupted run: some tasks finished, one write was cut off before its rename (a temp file).
    assert sweep.run_tasks(tasks[::2], cache, workers=1, progress=False) == len(tasks[::2])
    (cache / f".{sweep.task_keys(tasks[1])[1]}.json.abcd.tmp").write_bytes(b'{"task": "half-wri')
    solved = []
    original = pipeline.run_tasks

    def counting(todo, *args, **kwargs):
        ran = original(todo, *args, **kwargs)
        solved.append(ran)
        return ran

    monkeypatch.setattr(pipeline, "run_tasks", counting)
    sweep.build(tmp_path / "registry", spec=SMALL, cache_dir=cache, workers=1, progress=False)
    assert solved == [len(tasks) - len(tasks[::2])]  # only what was missing
    assert _files(tmp_path / "registry") == _files(built)


def test_cache_key_changes_with_the_task():
    a, b = sweep.tasks_of(SMALL)[:2]
    assert sweep.task_keys(a) != sweep.task_keys(b)
    assert sweep.task_keys(a) == sweep.task_keys(dataclasses.replace(a))


def test_check_passes_then_reports_a_changed_byte(built, tmp_path):
    import shutil

    copy = tmp_path / "registry"
    shutil.copytree(built, copy)
    cache = tmp_path / "cache"  # cold the first time; the second check reuses it (only the bytes differ)
    assert sweep.check(copy, cache_dir=cache, spec=SMALL, workers=1, progress=False) == []
    path = copy / "v1/vp-linear.json"
    text = path.read_text()
    doc = json.loads(text)
    doc["entries"][0]["objective"] *= 1.0000001
    path.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    diffs = sweep.check(copy, cache_dir=cache, spec=SMALL, workers=1, progress=False)
    assert len(diffs) == 1 and "committed/v1/vp-linear.json" in diffs[0] and '"objective"' in diffs[0]


def test_check_reuses_a_named_cache_and_nothing_else(built, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "registry"
    shutil.copytree(built, copy)
    cache = tmp_path / "cache"
    solved = []
    original = pipeline.run_tasks

    def counting(todo, *args, **kwargs):
        solved.append(original(todo, *args, **kwargs))
        return solved[-1]

    monkeypatch.setattr(pipeline, "run_tasks", counting)
    assert sweep.check(copy, cache_dir=cache, spec=SMALL, workers=1, progress=False) == []
    assert sweep.check(copy, cache_dir=cache, spec=SMALL, workers=1, progress=False) == []
    one = sweep.parse_only(["schedule=vp-linear", "nfe=3"])  # a one-task slice: the default cache is cold
    assert sweep.check(copy, selection=one, spec=SMALL, workers=1, progress=False) == []
    assert solved == [len(sweep.tasks_of(SMALL)), 0, 1]  # the named cache reused, the default one cold


def test_slice_rebuild_keeps_the_rest(built, tmp_path):
    import shutil

    copy = tmp_path / "registry"
    shutil.copytree(built, copy)
    selection = sweep.parse_only(["schedule=vp-linear", "nfe=4"])
    sweep.build(copy, spec=SMALL, selection=selection, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert _files(copy) == _files(built)
    assert len(sweep.tasks_of(SMALL, selection)) == 1


@pytest.mark.parametrize("bad", ["nfe", "color=red", "nfe="])
def test_bad_only_expression(bad):
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        sweep.parse_only([bad])


def test_cli_sweep_and_validate(tmp_path):
    spec_path = tmp_path / "spec.json"
    raw = json.loads(sweep.SPEC_PATH.read_text())
    edm = {**raw["schedules"][4], "defaults": {"order": 2, "p": 2}}
    raw.update(nfe=[3, 5], orders=[2], p=[2], schedules=[edm])
    del raw["aliases"], raw["solver_entries"]  # they name the other schedules; tests/test_solver_entries.py
    spec_path.write_text(json.dumps(raw))
    runner = CliRunner()
    registry = tmp_path / "registry"
    out = runner.invoke(
        cli, ["sweep", "--registry", str(registry), "--spec", str(spec_path), "--workers", "1", "--no-progress"]
    )
    assert out.exit_code == 0, out.output
    assert "wrote 2 files" in out.output
    ok = runner.invoke(cli, ["validate", str(registry)])
    assert ok.exit_code == 0 and "OK" in ok.output
    check = runner.invoke(
        cli, ["sweep", "--registry", str(registry), "--spec", str(spec_path), "--check", "--no-progress"]
    )
    assert check.exit_code == 0 and "byte-identical" in check.output and "warning" not in check.output
    (registry / "v1/edm.json").write_bytes((registry / "v1/edm.json").read_bytes().replace(b'"nfe": 3', b'"nfe": 4'))
    bad = runner.invoke(cli, ["validate", str(registry)])
    assert bad.exit_code == 1 and "v1/edm.json" in bad.output
    # a release built where the kernels round differently: the check says so before it starts and as its verdict
    spec_path.write_text(json.dumps({**raw, "kernels": "0123456789abcdef"}))
    check_args = ["sweep", "--registry", str(registry), "--spec", str(spec_path), "--check", "--no-progress"]
    check_args += ["--cache-dir", str(tmp_path / "cache")]  # both checks below reuse one cache (their keys agree)
    other = runner.invoke(cli, check_args)
    here = fingerprint()
    assert other.exit_code == 1 and other.output.count(f"kernel fingerprint {here}, the spec's 0123456789abcdef") == 2
    assert "commit the rebuilt registry" not in other.output and "prints 0123456789abcdef" in other.output
    spec_path.write_text(json.dumps({**raw, "kernels": here}))
    same = runner.invoke(cli, check_args)
    assert same.exit_code == 1 and f"fingerprint is the release's, {here}): commit the rebuilt registry" in same.output
    kernels = runner.invoke(cli, ["kernels", "--spec", str(spec_path)])
    assert kernels.exit_code == 0 and f"kernel fingerprint: {here}\n" in kernels.output and "the same" in kernels.output
    spec_path.write_text(json.dumps({**raw, "kernels": "ABC"}))
    typo = runner.invoke(cli, ["kernels", "--spec", str(spec_path)])
    assert typo.exit_code == 1 and "'kernels' must be 16 lowercase hex digits" in typo.output
    typo = runner.invoke(cli, ["sweep", "--registry", str(registry), "--schedule", "edn"])
    assert typo.exit_code != 0 and "Did you mean 'edm'" in typo.output


def test_shards_partition_the_variants_and_their_union_builds_the_same_bytes(tmp_path):
    import shutil

    from tests.registry_factory import tiny_spec

    tiny = tiny_spec()
    edm = {"name": "edm", "file": "v1/edm.json", "defaults": {"order": 1, "p": 1}}
    spec = dataclasses.replace(tiny, schedules=(*tiny.schedules, edm))
    assert [sweep.shard_files(spec, (k, 2)) for k in (1, 2)] == [["v1/vp-linear.json"], ["v1/edm.json"]]
    assert sweep.shard_files(spec, (3, 3)) == []
    with pytest.raises(sweep.SweepError, match="1 <= K <= N"):
        sweep.shard_files(spec, (0, 2))
    union = tmp_path / "union"
    for k in (1, 2):
        sweep.build_shard((k, 2), tmp_path / f"shard{k}", spec=spec, workers=1, progress=False)
        shutil.copytree(tmp_path / f"shard{k}", union, dirs_exist_ok=True)
    merged = sweep.build(tmp_path / "merged", spec=spec, cache_dir=union, workers=1, progress=False)
    single = sweep.build(tmp_path / "single", spec=spec, cache_dir=tmp_path / "cold", workers=1, progress=False)
    assert merged == single
    for args in (
        ["--shard", "1/2"],
        ["--shard", "x", "--cache-dir", "c"],
        ["--shard", "1/2", "--check", "--cache-dir", "c"],
    ):
        out = CliRunner().invoke(cli, ["sweep", *args])
        assert out.exit_code == 2 and ("--cache-dir" in out.output or "K/N" in out.output), out.output
