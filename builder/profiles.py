"""Profile solver entries on demand, written as a registry folder (``python -m builder refine --profile``).

The registry ships profile entries (:mod:`builder.select.profile`) for the schedule variants its model
aliases name. For any other variant, solver, order, ending or NFE, :func:`refine_profile` runs the same
chain: the fit and validation splits filtered to the profile's problems, started from (and compared with)
the registry's generic solver entry (baseline ``generic``). The result is the registry's data file for that
schedule variant with those profile entries added (or replaced), plus an index: a folder that
``optsteps_loader.get(..., profile=P, source=FOLDER)``, ``optsteps verify`` and the glue read; or, given an
existing (vendored) registry folder, that folder with the entries merged in (:mod:`builder.registry.merge`).
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path

from .select.profile import PROFILES

__all__ = ["PROFILES", "refine_profile"]


def refine_profile(
    schedule: str,
    nfes: Sequence[int],
    *,
    profile: str,
    out: str | Path,
    solver: str = "unipc",
    order: int = 3,
    ending: str = "eps",
    shift: float | None = None,
    maxiter: int = 60,
) -> dict[str, bytes]:
    """{relative path: canonical bytes} of the registry ``out`` (new, or an existing one merged into:
    :mod:`builder.registry.merge`) whose ``schedule`` (key or alias) has ``profile`` solver entries for
    (``solver``, ``order``, ``ending``) at ``nfes``, refined on the profile's problems."""
    import warnings

    import torch

    import optsteps_loader

    from . import __version__
    from .registry.entry import solver_entry
    from .registry.merge import merged_files
    from .select.profile import profile_chain
    from .solve.schedules import get_schedule

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    info = optsteps_loader.info(schedule, shift=shift)  # resolves aliases
    name, params = info["schedule"]["name"], info["params"]
    sched = get_schedule(name, **params)
    generic = {}
    for n in nfes:  # the generic solver entries to start from, where they exist (get() falls back to the bound's)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optsteps_loader.FallbackWarning)
            steps = optsteps_loader.get(name, n, solver=solver, order=order, ending=ending, profile="generic", **params)
        if steps.requested is None and steps.method not in ("bound", "bound+denoise"):
            generic[n] = list(steps.lambdas)
    torch.set_num_threads(1)
    records = profile_chain(
        sched,
        profile=profile,
        solver=solver,
        order=order,
        ending=ending,
        nfes=sorted(set(nfes)),
        generic=generic,
        maxiter=maxiter,
    )
    chain = types.SimpleNamespace(solver=solver, order=order, ending=ending, profile=profile)
    entries = [solver_entry(sched, chain, r) for r in records]
    return merged_files(out, sched, entries, generator=f"optsteps {__version__} refine --profile {profile}")
