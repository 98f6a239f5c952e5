"""Optimise a grid's interior λ's against the teacher: the refine stage's coordinates, the user's model.

**Loss.** With e_b(λ) = ‖x_b^{sampler}(λ) − x_b^{teacher}‖₂ on the fit noises (VP-normalised coordinates;
the same factor c(λ_ε) for every grid in the schedule's own), L(q) = log(mean_b e_b(grid_from_q(q))) −
log(mean_b e_b(start)): the log of the mean-L2 ratio to the starting grid (0 at the start).

**Coordinates.** :func:`builder.select.refine.grid_from_q` / :func:`~builder.select.refine.q_from_grid`: N
logits, gaps h = h_min + (λ_ε − λ_T − N h_min) softmax(q), h_min = (λ_ε − λ_T)/(50 N): every grid is strictly
increasing, keeps its endpoints and wastes no evaluation.

**Methods** (:func:`choose_method`):

- ``"gradient"``: scipy L-BFGS-B with ∇L by torch autograd through the sampler's coefficients and the
  model (noises in batches, one backward per batch: memory bounded by one batch's graph);
- ``"derivative-free"``: scipy Nelder–Mead on L (forward passes only).

Gradients are used when the time input is continuous and one gradient evaluation succeeds (no out-of-memory,
finite, not identically zero). The choice depends on the model alone, never on timings, so a rerun writes the
same bytes; the timings of that probe (one loss, one gradient) are recorded in the fit for the benchmark
(reverse mode costs a small multiple of a forward pass, well under the N forward passes of a
finite-difference gradient).

**Stopping.** After every iteration the current grid's mean L2 on the held-out noises is measured; the
best held-out grid so far is kept, and the run stops when its own held-out error has not improved for
``patience`` iterations (or at ``maxiter``). The result is the best held-out grid (the start if nothing beat
it).

**Restarts.** The loss has several basins for some samplers (measured on the digits network, DPM-Solver++ 2M
σ = 0 at NFE 5: runs from the same start on two noise draws stop at 0.41 and 0.68 held-out error).
Every run starts from :func:`builder.select.refine.unsaturated` logits: a gap at the h_min floor (a σ = 0 rule
grid's leftover gap to λ_ε) has softmax weight ≈ 0 and no gradient, and that alone kept the σ = 0 runs in
the poor basin (from the floored start, both noise draws above reach 0.38–0.41). ``restarts=K`` runs K more
optimisations from those logits plus Gaussian noise (deterministic in ``restart_seed``) and keeps the best
held-out grid of all runs; K = 0 is one run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import OptimizeResult, minimize

from ..select.differentiable import make_plan, sample
from ..select.refine import grid_from_q, q_from_grid, unsaturated
from .model import DT, ModelDenoiser

__all__ = ["RESTART_SCALE", "choose_method", "grid_errors", "optimise"]

RESTART_SCALE = 0.7  # sd of the logit noise of a restart: gap weights change by factors of about e^±0.7


def grid_errors(
    lambdas: Sequence[float] | torch.Tensor,
    denoise: ModelDenoiser,
    x_start: torch.Tensor,
    x_exact: torch.Tensor,
    solver: Mapping,
    batch: int,
) -> np.ndarray:
    """Per-noise L2 errors of a grid (no gradient), ``batch`` noises per model call."""
    lam = torch.as_tensor(np.asarray(lambdas, dtype=np.float64))
    with torch.no_grad():
        plan = make_plan(lam, **solver)
        out = [
            torch.linalg.vector_norm(sample(denoise, xs, lam, plan=plan, **solver) - xe, dim=1)
            for xs, xe in zip(torch.split(x_start, batch), torch.split(x_exact, batch), strict=True)
        ]
    return torch.cat(out).numpy()


def _mean_and_grad(q, ends, denoise, x_start, x_exact, solver, batch) -> tuple[float, np.ndarray]:
    """(mean_b e_b, ∂/∂q) with one backward per batch (the grid's graph is rebuilt per batch)."""
    qt = torch.tensor(q, dtype=DT, requires_grad=True)
    total, n = 0.0, x_start.shape[0]
    for xs, xe in zip(torch.split(x_start, batch), torch.split(x_exact, batch), strict=True):
        lam = grid_from_q(qt, *ends)
        x = sample(denoise, xs, lam, plan=make_plan(lam, **solver), **solver)
        part = torch.linalg.vector_norm(x - xe, dim=1).sum() / n
        part.backward()
        total += float(part.detach())
    return total, qt.grad.numpy().copy()


def choose_method(q0, ends, denoise, x_start, x_exact, solver, batch) -> tuple[str, str, dict[str, float]]:
    """(method, reason, timings): ``"gradient"`` or ``"derivative-free"`` (module docstring)."""
    if denoise.discrete:
        return "derivative-free", "integer timesteps (discrete schedule): the time input carries no gradient", {}
    grid = grid_from_q(torch.tensor(q0), *ends).detach()
    t_loss, t_grad = math.inf, math.inf
    try:
        for _ in range(2):  # the faster of two runs each: less sensitive to a busy machine
            t0 = time.perf_counter()
            grid_errors(grid, denoise, x_start, x_exact, solver, batch)
            t_loss = min(t_loss, time.perf_counter() - t0)
            t0 = time.perf_counter()
            _, grad = _mean_and_grad(q0, ends, denoise, x_start, x_exact, solver, batch)
            t_grad = min(t_grad, time.perf_counter() - t0)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "derivative-free", "a gradient evaluation ran out of GPU memory (lower batch= to try again)", {}
    except RuntimeError as err:
        return "derivative-free", f"the model is not differentiable here ({str(err)[:120]})", {}
    timings = {"loss_seconds": t_loss, "gradient_seconds": t_grad}
    if not np.all(np.isfinite(grad)) or not np.any(grad):
        return "derivative-free", "the gradient through the model is not finite or is zero", timings
    return "gradient", "the model is differentiable in x and t and its gradient is finite", timings


def optimise(
    starts: Mapping[str, Sequence[float]],
    denoise: ModelDenoiser,
    fit: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    *,
    solver: Mapping,
    batch: int,
    ends: tuple[float, float, str] | None = None,
    method: str = "auto",
    maxiter: int = 100,
    patience: int = 10,
    restarts: int = 0,
    restart_seed: int = 0,
    progress: Callable[[dict], None] | None = None,
) -> OptimizeResult:
    """Score every start on the fit noises, optimise the best one (module docstring). ``starts`` are
    λ-grids of one ending; ``ends``: (λ_T, λ_ε, ending) of the coordinates (None: ``"eps"`` grids, whose first
    and last nodes are λ_T and λ_ε); ``solver`` holds the sampler's arguments, ``ending`` included.
    ``restarts``: further runs from the best start's logits plus N(0, :data:`RESTART_SCALE`²) noise
    (``default_rng(restart_seed)``); the best held-out grid of all runs is the result.

    Returns a scipy ``OptimizeResult``: ``x`` (the best held-out λ-grid), ``fun`` (its fit loss L, 0 at the
    start), ``success``, ``status``, ``message`` (of the run that found ``x``), ``nit`` (iterations of all
    runs), ``nfev`` (loss and gradient evaluations of all runs), and ``start`` (the best start's name),
    ``method`` and ``method_reason``, ``held_out`` (mean L2 of ``x`` on the held-out noises),
    ``held_out_start`` (the start's), ``fit`` (mean L2 of ``x`` on the fit noises), ``start_scores`` ({start:
    fit mean L2}), ``timings`` (the method probe's, seconds), ``restart`` (the run that found ``x``: 0 the
    start itself, k the k-th perturbed restart)."""
    x_fit, t_fit = fit
    x_ho, t_ho = held_out
    names = list(starts)
    if ends is None:
        first = np.asarray(starts[names[0]], dtype=np.float64)
        ends = (float(first[0]), float(first[-1]), "eps")
    scores = {name: float(grid_errors(starts[name], denoise, x_fit, t_fit, solver, batch).mean()) for name in names}
    start = min(names, key=lambda n: (scores[n], names.index(n)))
    q0 = q_from_grid(starts[start], *ends)
    start_grid = grid_from_q(torch.tensor(q0), *ends).detach().numpy()
    log_ref = math.log(scores[start])
    timings: dict[str, float] = {}
    if method == "auto":
        method, reason, timings = choose_method(q0, ends, denoise, x_fit, t_fit, solver, batch)
    else:
        reason = "requested"
    ho_start = float(grid_errors(start_grid, denoise, x_ho, t_ho, solver, batch).mean())
    state = {"best": ho_start, "grid": start_grid, "it": 0, "evals": 0, "fit": scores[start], "restart": 0}
    run = {"best": ho_start, "stall": 0}  # this run's best held-out error (its stopping rule)

    def loss(q):
        state["evals"] += 1
        lam = grid_from_q(torch.tensor(q, dtype=DT), *ends).detach()
        return math.log(max(float(grid_errors(lam, denoise, x_fit, t_fit, solver, batch).mean()), 1e-300)) - log_ref

    def loss_and_grad(q):
        state["evals"] += 1
        mean, grad = _mean_and_grad(q, ends, denoise, x_fit, t_fit, solver, batch)
        return math.log(max(mean, 1e-300)) - log_ref, grad / max(mean, 1e-300)

    def callback(intermediate_result):
        state["it"] += 1
        lam = grid_from_q(torch.tensor(intermediate_result.x, dtype=DT), *ends).detach().numpy()
        ho = float(grid_errors(lam, denoise, x_ho, t_ho, solver, batch).mean())
        if ho < state["best"] * (1 - 1e-9):
            fit_now = scores[start] * math.exp(float(intermediate_result.fun))
            state.update(best=ho, grid=lam, fit=fit_now, restart=run["index"])
        if ho < run["best"] * (1 - 1e-9):
            run.update(best=ho, stall=0)
        else:
            run["stall"] += 1
        if progress is not None:
            progress({"iteration": state["it"], "held_out": ho, "best": state["best"], "start": ho_start})
        if run["stall"] >= patience:
            raise StopIteration

    def minimise(q_init: np.ndarray):
        if method == "gradient":
            return minimize(
                loss_and_grad,
                q_init,
                jac=True,
                method="L-BFGS-B",
                callback=callback,
                options={"maxiter": maxiter, "gtol": 1e-7, "ftol": 1e-10},
            )
        if method == "derivative-free":
            return minimize(
                loss,
                q_init,
                method="Nelder-Mead",
                callback=callback,
                options={
                    "maxiter": maxiter * len(q_init),
                    "xatol": 1e-4,
                    "fatol": 1e-6,
                    "initial_simplex": _simplex(q_init),
                },
            )
        raise ValueError(f"method must be 'auto', 'gradient' or 'derivative-free', got {method!r}")

    rng, q_free = np.random.default_rng(restart_seed), unsaturated(q0)
    outcomes = []
    for index in range(restarts + 1):
        q_init = q_free + (rng.normal(0.0, RESTART_SCALE, q0.size) if index else 0.0)
        lam = grid_from_q(torch.tensor(q_init, dtype=DT), *ends).detach().numpy()
        run.update(best=float(grid_errors(lam, denoise, x_ho, t_ho, solver, batch).mean()), index=index, stall=0)
        res = minimise(q_init)
        outcomes.append((res, run["stall"] >= patience))
    res, stopped = outcomes[state["restart"]]
    return OptimizeResult(
        x=np.asarray(state["grid"]),
        fun=math.log(state["fit"] / scores[start]),
        success=bool(res.success) or stopped,
        status=int(res.status),
        message=f"held-out error stopped improving for {patience} iterations" if stopped else str(res.message),
        nit=state["it"],
        nfev=state["evals"],
        start=start,
        method=method,
        method_reason=reason,
        held_out=state["best"],
        held_out_start=ho_start,
        fit=state["fit"],
        start_scores=scores,
        timings=timings,
        restart=state["restart"],
    )


def _simplex(q0: np.ndarray, step: float = 0.3) -> np.ndarray:
    """Nelder–Mead's starting simplex: q0 and q0 + step·e_i (a 30 % change of one gap's weight)."""
    return np.vstack([q0, q0 + step * np.eye(len(q0))])
