"""The steps :func:`builder.calibrate.calibrate` runs, each on the resolved :class:`~.settings.Settings`.

Once per run: :func:`model_teacher` (the teacher, cached), :func:`measured_problem` (the fit and held-out
noises with what a grid is compared with, :func:`teacher_answers`, and the factor to the schedule's
coordinates, :func:`coordinate_scale`). Per NFE: :func:`registry_start` (the registry's entry as a start),
:func:`choose_starts` (the starts asked for), :func:`baseline_errors` (every baseline's held-out errors) and
:func:`fit_nfe` (the optimisation, :func:`~.optimize.optimise`, with its progress bar).

**Coordinates of the errors.** The samplers work in VP-normalised coordinates (:mod:`.model`). With
``"eps"`` the answers are VP-normalised x at t_ε, and every error is multiplied by c(λ_ε) = α(λ_ε)/α̂(λ_ε),
the same factor for every grid, to be in the schedule's own coordinates. With ``"zero"`` the answers are
x̂₀, in data coordinates for every family: c = 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import OptimizeResult

from ..select.refine import rule_grids, rule_starts
from ..solve.schedules import Schedule
from .model import DT, CalibrationError, ModelDenoiser, family_alpha_sigma
from .optimize import grid_errors, optimise
from .settings import Settings
from .teacher import Teacher, teacher

__all__ = [
    "Problem",
    "baseline_errors",
    "choose_starts",
    "coordinate_scale",
    "fit_nfe",
    "measured_problem",
    "model_teacher",
    "registry_start",
    "teacher_answers",
]


@dataclass(frozen=True)
class Problem:
    """What every NFE's grids are measured on: the model ``denoise``, (start noises, answers) of the ``fit``
    and ``held_out`` noises, the factor ``scale`` of errors to the schedule's coordinates (module docstring),
    the sampler's arguments and the noises per model call."""

    denoise: ModelDenoiser
    fit: tuple[torch.Tensor, torch.Tensor]
    held_out: tuple[torch.Tensor, torch.Tensor]
    scale: float
    sampler: Mapping[str, Any]
    batch: int

    def held_out_errors(self, grid: np.ndarray) -> np.ndarray:
        """Per-noise L2 errors of ``grid`` on the held-out noises, in the schedule's coordinates."""
        return self.scale * grid_errors(grid, self.denoise, *self.held_out, self.sampler, self.batch)


def model_teacher(denoise: ModelDenoiser, settings: Settings) -> Teacher:
    """The teacher of the settings' noises, seed and steps (:func:`~.teacher.teacher`, cached)."""
    s = settings
    return teacher(
        denoise,
        lambda_start=s.schedule.lambda_start,
        lambda_end=s.schedule.lambda_end,
        noises=s.noises,
        seed=s.seed,
        steps=s.teacher_steps,
        rtol=s.teacher_rtol,
        batch=s.batch,
        model_id=s.model_id,
        weights_hash=s.weights_hash,
        cache=s.cache,
    )


def teacher_answers(
    denoise: ModelDenoiser, tch: Teacher, lambda_end: float, ending: str, batch: int = 64
) -> torch.Tensor:
    """What a grid of ``ending`` is compared with (:mod:`builder.calibrate`): the teacher's x at t_ε
    (``"eps"``), or the model's x̂₀ there (``"zero"``; one model call per noise)."""
    if ending == "eps":
        return tch.x_end
    lam = torch.tensor(lambda_end, dtype=DT)
    with torch.no_grad():
        return torch.cat([denoise(x, lam) for x in torch.split(tch.x_end, batch)])


def coordinate_scale(schedule: Schedule, ending: str) -> float:
    """c(λ_ε) for ``"eps"`` answers, 1 for ``"zero"`` ones (module docstring)."""
    if ending != "eps":
        return 1.0
    lam = torch.tensor(schedule.lambda_end, dtype=DT)
    return float(family_alpha_sigma(schedule.family, lam)[0]) / float(family_alpha_sigma("vp-continuous", lam)[0])


def measured_problem(denoise: ModelDenoiser, tch: Teacher, settings: Settings) -> Problem:
    """The :class:`Problem`: the first ``settings.fit_noises`` noises are fitted, the rest held out."""
    s, n_fit = settings, settings.fit_noises
    answers = teacher_answers(denoise, tch, s.schedule.lambda_end, s.ending, s.batch)
    return Problem(
        denoise,
        fit=(tch.x_start[:n_fit], answers[:n_fit]),
        held_out=(tch.x_start[n_fit:], answers[n_fit:]),
        scale=coordinate_scale(s.schedule, s.ending),
        sampler=s.sampler,
        batch=s.batch,
    )


def registry_start(settings: Settings, nfe: int) -> tuple[dict[str, np.ndarray], str | None]:
    """({"registry": λ-grid} or {}, a note) of the registry entry the calibration starts from: the one
    ``get()`` returns for the solver, order, ending and ``profile`` (never an earlier calibration's), its
    endpoints set to the schedule's λ_T (and λ_ε for ``"eps"``). The note says why there is none, or that it
    is the bound's entry (``get()``'s fallback where no solver entry exists)."""
    import warnings

    import optsteps_loader
    from optsteps_loader.errors import FallbackWarning, OptstepsError

    s = settings
    kw = {"order": s.order, "solver": s.solver, "ending": s.ending, "source": s.registry}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FallbackWarning)  # said in the note instead
            steps = optsteps_loader.get(
                s.schedule.name, nfe, profile=s.profile or "generic", shift=s.schedule.variant_params.get("shift"), **kw
            )
    except OptstepsError as err:
        return {}, f"no registry entry to start from at NFE {nfe}: {err}"
    lam = np.array(steps.lambdas, dtype=np.float64)
    lam[0] = s.schedule.lambda_start
    if s.ending == "eps":
        lam[-1] = s.schedule.lambda_end
    note = None
    if steps.requested is not None:
        note = f"the registry start at NFE {nfe} is the bound's entry ({steps.method}): no solver entry there"
    return {"registry": lam}, note


def choose_starts(settings: Settings, nfe: int, registry: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{name: λ-grid} of the starts asked for (``settings.start``; None: ``registry``'s and every rule's) that
    exist at ``nfe``; raises :class:`CalibrationError` when none does."""
    rules = rule_starts(settings.schedule, nfe, settings.ending)
    wanted = ["registry", *rules] if settings.start is None else list(settings.start)
    starts = {k: (registry | rules)[k] for k in wanted if k in registry or k in rules}
    if not starts:
        raise CalibrationError(f"none of the starts {wanted} exists at NFE {nfe} (rules: {sorted(rules)})")
    return starts


def baseline_errors(
    problem: Problem, settings: Settings, nfe: int, registry: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """{name: held-out per-noise errors} of the baselines at ``nfe``: ``registry``'s grid, then every rule and
    applicable table (:func:`~builder.select.refine.rule_grids`)."""
    baselines = registry | rule_grids(settings.schedule, nfe, settings.ending)
    return {name: problem.held_out_errors(grid) for name, grid in baselines.items()}


def fit_nfe(
    problem: Problem, settings: Settings, nfe: int, starts: dict[str, np.ndarray], baselines: dict[str, np.ndarray]
) -> OptimizeResult:
    """The best held-out grid at ``nfe`` from the best of ``starts`` (:func:`~.optimize.optimise`); the
    progress bar compares it with the best rule among ``baselines`` (held-out errors)."""
    s = settings
    ends = (s.schedule.lambda_start, s.schedule.lambda_end, s.ending)
    with _progress_bar(s.progress, nfe, s.maxiter, baselines, problem.scale) as update:
        return optimise(
            starts,
            problem.denoise,
            problem.fit,
            problem.held_out,
            ends=ends,
            solver=problem.sampler,
            batch=problem.batch,
            method=s.method,
            maxiter=s.maxiter,
            patience=s.patience,
            restarts=s.restarts,
            restart_seed=s.seed,
            progress=update,
        )


@contextlib.contextmanager
def _progress_bar(enabled: bool, nfe: int, maxiter: int, errs: dict, scale: float) -> Iterator[Any]:
    """A tqdm bar's update callback showing the held-out error against the start and the best rule of
    ``errs`` (None if disabled); the bar is closed after the block."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    best_rule = min((k for k in errs if k != "registry"), key=lambda k: errs[k].mean())
    bar = tqdm(total=maxiter, desc=f"calibrate NFE {nfe}", unit="it", leave=True)
    rule = f"{best_rule} {errs[best_rule].mean():.4g}"

    def update(info: dict) -> None:
        bar.update(1)
        bar.set_postfix_str(
            f"held-out {scale * info['held_out']:.4g} best {scale * info['best']:.4g} "
            f"start {scale * info['start']:.4g} | {rule}"
        )

    try:
        yield update
    finally:
        bar.close()
