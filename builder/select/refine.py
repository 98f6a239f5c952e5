"""The refine stage: minimise the fit split's sampling error over a grid's interior λ's.

**Loss.** With e_p(λ) the mean over problem p's batch of ‖x_sampler − x_exact‖₂ (the paper's mean L2) and
e_p^ref the same for a reference grid (uniform λ by default), ℓ_p = log(e_p / e_p^ref) and

    L(λ) = mean_p ℓ_p  +  w · mean_p softplus(k · ℓ_p),

the log of the geometric-mean error ratio plus an optional soft penalty (``penalty=w``, ``sharpness=k``)
on problems that do worse than the reference (softplus(kℓ) ≈ kℓ for ℓ > 0, ≈ 0 for ℓ < 0).

**Robust over kinds** (``kinds``: a label per problem, e.g. the family's profiles). Each kind k is measured
against its own best rule R*_k (the start among ``rules`` of lowest mean_{p∈k} log e_p), and the loss is the
soft maximum over kinds, the objective the held-out verdict uses (:mod:`builder.select.promise`):

    ℓ_k(λ) = mean_{p∈k} log(e_p(λ) / e_p(R*_k)),   L(λ) = T log( (1/K) Σ_k exp(ℓ_k(λ)/T) ),

T = ``temperature``: between the mean over kinds (T → ∞) and the worst kind (T → 0), so no kind is given up
for the average. The penalty applies to the ℓ_p of each problem against its kind's R*_k.

**Coordinates.** Unconstrained logits q ∈ R^N (:func:`grid_from_q`): the N gaps are

    h = h_min + (λ_ε − λ_T − N h_min) · softmax(q),   h_min = (λ_ε − λ_T)/(50 N),

so every grid is strictly increasing, keeps its endpoints exactly and has no step below h_min (no node so
close to its neighbour that its model evaluation is wasted). ``ending="eps"``: the N gaps are the N steps
of an (N+1)-node grid. ``ending="zero"``: the first N − 1 gaps are steps between N finite nodes and the
N-th is the leftover λ_ε − λ_{N−1} ≥ h_min, so the last evaluated node is free but stays at least h_min
below λ_ε (the schedule's smallest trained noise level); the final step to σ = 0 follows it.

**Optimiser.** scipy L-BFGS-B (``jac=True``, no bounds) on L(q), the gradient by torch float64 autograd
through the samplers' coefficients and the closed-form denoiser (:mod:`.differentiable`). Every start is
scored on its own grid; the ``top`` best are refined from :func:`unsaturated` logits (a gap at the h_min
floor, such as a σ = 0 rule grid's leftover gap, has softmax weight ≈ 0 and a vanishing gradient, so the
optimiser could never move it; its weight is raised to :data:`SATURATION_FLOOR`/N first); the lowest final
loss wins (ties: the earlier start), and callers compare it with the start's own loss. Deterministic:
fixed problems and noises, no random restarts; run with ``torch.set_num_threads(1)`` for bit-identical
results across machines' thread counts.

Discrete schedules (ddpm-linear, scaled-linear) feed the model integer timesteps:
:func:`~builder.solve.schedules.separate_timesteps` moves nodes that would share one apart (two nodes on one
timestep are a wasted model call or a zero-length step in diffusers) and :func:`builder.select.host_grid.as_run`
puts every node at its timestep's λ (the grid a host runs).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import OptimizeResult, minimize

from ..solve.grids import FORMULA_BASELINES, LAST_SIGMA_ZEROED, applicable_baselines, baseline_lambdas
from .differentiable import DT, TorchMixture, make_plan, sample
from .truth import ground_truth

__all__ = [
    "MIN_STEP_FRACTION",
    "SATURATION_FLOOR",
    "TEMPERATURE",
    "Bound",
    "bind",
    "errors",
    "grid_from_q",
    "insert_node",
    "q_from_grid",
    "unsaturated",
    "refine",
    "rule_grid",
    "rule_grids",
    "rule_starts",
]

TEMPERATURE = 0.05  # the soft maximum over kinds, in log-ratio units: here and in the held-out verdict (promise)
MIN_STEP_FRACTION = 1.0 / 50.0  # h_min = span · MIN_STEP_FRACTION / N
SATURATION_FLOOR = 0.05  # a refinement starts with every gap's softmax weight ≥ this / N (unsaturated)


@dataclass(frozen=True, eq=False)
class Bound:
    """Problems bound to endpoints and an ending: per problem its name, torch denoiser, x_T and exact answer
    (at λ_ε for ``"eps"``, at λ = +∞ for ``"zero"``)."""

    names: tuple[str, ...]
    denoisers: tuple[TorchMixture, ...]
    x_start: tuple[torch.Tensor, ...]
    x_exact: tuple[torch.Tensor, ...]
    lambda_start: float
    lambda_end: float
    ending: str
    measured: dict = field(default_factory=dict, init=False, repr=False)  # errors() memo: (grid bytes, sampler)


def bind(problems: Sequence, lambda_start: float, lambda_end: float, ending: str = "eps") -> Bound:
    """Bind family problems (``.name``, ``.mixture``, ``.batch``, ``.seed``) to a schedule's endpoints; exact
    answers come from :func:`builder.select.truth.ground_truth` (cached on disk)."""
    target = float(lambda_end) if ending == "eps" else math.inf
    truths = [ground_truth(p.mixture, lambda_start, target, batch=p.batch, seed=p.seed) for p in problems]
    return Bound(
        tuple(p.name for p in problems),
        tuple(TorchMixture(p.mixture) for p in problems),
        tuple(torch.from_numpy(t.x_start) for t in truths),
        tuple(torch.from_numpy(t.x_end) for t in truths),
        float(lambda_start),
        float(lambda_end),
        ending,
    )


def _mean_errors(lam: torch.Tensor, bound: Bound, solver: Mapping) -> list[torch.Tensor]:
    plan = make_plan(lam, ending=bound.ending, **solver)
    out = []
    for tm, xs, xe in zip(bound.denoisers, bound.x_start, bound.x_exact, strict=True):
        x = sample(tm, xs, lam, ending=bound.ending, plan=plan, **solver)
        out.append(torch.linalg.vector_norm(x - xe, dim=1).mean())
    return out


def errors(lambdas: Sequence[float], bound: Bound, **solver) -> list[np.ndarray]:
    """Per-sample L2 errors ‖x_b − x_b^exact‖₂ of the grid on every bound problem (no gradient).

    Memoised on ``bound`` by the grid's float64 bytes and the sampler (a pure function of them): a chain
    scores its rule grids as starts and measures them again as its figures' baselines."""
    lam_np = np.ascontiguousarray(lambdas, dtype=np.float64)
    key = (lam_np.tobytes(), tuple(sorted(solver.items())))
    if key not in bound.measured:
        lam = torch.as_tensor(lam_np)
        with torch.no_grad():
            plan = make_plan(lam, ending=bound.ending, **solver)
            bound.measured[key] = [
                torch.linalg.vector_norm(sample(tm, xs, lam, ending=bound.ending, plan=plan, **solver) - xe, dim=1)
                .numpy()
                .copy()
                for tm, xs, xe in zip(bound.denoisers, bound.x_start, bound.x_exact, strict=True)
            ]
    return [e.copy() for e in bound.measured[key]]


def grid_from_q(q: torch.Tensor, lambda_start: float, lambda_end: float, ending: str = "eps") -> torch.Tensor:
    """λ-grid from logits q (N gaps): N + 1 nodes (``"eps"``) or N finite nodes (``"zero"``); module docstring."""
    n = q.shape[0]
    span = lambda_end - lambda_start
    hmin = span * MIN_STEP_FRACTION / n
    h = hmin + (span - n * hmin) * torch.softmax(q, 0)
    nodes = lambda_start + torch.cat([torch.zeros(1, dtype=DT), torch.cumsum(h, 0)])
    nodes = torch.cat([nodes[:-1], torch.tensor([lambda_end], dtype=DT)])  # the endpoint exactly
    return nodes if ending == "eps" else nodes[:-1]


def unsaturated(q: np.ndarray, floor: float | None = None) -> np.ndarray:
    """Logits whose softmax weights are those of ``q`` raised to at least ``floor``/N and renormalised
    (unchanged where every weight is already above it): the optimiser's start, so no gap starts where its
    gradient vanishes. ``floor`` defaults to :data:`SATURATION_FLOOR`."""
    floor = SATURATION_FLOOR if floor is None else floor
    w = np.exp(q - np.max(q))
    w /= w.sum()
    if np.all(w >= floor / w.size):
        return np.asarray(q, dtype=np.float64)
    w = np.maximum(w, floor / w.size)
    out = np.log(w / w.sum())
    return out - out.mean()


def q_from_grid(lambdas: Sequence[float], lambda_start: float, lambda_end: float, ending: str = "eps") -> np.ndarray:
    """Logits whose :func:`grid_from_q` is ``lambdas`` (gaps below h_min are raised to just above it, and
    the others rescaled to keep the span). Centred: q is defined up to a constant."""
    lam = np.asarray(lambdas, dtype=np.float64)
    if ending == "zero":
        lam = np.append(lam, lambda_end)
    h = np.diff(lam)
    n = h.size
    span = lambda_end - lambda_start
    hmin = span * MIN_STEP_FRACTION / n
    q = np.log(np.maximum(h - hmin, 1e-3 * hmin) / (span - n * hmin))
    return q - q.mean()


def rule_grid(name: str, schedule, nfe: int, ending: str = "eps") -> np.ndarray | None:
    """A rule or published table for ``nfe`` model calls, as the hosts run it: its N-step grid (``"eps"``), or,
    for ``"zero"``, N nodes followed by σ = 0 — for a formula rule its (N − 1)-step grid over [λ_T, λ_ε] (as
    diffusers and k-diffusion append a zero to N σ's from σ_max to σ_min), for a table of
    :data:`~builder.solve.grids.LAST_SIGMA_ZEROED` its N-step row without its last node (as ComfyUI sets that
    σ to 0, and diffusers runs AYS's 10 timesteps). None where a table does not fit."""
    if ending == "zero" and name in LAST_SIGMA_ZEROED:
        grid = baseline_lambdas(name, schedule, nfe)
        return None if grid is None else grid[:-1]
    return baseline_lambdas(name, schedule, nfe if ending == "eps" else nfe - 1)


def rule_grids(schedule, nfe: int, ending: str = "eps", names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """{name: :func:`rule_grid`} for ``names``, by default every rule and published table that applies to
    ``schedule`` (builder.solve.grids.applicable_baselines); a table that does not fit at ``nfe`` is left out."""
    names = applicable_baselines(schedule) if names is None else names
    return {name: g for name in names if (g := rule_grid(name, schedule, nfe, ending)) is not None}


def rule_starts(schedule, nfe: int, ending: str = "eps") -> dict[str, np.ndarray]:
    """{rule: grid} for the four formula rules (uniform λ, uniform t, uniform √t, Karras ρ = 7)."""
    return rule_grids(schedule, nfe, ending, FORMULA_BASELINES)


def insert_node(lambdas: Sequence[float], ending: str = "eps", lambda_end: float | None = None) -> np.ndarray:
    """A grid with one more node and the same node density: the (N+1)-step grid λ'_j = Λ(j·N/(N+1)) with Λ
    the piecewise-linear interpolant of the N-step grid over its index (a warm start for NFE N + 1).
    ``"zero"`` grids are extended by their leftover gap to ``lambda_end`` first and cut again after."""
    lam = np.asarray(lambdas, dtype=np.float64)
    if ending == "zero":
        if lambda_end is None:
            raise ValueError("insert_node: a 'zero' grid needs lambda_end")
        lam = np.append(lam, lambda_end)
    n = lam.size - 1
    out = np.interp(np.arange(n + 2) * n / (n + 1), np.arange(n + 1), lam)
    out[0], out[-1] = lam[0], lam[-1]
    return out if ending == "eps" else out[:-1]


@dataclass(frozen=True)
class _Objective:
    """What the loss compares: per problem log e_p of its reference (``log_ref``), and for the robust loss the
    kind index of every problem (``groups``, None: the plain mean) with the soft maximum's ``temperature``."""

    log_ref: np.ndarray
    penalty: float = 0.0
    sharpness: float = 10.0
    groups: np.ndarray | None = None
    temperature: float = TEMPERATURE

    def combine(self, ell, xp):
        """L from the per-problem log ratios ``ell`` (torch or numpy, ``xp`` the module; docstring formulas)."""
        if self.groups is None:
            loss = ell.mean()
        else:
            per_kind = [ell[self.groups == k].mean() for k in range(int(self.groups.max()) + 1)]
            t = self.temperature
            if xp is np:
                loss = t * (np.logaddexp.reduce(np.array(per_kind) / t) - math.log(len(per_kind)))
            else:
                loss = t * (torch.logsumexp(torch.stack(per_kind) / t, 0) - math.log(len(per_kind)))
        if self.penalty:
            soft = (
                np.logaddexp(0.0, self.sharpness * ell)
                if xp is np
                else torch.nn.functional.softplus(self.sharpness * ell)
            )
            loss = loss + self.penalty * soft.mean()
        return loss


def _loss_and_grad(q, bound: Bound, objective: _Objective, solver: Mapping):
    qt = torch.tensor(q, dtype=DT, requires_grad=True)
    lam = grid_from_q(qt, bound.lambda_start, bound.lambda_end, bound.ending)
    ell = torch.log(torch.stack(_mean_errors(lam, bound, solver))) - torch.from_numpy(objective.log_ref)
    loss = objective.combine(ell, torch)
    loss.backward()
    return float(loss.detach()), qt.grad.numpy().copy()


def _loss(lam: np.ndarray, bound: Bound, objective: _Objective, solver: Mapping):
    ell = np.log([e.mean() for e in errors(lam, bound, **solver)]) - objective.log_ref
    return float(objective.combine(ell, np))


def _objective(bound: Bound, starts, spec, reference, penalty, sharpness, kinds, rules, temperature) -> _Objective:
    """The loss's references: uniform λ (or ``reference``) for every problem, or with ``kinds`` each kind's
    best rule among ``rules`` (the module docstring)."""
    if kinds is None:
        ref = starts[reference] if isinstance(reference, str) else reference
        return _Objective(np.log([e.mean() for e in errors(ref, bound, **spec)]), penalty, sharpness)
    if len(kinds) != len(bound.names):
        raise ValueError(f"kinds has {len(kinds)} labels for {len(bound.names)} problems")
    names = sorted(set(kinds))
    groups = np.array([names.index(k) for k in kinds])
    rules = [r for r in (starts if rules is None else rules) if r in starts]
    if not rules:
        raise ValueError("a robust refine needs at least one of its rules among the starts")
    log_e = {r: np.log([e.mean() for e in errors(starts[r], bound, **spec)]) for r in rules}
    log_ref = np.empty(len(kinds))
    for k in range(len(names)):
        mine = groups == k
        best = min(rules, key=lambda r: (float(log_e[r][mine].mean()), rules.index(r)))
        log_ref[mine] = log_e[best][mine]
    return _Objective(log_ref, penalty, sharpness, groups, temperature)


def refine(
    problems: Bound,
    starts: Mapping[str, Sequence[float]],
    *,
    solver: str = "unipc",
    order: int = 3,
    variant: str = "bh2",
    ending: str | None = None,
    reference: str | Sequence[float] = "uniform-lambda",
    penalty: float = 0.0,
    sharpness: float = 10.0,
    kinds: Sequence[str] | None = None,
    rules: Sequence[str] | None = None,
    temperature: float = TEMPERATURE,
    top: int | None = 2,
    maxiter: int = 80,
    gtol: float = 1e-6,
    ftol: float = 1e-9,
) -> OptimizeResult:
    """Refine the interior λ's of the best ``top`` ``starts`` (None: all) on ``problems`` (a :class:`Bound`).

    ``reference``: the name of a start or a grid; the loss is relative to its errors (module docstring).
    ``kinds``: a kind label per problem: the robust loss instead, each kind against its best start among
    ``rules`` (names of starts; None: every start), soft maximum at ``temperature`` (module docstring).
    ``ending`` must match the bound problems' (None: take theirs). Returns a scipy ``OptimizeResult`` with
    ``x`` (the refined λ-grid), ``fun`` (its loss), ``success``, ``status``, ``message``, ``nit``, ``nfev``
    (of the winning run) and ``q``, ``start`` (the winning start's name), ``fun_start`` (its loss before),
    ``starts`` ({name: (loss before, loss after or None if not refined, iterations)}), ``nfev_total``,
    ``mean_log_ratio`` (the loss without the penalty; robust: the soft maximum without it), ``seconds``.
    """
    t0 = time.perf_counter()
    bound = problems
    if ending is not None and ending != bound.ending:
        raise ValueError(f"ending {ending!r} differs from the bound problems' {bound.ending!r}")
    if not starts:
        raise ValueError("refine needs at least one start")
    spec = {"solver": solver, "order": order} | ({"variant": variant} if solver == "unipc" else {})
    objective = _objective(bound, starts, spec, reference, penalty, sharpness, kinds, rules, temperature)
    scored = sorted(
        ((_loss(np.asarray(g), bound, objective, spec), i, name) for i, (name, g) in enumerate(starts.items())),
    )
    chosen = scored if top is None else scored[:top]
    best, log, nfev_total = None, {}, 0
    for loss0, _, name in chosen:
        q0 = unsaturated(q_from_grid(starts[name], bound.lambda_start, bound.lambda_end, bound.ending))
        res = minimize(
            _loss_and_grad,
            q0,
            args=(bound, objective, spec),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": maxiter, "gtol": gtol, "ftol": ftol},
        )
        nfev_total += int(res.nfev)
        log[name] = (loss0, float(res.fun), int(res.nit))
        if best is None or res.fun < best[0].fun - 1e-12:
            best = (res, name, loss0)
    for loss0, _, name in scored:
        log.setdefault(name, (loss0, None, 0))
    res, name, loss0 = best
    lam = grid_from_q(torch.tensor(res.x, dtype=DT), bound.lambda_start, bound.lambda_end, bound.ending).numpy()
    plain = _loss(lam, bound, dataclasses.replace(objective, penalty=0.0), spec)
    return OptimizeResult(
        x=lam,
        fun=float(res.fun),
        success=bool(res.success),
        status=int(res.status),
        message=str(res.message),
        nit=int(res.nit),
        nfev=int(res.nfev),
        q=np.asarray(res.x),
        start=name,
        fun_start=loss0,
        starts=log,
        nfev_total=nfev_total,
        mean_log_ratio=plain,
        seconds=time.perf_counter() - t0,
    )
