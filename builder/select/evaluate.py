"""Sample error of a λ-grid: the project's sampler against the exact flow, on paired noises.

A :class:`Problem` is a mixture plus a batch spec (batch size, seed). Bound to endpoints (λ_T, λ_ε) it
becomes a :class:`Instance` holding the exact start x_T and the ground truth x(λ_ε) (:mod:`.truth`). A
:class:`Benchmark` is a list of instances sharing endpoints; :class:`ProblemSet` is a list of problems that
builds (once, memoised) the benchmark for whatever endpoints a grid has — the standard and held-out sets
are the two module-level problem sets (:func:`standard_problems`, :func:`held_out_problems`).

How a grid is run: the sampler gets a :class:`optsteps_loader.steps.Steps` whose ``lambdas`` are the grid,
``alpha_t``, ``sigma_t`` the VP-normalised α̂ = (1 + e^{−2λ})^{−1/2}, σ̂ = (1 + e^{2λ})^{−1/2}, and whose
``timesteps`` are the node indices 0..N (ints, so no precision is lost in the model's time input); the
model wrapper maps index i to λ_i and returns the mixture's x̂₀ (``prediction="sample"``). float64 on CPU.
Every grid sees the same x_T and the same truth (paired comparison).

Metrics per problem: per-sample L2 over dims ‖x_N − x_true‖₂, its mean and median, and the sliced
Wasserstein-2 distance to the truth's samples over 64 fixed random directions θ_j (seeded by the dim):
SW₂ = ( mean_j mean_b (sort(θ_jᵀx)_b − sort(θ_jᵀx_true)_b)² )^{1/2}.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernels import single_threaded_blas
from .mixtures import Array, GaussianMixture, digits_mixture, random_mixture, vp_alpha_sigma
from .truth import Truth, ground_truth

__all__ = [
    "Problem",
    "Instance",
    "Benchmark",
    "ProblemSet",
    "standard_problems",
    "held_out_problems",
    "steps_for_lambdas",
    "sample_grid",
    "evaluate_grid",
    "compare",
    "paired",
    "paired_by_problem",
]

N_PROJECTIONS = 64
ENDPOINT_TOL = 1e-8  # grids whose endpoints are this close share a benchmark (the error this adds is ~1e-8)


@dataclass(frozen=True, eq=False)
class Problem:
    """A mixture and the batch drawn from it: x₀ and ε from ``default_rng(seed)`` (see :mod:`.truth`)."""

    name: str
    mixture: GaussianMixture
    batch: int = 256
    seed: int = 0


@dataclass(frozen=True, eq=False)
class Instance:
    """A problem bound to endpoints: the start x_T, the truth x(λ_ε), and the truth's sorted projections."""

    problem: Problem
    truth: Truth
    projections: Array = field(repr=False)  # (D, N_PROJECTIONS) unit columns
    truth_sorted: Array = field(repr=False)  # (N_PROJECTIONS, B) sorted θ_jᵀ x_true

    @classmethod
    def build(cls, problem: Problem, lambda_start: float, lambda_end: float, cache: Any = True) -> Instance:
        truth = ground_truth(
            problem.mixture, lambda_start, lambda_end, batch=problem.batch, seed=problem.seed, cache=cache
        )
        theta = np.random.default_rng([problem.mixture.dim, 7919]).standard_normal((problem.mixture.dim, N_PROJECTIONS))
        theta /= np.linalg.norm(theta, axis=0, keepdims=True)
        return cls(problem, truth, theta, np.sort((truth.x_end @ theta).T, axis=1))

    def metrics(self, x_end: Array) -> dict[str, Any]:
        """Per-sample L2 errors (array), their mean and median, and SW₂ to the truth's samples."""
        err = np.linalg.norm(x_end - self.truth.x_end, axis=1)
        proj = np.sort((x_end @ self.projections).T, axis=1)
        sw = math.sqrt(float(np.mean((proj - self.truth_sorted) ** 2)))
        return {
            "errors": err,
            "mean_l2": float(err.mean()),
            "median_l2": float(np.median(err)),
            "sw": sw,
        }


def steps_for_lambdas(lambdas: Sequence[float], order: int = 3) -> Any:
    """A ``Steps`` record for a λ-grid in VP-normalised coordinates, timesteps = node indices 0..N."""
    from optsteps_loader.steps import Steps

    lam = tuple(float(v) for v in lambdas)
    pairs = [vp_alpha_sigma(v) for v in lam]
    alpha = tuple(a for a, _ in pairs)
    sigma = tuple(s for _, s in pairs)
    return Steps(
        schedule="quality-benchmark",
        nfe=len(lam) - 1,
        order=order,
        p=0.0,
        solver="unipc",
        t=lam,
        lambdas=lam,
        alpha_t=alpha,
        sigma_t=sigma,
        sigmas=tuple(math.exp(-v) for v in lam),
        timesteps=tuple(range(len(lam))),
        step_orders=(),
        tau=0,
        objective=float("nan"),
        time_input="lambda-index",
    )


def _check_grid(lambdas: Sequence[float]) -> Array:
    lam = np.asarray(lambdas, dtype=np.float64)
    if lam.ndim != 1 or lam.size < 2 or not np.all(np.isfinite(lam)) or not np.all(np.diff(lam) > 0):
        raise ValueError("a λ-grid must be ≥ 2 finite, strictly increasing values (noisiest first)")
    return lam


def sample_grid(
    lambdas: Sequence[float],
    mixture: GaussianMixture,
    x_start: Array,
    *,
    sampler: str = "unipc",
    variant: str = "bh1",
    order: int = 3,
    corrector: bool = True,
    lower_order_final: bool = True,
) -> Array:
    """Run the project's sampler (``optsteps_loader.unipc`` or ``.dpmpp``) over the grid from x_start.

    Returns x at the last node (VP-normalised), float64 numpy. The sampler module is imported lazily.
    """
    import torch

    lam = _check_grid(lambdas)
    steps = steps_for_lambdas(lam, order=order)
    lam_list = [float(v) for v in lam]

    def model(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(mixture.denoise(x.numpy(), lam_list[int(timestep[0])]))

    x = torch.from_numpy(np.array(x_start, dtype=np.float64))
    with torch.no_grad():
        if sampler == "unipc":
            from optsteps_loader import unipc

            out = unipc.sample(
                model,
                x,
                steps,
                prediction="sample",
                order=order,
                variant=variant,
                corrector=corrector,
                lower_order_final=lower_order_final,
            )
        elif sampler == "dpmpp":
            from optsteps_loader import dpmpp

            out = dpmpp.sample(model, x, steps, prediction="sample", order=order, lower_order_final=lower_order_final)
        else:
            raise ValueError(f"sampler must be 'unipc' or 'dpmpp', got {sampler!r}")
    return out.numpy()


@dataclass(frozen=True, eq=False)
class Benchmark:
    """Instances sharing endpoints (λ_T, λ_ε); evaluate as many grids on them as you like."""

    name: str
    lambda_start: float
    lambda_end: float
    instances: tuple[Instance, ...]

    @classmethod
    def build(
        cls,
        problems: Iterable[Problem],
        lambda_start: float,
        lambda_end: float,
        *,
        name: str = "custom",
        cache: Any = True,
    ) -> Benchmark:
        inst = tuple(Instance.build(p, lambda_start, lambda_end, cache=cache) for p in problems)
        return cls(name, float(lambda_start), float(lambda_end), inst)

    def matches(self, lambdas: Sequence[float]) -> bool:
        return (
            abs(float(lambdas[0]) - self.lambda_start) <= ENDPOINT_TOL
            and abs(float(lambdas[-1]) - self.lambda_end) <= ENDPOINT_TOL
        )

    def run(self, lambdas: Sequence[float], **sampler_kw: Any) -> dict[str, dict[str, Any]]:
        """{problem name: metrics incl. the per-sample ``errors`` array} for one grid."""
        if not self.matches(lambdas):
            raise ValueError(
                f"grid endpoints ({lambdas[0]}, {lambdas[-1]}) differ from this benchmark's "
                f"({self.lambda_start}, {self.lambda_end})"
            )
        out = {}
        with single_threaded_blas():
            for inst in self.instances:
                x_end = sample_grid(lambdas, inst.problem.mixture, inst.truth.x_start, **sampler_kw)
                out[inst.problem.name] = inst.metrics(x_end)
        return out

    def evaluate(self, lambdas: Sequence[float], **sampler_kw: Any) -> dict[str, Any]:
        """Summary of :meth:`run`: per-problem figures and their means over problems (JSON-ready)."""
        per = self.run(lambdas, **sampler_kw)
        problems = {name: {k: v for k, v in m.items() if k != "errors"} for name, m in per.items()}
        keys = ("mean_l2", "median_l2", "sw")
        summary: dict[str, Any] = {k: float(np.mean([m[k] for m in problems.values()])) for k in keys}
        summary["problems"] = problems
        summary["nfe"] = len(lambdas) - 1
        summary["benchmark"] = self.name
        return summary


@dataclass(eq=False)
class ProblemSet:
    """Problems whose benchmark is built on demand for a grid's endpoints and memoised (per process)."""

    name: str
    problems: tuple[Problem, ...]
    cache: Any = True
    _built: list[Benchmark] = field(default_factory=list, repr=False)

    def for_endpoints(self, lambda_start: float, lambda_end: float) -> Benchmark:
        probe = (lambda_start, lambda_end)
        for bench in self._built:
            if bench.matches(probe):
                return bench
        bench = Benchmark.build(self.problems, lambda_start, lambda_end, name=self.name, cache=self.cache)
        self._built.append(bench)
        return bench

    def for_schedule(self, schedule: Any) -> Benchmark:
        return self.for_endpoints(schedule.lambda_start, schedule.lambda_end)

    def for_grid(self, lambdas: Sequence[float]) -> Benchmark:
        return self.for_endpoints(float(lambdas[0]), float(lambdas[-1]))


@functools.cache
def standard_problems() -> ProblemSet:
    """The standard benchmark (built once per process): 3 random anisotropic mixtures and the digits.

    random d=2 (K=8) and d=16 (K=6), batch 512; random d=64 (K=8) and digits (64 dims, K=10), batch 128;
    noise seed 0. Batches are sized so one grid costs ~2–3 ms per NFE on one core (the 64-dim
    full-covariance denoisers dominate); paired log-ratio standard errors are ~0.01–0.02.
    """
    return ProblemSet(
        "standard",
        (
            Problem("random-d2", random_mixture(2, 8, 0), batch=512, seed=0),
            Problem("random-d16", random_mixture(16, 6, 0), batch=512, seed=0),
            Problem("random-d64", random_mixture(64, 8, 0), batch=128, seed=0),
            Problem("digits", digits_mixture(), batch=128, seed=0),
        ),
    )


@functools.cache
def held_out_problems() -> ProblemSet:
    """Held-out problems for honest selection: other dims, seeds and noises than :func:`standard_problems`.

    random d=4 (K=5, mixture seed 101), d=32 (K=8, seed 102), batch 512; d=64 diagonal (K=10, seed 103)
    and the digits mixture, batch 256; noise seed 1 throughout. Choose settings on one set and confirm on
    the other.
    """
    return ProblemSet(
        "held-out",
        (
            Problem("random-d4", random_mixture(4, 5, 101), batch=512, seed=1),
            Problem("random-d32", random_mixture(32, 8, 102), batch=512, seed=1),
            Problem("random-d64-diag", random_mixture(64, 10, 103, diagonal=True), batch=256, seed=1),
            Problem("digits-noise1", digits_mixture(), batch=256, seed=1),
        ),
    )


def _benchmark(problem: Any, lambdas: Sequence[float]) -> Benchmark:
    if isinstance(problem, Benchmark):
        return problem
    if isinstance(problem, ProblemSet):
        return problem.for_grid(lambdas)
    if isinstance(problem, Problem):
        return Benchmark.build([problem], float(lambdas[0]), float(lambdas[-1]), name=problem.name)
    raise TypeError(f"expected a Benchmark, ProblemSet or Problem, got {type(problem).__name__}")


def evaluate_grid(
    lambdas: Sequence[float],
    problem: Any = None,
    *,
    sampler: str = "unipc",
    variant: str = "bh1",
    order: int = 3,
    corrector: bool = True,
    lower_order_final: bool = True,
) -> dict[str, Any]:
    """Sample error of one λ-grid (N+1 values, noisiest first) on ``problem``.

    ``problem``: a :class:`Benchmark`, a :class:`ProblemSet` (default: :func:`standard_problems`; its
    benchmark for the grid's endpoints is built once and reused) or a single :class:`Problem`. Returns
    ``{"mean_l2", "median_l2", "sw"` (means over problems), "problems": {name: {...}}, "nfe", "benchmark"}``.
    ``sampler`` "unipc" (``variant`` bh1/bh2, ``order`` 1–3, ``corrector``) or "dpmpp" (``order`` 2/3).
    """
    lam = _check_grid(lambdas)
    bench = _benchmark(standard_problems() if problem is None else problem, lam)
    return bench.evaluate(
        lam,
        sampler=sampler,
        variant=variant,
        order=order,
        corrector=corrector,
        lower_order_final=lower_order_final,
    )


def paired_by_problem(errors: Mapping[str, Array], reference: Mapping[str, Array]) -> dict[str, tuple[float, float]]:
    """{problem p: (m_p, se_p)} of per-sample errors against ``reference``'s on the same noises:
    d_b = log e_b − log e_b^{ref}, m_p = mean_b d_b, se_p = sd_b(d_b)/√B (0 for a single sample)."""
    out = {}
    for name, e in errors.items():
        d = np.log(e) - np.log(reference[name])
        out[name] = (float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0)
    return out


def paired(errors: Mapping[str, Array], reference: Mapping[str, Array]) -> tuple[float, float]:
    """(log_ratio, log_ratio_se) pooled over the P problems: log_ratio = mean_p m_p, log_ratio_se =
    √(Σ_p se_p²)/P (:func:`paired_by_problem`); exp(log_ratio) is the geometric-mean error ratio."""
    per = list(paired_by_problem(errors, reference).values())
    return float(np.mean([m for m, _ in per])), math.sqrt(sum(se * se for _, se in per)) / len(per)


def compare(
    lambdas_by_name: Mapping[str, Sequence[float]],
    problem_set: Any = None,
    *,
    baseline: str = "uniform-lambda",
    **sampler_kw: Any,
) -> list[dict[str, Any]]:
    """Paired comparison of grids (same endpoints) against ``baseline`` (a key of ``lambdas_by_name``).

    ``log_ratio``, ``log_ratio_se``: :func:`paired` against the baseline; ``ratio`` = exp(log_ratio)
    (geometric-mean error ratio, < 1 is better than the baseline); ``win_rate`` = fraction of samples with a
    smaller error; ``per_problem_log_ratio`` = {p: m_p}. Rows also carry the :meth:`Benchmark.evaluate`
    summary figures. Sorted by log_ratio, best first.
    """
    if baseline not in lambdas_by_name:
        raise KeyError(f"baseline {baseline!r} is not among the grids {sorted(lambdas_by_name)}")
    grids = {name: _check_grid(lam) for name, lam in lambdas_by_name.items()}
    bench = _benchmark(standard_problems() if problem_set is None else problem_set, grids[baseline])
    runs = {name: bench.run(lam, **sampler_kw) for name, lam in grids.items()}
    base = runs[baseline]
    rows = []
    for name, run in runs.items():
        errors = {prob: m["errors"] for prob, m in run.items()}
        reference = {prob: m["errors"] for prob, m in base.items()}
        log_ratio, log_ratio_se = paired(errors, reference)
        wins = [float(np.mean(errors[prob] < reference[prob])) for prob in errors]
        rows.append(
            {
                "name": name,
                "nfe": len(grids[name]) - 1,
                "mean_l2": float(np.mean([m["mean_l2"] for m in run.values()])),
                "median_l2": float(np.mean([m["median_l2"] for m in run.values()])),
                "sw": float(np.mean([m["sw"] for m in run.values()])),
                "log_ratio": log_ratio,
                "log_ratio_se": log_ratio_se,
                "ratio": math.exp(log_ratio),
                "win_rate": float(np.mean(wins)),
                "per_problem_log_ratio": {prob: m for prob, (m, _) in paired_by_problem(errors, reference).items()},
            }
        )
    rows.sort(key=lambda r: r["log_ratio"])
    return rows
