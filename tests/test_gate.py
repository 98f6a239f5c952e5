"""The quality gate: the committed registry's default entries, re-measured on fixed noises.

For vp-linear, scaled-linear and edm at NFE 5, 6, 8, 10 the default entry (order 3, the schedule's measured
default p) must beat uniform-λ by a clear margin (geometric-mean error ≤ 95% of uniform-λ's, beyond noise),
must not be worse than the best baseline beyond noise (2 standard errors of the paired log-ratio), and its
stored ``worse_than_best_baseline`` flag must be truthful. The
criteria live in :mod:`builder.select.gate` (shared with ``python -m builder quality --quick``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

import optsteps_loader  # noqa: E402
from builder.select import gate  # noqa: E402
from builder.solve.schedules import get_schedule  # noqa: E402

REGISTRY = Path(__file__).resolve().parents[1] / "registry"


@pytest.mark.parametrize("nfe", gate.GATE_NFE)
@pytest.mark.parametrize("schedule", gate.GATE_SCHEDULES)
def test_default_entry_passes_the_gate(schedule, nfe):
    """The bound's default entry (solver entries carry their own figures: tests/test_solver_entries.py)."""
    p = optsteps_loader.info(schedule, source=str(REGISTRY))["defaults"]["p"]
    steps = optsteps_loader.get(schedule, nfe, p=p, source=str(REGISTRY))
    assert steps.quality is not None, "the committed registry carries no quality figures: rebuild it"
    stored = dict(steps.quality)
    row = gate.check_entry(get_schedule(schedule), steps.lambdas, steps.order, stored)
    assert row["beats_uniform_lambda"], gate.gate_failures(row, schedule)
    assert row["flag_truthful"], gate.gate_failures(row, schedule)
    assert gate.gate_failures(row, schedule) == []
