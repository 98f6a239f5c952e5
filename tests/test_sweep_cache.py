"""The sweep's cache: keys derived from the code each stage runs, and entries that check themselves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.registry import sweep
from builder.registry.sweep import cache, run
from tests import registry_factory as factory

TINY = factory.tiny_spec()


def _source_copy(dest: Path) -> Path:
    """A copy of the code the stage keys hash (builder/ and optsteps_loader/ without compiled files)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("builder", "optsteps_loader"):
        shutil.copytree(cache.SOURCE_ROOT / package, dest / package, ignore=ignore)
    return dest


def _keys(root: Path) -> tuple[str, str]:
    return cache.stage_keys(sweep.tasks_of(TINY)[0], run.solve_task, run.finalize_entry, root)


@pytest.mark.parametrize(
    ("change", "solve_changes", "entry_changes"),
    [
        ("builder/solve/objective.py", True, True),
        ("builder/solve/data/new_table.json", True, True),
        ("optsteps_loader/coefficients.py", True, True),  # the solve imports its step_orders
        ("builder/select/selection.py", False, True),
        ("builder/select/data/new_table.json", False, True),
        ("builder/registry/entry.py", False, True),
        ("optsteps_loader/unipc.py", False, True),  # the selection measures with the loader's samplers
        ("builder/solve/new_module.py", False, False),  # nothing imports it: no stage runs it
        ("builder/registry/sweep/pipeline.py", False, False),
        ("optsteps_loader/hub.py", False, False),
        ("optsteps_loader/errors.py", False, False),  # exception classes only
        ("optsteps_loader/format.py", False, False),  # file I/O and the format's constants
    ],
)
def test_stage_keys_cover_the_code_each_stage_runs(tmp_path, change, solve_changes, entry_changes):
    before = _keys(_source_copy(tmp_path / "before"))
    root = _source_copy(tmp_path / "after")
    path = root / change
    change_line = b"\n_CHANGED = 1\n" if change.endswith(".py") else b"\n"
    path.write_bytes((path.read_bytes() if path.exists() else b"") + change_line)
    after = _keys(root)
    assert (after[0] != before[0]) is solve_changes
    assert (after[1] != before[1]) is entry_changes


def test_an_import_spelled_relative_is_the_same_code():
    absolute = "from builder.select.truth import solve_truth\nfrom builder import __version__\n"
    relative = "from .truth import solve_truth\nfrom .. import __version__\n"
    assert cache.code_of(relative, "builder.select.evaluate") == cache.code_of(absolute, "builder.select.evaluate")
    assert cache.code_of(relative, "builder.solve.grids") != cache.code_of(absolute, "builder.select.evaluate")
    swapped = "from builder import __version__\nfrom builder.select.truth import solve_truth\n"
    assert cache.code_of(swapped, "builder.select.evaluate") == cache.code_of(absolute, "builder.select.evaluate")


def test_prose_is_not_code(tmp_path):
    before = _keys(_source_copy(tmp_path / "before"))
    root = _source_copy(tmp_path / "after")
    path = root / "builder/solve/objective.py"
    source = path.read_text()
    assert '"""F at a full grid' in source
    path.write_text(source.replace('"""F at a full grid', '"""F (reworded) at a full grid') + "\n# a comment\n")
    assert _keys(root) == before


def test_a_module_a_stage_starts_to_import_joins_its_key(tmp_path):
    before = _keys(_source_copy(tmp_path / "before"))
    root = _source_copy(tmp_path / "after")
    (root / "builder/solve/new_module.py").write_text("X = 1\n")
    with open(root / "builder/solve/objective.py", "a") as fh:
        fh.write("\nfrom builder.solve import new_module  # noqa\n")
    joined = _keys(root)[0]
    assert joined != before[0]
    (root / "builder/solve/new_module.py").write_text("X = 2\n")
    cache.code_fingerprint.cache_clear()
    assert _keys(root)[0] != joined


def test_spec_and_compiled_files_are_not_code(tmp_path):
    before = _keys(_source_copy(tmp_path / "before"))
    root = _source_copy(tmp_path / "after")
    (root / "builder/registry/spec.json").write_text("{}")
    (root / "builder/select/__pycache__").mkdir()
    (root / "builder/select/__pycache__/x.pyc").write_bytes(b"junk")
    assert _keys(root) == before


def test_a_selection_change_refinalizes_without_resolving(tmp_path, monkeypatch):
    calls = {"solve": 0, "finalize": 0}
    real_solve, real_finalize = run.solve, run.finalize_entry

    def counting_solve(*args, **kwargs):
        calls["solve"] += 1
        return real_solve(*args, **kwargs)

    def counting_finalize(*args, **kwargs):
        calls["finalize"] += 1
        return real_finalize(*args, **kwargs)

    monkeypatch.setattr(run, "solve", counting_solve)
    monkeypatch.setattr(run, "finalize_entry", counting_finalize)
    root = _source_copy(tmp_path / "src")
    monkeypatch.setattr(cache, "SOURCE_ROOT", root)
    tasks, folder = sweep.tasks_of(TINY), tmp_path / "cache"
    assert sweep.run_tasks(tasks, folder, workers=1, progress=False) == 1
    assert calls == {"solve": 1, "finalize": 1}
    assert sweep.run_tasks(tasks, folder, workers=1, progress=False) == 0  # all cached

    with open(root / "builder/select/selection.py", "ab") as fh:
        fh.write(b"\n_A_SELECTION_CHANGE = 1\n")
    cache.code_fingerprint.cache_clear()
    cache.import_closure.cache_clear()
    assert sweep.run_tasks(tasks, folder, workers=1, progress=False) == 1
    assert calls == {"solve": 1, "finalize": 2}  # re-finalized, not re-solved

    with open(root / "builder/solve/schedules.py", "ab") as fh:
        fh.write(b"\n_A_SOLVER_CHANGE = 1\n")
    cache.code_fingerprint.cache_clear()
    cache.import_closure.cache_clear()
    assert sweep.run_tasks(tasks, folder, workers=1, progress=False) == 1
    assert calls == {"solve": 2, "finalize": 3}


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"\xff\xfe garbage \x00",  # not UTF-8
        lambda data: b"[1, 2",  # not JSON
        lambda data: b'{"key": 1}',  # JSON, not an entry
        lambda data: data.replace(b'"value": 1.5', b'"value": 2.5'),  # altered, stale hash
        lambda data: data.replace(b'"value": 1.5', b'"value": NaN'),
    ],
)
def test_damaged_cache_entries_are_discarded(tmp_path, damage, caplog):
    cache.write_cached(tmp_path, "entry-abc", {"task": "t", "entry": {"value": 1.5}})
    assert cache.read_cached(tmp_path, "entry-abc") == {"task": "t", "entry": {"value": 1.5}}
    path = tmp_path / "entry-abc.json"
    path.write_bytes(damage(path.read_bytes()))
    assert cache.read_cached(tmp_path, "entry-abc") is None
    assert not path.exists() and "damaged" in caplog.text


def test_an_entry_under_another_key_is_not_used(tmp_path):
    cache.write_cached(tmp_path, "entry-abc", {"entry": 1})
    (tmp_path / "entry-abc.json").rename(tmp_path / "entry-def.json")
    assert cache.read_cached(tmp_path, "entry-def") is None


def test_a_damaged_cache_is_recomputed_into_the_same_registry(tmp_path):
    folder = tmp_path / "cache"
    first = sweep.build(tmp_path / "a", spec=TINY, cache_dir=folder, workers=1, progress=False)
    solve_key, entry_key = sweep.task_keys(sweep.tasks_of(TINY)[0])
    entry_file = folder / f"{entry_key}.json"
    entry_file.write_bytes(entry_file.read_bytes().replace(b'"nfe": 3', b'"nfe": 4'))  # altered values
    (folder / f"{solve_key}.json").write_bytes(b'{"key": "truncat')
    again = sweep.build(tmp_path / "b", spec=TINY, cache_dir=folder, workers=1, progress=False)
    assert again == first
