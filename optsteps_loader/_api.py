"""The public functions `get`, `available`, `aliases`, `info` (re-exported by the package).

Arguments are validated first (`_args`: TypeError / ValueError naming the argument), then the registry is
read through `reader` (which verifies and caches), then the lookup (`_lookup`) returns the entry or fails
with a domain error that says what exists (`_messages`).

Which entry `get` returns: without ``p``, the *solver entry* for (``solver``, ``order``, ``ending``, ``nfe``) —
steps refined and measured for that sampler and ending (docs/data-family.md) — where the file has one; else
the bound's entry at the schedule's default p (the paper's bound is the same for UniPC and DPM-Solver++, so
both read it), with a `FallbackWarning` where the file has solver entries (a file of bound entries only answers
every request with them): for ``ending="eps"`` the NFE-N entry, for ``"zero"`` the NFE-(N−1) entry followed by
a final step to σ = 0 (``method="bound+denoise"``: N calls, the last a denoise from t_ε; not measured). With
``p``, always the bound's entry (the paper's method, for research), either ending, without a warning.
A schedule may be given by a model alias the index lists (``"sdxl"``, ``"sd3"``, …).

``profile``: solver entries come generic (refined on the whole data family) and, for the schedule variants a
model alias names, per data profile (``"latent"``: Stable Diffusion, SDXL, SD3, FLUX; ``"pixel"``: DDPM,
score-SDE). ``profile=None`` takes the alias's profile when the schedule is given by an alias that has one,
else the generic entry. Profile entries are built for fewer NFEs than generic ones (docs/data-family.md): at
an NFE where the file has no entry of that profile at all, the generic entry is the alias's answer (no
warning; ``steps.profile`` is None); where the profile has entries at that NFE but not for this solver, order
and ending, the generic entry comes with a `FallbackWarning`. ``"generic"`` forces the generic entry;
``"latent"`` / ``"pixel"`` ask for that profile's entry (an error if there is none).
A registry written or extended by ``python -m builder calibrate`` also holds *calibrated* entries (steps for
one model); with ``profile=None`` they come first.
"""

from __future__ import annotations

import os

from . import reader as _r
from ._args import get_args, real_arg, schedule_arg
from ._lookup import get_steps, select

TYPE_CHECKING = False  # `typing` costs more import time than this whole package
if TYPE_CHECKING:
    from .steps import Steps


def get(
    schedule: str,
    nfe: int,
    *,
    order: int = 3,
    p: float | None = None,
    solver: str = "unipc",
    source: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    shift: float | None = None,
    ending: str = "eps",
    profile: str | None = None,
) -> Steps:
    """The optimized steps for ``schedule`` at ``nfe`` model evaluations.

    Args:
        schedule: a schedule key, e.g. ``"vp-linear"``, ``"scaled-linear"``, ``"edm"``, ``"flow"``, or a model
            alias the registry lists (``"sd15"``, ``"sdxl"``, ``"sd3"``, …; ``optsteps list``).
        nfe: number of model calls N (the result has N+1 nodes, noisiest first); ``optsteps list`` shows the
            NFEs each schedule has.
        order: the solver order (1, 2 or 3): DPM-Solver++ 2M is ``solver="dpmpp", order=2``.
        p: ``None`` (the solver entry, see the module docstring), or the bound's exponent p (the bound's entry;
            with ``ending="zero"`` the bound's NFE-(N−1) entry and a last step to σ = 0).
        solver: ``"unipc"`` (UniPC bh2, with corrector) or ``"dpmpp"`` (DPM-Solver++ multistep).
        ending: ``"eps"`` (the last node is t_ε: the official UniPC / DPM-Solver code) or ``"zero"`` (the last
            step goes to σ = 0: diffusers' ``final_sigmas_type="zero"``, k-diffusion, ComfyUI). Either way N
            model calls.
        profile: the data the model learned: ``None`` (a calibrated entry if the registry has one, else a
            model alias's own profile, else generic), ``"latent"`` (latent-space models), ``"pixel"``
            (pixel-space models) or ``"generic"`` (the entry refined on every profile); see the module
            docstring. Solver entries only (not with ``p``).
        source: ``None`` (``$OPTSTEPS_REGISTRY_DIR``, else the registry bundled with the package), a folder
            with the registry layout (a folder named ``hub``: pass ``"./hub"``), or ``"hub"`` (see
            `optsteps_loader.hub`: fetched, verified and cached).
        revision: with ``source="hub"``: a branch, tag or commit of the Hub dataset repo.
        shift: flow schedules only: the SD3/FLUX time shift; ``None`` takes the shift-1.0 variant. Any shift
            ≥ 1 is served: a shift no file holds takes the nearest shipped variant's grid (in log shift) with
            its interior nodes' σ kept and its end nodes moved to that shift's t_start / t_end (no warning;
            ``steps.served_from`` names the source, ``steps.params`` the shift asked for; `optsteps_loader.flow_shift`).

    Warns:
        FallbackWarning: no solver entry for that request (solver, order, ending, nfe; or the alias's profile),
            so another entry is returned (the bound's, or the generic one); the message says which, and how to
            ask for it by name. The record's ``requested`` holds what was asked.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
        ScheduleNotFoundError: unknown schedule (with close matches and the list of schedules).
        EntryNotFoundError: no such nfe/order/p/shift (with the grid that exists and the builder command).
        RegistryIntegrityError: a file fails its hash or structural checks.
        RegistryUnavailableError: no registry at ``source`` / the Hub cannot be reached.

    Example:
        >>> steps = get("vp-linear", 6)                     # doctest: +SKIP
        >>> len(steps.t), steps.lambdas[0] < steps.lambdas[-1]  # doctest: +SKIP
        (7, True)
    """
    nfe, order, p, shift = get_args(schedule, nfe, order, p, solver, shift, ending, profile)
    steps, fallback = _run(
        source, revision, lambda src: get_steps(src, schedule, nfe, order, p, solver, shift, ending, profile)
    )
    if fallback is not None:
        import warnings

        from .errors import FallbackWarning

        warnings.warn(FallbackWarning(fallback), stacklevel=_caller_outside_package())
    return steps


def available(source: str | os.PathLike[str] | None = None, *, revision: str | None = None) -> dict:
    """What the registry holds, from its index alone: ``{schedule: [variant, ...]}``, each variant a dict
    with ``params`` (flow: ``{"shift": 3.0}``), ``nfe``, ``orders``, ``p``, ``path``, ``entries`` (the bound's
    entries) and ``solver_entries``, ``solver_nfe``, ``solver_profiles`` (the solver entries: their count, NFEs
    and data profiles; None if none)."""

    def listing(src: _r.Source) -> dict:
        index = _r.load_index(src)
        keys = ("params", "nfe", "orders", "p", "path", "entries", "solver_entries", "solver_nfe", "solver_profiles")
        return {
            name: [{k: _copy(rec.get(k)) for k in keys} for rec in recs]
            for name, recs in sorted(index.by_schedule.items())
        }

    return _run(source, revision, listing)


def aliases(source: str | os.PathLike[str] | None = None, *, revision: str | None = None) -> dict:
    """The model aliases the registry lists: ``{alias: {"schedule", "shift" (flow), "profile", "description"}}``
    (``profile``, the model's data profile, where the alias has one)."""
    return _run(source, revision, lambda src: _copy(_r.load_index(src).obj.get("aliases", {})))


def info(
    schedule: str,
    *,
    shift: float | None = None,
    source: str | os.PathLike[str] | None = None,
    revision: str | None = None,
) -> dict:
    """A schedule's parameters and defaults: its file's ``schedule`` and ``defaults`` blocks, plus
    ``params``, ``path``, ``data_version``, ``provenance`` and the ``variants`` (params) that exist. A flow
    shift no file holds (served, see `get`): the nearest variant's, with ``served_from`` ``{"shift", "file"}``
    and the ``schedule`` block and ``params`` at the shift asked for."""
    schedule_arg(schedule)
    if shift is not None:
        shift = real_arg("shift", shift, minimum=0.0, strict=True)

    def describe(src: _r.Source) -> dict:
        index = _r.load_index(src)
        rec, served = select(index, schedule, shift, src.label)
        obj = _r.load_data(src, rec).obj
        out = {
            "schedule": _copy(obj["schedule"]),
            "defaults": _copy(obj["defaults"]),
            "params": _copy(rec["params"]),
            "path": rec["path"],
            "data_version": obj.get("data_version"),
            "provenance": _copy(obj.get("provenance", {})),
            "variants": [_copy(r["params"]) for r in index.by_schedule[rec["schedule"]]],
        }
        if served is not None:  # the nearest variant's file, its schedule block at the shift asked for
            from . import flow_shift

            out["served_from"] = {"shift": rec["params"]["shift"], "file": rec["path"]}
            out["schedule"] = flow_shift.schedule_block(out["schedule"], served)
            out["params"] = {"shift": served}
        return out

    return _run(source, revision, describe)


def _run(source: object, revision: object, fn):
    """``fn(source)``; under ``HF_HUB_OFFLINE`` with nothing cached, ``fn(local registry)`` and a warning."""
    try:
        return fn(_r.resolve_source(source, revision))
    except _r.OfflineMiss as miss:
        import warnings

        local = _r.resolve_source(None)
        warnings.warn(f"{miss}; using the local registry at {local.label} instead", stacklevel=3)
        return fn(local)


def _caller_outside_package() -> int:
    """``warnings.warn``'s stacklevel, counted from `get`, of the first frame outside this package: the user's
    line, or the host's (a diffusers pipeline's) when the glue called `get`."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2  # the caller of get()
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _copy(obj: object) -> object:
    """A private deep copy of JSON data, so callers cannot edit the cache."""
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    return [_copy(v) for v in obj] if isinstance(obj, list) else obj
