"""The selection that keeps the product's promise: an entry ships a refined grid only where, on held-out kinds of
data, it beats every recipe a user can pick in the host; otherwise it ships the best such recipe, named.

A pure numerical core (no file reading, no registry writing): the sweep hands it λ-grids, it hands back a
:class:`Decision`. ``benchmarks/bench_promise.py`` runs it over the shipped registry.

**Host rules** (:func:`host_rules`): the grids a user can pick, as formulas. s = σ/α = e^{−λ} is the EDM /
k-diffusion σ of a VP model; a discrete schedule's timestep n (0…999) is t = (n + 1)/1000 (the schedule's own
embedding); ComfyUI's flow table index i is t = (i + 1)/1000 as well (``ModelSamplingDiscreteFlow``).

- from :func:`builder.select.refine.rule_grids` (every schedule): ``uniform-lambda`` (DPM-Solver's logSNR,
  diffusers ``use_lu_lambdas``; also ``exponential``: k-diffusion's ``get_sigmas_exponential`` and diffusers'
  ``use_exponential_sigmas`` are uniform in log s = −λ, the same grid), ``uniform-t``, ``uniform-sqrt-t``,
  ``karras-rho7``; scaled-linear: ``ays-sd1``, ``ays-sdxl`` (ComfyUI's 10-step rows, ``loglinear_interp`` to
  other N), ``gits``; flow: ``oss-flux``, ``oss-wan``;
- ``kl-optimal`` (every schedule): s_i = tan((1 − a_i) atan s_max + a_i atan s_min), a_i = i/(M − 1)
  (ComfyUI ``kl_optimal_scheduler``);
- ``beta-0.6`` (VP and EDM schedules; diffusers ``use_beta_sigmas``): s_i = s_min + F⁻¹(1 − i/(M − 1)) (s_max −
  s_min), F the Beta(0.6, 0.6) CDF;
- discrete schedules only, diffusers' ``timestep_spacing`` (steps_offset 1 on scaled-linear, 0 otherwise, as
  SD's and DDPM's configs): ``leading`` n_i = (M − 1 − i)·⌊1000/M⌋ + offset; ``trailing``
  n_i = round(1000 − i·1000/M) − 1; ``linspace`` n_i = round(999 (1 − i/(M − 1)));
- discrete and flow schedules, ComfyUI's schedulers on the model's table: ``sgm-uniform`` n_i = 999 (1 − i/M)
  (fractional, i < M); ``simple`` n_i = 999 − ⌊i·1000/M⌋; ``beta-comfy`` n_i = round(999 F⁻¹(1 − i/M)) (ComfyUI
  ``beta_scheduler``, which drops repeated timesteps; here a rule with a repeat does not apply). ComfyUI's
  ``normal`` is ``linspace`` without the rounding and is left out.

Each formula gives M finite nodes (noisiest first). **Endings**, in the registry's convention: ``"zero"`` (N
calls, the last step to σ = 0, as diffusers / k-diffusion / ComfyUI run): the rule's M = N nodes; ``"eps"`` (N
steps to λ_ε): the M = N + 1 rule when the rule ends at λ_ε (s_min), else the M = N rule followed by λ_ε (a
diffusers scheduler with ``final_sigmas_type="sigma_min"``). The first node is the schedule's λ_T (every
sampler here starts from x_T there; ``leading`` and the flow table's t = 1 are moved to it, as
:mod:`builder.solve.grids` does for tables) and nodes are clipped to ≤ λ_ε; a grid that is then not strictly
increasing does not apply (left out). Grids equal to an earlier rule's (to 1e-12) are left out too.

**GATE and REPORT problems** (:func:`split`): the held-out kinds of :mod:`builder.select.kinds`; of each kind's
problems, the even-indexed ones are GATE (used to choose), the odd-indexed ones REPORT (used only for the
figures). Noise seeds are disjoint (7000 + 100·kind + j); mixture seeds too, except where a kind has one data
set (``digits``: the same mixture, other noises; ``guided``: the same latent mixture, other guidance scales).

**The rule** (:func:`decide`; the issue's text). With e_p(g) the mean over problem p's batch of ‖x_g − x_exact‖₂,
the per-kind log ratio of grid g to grid r is ℓ_k(g, r) = mean_{p ∈ k} log(e_p(g)/e_p(r)), and the robust
objective of g is the **soft maximum** over kinds of its log ratio to that kind's best rule:

    J(g) = T log( (1/K) Σ_k exp(ℓ_k(g, R*_k) / T) ),   T = :data:`TEMPERATURE` = 0.05,

with R*_k the rule of lowest mean log error on kind k (J lies between the mean and the maximum over kinds; a
kind 5 % worse than the others weighs e ≈ 2.7× as much). The best single baseline is the rule of lowest J on
GATE. A ``"refined"`` candidate ships only where J(refined) < J(best rule) and ℓ_k(refined, best rule) ≤
log(1 + :data:`TOLERANCE`) on every GATE kind; otherwise the entry is the best rule's grid (method ``"rule"``,
named). A profile decision (``profile="latent"`` / ``"pixel"``: only that profile's kinds,
:data:`PROFILE_KINDS`) also gets the shipped generic grid as candidate ``"generic"``: its refined grid ships
only where it passes the same test and J(refined) < J(generic); otherwise the alias returns the generic entry
(method ``"generic"``).

**Figures** (REPORT problems of the decision's kinds): against R°, the rule of lowest geometric-mean error over
those problems (the best single rule in hindsight), ``ratio`` = exp(mean_p log(e_p/e_p(R°))) and per kind the
same over the kind's problems; ``mean_l2`` (mean over problems of e_p) and ``median_l2`` (mean over problems of
the batch median).

Speed: every grid is sampled once per decision cell by :func:`builder.select.refine.errors` (the refine stage's
own differentiable samplers, without gradient), memoised in ``options["memo"]``; decisions themselves are
arithmetic on the errors. Run with ``torch.set_num_threads(1)``: deterministic, and faster on these sizes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import kinds as kinds_mod
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
    "objective",
    "report_figures",
    "split",
]

TEMPERATURE = 0.05  # soft-maximum temperature, in log-ratio units
TOLERANCE = 0.05  # a refined grid may lose to the best rule on no GATE kind by more than this
METHODS = ("refined", "rule", "generic")
PROFILE_KINDS = {
    "latent": ("latent-like", "latent-fine", "scale", "guided"),
    "pixel": ("pixel-like", "digits"),
}
DEFAULTS = {"per_kind": 1, "batch": 16, "kinds": None, "temperature": TEMPERATURE, "tolerance": TOLERANCE}
BETA_AB = 0.6


# ---- host rules ----------------------------------------------------------------------------------------------


def _beta_ppf(q: np.ndarray) -> np.ndarray:
    from scipy.stats import beta

    return beta.ppf(q, BETA_AB, BETA_AB)


def _lam_of_index(schedule, n: np.ndarray) -> np.ndarray:
    """λ at table index n (0…999, fractional allowed): t = (n + 1)/1000 (discrete schedules, ComfyUI's flow)."""
    with np.errstate(divide="ignore"):
        return schedule.marginal_lambda((np.asarray(n, dtype=np.float64) + 1.0) / 1000.0)


def _lam_of_s(s: np.ndarray) -> np.ndarray:
    return -np.log(np.asarray(s, dtype=np.float64))


def _tables(schedule) -> dict[str, Callable[[int], np.ndarray]]:
    """{rule: M ↦ M λ-nodes, noisiest first} for the rules not in ``rule_grids`` (module docstring)."""
    s_max, s_min = math.exp(-schedule.lambda_start), math.exp(-schedule.lambda_end)
    flow = schedule.family == "flow"
    discrete = schedule.family == "vp-discrete"
    out: dict[str, Callable[[int], np.ndarray]] = {}
    if flow:  # ComfyUI's kl_optimal on the flow σ = 1/(1 + e^λ)
        f_max, f_min = 1.0 / (1.0 + math.exp(schedule.lambda_start)), 1.0 / (1.0 + math.exp(schedule.lambda_end))

        def kl_flow(m: int) -> np.ndarray:
            a = np.arange(m) / (m - 1)
            f = np.tan((1 - a) * math.atan(f_max) + a * math.atan(f_min))
            return np.log1p(-f) - np.log(f)

        out["kl-optimal"] = kl_flow
    else:
        out["kl-optimal"] = lambda m: _lam_of_s(
            np.tan((1 - np.arange(m) / (m - 1)) * math.atan(s_max) + np.arange(m) / (m - 1) * math.atan(s_min))
        )
        out["beta-0.6"] = lambda m: _lam_of_s(s_min + _beta_ppf(1 - np.arange(m) / (m - 1)) * (s_max - s_min))
    if discrete:
        offset = 1 if schedule.name == "scaled-linear" else 0
        out["leading"] = lambda m: _lam_of_index(schedule, (m - 1 - np.arange(m)) * (1000 // m) + offset)
        out["trailing"] = lambda m: _lam_of_index(schedule, np.round(1000 - np.arange(m) * 1000 / m) - 1)
        out["linspace"] = lambda m: _lam_of_index(schedule, np.round(999 * (1 - np.arange(m) / (m - 1))))
    if discrete or flow:
        out["sgm-uniform"] = lambda m: _lam_of_index(schedule, 999 * (1 - np.arange(m) / m))
        out["simple"] = lambda m: _lam_of_index(schedule, 999 - np.floor(np.arange(m) * 1000 / m))
        out["beta-comfy"] = lambda m: _lam_of_index(schedule, np.round(999 * _beta_ppf(1 - np.arange(m) / m)))
    return out


def _to_grid(table: Callable[[int], np.ndarray], schedule, nfe: int, ending: str) -> np.ndarray | None:
    """The registry's grid of a host table for ``nfe`` calls and ``ending`` (module docstring, Endings)."""
    lam_t, lam_e = schedule.lambda_start, schedule.lambda_end
    if ending == "zero":
        lam = table(nfe) if nfe >= 2 else np.array([lam_t])
    else:
        lam = table(nfe) if nfe >= 2 else np.array([lam_t, lam_e])
        if abs(lam[-1] - lam_e) <= 1e-9 * max(1.0, abs(lam_e)):
            lam = table(nfe + 1)
        else:
            lam = np.append(lam, lam_e)
    lam = np.minimum(np.array(lam, dtype=np.float64), lam_e)
    lam[0] = lam_t
    if ending == "eps":
        lam[-1] = lam_e
    return lam if np.all(np.isfinite(lam)) and np.all(np.diff(lam) > 0) else None


def host_rules(schedule, nfe: int, ending: str = "eps") -> dict[str, np.ndarray]:
    """{rule: λ-grid} of every host rule that applies to ``schedule`` at ``nfe`` calls, in the registry's
    convention for ``ending`` (N + 1 nodes for ``"eps"``, N for ``"zero"``); module docstring for the formulas."""
    from .refine import rule_grids  # torch: not needed for the formulas

    out = dict(rule_grids(schedule, nfe, ending))
    for name, table in _tables(schedule).items():
        grid = _to_grid(table, schedule, nfe, ending)
        if grid is not None and not any(g.shape == grid.shape and np.allclose(g, grid, 0, 1e-12) for g in out.values()):
            out[name] = grid
    return out


# ---- GATE and REPORT problems ----------------------------------------------------------------------------------


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
    ``median_l2``."""

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
        worst = max(by_kind, key=by_kind.get)
        ok = True
        if not j["refined"] < j[best] - 1e-12:
            ok = False
            reasons.append(f"J(refined) {j['refined']:.4f} ≥ J({best}) {j[best]:.4f}")
        if by_kind[worst] > math.log1p(tolerance):
            ok = False
            reasons.append(f"loses {math.expm1(by_kind[worst]):.1%} to {best} on {worst}")
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
    rules = host_rules(schedule, nfe, ending)
    grids = {**rules, **{k: np.asarray(v, dtype=np.float64) for k, v in candidates.items()}}
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
