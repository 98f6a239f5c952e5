"""Per-entry quality figures and selection by measurement, called by the sweep's finalize stage.

**Standard measurement.** The project's UniPC (``optsteps_loader.unipc.sample``), variant ``bh2`` (diffusers'
default), order = the entry's order, corrector on, lower-order final steps, on the standard problem set
(:func:`builder.select.evaluate.standard_problems`: paired noises, exact ground truth). For a grid g and
problem p with per-sample errors e_{p,b}(g) = ‖x_N − x_true‖₂:

    mean_l2(g)   = mean_p mean_b e_{p,b}(g),      median_l2(g) = mean_p median_b e_{p,b}(g)
    d_{p,b}      = log e_{p,b}(g) − log e_{p,b}(ref)                      (paired: same noises)
    m_p          = mean_b d_{p,b},   se_p = sd_b(d_{p,b}) / √B
    log_ratio    = mean_p m_p,       log_ratio_se = √(Σ_p se_p²) / P

(:func:`builder.select.evaluate.paired`); ``ratio`` = exp(log_ratio) is the geometric-mean error
ratio, below 1 when g is better than ref. The *best baseline* is the baseline with the lowest geometric
mean error G(g) = mean_p mean_b log e_{p,b}(g) among those that waste no model evaluation (below; all of
them if each one does). The paired log-ratios of two grids differ by exactly the difference of their G.
The entry is ``worse_than_best_baseline`` when its paired log-ratio against the best baseline exceeds
2 standard errors: log_ratio > 2·log_ratio_se (worse beyond noise).

**Selection by measurement (beyond the paper).** The multi-start optimisation returns several local optima
of the paper's bound for the entry's (p, τ) (``candidates``). The paper ships the lowest-bound one
(:func:`builder.solve.optimize.lowest_bound_index`). Here the alternatives are every other distinct valid
local optimum *and* the optimiser's four starting grids themselves (``unif``, ``unif_t``, ``quad``, ``edm``
= the uniform-λ, uniform-t, uniform-√t and Karras ρ = 7 baselines, :data:`builder.solve.grids.STARTS`; a
start ships its baseline's grid), all measured on the *standard* set. The alternative with the lowest G is
chosen when it beats the lowest-bound optimum beyond noise (paired log-ratio < −2·se): ``selection``
"benchmark" for another local optimum, "start" for an unoptimised starting grid (where the surrogate bound
leads the optimiser away from a grid that samples better, the registry ships that grid rather than lose to a
one-line formula); otherwise the lowest-bound optimum stays (``selection`` "lowest-bound").

**Grids that waste an evaluation are not shipped when another will do.** A grid *wastes* a model
evaluation when two of its evaluated nodes 0 … N−1 give the model the same time input (an integer-timestep
collision of a discrete schedule; the pair with the final node N is harmless, the model is not called
there), or when a step is shorter than ``DEGENERATE_STEP`` = 1/50 of the uniform step (λ_ε − λ_T)/N (the
bound's minimisers can collapse a step: builder.solve.epigraph). Such alternatives are never chosen; a
lowest-bound optimum that wastes one is replaced by the best alternative that does not (lowest G), beyond
noise or not, and kept only when every alternative wastes one too.

**Held-out figures.** For a "benchmark" or "start" choice the entry also carries the *held-out* figures
(:func:`builder.select.evaluate.held_out_problems`: other mixtures, dimensions and noises, never used to
choose) of the chosen grid against the lowest-bound grid and the best baseline, so the win is shown on
problems not used to choose it.

Measurements are memoised per process by (grid, order, problem set) (:func:`measure`); the sweep hands a
worker every p of an (nfe, order) together, so their baselines are measured once.
Stored figures are rounded to 4 significant digits (`builder.rounding`; decisions use the unrounded values),
which keeps the registry's bytes stable against last-bit differences of BLAS builds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from optsteps_loader.schedules import timestep_collisions

from ..kernels import single_threaded_blas
from ..rounding import significant
from ..solve.grids import STARTS, baseline_grids
from ..solve.objective import objective
from ..solve.optimize import lowest_bound_index
from ..solve.schedules import Schedule, node_arrays, separate_timesteps
from .evaluate import held_out_problems, paired, standard_problems

__all__ = [
    "SAMPLER",
    "Measurement",
    "best_baseline",
    "choose_and_measure",
    "entry_for_candidate",
    "measure",
    "measure_baselines",
    "wasted_evaluation",
]

SAMPLER: dict[str, Any] = {"sampler": "unipc", "variant": "bh2", "corrector": True, "lower_order_final": True}
NOISE_SE = 2.0  # "beyond noise" = more than this many standard errors
SAME_GRID_TOL = 1e-6  # candidates whose λ differ by less than this (max abs) are one local optimum
DEGENERATE_STEP = 1 / 50  # a step shorter than this fraction of the uniform step wastes an evaluation
# how ``selection_reason`` begins when a wasteful lowest-bound optimum was replaced (the report counts these)
REPLACED_WASTEFUL = "the lowest-bound local optimum "
MEASURE_CACHE_SIZE = 4096  # measurements kept per process (≈ 10–12 KiB of errors each: ≤ 50 MiB)


class Measurement:
    """Per-problem per-sample errors of one grid on one problem set; summary figures on demand."""

    def __init__(self, errors: dict[str, np.ndarray]) -> None:
        self.errors = errors

    @property
    def mean_l2(self) -> float:
        return float(np.mean([e.mean() for e in self.errors.values()]))

    @property
    def median_l2(self) -> float:
        return float(np.mean([np.median(e) for e in self.errors.values()]))

    @property
    def log_error(self) -> float:
        """G = mean_p mean_b log e_{p,b}: the log of the geometric-mean error (pooled over problems)."""
        return float(np.mean([np.log(e).mean() for e in self.errors.values()]))


@functools.lru_cache(maxsize=1)
def _one_torch_thread() -> None:
    """The sweep runs one process per core: keep torch to one intra-op thread (BLAS is limited per call)."""
    import torch

    torch.set_num_threads(1)


def _problem_set(which: str) -> Any:
    if which == "standard":
        return standard_problems()
    if which == "held-out":
        return held_out_problems()
    raise ValueError(f"problem set must be 'standard' or 'held-out', got {which!r}")


def measure(lambdas: Sequence[float], order: int, which: str = "standard") -> Measurement:
    """Per-sample errors of the λ-grid with the standard sampler (UniPC bh2, corrector) at ``order``.

    Memoised per process by the grid's exact float64 bytes, ``order`` and ``which``: the sweep measures the
    same grids again and again (a baseline for every p of an (nfe, order), a start grid that is also the
    best baseline on the held-out set), and a measurement is a pure function of them.
    """
    lam = np.ascontiguousarray(lambdas, dtype=np.float64)
    return _measure(lam.tobytes(), int(order), which)


@functools.lru_cache(maxsize=MEASURE_CACHE_SIZE)
def _measure(lam_bytes: bytes, order: int, which: str) -> Measurement:
    _one_torch_thread()
    lam = np.frombuffer(lam_bytes, dtype=np.float64)
    with single_threaded_blas():  # building a benchmark may solve (and cache) its ground truths
        bench = _problem_set(which).for_grid(lam)
    run = bench.run(lam, order=order, **SAMPLER)
    return Measurement({name: m["errors"] for name, m in run.items()})


def measure_baselines(
    schedule: Schedule, nfe: int, order: int, which: str = "standard", names: Sequence[str] | None = None
) -> dict[str, Measurement]:
    """{baseline: Measurement} for the applicable baselines (or those of ``names`` that apply); :func:`measure`
    memoises them."""
    grids = baseline_grids(schedule, nfe)
    return {name: measure(lam, order, which) for name, lam in grids.items() if names is None or name in names}


def entry_for_candidate(schedule: Schedule, entry: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """The entry with its grid replaced by another local optimum of the same problem.

    Node arrays are recomputed from t = t(λ) (endpoints the schedule's own), ``objective`` is the
    candidate's F and ``init`` its start; everything else (problem, hash, baselines' F, the optimizer
    record of the lowest-bound run) is kept.
    """
    out = dict(entry)
    out.update(_grid_nodes(schedule, candidate["lambdas"]))
    out["objective"] = float(candidate["fun"])
    out["init"] = str(candidate["init"])
    return out


def wasted_evaluation(entry: dict[str, Any]) -> str | None:
    """Why the entry's grid wastes a model evaluation (module docstring), or None when it does not."""
    nfe = int(entry["nfe"])
    repeated = [pair for pair in entry["timestep_collisions"] if pair[1] < nfe]
    if repeated:
        i, j = repeated[0]
        return f"calls the model twice at timestep {entry['timesteps'][i]} (nodes {i} and {j})"
    lam = np.asarray(entry["lambda"], dtype=np.float64)
    steps = np.diff(lam)
    shortest = int(np.argmin(steps))
    uniform = (lam[-1] - lam[0]) / nfe
    if steps[shortest] < DEGENERATE_STEP * uniform:
        h = steps[shortest]
        return f"has a collapsed step {shortest} (h = {h:.2g} in λ, {h / uniform:.2g}× the uniform step)"
    return None


def _distinct(candidates: Sequence[dict[str, Any]], first: int) -> list[int]:
    """Indices of distinct valid local optima, the lowest-bound one first (duplicates dropped)."""
    order = [first] + [i for i in range(len(candidates)) if i != first]
    kept: list[int] = []
    for i in order:
        c = candidates[i]
        if not c["valid"]:
            continue
        lam = np.asarray(c["lambdas"], dtype=np.float64)
        if any(np.max(np.abs(lam - np.asarray(candidates[j]["lambdas"]))) < SAME_GRID_TOL for j in kept):
            continue
        kept.append(i)
    return kept


def _grid_nodes(schedule: Schedule, lambdas: Sequence[float]) -> dict[str, Any]:
    """An entry's node arrays for a λ-grid (t = t(λ), the schedule's own endpoints) and its ``timestep_collisions``."""
    t = schedule.inverse_lambda(np.asarray(lambdas, dtype=np.float64))
    t[0], t[-1] = schedule.t_start, schedule.t_end
    nodes = node_arrays(schedule, t)
    return {**nodes, "timestep_collisions": timestep_collisions(nodes["timesteps"])}


def _grid_wastes(schedule: Schedule, lambdas: Sequence[float]) -> str | None:
    """:func:`wasted_evaluation` of a bare λ-grid on ``schedule``."""
    return wasted_evaluation({"nfe": len(lambdas) - 1, **_grid_nodes(schedule, lambdas)})


def best_baseline(schedule: Schedule, nfe: int, baselines: dict[str, Measurement]) -> str:
    """The baseline with the lowest geometric-mean error G among those whose grid wastes no model evaluation
    (all of them if every one does)."""
    grids = baseline_grids(schedule, nfe)
    eligible = [name for name in baselines if _grid_wastes(schedule, grids[name]) is None]
    return min(eligible or baselines, key=lambda n: baselines[n].log_error)


def _comparison(m: Measurement, baselines: dict[str, Measurement], best: str) -> dict[str, Any]:
    """Figures of m against each baseline, and the best baseline (:func:`best_baseline`)."""
    rows = {}
    for name, mb in baselines.items():
        lr, se = paired(m.errors, mb.errors)
        rows[name] = {
            "mean_l2": significant(mb.mean_l2),
            "median_l2": significant(mb.median_l2),
            "log_ratio": significant(lr),
            "log_ratio_se": significant(se),
            "_raw": (lr, se),
        }
    return {"rows": rows, "best": best}


def _strip(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {k: v for k, v in row.items() if k != "_raw"} for name, row in rows.items()}


def choose_and_measure(
    schedule: Schedule, entry: dict[str, Any], candidates: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the entry to ship, its quality record) for a solved task.

    ``entry``: the lowest-bound entry (``builder.registry.entry.make_entry``); ``candidates``: the multi-start's
    local optima (``init``, ``lambdas``, ``fun``, ``valid``). The returned entry is ``entry`` itself or
    :func:`entry_for_candidate` of the chosen grid (module docstring), with ``quality`` set to the returned
    record.
    """
    nfe, order = int(entry["nfe"]), int(entry["order"])
    baselines = measure_baselines(schedule, nfe, order)
    first = lowest_bound_index(candidates) if candidates else -1
    distinct = _distinct(candidates, first) if candidates else []

    lowest = measure(entry["lambda"], order)
    chosen_entry, chosen = entry, lowest
    selection = "lowest-bound"
    proposed = _alternatives(schedule, entry, candidates, distinct[1:], baselines)
    alternatives = [a for a in proposed if wasted_evaluation(a[2]) is None]
    starts = sum(kind == "start" for kind, *_ in proposed)
    pool = f"{len(distinct)} distinct local optima and {starts} starting grids"
    if len(alternatives) < len(proposed):
        pool += f" ({len(proposed) - len(alternatives)} wasting a model evaluation left out)"
    waste = wasted_evaluation(entry)
    reason = f"no other of {pool} beats it beyond noise on the standard set"
    if waste is not None:
        reason = f"it {waste}, but so does every other of {pool}"
    if alternatives:
        kind, label, alt_entry, alt = min(alternatives, key=lambda a: a[3].log_error)
        lr, se = paired(alt.errors, lowest.errors)
        if waste is not None:
            chosen_entry, chosen, selection = alt_entry, alt, kind
            reason = (
                f"{REPLACED_WASTEFUL}{waste}; of {pool}, {label} is the best that does not "
                f"(log-error {lr:+.3g} ± {se:.2g} against it on the standard set)"
            )
        elif lr < -NOISE_SE * se:
            chosen_entry, chosen, selection = alt_entry, alt, kind
            reason = (
                f"of {pool}, {label} measures {-lr:.3g} (±{se:.2g}) lower log-error than the lowest-bound "
                "local optimum on the standard set"
            )

    if chosen_entry["timestep_collisions"]:
        before = np.asarray(chosen_entry["lambda"], dtype=np.float64)
        after = separate_timesteps(before, schedule)
        lam, moved = [float(v) for v in after], [int(i) for i in np.flatnonzero(after != before)]
        fun = objective(lam, entry["p"], entry["tau"], order)
        chosen_entry = entry_for_candidate(
            schedule, chosen_entry, {"init": chosen_entry["init"], "lambdas": lam, "fun": fun}
        )
        chosen = measure(chosen_entry["lambda"], order)
        reason += f"; node(s) {moved} moved up to the next free integer timestep, so no two nodes share one"
    comp = _comparison(chosen, baselines, best_baseline(schedule, nfe, baselines))
    best = comp["best"]
    best_lr, best_se = comp["rows"][best]["_raw"]
    quality: dict[str, Any] = {
        "benchmark": "standard",
        "problems": sorted(chosen.errors),
        "sampler": {"name": "unipc", "variant": SAMPLER["variant"], "order": order, "corrector": True},
        "mean_l2": significant(chosen.mean_l2),
        "median_l2": significant(chosen.median_l2),
        "baselines": _strip(comp["rows"]),
        "best_baseline": best,
        "mean_l2_best_baseline": comp["rows"][best]["mean_l2"],
        "log_ratio_best_baseline": significant(best_lr),
        "log_ratio_best_baseline_se": significant(best_se),
        "worse_than_best_baseline": bool(best_lr > NOISE_SE * best_se),
        "selection": selection,
        "selection_reason": reason,
        "candidates": len(distinct),
    }
    if "uniform-lambda" in baselines:
        quality["mean_l2_uniform_lambda"] = comp["rows"]["uniform-lambda"]["mean_l2"]
        quality["ratio_uniform_lambda"] = significant(math.exp(comp["rows"]["uniform-lambda"]["_raw"][0]))
    if "uniform-t" in baselines:
        quality["mean_l2_uniform_t"] = comp["rows"]["uniform-t"]["mean_l2"]
    if selection != "lowest-bound":
        quality["held_out"] = _held_out(schedule, nfe, order, chosen_entry, entry, best)
    chosen_entry = dict(chosen_entry)
    chosen_entry["quality"] = quality
    return chosen_entry, quality


def _alternatives(
    schedule: Schedule,
    entry: dict[str, Any],
    candidates: Sequence[dict[str, Any]],
    other_optima: Sequence[int],
    baselines: dict[str, Measurement],
) -> list[tuple[str, str, dict[str, Any], Measurement]]:
    """(selection kind, label, entry, measurement) of every grid that may replace the lowest-bound optimum:
    the other distinct local optima ("benchmark"), then the starting grids ("start", measured already as
    their baselines; the bound F of a start is its value before optimisation)."""
    order = int(entry["order"])
    out = []
    for i in other_optima:
        alt = entry_for_candidate(schedule, entry, candidates[i])
        label = f"start {candidates[i]['init']!r}'s local optimum"
        out.append(("benchmark", label, alt, measure(alt["lambda"], order)))
    grids = baseline_grids(schedule, int(entry["nfe"]), names=tuple(STARTS.values()))
    for init, name in STARTS.items():
        if name in grids and name in baselines:
            lam = grids[name]
            start = {"init": init, "lambdas": lam, "fun": objective(lam, entry["p"], entry["tau"], order)}
            out.append(
                (
                    "start",
                    f"the unoptimised {name} grid (start {init!r})",
                    entry_for_candidate(schedule, entry, start),
                    baselines[name],
                )
            )
    return out


def _held_out(
    schedule: Schedule, nfe: int, order: int, chosen: dict[str, Any], lowest: dict[str, Any], best: str
) -> dict[str, Any]:
    """Held-out figures of the chosen grid against the lowest-bound grid and the (standard set's) best baseline."""
    mc = measure(chosen["lambda"], order, "held-out")
    refs = {"lowest_bound": measure(lowest["lambda"], order, "held-out")}
    base = measure_baselines(schedule, nfe, order, "held-out", names=(best,))
    if best in base:
        refs["best_baseline"] = base[best]
    out: dict[str, Any] = {
        "benchmark": "held-out",
        "problems": sorted(mc.errors),
        "mean_l2": significant(mc.mean_l2),
        "median_l2": significant(mc.median_l2),
    }
    for key, m in refs.items():
        lr, se = paired(mc.errors, m.errors)
        out[f"mean_l2_{key}"] = significant(m.mean_l2)
        out[f"log_ratio_{key}"] = significant(lr)
        out[f"log_ratio_{key}_se"] = significant(se)
    return out
