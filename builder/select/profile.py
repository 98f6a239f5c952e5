"""Solver entries for one data profile: the refine chain run on that profile's problems of the data family.

The generic solver entries (:mod:`builder.select.robust`) are refined on the whole fit split. A model's data
is not the whole family: Stable Diffusion, SDXL, SD3 and FLUX denoise latents (std ≈ 1, flat spectra), DDPM
and score-SDE models denoise pixels ([−1, 1], power-law spectra). ``benchmarks/bench_profile_knob.py``
measured that a grid refined on one profile's fit problems has 0.42–0.66× the generic entry's error on that
profile's latent-like validation problems, beyond noise. So a profile entry is

- the chain of :func:`~builder.select.robust.refine_chain` with the fit and validation splits filtered to
  the profile's problems (:func:`problems`);
- started from the rules, the tables, the warm start and the **generic** entry of the same (solver, order,
  ending, NFE) (passed where the generic chain passes the bound's entry, and named ``generic`` in the
  records: as ``init``, as ``method`` when the generic grid itself is kept, and as a baseline in the figures).

The choice is still made on the profile's fit problems alone, and the figures are those of the profile's
validation problems, so ``quality.validation.baselines.generic`` says what the profile entry gains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import family
from .family import FamilyProblem

__all__ = ["GENERIC", "PROFILES", "problems", "profile_chain"]

# what each data profile of `optsteps_loader.vocabulary.PROFILES` stands for (a test keeps the two in step)
PROFILES = {
    "latent": "latent-space models (Stable Diffusion 1.x/2.x, SDXL, SD3, FLUX): data of std about 1, flat spectra",
    "pixel": "pixel-space models (DDPM, score-SDE, EDM on images): data in [-1, 1], power-law spectra",
}
GENERIC = "generic"  # the entry refined on the whole fit split: a start and a baseline of every profile chain


def problems(split: str, profile: str) -> list[FamilyProblem]:
    """The ``split``'s problems of one profile (:data:`PROFILES`)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    return [p for p in family.split(split) if p.profile == profile]


def _rename(record: dict[str, Any]) -> dict[str, Any]:
    """The chain's ``bound`` start and baseline are the generic entry here: call them so."""
    for field in ("init", "method"):
        if record[field] == "bound":
            record[field] = GENERIC
    for split in ("fit", "validation"):
        figures = record["quality"][split]
        if "bound" in figures["baselines"]:
            figures["baselines"][GENERIC] = figures["baselines"].pop("bound")
        if figures["worst"] == "bound":
            figures["worst"] = GENERIC
    return record


def profile_chain(
    schedule: Any,
    *,
    profile: str,
    solver: str,
    order: int,
    ending: str,
    nfes: Sequence[int],
    generic: Mapping[int, Sequence[float]],
    maxiter: int,
    robust: bool = False,
) -> list[dict[str, Any]]:
    """The records of :func:`~builder.select.robust.refine_chain` on the ``profile``'s problems, started from
    (and compared with) ``generic``: {N: λ of the generic solver entry}; ``bound`` renamed ``generic``.
    ``robust``: the robust loss over the problems' kinds (their generators)."""
    from .refine import bind  # torch: imported when a chain runs, not with PROFILES
    from .robust import refine_chain

    ends = (schedule.lambda_start, schedule.lambda_end, ending)
    fit = problems("fit", profile)
    records = refine_chain(
        schedule,
        solver=solver,
        order=order,
        ending=ending,
        nfes=nfes,
        fit=bind(fit, *ends),
        validation=bind(problems("validation", profile), *ends),
        bound_grids=generic,
        maxiter=maxiter,
        kinds=[p.profile for p in fit] if robust else None,
    )
    return [_rename(r) for r in records]
