"""The held-out verdict: whether a refined grid beats, on held-out kinds of data, every recipe a user can pick in
the host; if not, the best such recipe, named. The sweep records it in every solver entry and ships it only
with :data:`builder.registry.sweep.choice.REPLACE` on (off: the measurement is there).

A pure numerical core (no file reading, no registry writing): the sweep hands it λ-grids, it hands back a
:class:`Decision`. ``benchmarks/bench_promise.py`` runs it over the shipped registry.

The grids it weighs are the host rules (:mod:`builder.select.host_rules`); the problems it weighs them on,
the held-out kinds' GATE and REPORT problems (:mod:`builder.select.held_out`).

**The rule** (:func:`decide`). With e_p(g) the mean over problem p's batch of ‖x_g − x_exact‖₂, the per-kind
log ratio of grid g to grid r is ℓ_k(g, r) = mean_{p ∈ k} log(e_p(g)/e_p(r)), and the robust objective of g is
the **soft maximum** over kinds of its log ratio to that kind's best rule:

    J(g) = T log( (1/K) Σ_k exp(ℓ_k(g, R*_k) / T) ),   T = :data:`TEMPERATURE` = 0.05,

with R*_k the rule of lowest mean log error on kind k (J lies between the mean and the maximum over kinds; a
kind 5 % worse than the others weighs e ≈ 2.7× as much). The best single baseline is the rule of lowest J on
GATE. A ``"refined"`` candidate ships only where J(refined) < J(best rule) and it loses to the best rule on no
GATE kind by more than :data:`TOLERANCE` beyond noise,

    ℓ_k(refined, best rule) − 2 se_k ≤ log(1 + TOLERANCE),   se_k = sd_{p ∈ k, b}(d_pb) / √n_k,

with d_pb = log e_pb(refined) − log e_pb(best rule) the paired per-sample log ratios of the kind's n_k samples
(every grid of a problem starts from the same x_T); otherwise the entry is the best rule's grid (method
``"rule"``, named). A profile decision (``profile="latent"`` / ``"pixel"``: only that profile's kinds,
:data:`PROFILE_KINDS`) also gets the shipped generic grid as candidate ``"generic"``: its refined grid ships
only where it passes the same test and J(refined) < J(generic); otherwise the alias returns the generic grid
(method ``"generic"``).

**Why the tolerance is 50 %, not 5 %.** With two GATE problems per kind a per-kind test is decided by those
few problems. ``python benchmarks/bench_promise.py --files scaled-linear,ddpm-linear,edm,flow-shift3 --nfe
5,8,10,15,20,30 --solvers dpmpp-2,dpmpp-3,unipc-2 --tolerance T`` on release 2026.12.07.3's refined grids (its
"with a solver entry" lines: 162 entries at NFE 5-10, 36 at 15-30) measured, on the REPORT problems, the
geometric mean of the shipped grid's error over the best single rule's, NFE 5-10 / 15-30, and the worst entry:
every refined grid shipped 0.618 / 0.472, worst 2.02 / 1.38; T = 5 % 0.642 / 0.526, worst 1.84 / 1.85 (it
ships rules that GATE ranks best and REPORT does not); T = 50 % 0.627 / 0.504, worst 1.47 / 1.15; no per-kind
test at all (T = 100) 0.627 / 0.506, worst 1.47 / 1.16. The soft maximum does the work; the tolerance only
refuses a gross loss on one kind.

**Grids as they ship.** Every grid, rule or candidate, is weighed as :func:`shipped` makes it: on a discrete
schedule its nodes on distinct integer timesteps at those timesteps' λ, the only λ's the model is called at.

**Figures** (REPORT problems of the decision's kinds): against R°, the rule of lowest geometric-mean error over
those problems (the best single rule in hindsight), ``ratio`` = exp(mean_p log(e_p/e_p(R°))) and per kind the
same over the kind's problems; ``mean_l2`` (mean over problems of e_p) and ``median_l2`` (mean over problems of
the batch median).

Speed: every grid is sampled once per decision cell by :func:`builder.select.refine.errors` (the refine stage's
own differentiable samplers, without gradient), memoised in ``options["memo"]``; decisions themselves are
arithmetic on the errors. Run with ``torch.set_num_threads(1)``: deterministic, and faster on these sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .held_out import Split, clear_cache, split
from .host_rules import host_rules
from .refine import TEMPERATURE
from .robust import solver_spec

__all__ = [
    "METHODS",
    "PROFILE_KINDS",
    "TEMPERATURE",
    "TOLERANCE",
    "Decision",
    "Split",
    "choose",
    "clear_cache",
    "decide_cell",
    "decide",
    "evaluate",
    "host_rules",
    "kind_log_ratios",
    "kind_noise",
    "objective",
    "report_figures",
    "shipped",
    "split",
]

TOLERANCE = 0.5  # a refined grid may lose to the best rule on no GATE kind by more than this, beyond noise
METHODS = ("refined", "rule", "generic")
PROFILE_KINDS = {
    "latent": ("latent-like", "latent-fine", "scale", "guided"),
    "pixel": ("pixel-like", "digits"),
}
DEFAULTS = {"per_kind": 1, "batch": 16, "kinds": None, "temperature": TEMPERATURE, "tolerance": TOLERANCE}


# ---- the rule, on measured errors (pure) ------------------------------------------------------------------------


def _kind_index(kinds: Sequence[str], scope: Sequence[str] | None) -> dict[str, np.ndarray]:
    names = [k for k in dict.fromkeys(kinds) if scope is None or k in scope]
    return {k: np.array([i for i, kk in enumerate(kinds) if kk == k]) for k in names}


def objective(
    log_err: Mapping[str, np.ndarray],
    kinds: Sequence[str],
    rules: Sequence[str],
    *,
    temperature: float = TEMPERATURE,
    scope: Sequence[str] | None = None,
) -> dict[str, float]:
    """{grid: J(grid)}: soft maximum over the kinds in ``scope`` (None: all) of the grid's mean log ratio to that
    kind's best rule (module docstring). ``log_err``: {grid: (P,) log e_p}; ``kinds``: each problem's kind."""
    idx = _kind_index(kinds, scope)
    best = {k: min(float(log_err[r][i].mean()) for r in rules) for k, i in idx.items()}
    out = {}
    for name, le in log_err.items():
        ell = np.array([float(le[i].mean()) - best[k] for k, i in idx.items()])
        out[name] = float(temperature * (np.logaddexp.reduce(ell / temperature) - math.log(ell.size)))
    return out


def kind_noise(
    errs: Mapping[str, Sequence[np.ndarray]],
    kinds: Sequence[str],
    grid: str,
    ref: str,
    scope: Sequence[str] | None = None,
) -> dict[str, float]:
    """{kind: se_k}: the standard error of the mean of the paired per-sample log ratios log(e_pb(grid)/e_pb(ref))
    over the kind's problems p and samples b (``errs``: {grid: per-problem (B,) errors})."""
    out = {}
    for k, i in _kind_index(kinds, scope).items():
        d = np.concatenate([np.log(np.asarray(errs[grid][j]) / np.asarray(errs[ref][j])) for j in i])
        out[k] = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
    return out


def kind_log_ratios(
    log_err: Mapping[str, np.ndarray], kinds: Sequence[str], grid: str, ref: str, scope: Sequence[str] | None = None
) -> dict[str, float]:
    """{kind: mean_{p ∈ kind} log(e_p(grid)/e_p(ref))} over the kinds in ``scope``."""
    d = log_err[grid] - log_err[ref]
    return {k: float(d[i].mean()) for k, i in _kind_index(kinds, scope).items()}


def report_figures(
    errs: Mapping[str, Sequence[np.ndarray]],
    kinds: Sequence[str],
    grid: str,
    rules: Sequence[str],
    scope: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Figures of ``grid`` on the problems of ``errs`` ({grid: per-problem (B,) L2 errors}) whose kind is in
    ``scope``: ``ratio`` and ``by_kind`` (geometric-mean ratios to R°, the rule of lowest geometric-mean error
    over those problems), ``best_rule`` (R°), ``mean_l2``, ``median_l2``."""
    idx = _kind_index(kinds, scope)
    sel = np.concatenate(list(idx.values()))
    log_err = {k: np.log([float(np.mean(errs[k][i])) for i in sel]) for k in [grid, *rules]}
    local = [kinds[i] for i in sel]
    best = min(rules, key=lambda r: (float(log_err[r].mean()), list(rules).index(r)))
    by_kind = {k: math.exp(v) for k, v in kind_log_ratios(log_err, local, grid, best).items()}
    return {
        "ratio": math.exp(float((log_err[grid] - log_err[best]).mean())),
        "by_kind": by_kind,
        "best_rule": best,
        "mean_l2": float(np.mean([np.mean(errs[grid][i]) for i in sel])),
        "median_l2": float(np.mean([np.median(errs[grid][i]) for i in sel])),
    }


@dataclass(frozen=True)
class Decision:
    """What an entry ships: ``name`` (``"refined"``, ``"generic"`` or the rule's name), ``lam`` (its λ-grid),
    ``method`` (:data:`METHODS`), ``best_rule`` (the best single rule on GATE), ``objective`` ({grid: J on
    GATE}), ``gate_by_kind`` ({kind: ℓ_k(refined, best rule)} where a refined candidate was tested) and the
    REPORT figures (:func:`report_figures`): ``ratio``, ``by_kind``, ``report_best_rule``, ``mean_l2``,
    ``median_l2``; ``refined_report``: the same figures of the ``"refined"`` candidate."""

    name: str
    lam: tuple[float, ...]
    method: str
    best_rule: str
    objective: dict[str, float]
    gate_by_kind: dict[str, float]
    ratio: float
    by_kind: dict[str, float]
    report_best_rule: str
    mean_l2: float
    median_l2: float
    reasons: tuple[str, ...] = field(default=())
    refined_report: dict[str, Any] | None = None  # the REPORT figures of the "refined" candidate, where one was weighed


def decide(
    gate_errs: Mapping[str, Sequence[np.ndarray]],
    gate_kinds: Sequence[str],
    report_errs: Mapping[str, Sequence[np.ndarray]],
    report_kinds: Sequence[str],
    grids: Mapping[str, Sequence[float]],
    rules: Sequence[str],
    *,
    scope: Sequence[str] | None = None,
    temperature: float = TEMPERATURE,
    tolerance: float = TOLERANCE,
) -> Decision:
    """The rule of the module docstring on measured errors ({grid: per-problem (B,) L2 errors} on GATE and on
    REPORT); ``grids`` has every rule and the candidates (``"refined"``, and ``"generic"`` for a profile
    decision); ``rules``: the names that are host rules, in order (ties go to the earlier)."""
    if not rules:
        raise ValueError("decide needs at least one rule")
    names = [*rules, *[c for c in ("refined", "generic") if c in grids]]
    log_err = {k: np.log([float(np.mean(e)) for e in gate_errs[k]]) for k in names}
    j = objective(log_err, gate_kinds, rules, temperature=temperature, scope=scope)
    best = min(rules, key=lambda r: (j[r], list(rules).index(r)))
    chosen, method, by_kind, reasons = best, "rule", {}, []
    if "refined" in grids:
        by_kind = kind_log_ratios(log_err, gate_kinds, "refined", best, scope)
        noise = kind_noise(gate_errs, gate_kinds, "refined", best, scope)
        worst = max(by_kind, key=lambda k: by_kind[k] - 2 * noise[k])
        ok = True
        if not j["refined"] < j[best] - 1e-12:
            ok = False
            reasons.append(f"J(refined) {j['refined']:.4f} ≥ J({best}) {j[best]:.4f}")
        if by_kind[worst] - 2 * noise[worst] > math.log1p(tolerance):
            ok = False
            reasons.append(f"loses {math.expm1(by_kind[worst]):.1%} (se {noise[worst]:.3f}) to {best} on {worst}")
        if "generic" in grids and not j["refined"] < j["generic"] - 1e-12:
            ok = False
            reasons.append(f"J(refined) {j['refined']:.4f} ≥ J(generic) {j['generic']:.4f}")
        if ok:
            chosen, method = "refined", "refined"
        elif "generic" in grids:
            chosen, method = "generic", "generic"
    elif "generic" in grids:
        chosen, method = "generic", "generic"
    fig = report_figures(report_errs, report_kinds, chosen, rules, scope)
    refined_fig = report_figures(report_errs, report_kinds, "refined", rules, scope) if "refined" in grids else None
    return Decision(
        name=chosen,
        lam=tuple(float(v) for v in grids[chosen]),
        method=method,
        best_rule=best,
        objective={k: round(v, 6) for k, v in j.items()},
        gate_by_kind=by_kind,
        ratio=fig["ratio"],
        by_kind=fig["by_kind"],
        report_best_rule=fig["best_rule"],
        mean_l2=fig["mean_l2"],
        median_l2=fig["median_l2"],
        reasons=tuple(reasons),
        refined_report=refined_fig,
    )


# ---- measuring, then deciding ---------------------------------------------------------------------------------


def evaluate(
    grids: Mapping[str, Sequence[float]], bound, spec: Mapping[str, Any], memo: dict | None = None
) -> dict[str, list[np.ndarray]]:
    """{grid: per-problem (B,) L2 errors} on ``bound`` with the sampler ``spec`` (:func:`solver_spec`), by
    :func:`builder.select.refine.errors`; ``memo`` (a dict) keeps them by (bound, sampler, grid bytes)."""
    from .refine import errors

    out = {}
    for name, g in grids.items():
        lam = np.ascontiguousarray(g, dtype=np.float64)
        key = (id(bound), tuple(sorted(spec.items())), lam.tobytes())
        if memo is None or key not in memo:
            value = errors(lam, bound, **spec)
            if memo is None:
                out[name] = value
                continue
            memo[key] = value
        out[name] = memo[key]
    return out


def shipped(lambdas: Sequence[float], schedule) -> np.ndarray:
    """A grid as an entry ships it and a host runs it: nodes on distinct integer timesteps
    (:func:`~builder.solve.schedules.separate_timesteps`), each at its timestep's λ
    (:func:`~builder.select.host_grid.as_run`); unchanged on a continuous schedule."""
    from ..solve.schedules import separate_timesteps
    from .host_grid import as_run

    return as_run(separate_timesteps(np.asarray(lambdas, dtype=np.float64), schedule), schedule)


def choose(
    schedule,
    solver: str,
    order: int,
    ending: str,
    nfe: int,
    candidates: Mapping[str, Sequence[float]],
    *,
    profile: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Decision:
    """The :class:`Decision` for one entry: ``candidates`` ({"refined": λ} for a generic entry, {"refined": λ,
    "generic": λ of the shipped generic entry} for a ``profile`` entry, {} above the refined NFEs) against every
    :func:`host_rules` grid, on the kinds' GATE problems (the profile's kinds for a profile entry).

    ``options``: ``per_kind`` (GATE and REPORT problems per kind, default 1), ``batch`` (16), ``kinds`` (a
    subset of :data:`builder.select.kinds.KINDS`; default all), ``temperature``
    (:data:`TEMPERATURE`), ``tolerance`` (:data:`TOLERANCE`), ``memo`` (a dict that keeps measured errors
    between calls: pass the same one for the entries of one cell)."""
    opt = DEFAULTS | dict(options or {})
    unknown = set(candidates) - {"refined", "generic"}
    if unknown:
        raise ValueError(f"candidates must be 'refined' and/or 'generic', got {sorted(unknown)}")
    if profile is not None and profile not in PROFILE_KINDS:
        raise ValueError(f"profile must be None or one of {tuple(PROFILE_KINDS)}, got {profile!r}")
    rules = {name: shipped(g, schedule) for name, g in host_rules(schedule, nfe, ending).items()}
    grids = {**rules, **{k: shipped(v, schedule) for k, v in candidates.items()}}
    sp = split(schedule, ending, per_kind=opt["per_kind"], batch=opt["batch"], kinds=opt["kinds"])
    spec = solver_spec(solver, order)
    memo = opt.get("memo")
    return decide(
        evaluate(grids, sp.gate, spec, memo),
        sp.gate_kinds,
        evaluate(grids, sp.report, spec, memo),
        sp.report_kinds,
        grids,
        list(rules),
        scope=None if profile is None else PROFILE_KINDS[profile],
        temperature=opt["temperature"],
        tolerance=opt["tolerance"],
    )


def decide_cell(
    schedule,
    solver: str,
    order: int,
    ending: str,
    nfe: int,
    refined: Sequence[float] | None = None,
    profiles: Mapping[str, Sequence[float]] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Decision]:
    """Every decision of one (schedule, solver, order, ending, NFE) cell: ``"generic"`` (:func:`choose` with
    ``refined``, the generic chain's grid, or with no candidate: the best rule), then each profile of
    ``profiles`` ({profile: its refined grid}) against that generic decision's grid. One memo for the cell, so
    every grid is sampled once."""
    opt = dict(options or {})
    opt.setdefault("memo", {})
    out = {
        "generic": choose(
            schedule, solver, order, ending, nfe, {} if refined is None else {"refined": refined}, options=opt
        )
    }
    for profile, lam in (profiles or {}).items():
        out[profile] = choose(
            schedule,
            solver,
            order,
            ending,
            nfe,
            {"refined": lam, "generic": out["generic"].lam},
            profile=profile,
            options=opt,
        )
    return out
