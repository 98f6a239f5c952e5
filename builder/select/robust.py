"""Solver entries: grids refined on the fit split for one solver, order and ending, walking up the NFEs,
and their figures on the fit and validation splits.

**A chain** (:func:`refine_chain`) is one (schedule, solver, order, ending) over increasing NFEs. At each
NFE N the starts are the four formula rules, every published table that applies (:func:`rule_grids`: for
``"zero"`` N nodes followed by σ = 0, as the hosts run them), the bound's entry when one is given, and — after the
first NFE — the refined NFE N − 1 grid with one node inserted (:func:`~builder.select.refine.insert_node`).
A chain may continue another one (``after``: the chosen grid of the NFE just below its first), so that
its first NFE is warm-started too. Every start is scored on the fit split; the best two (a first NFE with no
warm start) or the best one (otherwise: the warm start nearly always wins, at a seventh of the cost,
docs/data-family.md) are refined by
:func:`~builder.select.refine.refine` (mean-L2 log-ratio to uniform λ, no penalty; with ``kinds``, a kind
label per fit problem, the soft maximum over kinds of each kind's log ratio to its best rule or table).

**The choice** is made on the fit split alone: the refined grid, or its start when refinement did not
lower the fit loss (``method`` ``"rule"`` for a rule or table start, ``"bound"`` for the bound's entry). On a
discrete schedule the chosen grid's nodes that would share an integer timestep are then moved apart
(:func:`~builder.solve.schedules.separate_timesteps`) and every node is put at the λ of its integer timestep
(:func:`~builder.select.host_grid.as_run`: the model is only called there, so that is the grid a host runs),
and every figure is of the grid as it ships.

**Figures** (:func:`figures`; an entry's ``quality`` is :func:`split_figures`), per split, of the chosen
grid G against every baseline R (the rules and tables, and the bound's entry as ``bound``): with e_p(G) the
mean over problem p's batch of ‖x_G − x_exact‖₂,

    log_ratio(R) = mean_p log(e_p(G)/e_p(R)),   log_ratio_se(R) = sd_p(·)/√P,

``best_rule``: the same against min over rules and tables R of e_p(R) (per problem), ``above_uniform_lambda``:
problems with e_p(G) > e_p(uniform λ), ``worst``: the baseline with the largest log ratio; ``mean_l2`` and
``median_l2``: means over problems of e_p and of the per-problem median. ``loses_on_validation``: the
validation log ratio against some rule or table is > 0. Stored figures are rounded to 4 significant digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..rounding import significant
from ..solve.schedules import separate_timesteps
from .host_grid import as_run
from .refine import Bound, errors, insert_node, refine, rule_grids

__all__ = ["figures", "refine_chain", "solver_spec", "split_figures"]

MAXITER = 60


def solver_spec(solver: str, order: int) -> dict[str, Any]:
    """The sampler the entries are measured with: UniPC bh2 (with corrector) or DPM-Solver++ (multistep)."""
    return {"solver": solver, "order": order} | ({"variant": "bh2"} if solver == "unipc" else {})


def figures(errs: Mapping[str, list[np.ndarray]], chosen: str, rules: Sequence[str]) -> dict[str, Any]:
    """The split's figures of grid ``chosen`` against every other key of ``errs`` (module docstring);
    ``rules``: the keys that are rules or tables (they make up ``best_rule`` and ``above_uniform_lambda``)."""
    mean = {k: np.array([e.mean() for e in v]) for k, v in errs.items()}
    median = {k: np.array([np.median(e) for e in v]) for k, v in errs.items()}
    n = mean[chosen].size

    def ratio(ref: np.ndarray) -> tuple[float, float]:
        lr = np.log(mean[chosen] / ref)
        return float(lr.mean()), float(lr.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0

    baselines = {}
    for name in errs:
        if name == chosen:
            continue
        lr, se = ratio(mean[name])
        baselines[name] = {
            "mean_l2": significant(mean[name].mean()),
            "median_l2": significant(median[name].mean()),
            "log_ratio": significant(lr),
            "log_ratio_se": significant(se),
        }
    best, best_se = ratio(np.min(np.stack([mean[r] for r in rules]), axis=0))
    return {
        "problems": n,
        "mean_l2": significant(mean[chosen].mean()),
        "median_l2": significant(median[chosen].mean()),
        "baselines": baselines,
        "log_ratio_best_rule": significant(best),
        "log_ratio_best_rule_se": significant(best_se),
        "worst": max(baselines, key=lambda r: baselines[r]["log_ratio"]),
        "above_uniform_lambda": int(np.sum(mean[chosen] > mean["uniform-lambda"] * (1 + 1e-12))),
    }


def split_figures(
    grid: np.ndarray,
    baselines: Mapping[str, np.ndarray],
    rules: Sequence[str],
    splits: Mapping[str, Bound],
    spec: Mapping[str, Any],
) -> dict[str, Any]:
    """An entry's ``quality``: per split (``"fit"``, ``"validation"``) the :func:`figures` of ``grid`` against
    every baseline, measured with the sampler ``spec`` (:func:`solver_spec`), and ``loses_on_validation``
    (some rule or table of ``rules`` beats it on the validation split)."""
    quality: dict[str, Any] = {}
    for split, problems in splits.items():
        errs = {name: errors(g, problems, **spec) for name, g in baselines.items()}
        errs["chosen"] = errors(grid, problems, **spec)
        quality[split] = figures(errs, "chosen", rules)
    val = quality["validation"]["baselines"]
    quality["loses_on_validation"] = any(val[r]["log_ratio"] > 0 for r in rules)
    return quality


def refine_chain(
    schedule: Any,
    *,
    solver: str,
    order: int,
    ending: str,
    nfes: Sequence[int],
    fit: Bound,
    validation: Bound,
    bound_grids: Mapping[int, Sequence[float]] | None = None,
    maxiter: int = MAXITER,
    after: Sequence[float] | None = None,
    kinds: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One record per NFE (ascending): ``nfe``, ``lambda`` (the chosen grid: N + 1 nodes for ``"eps"``, N for
    ``"zero"``), ``method``, ``init`` (the start it came from), ``optimizer`` (L-BFGS-B's status, iterations,
    evaluations, fit loss before and after; ``separated``: how many nodes were then moved to distinct
    timesteps, where any were) and ``quality`` ({``fit``, ``validation``: :func:`figures`,
    ``loses_on_validation``}). ``bound_grids``: {N: the bound entry's λ for an N-call grid} (optional).
    ``after``: the chosen grid of the NFE just below ``min(nfes)`` when this chain continues another one (its
    first NFE is then warm-started like every later one). ``kinds``: a kind label per ``fit`` problem for the
    robust loss (module docstring); the recorded fit losses are then that loss."""
    spec = solver_spec(solver, order)
    records, prev = [], None if after is None else np.asarray(after, dtype=np.float64)
    for nfe in sorted(nfes):
        rules = rule_grids(schedule, nfe, ending)
        starts = dict(rules)
        bound = None if bound_grids is None else bound_grids.get(nfe)
        if bound is not None:
            starts["bound"] = np.asarray(bound, dtype=np.float64)
        if prev is not None:
            starts["warm"] = insert_node(prev, ending, schedule.lambda_end)
        res = refine(
            fit,
            starts,
            ending=ending,
            reference="uniform-lambda",
            top=2 if prev is None else 1,
            maxiter=maxiter,
            **({"kinds": kinds, "rules": list(rules)} if kinds is not None else {}),
            **spec,
        )
        start_loss = res.starts[res.start][0]
        improved = res.mean_log_ratio < start_loss - 1e-9
        if improved:
            grid, method, init = np.asarray(res.x), "refined", res.start
        else:
            grid, init = np.asarray(starts[res.start]), res.start
            method = "bound" if init == "bound" else "rule"
        if init == "warm":
            init = "previous-nfe"
        moved = separate_timesteps(grid, schedule)
        separated = int(np.count_nonzero(moved != grid))
        grid = prev = as_run(moved, schedule)
        baselines = dict(rules) | ({"bound": starts["bound"]} if bound is not None else {})
        quality = split_figures(grid, baselines, list(rules), {"fit": fit, "validation": validation}, spec)
        records.append(
            {
                "nfe": nfe,
                "lambda": [float(v) for v in grid],
                "method": method,
                "init": init,
                "optimizer": {
                    "method": "L-BFGS-B",
                    "success": bool(res.success),
                    "status": int(res.status),
                    "nit": int(res.nit),
                    "nfev": int(res.nfev_total),
                    "fit_loss_start": significant(start_loss),
                    "fit_loss": significant(min(res.mean_log_ratio, start_loss)),
                    **({"separated": separated} if separated else {}),
                },
                "quality": quality,
            }
        )
    return records
