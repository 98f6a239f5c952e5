"""On a discrete schedule every node of an entry has its own integer timestep: diffusers derives σ from the
integer timestep, so two nodes on one timestep are a second model call at the same input or a zero-length step
(NaN in DPM-Solver). The shipped registry holds none, the selection separates them, and every reader refuses a
file that has one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from builder.registry.validate import validate_registry
from builder.solve.schedules import get_schedule, node_arrays, separate_timesteps
from optsteps_loader import RegistryIntegrityError, get, verify
from optsteps_loader.schedules import timestep_collisions
from tests import registry_factory as factory

REGISTRY = Path(__file__).resolve().parents[1] / "registry"
SD = "v1/scaled-linear.json"

pytestmark = pytest.mark.usefixtures("fresh_loader_cache")


def test_every_shipped_entry_on_a_discrete_schedule_has_its_own_timestep_at_every_node():
    index = json.loads((REGISTRY / "index.json").read_text())
    checked = 0
    for record in index["files"]:
        doc = json.loads((REGISTRY / record["path"]).read_text())
        if doc["schedule"]["time_input"] != "timestep":
            continue
        for e in doc["entries"] + doc.get("solver_entries", []):
            ts = e["timesteps"]
            assert len(set(ts)) == len(ts), (record["path"], e["nfe"], e["order"], e.get("solver"), ts[-4:])
            checked += 1
    assert checked >= 2 * (288 + 160)  # ddpm-linear and scaled-linear, bound and solver entries


def test_separating_moves_only_the_nodes_that_share_a_timestep():
    schedule = get_schedule("scaled-linear")
    t = np.array([1.0, 0.5, 0.01, 0.0032, 0.0021, 0.0014, schedule.t_end])  # timesteps 999, 499, 9, 2, 1, 0, 0
    lam = schedule.marginal_lambda(t)
    before = node_arrays(schedule, t)["timesteps"]
    assert timestep_collisions(before) == [[5, 6]]
    out = separate_timesteps(lam, schedule)
    moved = [int(i) for i in np.flatnonzero(out != lam)]
    after = node_arrays(schedule, schedule.inverse_lambda(np.array(out)))["timesteps"]
    assert moved == [3, 4, 5] and after[2:] == [9, 3, 2, 1, 0]  # each pushed up just above the next one
    assert np.array_equal(out[:3], lam[:3]) and out[-1] == lam[-1]  # the others exactly where they were


def test_a_file_with_two_nodes_on_one_timestep_is_refused_by_every_reader(tmp_path):
    root = tmp_path / "registry"
    for rel in ("index.json", SD):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REGISTRY / rel, root / rel)
    doc = factory.read_json(root, SD)
    entry = next(e for e in doc["entries"] if (e["nfe"], e["order"], e["p"]) == (8, 3, 1))
    schedule = get_schedule("scaled-linear")
    t = np.array(entry["t"])
    t[-2] = t[-1] + 0.4e-3  # rounds to timestep 0, as t_eps does
    nodes = node_arrays(schedule, t)
    entry.update(nodes, timestep_collisions=timestep_collisions(nodes["timesteps"]))
    factory.rewrite(root, SD, doc)  # canonical bytes, the index re-hashed
    message = "share timestep 0"
    with pytest.raises(RegistryIntegrityError, match=message):
        get("scaled-linear", 8, p=1, source=root)
    with pytest.raises(RegistryIntegrityError):
        verify(root, allow_missing=True)
    assert any(message in m for m in validate_registry(root, allow_missing=True).messages())
