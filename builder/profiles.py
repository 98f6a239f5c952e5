"""Solver entries refined for one data profile (pixel-like or latent-like), written as a registry folder.

The registry's solver entries are refined on the whole fit split of the data family (docs/data-family.md).
``benchmarks/bench_profile_knob.py`` measured that refining on one profile's fit problems alone lowers the
error on that profile's validation problems beyond noise, most for latent-space models. Until the registry
ships per-profile entries, :func:`refine_profile` computes them on demand:

- the fit and validation splits are filtered to the profile's problems (``"latent"``: std ≈ 1, flat spectra,
  as Stable Diffusion / SDXL / SD3 / FLUX latents; ``"pixel"``: [−1, 1] data with power-law spectra);
- :func:`builder.select.robust.refine_chain` walks up the NFEs from the rules, the tables and the registry's
  own solver entry (recorded as the ``registry`` baseline, so every figure also compares with it);
- the result is the registry's data file for that schedule variant with those solver entries replaced,
  plus an index: a folder ``optsteps_loader.get(..., source=FOLDER)``, ``optsteps verify`` and the glue read.
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROFILES = ("latent", "pixel")

__all__ = ["PROFILES", "refine_profile"]


def _rename(record: dict[str, Any]) -> dict[str, Any]:
    """The chain's ``bound`` start and baseline are the registry's solver entry here: call them so."""
    if record["init"] == "bound":
        record["init"] = "registry"
    for split in ("fit", "validation"):
        figures = record["quality"][split]
        if "bound" in figures["baselines"]:
            figures["baselines"]["registry"] = figures["baselines"].pop("bound")
        if figures["worst"] == "bound":
            figures["worst"] = "registry"
    return record


def refine_profile(
    schedule: str,
    nfes: Sequence[int],
    *,
    profile: str,
    solver: str = "unipc",
    order: int = 3,
    ending: str = "eps",
    shift: float | None = None,
    maxiter: int = 60,
) -> dict[str, bytes]:
    """{relative path: canonical bytes} of a registry folder whose ``schedule`` (key or alias) solver entries
    for (``solver``, ``order``, ``ending``) at ``nfes`` are refined on the ``profile``'s problems."""
    import torch

    import optsteps_loader
    from builder import __version__
    from builder.registry.entry import solver_entry
    from builder.registry.files import data_file, index_file, index_record, solver_entry_key
    from builder.select import family
    from builder.select.refine import bind
    from builder.select.robust import refine_chain
    from builder.solve.schedules import get_schedule
    from optsteps_loader._sources import local

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    info = optsteps_loader.info(schedule, shift=shift)  # resolves aliases; the file's hash is checked on get()
    name, params = info["schedule"]["name"], info["params"]
    sched = get_schedule(name, **params)
    starts = {}
    for n in nfes:
        steps = optsteps_loader.get(name, n, solver=solver, order=order, ending=ending, **params)
        if steps.method != "bound":
            starts[n] = list(steps.lambdas)
    ends = (sched.lambda_start, sched.lambda_end, ending)
    fit = bind([p for p in family.split("fit") if p.profile == profile], *ends)
    validation = bind([p for p in family.split("validation") if p.profile == profile], *ends)
    torch.set_num_threads(1)
    records = refine_chain(
        sched,
        solver=solver,
        order=order,
        ending=ending,
        nfes=sorted(set(nfes)),
        fit=fit,
        validation=validation,
        bound_grids=starts,
        maxiter=maxiter,
    )
    chain = types.SimpleNamespace(solver=solver, order=order, ending=ending)
    new = {solver_entry_key(e): e for e in (solver_entry(sched, chain, _rename(r)) for r in records)}
    root = Path(local(None).root)
    index = json.loads((root / "index.json").read_bytes())
    doc = json.loads((root / info["path"]).read_bytes())
    kept = [e for e in doc.get("solver_entries", []) if solver_entry_key(e) not in new]
    solver_entries = kept + list(new.values())
    data = data_file(
        sched, doc["entries"], data_version=doc["data_version"], defaults=doc["defaults"], solver_entries=solver_entries
    )
    aliases = {
        k: a
        for k, a in index.get("aliases", {}).items()
        if (a["schedule"], a.get("shift")) == (name, params.get("shift"))
    }
    rel = info["path"]
    return {
        rel: data,
        "index.json": index_file(
            [index_record(rel, sched, data, doc["entries"], solver_entries)],
            aliases=aliases,
            data_version=doc["data_version"],
            generator=f"optsteps {__version__} refine --profile {profile}",
            license=index["license"],
            citation=index["citation"],
        ),
    }
