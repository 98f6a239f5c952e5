"""The public functions `get`, `available`, `info` (re-exported by the package).

Arguments are validated first (TypeError / ValueError naming the argument), then the registry is read
through `_registry` (which verifies and caches), then the lookup fails with a domain error that says what
exists.

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

import math
import os

from . import _format as fmt
from . import _invariants as inv
from . import _registry as _r
from .errors import EntryNotFoundError, ScheduleNotFoundError

TYPE_CHECKING = False  # `typing` costs more import time than this whole package
if TYPE_CHECKING:
    from .steps import Steps

SOLVERS = ("unipc", "dpmpp")
ORDERS = (1, 2, 3)
ENDINGS = ("eps", "zero")
PROFILES = (*inv.PROFILES, "generic")
MAX_INT_ARG = 10**6  # nfe and order beyond this are surely mistakes (and too long to echo)
MAX_NAME = 100  # schedule names longer than this are cut in messages
# what a builder command in a message needs besides the loader
BUILDER_EXTRA = "needs the builder extra: pip install 'optsteps[builder]'"
# solver names people try (lower case, "-" as "_"), and what they are in get()'s terms
_EULER = "; Euler (DDIM: the same step in sigma/alpha) is DPM-Solver++ order 1: solver='dpmpp', order=1"
SOLVER_HINTS = {
    "euler": _EULER,
    "ddim": _EULER,
    "dpmpp_2m": "; DPM-Solver++ 2M is solver='dpmpp', order=2",
    "dpmpp_3m": "; DPM-Solver++ 3M is solver='dpmpp', order=3",
    "dpm++": "; DPM-Solver++ is solver='dpmpp' (2M: order=2)",
    "uni_pc": "; UniPC is solver='unipc'",
    "uni_pc_bh2": "; UniPC bh2 is solver='unipc'",
}


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
            ``steps.served_from`` names the source, ``steps.params`` the shift asked for; `optsteps_loader._shift`).

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
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be a str such as 'vp-linear', not {_kind(schedule)}")
    nfe = _int_arg("nfe", nfe, minimum=None)
    order = _int_arg("order", order)
    if order not in ORDERS:
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    if p is not None:
        p = _real_arg("p", p, minimum=0.0)
    if not isinstance(solver, str) or solver not in SOLVERS:
        hint = SOLVER_HINTS.get(solver.lower().replace("-", "_")[:20], "") if isinstance(solver, str) else ""
        raise (ValueError if isinstance(solver, str) else TypeError)(
            f"solver must be one of {', '.join(map(repr, SOLVERS))}, got {_kind(solver)}{hint}"
        )
    if shift is not None:
        shift = _real_arg("shift", shift, minimum=0.0, strict=True)
    if not isinstance(ending, str) or ending not in ENDINGS:
        raise (ValueError if isinstance(ending, str) else TypeError)(
            f"ending must be one of {', '.join(map(repr, ENDINGS))}, got {_kind(ending)}"
        )
    if profile is not None and (not isinstance(profile, str) or profile not in PROFILES):
        raise (ValueError if isinstance(profile, str) else TypeError)(
            f"profile must be None or one of {', '.join(map(repr, PROFILES))}, got {_kind(profile)}"
        )
    if p is not None and profile is not None:
        raise ValueError("p= selects the bound's entries, which have no data profile: drop profile= or p=")
    steps, fallback = _run(
        source, revision, lambda src: _get(src, schedule, nfe, order, p, solver, shift, ending, profile)
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
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be a str such as 'vp-linear', not {_kind(schedule)}")
    if shift is not None:
        shift = _real_arg("shift", shift, minimum=0.0, strict=True)

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
            from . import _shift

            out["served_from"] = {"shift": rec["params"]["shift"], "file": rec["path"]}
            out["schedule"] = _shift.schedule_block(out["schedule"], served)
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


def _get(
    src: _r.Source,
    schedule: str,
    nfe: int,
    order: int,
    p: float | None,
    solver: str,
    shift: float | None,
    ending: str,
    profile: str | None,
) -> tuple[Steps, str | None]:
    """The record, and the `FallbackWarning` text where it stands in for another (else None)."""
    index = _r.load_index(src)
    rec, served = select(index, schedule, shift, src.label)
    data = _r.load_data(src, rec)
    steps, fallback = _lookup(data, index, schedule, nfe, order, p, solver, ending, profile, src.label, served)
    return (steps if served is None else _at_shift(data, steps, served)), fallback


def _lookup(
    data: _r.DataFile,
    index: _r.Index,
    schedule: str,
    nfe: int,
    order: int,
    p: float | None,
    solver: str,
    ending: str,
    profile: str | None,
    label: str,
    served: float | None,
) -> tuple[Steps, str | None]:
    """`_get` within one file: the record, and the `FallbackWarning` text where it stands in for another."""
    _check_nfe(data, nfe, label)
    if p is not None:
        return _bound(data, nfe, order, p, solver, ending, label), None
    # solver entries: calibrated, then the profile's, then generic (their keys cache the Steps)
    if profile is None:
        if inv.CALIBRATED in data.tiers:
            key = (inv.CALIBRATED, solver, order, ending, nfe)
            if key in data.solver_entries:
                return _steps(data, key, data.solver_entries[key], solver, label), None
        wanted = alias_profile(index, schedule)
    else:
        wanted = None if profile == "generic" else profile
    if wanted is not None and (wanted in data.tiers or profile is not None):
        key = (wanted, solver, order, ending, nfe)
        entry = data.solver_entries.get(key)
        if entry is not None:
            return _steps(data, key, entry, solver, label), None
        if profile is not None:  # asked for by name: say what exists
            raise _missing_profile_entry(data, key, label)
    key = ("", solver, order, ending, nfe)
    entry = data.solver_entries.get(key)
    if entry is not None:
        steps = _steps(data, key, entry, solver, label)
    else:
        steps = _bound(data, nfe, order, data.obj["defaults"]["p"], solver, ending, label, solver_key=key)
    if not data.solver_entries or steps.p is None and (steps.profile == wanted or not _profile_at(data, wanted, nfe)):
        return steps, None  # what was asked; a file of bound entries only answers every request with them
    requested = {"solver": solver, "order": order, "ending": ending, "profile": wanted, "p": None}
    fallback = data.steps.get(("fallback", nfe, solver, order, ending, wanted))
    if fallback is None:
        import dataclasses

        fallback = dataclasses.replace(steps, requested=_r.freeze(requested))
        data.steps[("fallback", nfe, solver, order, ending, wanted)] = fallback
    return fallback, _fallback_message(data, schedule, fallback, label, served)


def _profile_at(data: _r.DataFile, profile: str | None, nfe: int) -> bool:
    """Whether the file has an entry of ``profile`` at ``nfe`` (for any solver, order or ending)."""
    return any(k[0] == profile and k[4] == nfe for k in data.solver_entries)


def _check_nfe(data: _r.DataFile, nfe: int, label: str) -> None:
    """An NFE below 1 or absurdly large: a ValueError naming the NFEs the schedule's file has."""
    if 1 <= nfe <= MAX_INT_ARG:
        return
    shown = nfe if nfe.bit_length() < 64 else f"an int of {nfe.bit_length()} bits"
    solver_nfe = sorted({k[4] for k in data.solver_entries})
    raise ValueError(
        f"nfe is the number of model calls, got {shown}; {data.rec['schedule']} ({data.rec['path']} in {label}) "
        + (f"has solver entries for nfe {ranges(solver_nfe)} and " if solver_nfe else "has ")
        + f"bound entries for nfe {ranges(data.rec['nfe'])}"
    )


def _caller_outside_package() -> int:
    """``warnings.warn``'s stacklevel, counted from `get`, of the first frame outside this package: the user's
    line, or the host's (a diffusers pipeline's) when the glue called `get`."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2  # the caller of get()
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _bound(
    data: _r.DataFile,
    nfe: int,
    order: int,
    p: float,
    solver: str,
    ending: str,
    label: str,
    solver_key: tuple | None = None,
) -> Steps:
    """The bound's entry (``"eps"``), or the bound's NFE-(N−1) entry and a last step to σ = 0 (``"zero"``);
    ``solver_key``: the solver entry this stands in for, named in the error if the bound's entry is missing."""
    if ending == "zero":
        base = data.entries.get((nfe - 1, order, p))
        if base is None:
            if solver_key is not None:
                raise _missing_solver_entry(data, solver_key[1:], label)
            raise _missing_entry(data, nfe - 1, order, p, label, zero=True)
        return _steps(data, ("bound+denoise", nfe, order, p, solver), base, solver, label, True)
    entry = data.entries.get((nfe, order, p))
    if entry is None:
        raise _missing_entry(data, nfe, order, p, label)
    return _steps(data, ("bound", nfe, order, p, solver), entry, solver, label)


def _fallback_message(data: _r.DataFile, asked: str, steps: Steps, label: str, served: float | None = None) -> str:
    """What a `FallbackWarning` says: what was asked, what is returned instead and why, and the call that asks
    for the returned entry by name (which does not warn)."""
    req = steps.requested
    solver, order, ending, wanted = req["solver"], req["order"], req["ending"], req["profile"]
    request = f"get({asked!r}, {steps.nfe}, solver={solver!r}, order={order}, ending={ending!r})" + (
        f" (profile {wanted!r})" if wanted else ""
    )
    tiers = (wanted or "",) if steps.p is None else (wanted or "", "")  # a bound entry: no solver entry of either
    here = [k for k in data.solver_entries if k[0] in tiers]
    same = sorted({k[4] for k in here if k[1:4] == (solver, order, ending)})
    combos = sorted({(k[1], k[2]) for k in here if k[3] == ending})
    grid = (
        f"nfe {ranges(same)} for that solver, order and ending"
        if same
        else "no nfe for that solver, order and ending; "
        + ", ".join(f"{s} order {o}" for s, o in combos)
        + f" have ending={ending!r} entries"
    )
    at = "" if served is None else f", served at shift={_num(served)}"
    where = f"{data.rec['schedule']} ({data.rec['path']} in {label}{at})"
    if steps.p is None:  # a generic solver entry for lack of the profile's
        return (
            f"{request}: {where} has no {wanted!r} entry ({grid}); returned the generic entry (refined on every "
            f"data profile, steps.profile None). get(..., profile='generic') asks for it without this warning."
        )
    euler = (
        " UniPC order 1 was not measured; Euler / DDIM is solver='dpmpp', order=1."
        if (solver, order) == ("unipc", 1)
        else ""
    )
    if steps.method == "bound+denoise":
        what = (
            f"the paper's bound entry for nfe {steps.nfe - 1} and a last step to sigma = 0 "
            f"(method='bound+denoise', p={_num(steps.p)})"
        )
    else:
        what = f"the paper's bound entry (method='bound', p={_num(steps.p)})"
    return (
        f"{request}: {where} has no solver entry ({grid}); returned {what} instead: the same grid for either "
        f"solver, no data profile, not refined or measured for a sampler.{euler} "
        f"get(..., p={_num(steps.p)}{'' if ending == 'eps' else ', ending=' + repr(ending)}) asks for it without "
        "this warning."
    )


def _steps(data: _r.DataFile, key: tuple, entry: dict, solver: str, label: str, denoise_after: bool = False) -> Steps:
    """The `Steps` of ``entry`` cached on its file under ``key`` (checked in full the first time)."""
    steps = data.steps.get(key)
    if steps is None:
        steps = data.steps[key] = _r.make_steps(data, entry, solver, label, denoise_after=denoise_after)
    return steps


def _at_shift(data: _r.DataFile, steps: Steps, shift: float) -> Steps:
    """``steps`` (a record of the flow file ``data``) served at a ``shift`` no file holds (`_shift`), cached on
    the file under the source record (which the file's cache keeps alive) and the shift."""
    key = ("served", shift, id(steps))
    out = data.steps.get(key)
    if out is None:
        import dataclasses

        from . import _shift

        if steps.p is not None:
            command = (
                f"python -m builder solve --schedule flow --shift {_num(shift)}"
                f" --nfe {steps.nfe - (steps.method == 'bound+denoise')} --order"
                f" {steps.order} --p {_num(steps.p)} --json"
            )
        else:
            command = (
                f"python -m builder refine --schedule flow --shift {_num(shift)} --nfe {steps.nfe} --profile"
                f" {steps.profile or 'latent'} --solver {steps.solver} --order {steps.order} --ending {steps.ending}"
                " --out FOLDER"
            )
        nodes = _shift.served(steps, data.obj["schedule"], shift, command)
        source = {"shift": data.rec["params"]["shift"], "file": data.rec["path"]}
        out = dataclasses.replace(steps, **nodes, params=_r.freeze({"shift": shift}), served_from=_r.freeze(source))
        data.steps[key] = out
    return out


def _missing_profile_entry(data: _r.DataFile, key: tuple, label: str) -> EntryNotFoundError:
    """The error for a ``profile=`` the file has no solver entry of: what it has, and how to compute one."""
    profile, solver, order, ending, nfe = key
    rec = data.rec
    same = [k[4] for k in data.solver_entries if k[:4] == key[:4]]
    have = (
        f"for that solver, order and ending: nfe {ranges(same)}"
        if same
        else (f"its solver entries' profiles: {', '.join(rec.get('solver_profiles', [])) or 'none (generic only)'}")
    )
    shift = rec["params"].get("shift")
    command = (
        f"python -m builder refine --schedule {rec['schedule']}"
        + (f" --shift {_num(shift)}" if shift else "")
        + f" --nfe {nfe} --profile {profile} --solver {solver} --order {order} --ending {ending} --out FOLDER"
    )
    return EntryNotFoundError(
        f"{fmt.short(rec['schedule'])} ({fmt.short(rec['path'])} in {label}) has no profile={profile!r} entry for"
        f" solver={solver!r}, order={order}, ending={ending!r}, nfe={nfe}; {have}. Use profile='generic' (or None),"
        f" or compute it ({BUILDER_EXTRA}): {command}"
    )


def _missing_solver_entry(data: _r.DataFile, key: tuple, label: str) -> EntryNotFoundError:
    """The error for a σ = 0-ending request the file has no solver entry for: what it has."""
    solver, order, ending, nfe = key
    rec = data.rec
    same = sorted({k[4] for k in data.solver_entries if k[1:4] == key[:3]})
    others = sorted({f"{k[1]} order {k[2]}" for k in data.solver_entries if k[3] == ending})
    have = f"nfe {ranges(same)}" if same else f"no nfe (it has {', '.join(others) or 'no ' + ending + ' entries'})"
    return EntryNotFoundError(
        f"{fmt.short(rec['schedule'])} ({fmt.short(rec['path'])} in {label}) has no ending={ending!r} entry for"
        f" solver={solver!r}, order={order}, nfe={nfe}; for that solver and order: {have}. Nor is there a bound"
        f" entry for nfe {nfe - 1} to end with a step to sigma = 0 (the bound's entries cover nfe"
        f" {ranges(rec['nfe'])})."
    )


def alias_profile(index: _r.Index, schedule: str) -> str | None:
    """The data profile of a model alias the index lists (None for a schedule key or an alias without one)."""
    if schedule in index.by_schedule:
        return None
    return index.obj.get("aliases", {}).get(schedule, {}).get("profile")


def resolve_alias(index: _r.Index, schedule: str, shift: float | None) -> tuple[str, float | None]:
    """(schedule key, shift) of a model alias the index lists (a shift given must agree with the alias's)."""
    alias = index.obj.get("aliases", {}).get(schedule) if schedule not in index.by_schedule else None
    if alias is None:
        return schedule, shift
    want = alias.get("shift")
    if shift is not None and want is not None and float(shift) != float(want):
        raise ValueError(
            f"{fmt.short(schedule)!r} is {fmt.short(alias['schedule'])!r} with shift {_num(want)};"
            f" shift={_num(shift)} contradicts it "
            f"(ask for {alias['schedule']!r} with shift={_num(shift)} instead)"
        )
    return alias["schedule"], shift if shift is not None else want


def select(index: _r.Index, schedule: str, shift: float | None, label: str) -> tuple[dict, float | None]:
    """The index record of a schedule key (or alias) and (flow only) shift, ``None`` meaning shift 1.0 or the
    only one; and the shift it is served at where no file holds the one asked for (a flow shift ≥ 1: the
    nearest variant's record, `_shift`), else None."""
    schedule, shift = resolve_alias(index, schedule, shift)
    recs = index.by_schedule.get(schedule)
    if recs is None:
        import difflib

        aliases = sorted(index.obj.get("aliases", {}))
        names = sorted(index.by_schedule)
        wanted = schedule[:MAX_NAME].lower().replace("_", "-")
        close = difflib.get_close_matches(wanted, names + aliases, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ScheduleNotFoundError(
            f"unknown schedule {fmt.short(schedule, MAX_NAME)!r} in {label}.{hint}"
            f" Schedules: {', '.join(fmt.short(n) for n in names) or 'none'}"
            + (f"; model aliases: {', '.join(fmt.short(n) for n in aliases)}" if aliases else "")
        )
    shifts = [rec["params"].get("shift") for rec in recs]
    if shift is not None and all(s is None for s in shifts):
        raise ValueError(f"shift= only applies to flow schedules; {fmt.short(schedule)!r} has no shift parameter")
    if shift is None and len(recs) == 1:
        return recs[0], None
    want = 1.0 if shift is None else shift
    for rec in recs:
        if rec["params"].get("shift", 1.0) == want:
            return rec, None
    have = ", ".join(_num(s) for s in shifts if s is not None)
    if shift is not None and schedule == "flow":
        from . import _shift

        source = _shift.nearest([s for s in shifts if s is not None], shift)
        if source is not None:
            return next(rec for rec in recs if rec["params"].get("shift") == source), shift
        have += f" ({_shift.RULE}; a shift below 1 is not served)"
    raise EntryNotFoundError(
        f"{fmt.short(schedule)!r} in {label} has no variant with shift={_num(want)}; shifts available: {have}"
    )


def _missing_entry(
    data: _r.DataFile, nfe: int, order: int, p: float, label: str, zero: bool = False
) -> EntryNotFoundError:
    """The error for an (nfe, order, p) the file lacks: what exists, and how to compute the missing entry
    (``zero``: it was wanted as the first nfe steps of an nfe + 1 call σ = 0-ending record)."""
    rec = data.rec
    here = [key[0] for key in data.entries if key[1] == order and key[2] == p]
    shift = rec["params"].get("shift")
    command = (
        f"python -m builder solve --schedule {rec['schedule']} --nfe {nfe} --order {order}"
        f" --p {_num(p)}" + (f" --shift {_num(shift)}" if shift is not None else "") + " --json"
    )
    why = f" (ending='zero' at nfe {nfe + 1} is the nfe-{nfe} entry and a step to sigma = 0)" if zero else ""
    return EntryNotFoundError(
        f"{fmt.short(rec['schedule'])} ({fmt.short(rec['path'])} in {label}) has no entry nfe={nfe}, order={order},"
        f" p={_num(p)}{why}."
        f" It has orders {', '.join(map(str, rec['orders']))} and p {', '.join(_num(x) for x in rec['p'])};"
        f" for order={order}, p={_num(p)}: nfe {ranges(here)}. Compute it on demand ({BUILDER_EXTRA}): {command}"
    )


def ranges(values: list[int]) -> str:
    """[3, 4, 5, 6, 8, 10, 11] -> '3-6, 8, 10, 11'."""
    runs: list[list[int]] = []
    for v in sorted(set(values)):
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    return ", ".join(parts) or "none"


def _num(x: object) -> str:
    """1.0 -> '1', 0.5 -> '0.5' (how p and shift read in messages and commands)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)


def _kind(value: object) -> str:
    """A safe description of a bad argument (repr only for plain scalars)."""
    shown = f" {value!r:.40}" if type(value) in (str, bytes, int, float, bool) else ""
    return f"{type(value).__name__}{shown}"


def _int_arg(name: str, value: object, minimum: int | None = 1) -> int:
    """An int argument (numpy integers too); ``minimum`` None leaves the range to the lookup (nfe: its
    message names the NFEs the file has)."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{name} must be an int, not {_kind(value)}")
        value = value.__index__()  # numpy integers and friends
    if minimum is not None and not minimum <= value <= MAX_INT_ARG:
        shown = value if value.bit_length() < 64 else f"an int of {value.bit_length()} bits"
        raise ValueError(f"{name} must be between 1 and {MAX_INT_ARG}, got {shown}")
    return value


def _real_arg(name: str, value: object, minimum: float, strict: bool = False) -> float:
    if type(value) not in (int, float):
        import numbers

        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, not {_kind(value)}")
    try:
        x = float(value)
    except (OverflowError, ValueError, TypeError):
        x = math.nan
    if not math.isfinite(x) or x < minimum or (strict and x == minimum):
        raise ValueError(
            f"{name} must be a finite number {'>' if strict else '>='} {_num(minimum)}, got {_kind(value)}"
        )
    return x


def _copy(obj: object) -> object:
    """A private deep copy of JSON data, so callers cannot edit the cache."""
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    return [_copy(v) for v in obj] if isinstance(obj, list) else obj
