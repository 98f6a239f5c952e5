"""Calibrated grids as a registry folder (docs/registry-format.md), written so nothing half-written is left.

One data file ``v1/<schedule file>.json`` per run (the schedule variant's file name in the shipped registry,
e.g. ``v1/flow-shift3.json``), one entry per NFE, plus ``index.json`` with its sha256: the layout the loader
reads with ``source=FOLDER``. Entries are ordinary registry entries (t, λ, α, σ, σ/α and timesteps from the
schedule, :func:`builder.registry.entry.node_arrays`), with

- ``method: "calibrated"``, ``init``: the start the optimisation began from (``registry`` or a rule's
  optimiser name: ``unif``, ``unif_t``, ``quad``, ``edm``; a table's name with ``-`` → ``_``);
- ``objective``, ``objective_uniform_lambda``, ``objective_uniform_t``: the paper's bound F at the grid and
  at the two uniform grids (for comparison with the registry's entries; calibration does not minimise it);
- ``quality``: the held-out figures in the registry's quality shape (benchmark ``"calibration"``): mean and
  median L2 to the teacher, and per baseline (the starting registry entry as ``registry``, every rule and
  applicable table) its mean/median L2 and the entry's paired log-ratio with its standard error;
- ``calibration``: model identifier, weights hash, prediction, shape, noises (fit / held-out / seed), the
  teacher (solver, steps, error estimate), the method that ran and why, iterations, model calls.

**Atomicity.** Every file is assembled in memory and checked by the validator first. A new folder is
written as a temporary sibling and renamed into place (one rename: the folder exists complete or not at
all); an existing registry folder is rewritten with the sweep's staged protocol
(:func:`builder.registry.sweep.write.write_registry`), so readers see the old registry or the new one.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from builder import __version__
from builder.registry.entry import collisions, input_hash, node_arrays, problem_key
from builder.registry.files import data_file, index_file, index_record
from builder.solve.grids import STARTS
from builder.solve.objective import objective
from builder.solve.schedules import Schedule
from optsteps_loader._coefficients import step_orders

__all__ = ["INIT_NAMES", "assemble", "file_name", "make_entry", "write_folder"]

INIT_NAMES = {rule: start for start, rule in STARTS.items() if "+" not in start}


def file_name(schedule: Schedule) -> str:
    """``v1/<name>.json``; flow variants ``v1/flow-shift<S>.json`` as in the shipped registry."""
    shift = schedule.variant_params.get("shift")
    if shift is None:
        return f"v1/{schedule.name}.json"
    text = f"{float(shift):g}".replace(".", "p")
    return f"v1/{schedule.name}-shift{text}.json"


def _number(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def make_entry(
    schedule: Schedule,
    lambdas: np.ndarray,
    *,
    nfe: int,
    order: int,
    p: float,
    tau: int,
    solver: str,
    init: str,
    optimizer: dict[str, Any],
    quality: dict[str, Any],
    calibration: dict[str, Any],
) -> dict[str, Any]:
    """One registry entry for a calibrated λ-grid (module docstring); endpoints are the schedule's own."""
    lam = np.asarray(lambdas, dtype=np.float64)
    t = schedule.inverse_lambda(lam)
    t[0], t[-1] = schedule.t_start, schedule.t_end
    nodes = node_arrays(schedule, t)
    key = {**problem_key(schedule, nfe, order, p, tau), "calibration": calibration["identity"]}
    uniform_t = schedule.marginal_lambda(np.linspace(schedule.t_start, schedule.t_end, nfe + 1))
    return {
        "nfe": int(nfe),
        "order": int(order),
        "p": _number(p),
        "tau": int(tau),
        "solver": solver,
        "init": INIT_NAMES.get(init, init.replace("-", "_")),
        "method": "calibrated",
        "step_orders": list(step_orders(nfe, order)),
        **nodes,
        "timestep_collisions": collisions(nodes["timesteps"]),
        "objective": float(objective(np.asarray(nodes["lambda"]), p, tau, order)),
        "objective_uniform_lambda": float(
            objective(np.linspace(schedule.lambda_start, schedule.lambda_end, nfe + 1), p, tau, order)
        ),
        "objective_uniform_t": float(objective(uniform_t, p, tau, order)),
        "optimizer": optimizer,
        "input_hash": input_hash(key),
        "quality": quality,
        "calibration": calibration,
    }


def assemble(schedule: Schedule, entries: list[dict[str, Any]], *, data_version: str | None = None) -> dict[str, bytes]:
    """{path: canonical bytes} of the folder: the data file and ``index.json``."""
    data_version = data_version or datetime.datetime.now(datetime.timezone.utc).strftime("%Y.%m.%d")
    first = min(entries, key=lambda e: (e["order"], e["p"], e["nfe"]))
    defaults = {"order": first["order"], "p": first["p"], "solver": first["solver"], "tau": "auto"}
    rel = file_name(schedule)
    data = data_file(schedule, entries, data_version=data_version, defaults=defaults)
    index = index_file(
        [index_record(rel, schedule, data, entries)],
        aliases=_aliases_of(schedule),
        data_version=data_version,
        generator=f"optsteps {__version__} calibrate",
        license="CC-BY-4.0",
        citation="optsteps calibrate; Xue et al., Accelerating Diffusion Sampling with Optimized Time Steps, "
        "CVPR 2024 (arXiv:2402.17376)",
    )
    return {rel: data, "index.json": index}


def _aliases_of(schedule: Schedule) -> dict[str, Any]:
    """The spec's model aliases that name this schedule variant, so ``get("sdxl", n, source=FOLDER)`` works."""
    from builder.registry.sweep.spec import load_spec

    shift = schedule.variant_params.get("shift")
    return {
        name: a
        for name, a in load_spec().aliases.items()
        if a["schedule"] == schedule.name and (shift is None or float(a.get("shift", 1.0)) == float(shift))
    }


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Validate ``files``, then write them as the registry folder ``out`` (module docstring: atomically)."""
    from builder.registry.sweep.spec import SweepError
    from builder.registry.sweep.write import check_target, write_registry
    from builder.registry.validate import validate_registry

    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
            os.chmod(tmp / rel, 0o644)
        report = validate_registry(tmp)
        if not report.ok:
            raise RuntimeError("the calibrated folder fails validation: " + "; ".join(report.messages()[:5]))
        if not out.exists():
            os.chmod(tmp, 0o755)
            os.rename(tmp, out)
            return
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        check_target(out, [rel for rel in files if rel != "index.json"])
        write_registry(out, files)
    except SweepError as err:
        from builder.calibrate.model import CalibrationError

        raise CalibrationError(str(err)) from None
