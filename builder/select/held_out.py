"""GATE and REPORT problems of the promise selection (:mod:`builder.select.promise`), bound to a schedule's
endpoints and an ending (:func:`split`).

The problems are the held-out kinds of :mod:`builder.select.kinds`; of each kind's problems, the even-indexed
ones are GATE (used to choose), the odd-indexed ones REPORT (used only for the figures). Noise seeds are
disjoint (7000 + 100·kind + j); mixture seeds too, except where a kind has one data set (``digits``: the same
mixture, other noises; ``guided``: the same latent mixture, other guidance scales).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import kinds as kinds_mod

__all__ = ["Split", "clear_cache", "split", "split_problems"]


@dataclass(frozen=True, eq=False)
class Split:
    """Kinds' problems bound to one schedule's endpoints and an ending: ``gate`` and ``report`` are
    :class:`builder.select.refine.Bound`'s; ``gate_kinds`` / ``report_kinds`` name each problem's kind."""

    gate: Any
    report: Any
    gate_kinds: tuple[str, ...]
    report_kinds: tuple[str, ...]
    gate_seeds: tuple[int, ...]
    report_seeds: tuple[int, ...]


class _TorchGuided:
    """D_u + w (D_c − D_u) with torch mixtures (the refine samplers' denoiser for a :class:`GuidedMixture`)."""

    def __init__(self, guided) -> None:
        from .differentiable import TorchMixture

        self.u, self.c, self.w = TorchMixture(guided.unconditional), TorchMixture(guided.conditional), guided.scale

    def __call__(self, x, lam):
        du = self.u(x, lam)
        return du + self.w * (self.c(x, lam) - du)


def split_problems(per_kind: int = 1, batch: int = 16, kinds: Sequence[str] | None = None) -> tuple[tuple, tuple]:
    """(GATE, REPORT) kinds' problems: of each kind's (of ``kinds``, default all), the even-indexed (GATE) and
    odd-indexed (REPORT) ones, ``per_kind`` of each (fewer where a kind has fewer), batch ``batch``."""
    gate, report = [], []
    for name in kinds_mod.KINDS if kinds is None else kinds:
        ps = kinds_mod.kind_problems(name, batch=batch)
        gate += list(ps[0::2][:per_kind])
        report += list(ps[1::2][:per_kind])
    return tuple(gate), tuple(report)


def _bind(problems: Sequence, schedule, ending: str):
    import torch

    from .differentiable import TorchMixture
    from .refine import Bound
    from .truth import ground_truth

    target = schedule.lambda_end if ending == "eps" else math.inf
    truths = [ground_truth(p.mixture, schedule.lambda_start, target, batch=p.batch, seed=p.seed) for p in problems]
    denoisers = tuple(
        _TorchGuided(p.mixture) if isinstance(p.mixture, kinds_mod.GuidedMixture) else TorchMixture(p.mixture)
        for p in problems
    )
    return Bound(
        tuple(p.name for p in problems),
        denoisers,
        tuple(torch.from_numpy(t.x_start) for t in truths),
        tuple(torch.from_numpy(t.x_end) for t in truths),
        float(schedule.lambda_start),
        float(schedule.lambda_end),
        ending,
    )


@functools.lru_cache(maxsize=32)
def _split_cached(schedule, ending: str, per_kind: int, batch: int, kinds: tuple[str, ...] | None) -> Split:
    gate, report = split_problems(per_kind, batch, kinds)
    return Split(
        _bind(gate, schedule, ending),
        _bind(report, schedule, ending),
        tuple(p.profile for p in gate),
        tuple(p.profile for p in report),
        tuple(p.seed for p in gate),
        tuple(p.seed for p in report),
    )


def split(schedule, ending: str, *, per_kind: int = 1, batch: int = 16, kinds: Sequence[str] | None = None) -> Split:
    """The GATE / REPORT :class:`Split` for ``schedule`` and ``ending`` (cached in-process; :func:`clear_cache`).
    Exact answers come from :func:`builder.select.truth.ground_truth` (cached on disk)."""
    return _split_cached(schedule, ending, int(per_kind), int(batch), None if kinds is None else tuple(kinds))


def clear_cache() -> None:
    """Forget the bound problems :func:`split` keeps."""
    _split_cached.cache_clear()
