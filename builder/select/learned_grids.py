"""The grid the learned-model check (:mod:`builder.select.learned`) puts under test: the registry's entry, or
the sweep's problem solved live, with the builder's schedule it lives on."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..solve.schedules import Schedule, get_schedule
from .mixtures import Array

__all__ = ["SubjectGrid", "registry_grid", "schedule_of_steps", "solved_grid", "subject_grid"]


class SubjectGrid(NamedTuple):
    """The grid under test: its schedule, λ-grid (N+1 values, noisiest first), order, p, and where it came from."""

    schedule: Schedule
    lambdas: Array
    order: int
    p: float
    source: str  # "registry" or "solved"

    @property
    def nfe(self) -> int:
        return len(self.lambdas) - 1


def schedule_of_steps(steps: Any) -> Schedule:
    """The builder's schedule for a loader ``Steps`` record (the flow shift from its ``params``)."""
    shift = steps.params.get("shift") if steps.params else None
    return get_schedule(steps.schedule, **({} if shift is None else {"shift": float(shift)}))


def registry_grid(
    schedule: str, nfe: int, *, p: float | None = None, source: Any = None, shift: float | None = None
) -> SubjectGrid:
    """The registry's entry ``optsteps_loader.get(schedule, nfe, p=p, source=source, shift=shift)`` (order 3;
    ``p=None``: the UniPC solver entry where there is one, else the bound's at the schedule's default p)."""
    import optsteps_loader

    steps = optsteps_loader.get(schedule, nfe, p=p, source=source, shift=shift)
    lam = np.asarray(steps.lambdas, dtype=np.float64)
    p_value = float("nan") if steps.p is None else float(steps.p)  # a solver entry has no p
    return SubjectGrid(schedule_of_steps(steps), lam, int(steps.order), p_value, "registry")


def solved_grid(
    schedule: str, nfe: int, *, p: float, tau: int | str, order: int = 3, shift: float | None = None
) -> SubjectGrid:
    """The lowest-bound grid of the problem (``p``, ``tau``), solved live by :func:`builder.solve.optimize.solve`
    (multi-start "best"), for when no registry exists; the caller passes the sweep's p and τ."""
    from ..solve.optimize import solve

    sched = get_schedule(schedule, **({} if shift is None else {"shift": float(shift)}))
    lam = np.asarray(solve(sched, nfe, order=order, p=float(p), tau=tau).lambdas, dtype=np.float64)
    return SubjectGrid(sched, lam, int(order), float(p), "solved")


def subject_grid(
    schedule: str,
    nfe: int,
    *,
    p: float | None = None,
    source: Any = None,
    shift: float | None = None,
    tau: int | str | None = None,
) -> SubjectGrid:
    """:func:`registry_grid`, or given ``tau`` (and ``p``) :func:`solved_grid`."""
    if tau is not None:
        if p is None:
            raise ValueError("a grid solved live needs p as well as tau")
        return solved_grid(schedule, nfe, p=p, tau=tau, shift=shift)
    return registry_grid(schedule, nfe, p=p, source=source, shift=shift)
