"""The learned-model check: a small denoiser trained on the 8×8 digits, sampled against its own flow.

**The model** (``data/digits_denoiser.npz``, written by ``scripts/train_digits_denoiser.py``). Data x₀ are
scikit-learn's digits scaled to [−1, 1]^64 by x/8 − 1 (as the digits mixture, ``scripts/fit_digits_gmm.py``).
In VP-normalised coordinates x = α̂ x₀ + σ̂ ε, α̂ = (1 + e^{−2λ})^{−1/2}, σ̂ = (1 + e^{2λ})^{−1/2}. With the
EDM variables x̃ = x/α̂ = x₀ + s ε, s = σ̂/α̂ = e^{−λ}, the network predicts data (EDM preconditioning):

    x̂₀(x, λ) = μ + c_skip (x̃ − μ) + c_out F_θ(c_in (x̃ − μ), e(λ))
    c_skip = σ_d² / (s² + σ_d²),   c_out = s σ_d / √(s² + σ_d²),   c_in = 1 / √(s² + σ_d²)

μ is the per-pixel data mean, σ_d the RMS of x₀ − μ (so at low λ x̂₀ → μ, at high λ x̂₀ → x̃), and
e(λ) = (λ/λ_scale, sin ω_k λ, cos ω_k λ) a smooth embedding (low frequencies ω_k: x̂₀ is smooth in λ, as a
real network's is). F_θ is a residual SiLU MLP: h₀ = silu(W_in [u, e]), h_{l+1} = h_l + silu(W_l h_l + V_l e),
F = W_out h_L. Trained with E_{λ~U[λ_min, λ_max], x₀, ε} ‖F_θ − (x₀ − μ − c_skip(x̃ − μ))/c_out‖², which is
‖x̂₀ − x₀‖²/c_out² (EDM's loss weighting); λ_min, λ_max cover every registry schedule's endpoints.

**Its own ground truth.** The model's probability-flow ODE, dy/dλ = e^λ x̂₀(σ̂ y, λ) with y = x/σ̂, solved by
:func:`builder.select.truth.solve_truth` (DOP853, float64 weights and state, rtol 1e-9, atol 1e-11) from
x_T = α̂_T x₀ + σ̂_T ε, with x₀ drawn from the digits mixture (:func:`builder.select.truth.initial_batch`;
the mixture is fitted to the same scaled data, so the start needs neither scikit-learn nor the training set).
The truth is the model's own: sampler error is measured against what *this* network's exact flow gives.

**Measurement.** The project's sampler (:func:`builder.select.evaluate.sample_grid` with the standard
settings :data:`builder.select.selection.SAMPLER`: UniPC bh2, corrector on) runs each λ-grid from the same x_T;
per-sample errors e_b = ‖x_N − x_true‖₂. For grids g, ref, on the same noises (:func:`builder.select.evaluate.paired`):
d_b = log e_b(g) − log e_b(ref), log_ratio = mean_b d_b, se = sd_b(d_b)/√B, ratio = exp(log_ratio). The best
baseline is the one with the lowest geometric-mean error G = mean_b log e_b.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..solve.grids import baseline_grids
from ..solve.schedules import Schedule, get_schedule
from .evaluate import ENDPOINT_TOL, paired, sample_grid, single_threaded_blas
from .mixtures import DATA_DIR, Array, digits_mixture
from .selection import SAMPLER, Measurement
from .truth import Truth, initial_batch, solve_truth

__all__ = [
    "WEIGHTS_PATH",
    "TRUTH_RTOL",
    "TRUTH_ATOL",
    "DigitsDenoiser",
    "LearnedDenoiser",
    "network_to_arrays",
    "network_from_arrays",
    "load_denoiser",
    "model_truth",
    "measure_grid",
    "summarise",
    "check_grids",
    "SubjectGrid",
    "schedule_of_steps",
    "registry_grid",
    "sweep_problem",
    "solved_grid",
    "subject_grid",
    "check_schedule",
    "format_table",
]

WEIGHTS_PATH = DATA_DIR / "digits_denoiser.npz"
TRUTH_RTOL = 1e-9
TRUTH_ATOL = 1e-11
PROBLEM = "learned-digits"
SUBJECT = "optsteps"
REFERENCE = "uniform-lambda"
_HYPERPARAMETERS = ("dim", "hidden", "depth", "lambda_scale", "sigma_data", "lambda_range", "frequencies", "data_mean")


class DigitsDenoiser(torch.nn.Module):
    """x̂₀(x, λ) with EDM preconditioning around the data mean (module docstring); x (B, D), λ scalar or (B,)."""

    def __init__(
        self,
        *,
        dim: int,
        hidden: int,
        depth: int,
        frequencies: Array,
        lambda_scale: float,
        data_mean: Array,
        sigma_data: float,
        lambda_range: tuple[float, float],
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.depth = int(dim), int(hidden), int(depth)
        self.lambda_scale, self.sigma_data = float(lambda_scale), float(sigma_data)
        self.lambda_range = (float(lambda_range[0]), float(lambda_range[1]))
        self.register_buffer("frequencies", torch.as_tensor(np.asarray(frequencies, dtype=np.float32)))
        self.register_buffer("data_mean", torch.as_tensor(np.asarray(data_mean, dtype=np.float32)))
        n_embed = 1 + 2 * self.frequencies.numel()
        self.inp = torch.nn.Linear(self.dim + n_embed, self.hidden)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(self.hidden, self.hidden) for _ in range(self.depth))
        self.conds = torch.nn.ModuleList(torch.nn.Linear(n_embed, self.hidden, bias=False) for _ in range(self.depth))
        self.out = torch.nn.Linear(self.hidden, self.dim)

    def embed(self, lam: torch.Tensor) -> torch.Tensor:
        """e(λ) = (λ/λ_scale, sin ω_k λ, cos ω_k λ), shape (B, 1 + 2K) for λ of shape (B,)."""
        phase = lam[:, None] * self.frequencies[None, :]
        return torch.cat([lam[:, None] / self.lambda_scale, torch.sin(phase), torch.cos(phase)], dim=1)

    def preconditioning(self, lam: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(1/α̂, c_skip, c_out, c_in) as (B, 1) columns: 1/α̂ = √(1 + s²), s² = e^{−2λ}."""
        s2 = torch.exp(-2.0 * lam)[:, None]
        sd2 = self.sigma_data**2
        inv_alpha = torch.sqrt(1.0 + s2)
        return inv_alpha, sd2 / (s2 + sd2), torch.sqrt(s2 * sd2 / (s2 + sd2)), torch.rsqrt(s2 + sd2)

    def raw(self, u: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """F_θ(u, e): the residual MLP, without preconditioning."""
        h = torch.nn.functional.silu(self.inp(torch.cat([u, emb], dim=1)))
        for block, cond in zip(self.blocks, self.conds, strict=True):
            h = h + torch.nn.functional.silu(block(h) + cond(emb))
        return self.out(h)

    def forward(self, x: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
        lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device).expand(x.shape[0])
        inv_alpha, c_skip, c_out, c_in = self.preconditioning(lam)
        centred = x * inv_alpha - self.data_mean
        return self.data_mean + c_skip * centred + c_out * self.raw(c_in * centred, self.embed(lam))


def network_to_arrays(network: DigitsDenoiser) -> dict[str, np.ndarray]:
    """Plain float32 weight arrays (``param.<name>``) plus the hyperparameters, for ``np.savez``."""
    arrays = {f"param.{name}": p.detach().cpu().numpy().astype(np.float32) for name, p in network.named_parameters()}
    arrays.update(
        dim=np.array(network.dim, dtype=np.int64),
        hidden=np.array(network.hidden, dtype=np.int64),
        depth=np.array(network.depth, dtype=np.int64),
        lambda_scale=np.array(network.lambda_scale, dtype=np.float32),
        sigma_data=np.array(network.sigma_data, dtype=np.float32),
        lambda_range=np.array(network.lambda_range, dtype=np.float32),
        frequencies=network.frequencies.cpu().numpy().astype(np.float32),
        data_mean=network.data_mean.cpu().numpy().astype(np.float32),
    )
    return arrays


def network_from_arrays(arrays: Mapping[str, np.ndarray], dtype: torch.dtype = torch.float64) -> DigitsDenoiser:
    """Rebuild the module from :func:`network_to_arrays`' output; every parameter must be present."""
    missing = [k for k in _HYPERPARAMETERS if k not in arrays]
    if missing:
        raise ValueError(f"denoiser weights lack hyperparameters {missing}")
    network = DigitsDenoiser(
        dim=int(arrays["dim"]),
        hidden=int(arrays["hidden"]),
        depth=int(arrays["depth"]),
        frequencies=np.asarray(arrays["frequencies"]),
        lambda_scale=float(arrays["lambda_scale"]),
        data_mean=np.asarray(arrays["data_mean"]),
        sigma_data=float(arrays["sigma_data"]),
        lambda_range=tuple(float(v) for v in arrays["lambda_range"]),
    )
    state = {name: torch.from_numpy(np.array(arrays[f"param.{name}"])) for name, _ in network.named_parameters()}
    state.update(frequencies=network.frequencies, data_mean=network.data_mean)
    extra = {k.removeprefix("param.") for k in arrays if k.startswith("param.")} - set(state)
    if extra:
        raise ValueError(f"denoiser weights have unknown parameters {sorted(extra)}")
    network.load_state_dict(state, strict=True)
    return network.to(dtype).eval()


@dataclass(frozen=True, eq=False)
class LearnedDenoiser:
    """The network as a float64 numpy denoiser ``denoise(x (B, D), λ) -> x̂₀ (B, D)``.

    That is the interface :func:`builder.select.truth.solve_truth` and
    :func:`builder.select.evaluate.sample_grid` call on a mixture, so both run on this model unchanged.
    """

    network: DigitsDenoiser

    @property
    def dim(self) -> int:
        return self.network.dim

    def denoise(self, x: Array, lam: float) -> Array:
        """x̂₀(x, λ) in float64 (no autograd)."""
        with torch.no_grad():
            xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
            return self.network(xt, float(lam)).numpy()


def load_denoiser(path: str | Path = WEIGHTS_PATH) -> LearnedDenoiser:
    """The committed digits denoiser (float64 copy of the float32 weights), read without pickle."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return LearnedDenoiser(network_from_arrays(arrays, dtype=torch.float64))


def model_truth(
    model: LearnedDenoiser,
    lambda_start: float,
    lambda_end: float,
    *,
    batch: int = 256,
    seed: int = 0,
    rtol: float = TRUTH_RTOL,
    atol: float = TRUTH_ATOL,
) -> Truth:
    """The model's own exact flow from λ_start to λ_end: x_T = α̂_T x₀ + σ̂_T ε (x₀ from the digits mixture,
    ``default_rng(seed)``), then DOP853 on dy/dλ = e^λ x̂₀(σ̂ y, λ) in float64 (not cached: seconds)."""
    lambda_start, lambda_end = float(lambda_start), float(lambda_end)
    if not lambda_start < lambda_end:
        raise ValueError(f"need lambda_start < lambda_end, got {lambda_start}, {lambda_end}")
    x_start = initial_batch(digits_mixture(), lambda_start, batch, seed)
    with single_threaded_blas():
        x_end, nfev = solve_truth(model, x_start, lambda_start, lambda_end, rtol=rtol, atol=atol)
    return Truth(x_start, x_end, lambda_start, lambda_end, nfev)


def measure_grid(model: LearnedDenoiser, truth: Truth, lambdas: Sequence[float], order: int = 3) -> Measurement:
    """Per-sample errors ‖x_N − x_true‖₂ of one λ-grid (same endpoints as ``truth``), standard sampler."""
    lam = np.asarray(lambdas, dtype=np.float64)
    if abs(lam[0] - truth.lambda_start) > ENDPOINT_TOL or abs(lam[-1] - truth.lambda_end) > ENDPOINT_TOL:
        raise ValueError(
            f"grid endpoints ({lam[0]}, {lam[-1]}) differ from the truth's ({truth.lambda_start}, {truth.lambda_end})"
        )
    with single_threaded_blas():
        x_end = sample_grid(lam, model, truth.x_start, order=order, **SAMPLER)
    return Measurement({PROBLEM: np.linalg.norm(x_end - truth.x_end, axis=1)})


def summarise(
    measured: Mapping[str, Measurement], subject: str = SUBJECT, reference: str = REFERENCE
) -> dict[str, Any]:
    """Figures of every grid and the subject's standing against the reference and the best baseline.

    ``grids``: {name: mean_l2, median_l2, log_ratio and log_ratio_se against ``reference``, ratio =
    exp(log_ratio)}; ``best_baseline``: the non-subject grid with the lowest G = mean_b log e_b, with the
    subject's paired log-ratio (and se) against it.
    """
    ref = measured[reference]
    grids = {}
    for name, m in measured.items():
        lr, se = paired(m.errors, ref.errors)
        grids[name] = {
            "mean_l2": m.mean_l2,
            "median_l2": m.median_l2,
            "log_ratio": lr,
            "log_ratio_se": se,
            "ratio": math.exp(lr),
        }
    baselines = [name for name in measured if name != subject]
    best = min(baselines, key=lambda name: measured[name].log_error)
    lr_best, se_best = paired(measured[subject].errors, measured[best].errors)
    return {
        "grids": grids,
        "best_baseline": best,
        "log_ratio_best_baseline": lr_best,
        "log_ratio_best_baseline_se": se_best,
    }


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


def check_grids(
    grid: SubjectGrid,
    *,
    model: LearnedDenoiser | None = None,
    truth: Truth | None = None,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`summarise` of the subject grid (endpoints snapped to the schedule's) and the schedule's baselines
    (:func:`builder.solve.grids.baseline_grids`) on the model's own truth (built unless given)."""
    model = load_denoiser() if model is None else model
    schedule = grid.schedule
    if truth is None:
        truth = model_truth(model, schedule.lambda_start, schedule.lambda_end, batch=batch, seed=seed)
    grids = {SUBJECT: _snap_endpoints(grid.lambdas, schedule), **baseline_grids(schedule, grid.nfe)}
    measured = {name: measure_grid(model, truth, lam, order=grid.order) for name, lam in grids.items()}
    return {
        "schedule": schedule.name,
        "nfe": grid.nfe,
        "order": grid.order,
        "p": grid.p,
        "grid_source": grid.source,
        "batch": int(truth.x_start.shape[0]),
        "truth_nfev": truth.nfev,
        **summarise(measured),
    }


def _snap_endpoints(lambdas: Sequence[float], schedule: Schedule, tol: float = 1e-6) -> Array:
    """The grid with its ends set to the schedule's λ_T, λ_ε (they agree to ``tol``, else ValueError)."""
    lam = np.array(lambdas, dtype=np.float64)
    if abs(lam[0] - schedule.lambda_start) > tol or abs(lam[-1] - schedule.lambda_end) > tol:
        raise ValueError(
            f"grid endpoints ({lam[0]}, {lam[-1]}) are not {schedule.name}'s "
            f"({schedule.lambda_start}, {schedule.lambda_end})"
        )
    lam[0], lam[-1] = schedule.lambda_start, schedule.lambda_end
    return lam


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


def sweep_problem(schedule: str, shift: float | None = None) -> tuple[float, int | str]:
    """(default p, τ) the sweep solves ``schedule`` with (``builder/registry/spec.json``; flow: the first listed shift
    when ``shift`` is None)."""
    from ..registry.sweep import load_spec

    spec = load_spec()
    for entry in spec.schedules:
        params = entry.get("params", {})
        if entry["name"] == schedule and (shift is None or float(params.get("shift", shift)) == float(shift)):
            return float(entry["defaults"]["p"]), spec.tau
    raise ValueError(
        f"builder/registry/spec.json has no schedule {schedule!r}" + ("" if shift is None else f" shift {shift}")
    )


def solved_grid(
    schedule: str, nfe: int, *, p: float | None = None, order: int = 3, shift: float | None = None
) -> SubjectGrid:
    """The lowest-bound grid of the sweep's problem, solved live by :func:`builder.solve.optimize.solve` (for when no
    registry exists): the spec's τ, and its default p unless ``p`` is given (multi-start "best")."""
    from ..solve.optimize import solve

    default_p, tau = sweep_problem(schedule, shift)
    p = default_p if p is None else float(p)
    sched = get_schedule(schedule, **({} if shift is None else {"shift": float(shift)}))
    lam = np.asarray(solve(sched, nfe, order=order, p=p, tau=tau).lambdas, dtype=np.float64)
    return SubjectGrid(sched, lam, int(order), p, "solved")


def subject_grid(
    schedule: str,
    nfe: int,
    *,
    p: float | None = None,
    source: Any = None,
    shift: float | None = None,
    live: bool = False,
) -> SubjectGrid:
    """:func:`registry_grid`, or with ``live`` :func:`solved_grid`."""
    if live:
        return solved_grid(schedule, nfe, p=p, shift=shift)
    return registry_grid(schedule, nfe, p=p, source=source, shift=shift)


def check_schedule(
    schedule: str, nfes: Sequence[int], model: LearnedDenoiser, *, batch: int, seed: int, **grid_kw: Any
) -> list[dict[str, Any]]:
    """:func:`check_grids` rows of :func:`subject_grid` (``grid_kw``) for each NFE; every NFE runs on one truth
    (solved once: the endpoints are shared)."""
    rows: list[dict[str, Any]] = []
    truth = None
    for nfe in nfes:
        grid = subject_grid(schedule, nfe, **grid_kw)
        if truth is None:
            sched = grid.schedule
            truth = model_truth(model, sched.lambda_start, sched.lambda_end, batch=batch, seed=seed)
        rows.append(check_grids(grid, model=model, truth=truth))
    return rows


def format_table(schedule: str, rows: Sequence[dict[str, Any]]) -> str:
    """The text table of :func:`check_schedule` rows for one schedule: the mean L2 of the optsteps grid and of
    every baseline per NFE, its error ratio to uniform-λ, and its paired log-ratio against the best baseline."""
    first = rows[0]
    names = [SUBJECT] + [n for n in first["grids"] if n != SUBJECT]
    title = (
        f"{schedule}: {first['grid_source']} grid (order {first['order']}, p {first['p']:g}) vs baselines, "
        f"mean L2 to the digits denoiser's own flow (batch {first['batch']}, truth nfev {first['truth_nfev']})"
    )
    columns = " ".join(f"{n:>14}" for n in names)
    lines = [title, f"{'nfe':>4} {columns} {'x unif-λ':>9} {'best baseline':>15} {'log-ratio':>9}"]
    for row in rows:
        grids = row["grids"]
        cells = " ".join(f"{grids[n]['mean_l2']:>14.5f}" if n in grids else f"{'-':>14}" for n in names)
        lines.append(
            f"{row['nfe']:>4} {cells} {grids[SUBJECT]['ratio']:>9.3f} {row['best_baseline']:>15} "
            f"{row['log_ratio_best_baseline']:>+9.3f} ±{row['log_ratio_best_baseline_se']:.3f}"
        )
    return "\n".join(lines)
