"""The sweep's fourth stage: each solver entry weighed on held-out kinds of data against the hosts' recipes.

    choice-<key>.json   the decisions of one (schedule variant, solver, order, ending) at every NFE of its chains:
                        key: the group + its candidate grids + the settings + every source file they import

The refine chains (:mod:`.chains`) choose their grids on the data family's fit split. This stage weighs each
chain's grid against every grid a user can pick in the host (:func:`builder.select.promise.decide`: the soft
maximum over held-out kinds, on their GATE problems), every grid as it ships
(:func:`builder.select.promise.shipped`), and records in every entry ``quality.held_out``: the REPORT
problems' figures (problems no decision used), by kind, and the decision (``choice.verdict``: the chain's
grid, ``"refined"``; the best host rule, named; or for a profile entry ``"generic"``).

With :data:`REPLACE` on, an entry ships the verdict: the best host rule (``method`` ``"rule"``, ``init`` its
name) or the generic entry's grid (``method`` ``"generic"``), its ``quality.fit`` / ``validation`` measured
again on the grid it ships (against the rules, and the bound's grid or the generic entry's shipped grid), its
``optimizer`` the record of the refinement that ran. **It is off**: release 2026.12.07.4 was built both ways and
measured through the hosts (``python benchmarks/bench_hosts.py``: diffusers' DPM++ 2M / 3M, UniPC, Euler,
FlowMatchEuler, UniPC and DPM-Solver with flow sigmas, two k-diffusion loops; all 29 problems of the held-out
kinds). Against the best single recipe, geometric mean over NFE 5-30, the chains' grids as they ship beat or
tie the decided ones on 16 of 18 rows (e.g. diffusers' DPM++ 3M ``"scaled-linear"`` 0.844 vs 0.950, UniPC
0.785 vs 0.869, FlowMatchEuler ``"sd3"`` 0.882 vs 0.937); the decided ones win on 2 (DPM++ 2M ``"sdxl"`` 0.815
vs 0.852, k-diffusion DPM++ 2M ``"sdxl"`` 0.853 vs 0.891: the latent profile's NFE-10 entry replaced by the
generic one). With two GATE problems per kind the rule that ranks best on GATE is often not the best on the
other problems (a DPM++ 3M NFE-12 entry replaced by AYS-SDXL was then 1.63x the best rule on REPORT).

A group is the unit of work and of caching (a profile's decision needs its NFE's generic decision); groups run
in worker processes. The key's code part is the import closure of :mod:`builder.select.promise` and of the
chains' roots (the family figures run the chains' samplers), and this module's decide function.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...rounding import significant
from .cache import SOURCE_ROOT, _source_of, code_fingerprint, import_closure, prepare_cache, read_cached, write_cached
from .chains import PROFILE_ROOT_MODULES, Chain
from .spec import SweepError

__all__ = ["OPTIONS", "Group", "apply", "group_key", "groups_of", "load_decisions", "run_groups"]

ROOT_MODULES = (*PROFILE_ROOT_MODULES, "builder.select.promise")
# Whether an entry ships the decision's grid (True) or keeps its chain's grid and records the decision (False).
# Off: through the hosts (python benchmarks/bench_hosts.py, held-out kinds) the chains' grids as they ship beat
# or tie the decided ones on 16 of 18 rows (module docstring).
REPLACE = False
OPTIONS = {"per_kind": 2, "batch": 16}  # GATE and REPORT problems per kind (every kind has 4, digits 2)


@dataclass(frozen=True)
class Group:
    """The solver entries of one (schedule variant, solver, order, ending): per NFE the chains' grids by tier
    (``""``: generic, else the profile) and each chain's own baselines' extra grid (``bound`` / ``generic``)."""

    chain: Chain  # the generic chain (its schedule variant, solver, order, ending)
    grids: tuple[tuple[int, tuple[tuple[str, tuple[float, ...]], ...]], ...]
    starts: tuple[tuple[int, tuple[tuple[str, tuple[float, ...]], ...]], ...]

    def label(self) -> str:
        return self.chain.label()

    def fields(self) -> list[Any]:
        c = self.chain
        return [c.schedule, list(map(list, c.params)), c.file, c.solver, c.order, c.ending]


def groups_of(records: dict[Chain, list[dict[str, Any]]], starts: dict[Chain, dict[int, Any]]) -> list[Group]:
    """One :class:`Group` per (file, solver, order, ending) of the chains in ``records`` (their records) with
    ``starts`` ({chain: {N: the bound's grid, or the generic grid a profile chain started from}})."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for chain, recs in records.items():
        key = (chain.file, chain.solver, chain.order, chain.ending)
        slot = by_key.setdefault(key, {"chain": None, "grids": {}, "starts": {}})
        if chain.profile is None and chain.after is None:
            slot["chain"] = chain
        tier = chain.profile or ""
        for r in recs:
            n = int(r["nfe"])
            slot["grids"].setdefault(n, {})[tier] = tuple(float(v) for v in r["lambda"])
            extra = starts.get(chain, {}).get(n)
            if extra is not None:
                slot["starts"].setdefault(n, {})[tier] = tuple(float(v) for v in extra)
    out = []
    for key, slot in sorted(by_key.items()):
        if slot["chain"] is None:
            raise SweepError(f"the solver entries of {key} have no generic chain to decide them with")

        def frozen(d: dict) -> tuple:
            return tuple((n, tuple(sorted(d[n].items()))) for n in sorted(d))

        out.append(Group(slot["chain"], frozen(slot["grids"]), frozen(slot["starts"])))
    return out


def group_key(group: Group, root: Path = SOURCE_ROOT) -> str:
    """The cache key of a group: its fields, its grids (exact floats), the options and the code it runs."""
    code = code_fingerprint(root, import_closure(root, ROOT_MODULES), _source_of(_decide))
    payload = json.dumps([group.fields(), group.grids, group.starts, OPTIONS, REPLACE, code, "choice"])
    return f"choice-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"


def _decide(group: Group, cache_dir: str, key: str) -> str:
    """Decide every NFE of a group and cache {N: {tier: decision}} under ``key``."""
    import numpy as np

    from ...select import family, promise
    from ...select.profile import GENERIC, problems
    from ...select.refine import bind, rule_grids
    from ...select.robust import solver_spec, split_figures

    c = group.chain
    schedule = c.make_schedule()
    spec = solver_spec(c.solver, c.order)
    ends = (schedule.lambda_start, schedule.lambda_end, c.ending)
    splits = {}

    def family_quality(tier: str, nfe: int, lam: np.ndarray, extra: dict[str, Any]) -> dict[str, Any]:
        """The chain's fit / validation figures (builder.select.robust) of the grid an entry now ships, against
        the rules and ``extra`` (the bound's grid, or for a profile the generic entry's shipped grid)."""
        if tier not in splits:
            splits[tier] = {
                s: bind(family.split(s) if not tier else problems(s, tier), *ends) for s in ("fit", "validation")
            }
        rules = rule_grids(schedule, nfe, c.ending)
        return split_figures(lam, dict(rules) | extra, list(rules), splits[tier], spec)

    out: dict[str, dict[str, Any]] = {}
    for nfe, tiers in group.grids:
        tiers = dict(tiers)
        memo: dict = {}
        opt = OPTIONS | {"memo": memo}
        cell = (schedule, c.solver, c.order, c.ending, nfe)
        decisions = {"": promise.choose(*cell, {"refined": tiers[""]}, options=opt)}
        for tier in sorted(t for t in tiers if t):
            candidates = {"refined": tiers[tier], "generic": decisions[""].lam if REPLACE else tiers[""]}
            decisions[tier] = promise.choose(*cell, candidates, profile=tier, options=opt)
        if not REPLACE:
            out[str(nfe)] = {tier: _record(d, tiers[tier]) for tier, d in decisions.items()}
            continue
        starts = dict(dict(group.starts).get(nfe, ()))
        generic = np.asarray(decisions[""].lam, dtype=np.float64)
        row = {}
        for tier, d in decisions.items():
            lam = np.asarray(d.lam, dtype=np.float64)
            # the chain measured its grid against the bound's grid (generic) or the generic chain's (a profile)
            start = starts.get(tier)
            extra = {GENERIC: generic} if tier else ({"bound": np.asarray(start)} if start is not None else {})
            changed = not np.array_equal(lam, np.asarray(tiers[tier], dtype=np.float64)) or (
                bool(tier) and (start is None or not np.array_equal(generic, np.asarray(start)))
            )
            row[tier] = _record(d) | ({"family": family_quality(tier, nfe, lam, extra)} if changed else {})
        out[str(nfe)] = row
    write_cached(Path(cache_dir), key, {"group": group.label(), "options": OPTIONS, "decisions": out})
    return group.label()


def _record(d: Any, candidate: Any = None) -> dict[str, Any]:
    """What an entry keeps of a :class:`builder.select.promise.Decision`: what it ships (the decision's grid, or
    with ``candidate`` that grid, the chain's), its REPORT figures, and the decision (``verdict``: what the rule
    ships)."""
    kept = [k for k in ("refined", "generic", d.best_rule) if k in d.objective]
    fig = d.refined_report
    if candidate is None:
        fig = {"ratio": d.ratio, "best_rule": d.report_best_rule, "by_kind": d.by_kind}
        fig |= {"mean_l2": d.mean_l2, "median_l2": d.median_l2}
    return {
        "method": d.method if candidate is None else "refined",
        "name": d.name if candidate is None else "refined",
        "lambda": list(d.lam) if candidate is None else [float(v) for v in candidate],
        "held_out": {
            "ratio": significant(fig["ratio"]),
            "best_rule": fig["best_rule"],
            "by_kind": {k: significant(v) for k, v in sorted(fig["by_kind"].items())},
            "mean_l2": significant(fig["mean_l2"]),
            "median_l2": significant(fig["median_l2"]),
            "choice": {
                "best_rule": d.best_rule,
                "objective": {k: significant(d.objective[k]) for k in kept},
                "reasons": list(d.reasons),
                "verdict": d.name,
            },
        },
    }


def run_groups(groups: list[Group], cache_dir: Path, *, workers: int | None = None, progress: bool = True) -> int:
    """Decide every group not cached yet (in worker processes); returns how many ran."""
    from .run import _progress_bar, map_in_workers

    prepare_cache(cache_dir)
    todo = [(g, group_key(g)) for g in groups]
    todo = [item for item in todo if read_cached(cache_dir, item[1]) is None]
    if not todo:
        return 0
    # the groups with the most NFEs and profiles first
    todo.sort(key=lambda item: (-sum(len(t) for _, t in item[0].grids), item[0].label()))
    bar = _progress_bar(len(todo), len(groups), progress)
    try:
        groups_, keys = zip(*todo, strict=True)
        for label in map_in_workers(_decide, groups_, [str(cache_dir)] * len(todo), keys, workers=workers):
            bar(label)
    finally:
        bar(None)
    return len(todo)


def apply(chain: Chain, records: list[dict[str, Any]], decisions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The chain's records as the group's ``decisions`` (the cached payload's) ship them (module docstring)."""
    tier = chain.profile or ""
    out = []
    for r in records:
        d = decisions.get(str(int(r["nfe"])), {}).get(tier)
        if d is None:
            raise SweepError(f"no decision for {chain.label()} at NFE {r['nfe']}: run the sweep again")
        record = dict(r)
        record["lambda"] = d["lambda"]
        if d["method"] != "refined":
            record["method"], record["init"] = d["method"], d["name"]
        record["quality"] = {**d.get("family", record["quality"]), "held_out": d["held_out"]}
        out.append(record)
    return out


def load_decisions(group: Group, cache_dir: Path) -> dict[str, dict[str, Any]]:
    """The cached decisions of a group (:func:`run_groups` computed them)."""
    payload = read_cached(cache_dir, group_key(group))
    if payload is None:
        raise SweepError(f"the decisions of {group.label()} vanished from the cache folder {cache_dir}: run again")
    return payload["decisions"]
