"""The lookup behind `get` and `info`: from a schedule key or model alias (and flow shift) to its index
record (`select`), then within its data file to the entry a request gets (`get_steps`), by the rules the
`optsteps_loader._api` docstring states: calibrated, then the profile's, then the generic solver entry, then
the bound's entry; a flow shift no file holds is served from the nearest variant (`flow_shift`).

Where the entry returned stands in for the one asked for, the lookup also returns the text of the
`FallbackWarning` `get` raises (`_fallback_message`); its errors are `_messages`' (loaded on the first one,
`_msg`). Each `Steps` made is
cached on its data file (``data.steps``) under the key it was made for, so a repeated request is dict
lookups.
"""

from __future__ import annotations

from . import format as fmt
from . import invariants as inv
from . import reader as _r
from ._args import MAX_INT_ARG
from .errors import EntryNotFoundError

TYPE_CHECKING = False  # `typing` costs more import time than this whole package
if TYPE_CHECKING:
    from .steps import Steps


def get_steps(
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
    """`get`'s request answered from the registry at ``src``: the record, and the `FallbackWarning` text where
    it stands in for another (else None)."""
    index = _r.load_index(src)
    rec, served = select(index, schedule, shift, src.label)
    data = _r.load_data(src, rec)
    steps, fallback = _lookup(data, index, schedule, nfe, order, p, solver, ending, profile, src.label, served)
    if served is None:
        return steps, fallback
    try:
        return _at_shift(data, steps, served), fallback
    except EntryNotFoundError as refused:
        if steps.p is not None:
            raise
        return _bound_at_shift(data, schedule, steps, served, src.label, refused)


def _bound_at_shift(
    data: _r.DataFile, asked: str, steps: Steps, shift: float, label: str, refused: EntryNotFoundError
) -> tuple[Steps, str]:
    """A solver entry ``steps`` that does not fit ``shift``: the bound's entry (or its NFE − 1 entry and a step
    to σ = 0) served there instead, with the `FallbackWarning` text; ``refused`` again if that does not fit
    either."""
    import dataclasses

    p = data.obj["defaults"]["p"]
    try:
        bound = _at_shift(data, _bound(data, steps.nfe, steps.order, p, steps.solver, steps.ending, label), shift)
    except EntryNotFoundError:
        raise refused from None
    requested = {"solver": steps.solver, "order": steps.order, "ending": steps.ending, "profile": steps.profile}
    out = dataclasses.replace(bound, requested=_r.freeze(requested | {"p": None}))
    num = _msg().num
    call = f"get({asked!r}, {steps.nfe}, solver={steps.solver!r}, order={steps.order}, ending={steps.ending!r})"
    zero = "" if steps.ending == "eps" else f", ending={steps.ending!r}"
    message = (
        f"{call}: the solver entry of {data.rec['path']} does not fit shift={num(shift)} ({refused}); returned the"
        f" paper's bound entry there instead (method={out.method!r}, p={num(p)}; not refined or measured for a"
        f" sampler). get(..., p={num(p)}{zero}) asks for it without this warning."
    )
    return out, message


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
    """`get_steps` within one file: the record, and the `FallbackWarning` text where it stands in for another."""
    check_nfe(data, nfe, label)
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
            raise _msg().missing_profile_entry(data, key, label)
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


def check_nfe(data: _r.DataFile, nfe: int, label: str) -> None:
    """An NFE below 1 or absurdly large: a ValueError naming the NFEs the schedule's file has."""
    if 1 <= nfe <= MAX_INT_ARG:
        return
    ranges = _msg().ranges
    shown = nfe if nfe.bit_length() < 64 else f"an int of {nfe.bit_length()} bits"
    solver_nfe = sorted({k[4] for k in data.solver_entries})
    raise ValueError(
        f"nfe is the number of model calls, got {shown}; {data.rec['schedule']} ({data.rec['path']} in {label}) "
        + (f"has solver entries for nfe {ranges(solver_nfe)} and " if solver_nfe else "has ")
        + f"bound entries for nfe {ranges(data.rec['nfe'])}"
    )


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
                raise _msg().missing_solver_entry(data, solver_key[1:], label)
            raise _msg().missing_entry(data, nfe - 1, order, p, label, zero=True)
        return _steps(data, ("bound+denoise", nfe, order, p, solver), base, solver, label, True)
    entry = data.entries.get((nfe, order, p))
    if entry is None:
        raise _msg().missing_entry(data, nfe, order, p, label)
    return _steps(data, ("bound", nfe, order, p, solver), entry, solver, label)


def _fallback_message(data: _r.DataFile, asked: str, steps: Steps, label: str, served: float | None = None) -> str:
    """What a `FallbackWarning` says: what was asked, what is returned instead and why, and the call that asks
    for the returned entry by name (which does not warn)."""
    ranges, num = _msg().ranges, _msg().num
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
    at = "" if served is None else f", served at shift={num(served)}"
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
            f"(method='bound+denoise', p={num(steps.p)})"
        )
    else:
        what = f"the paper's bound entry (method='bound', p={num(steps.p)})"
    return (
        f"{request}: {where} has no solver entry ({grid}); returned {what} instead: the same grid for either "
        f"solver, no data profile, not refined or measured for a sampler.{euler} "
        f"get(..., p={num(steps.p)}{'' if ending == 'eps' else ', ending=' + repr(ending)}) asks for it without "
        "this warning."
    )


def _steps(data: _r.DataFile, key: tuple, entry: dict, solver: str, label: str, denoise_after: bool = False) -> Steps:
    """The `Steps` of ``entry`` cached on its file under ``key`` (checked in full the first time)."""
    steps = data.steps.get(key)
    if steps is None:
        steps = data.steps[key] = _r.make_steps(data, entry, solver, label, denoise_after=denoise_after)
    return steps


def _at_shift(data: _r.DataFile, steps: Steps, shift: float) -> Steps:
    """``steps`` (a record of the flow file ``data``) served at a ``shift`` no file holds (`flow_shift`), cached on
    the file under the source record (which the file's cache keeps alive) and the shift."""
    key = ("served", shift, id(steps))
    out = data.steps.get(key)
    if out is None:
        import dataclasses

        from . import flow_shift

        num = _msg().num
        if steps.p is not None:
            command = (
                f"python -m builder solve --schedule flow --shift {num(shift)}"
                f" --nfe {steps.nfe - (steps.method == 'bound+denoise')} --order"
                f" {steps.order} --p {num(steps.p)} --json"
            )
        else:
            command = (
                f"python -m builder refine --schedule flow --shift {num(shift)} --nfe {steps.nfe} --profile"
                f" {steps.profile or 'latent'} --solver {steps.solver} --order {steps.order} --ending {steps.ending}"
                " --out FOLDER"
            )
        nodes = flow_shift.served(steps, data.obj["schedule"], shift, command)
        source = {"shift": data.rec["params"]["shift"], "file": data.rec["path"]}
        out = dataclasses.replace(steps, **nodes, params=_r.freeze({"shift": shift}), served_from=_r.freeze(source))
        data.steps[key] = out
    return out


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
        num = _msg().num
        raise ValueError(
            f"{fmt.short(schedule)!r} is {fmt.short(alias['schedule'])!r} with shift {num(want)};"
            f" shift={num(shift)} contradicts it "
            f"(ask for {alias['schedule']!r} with shift={num(shift)} instead)"
        )
    return alias["schedule"], shift if shift is not None else want


def select(index: _r.Index, schedule: str, shift: float | None, label: str) -> tuple[dict, float | None]:
    """The index record of a schedule key (or alias) and (flow only) shift, ``None`` meaning shift 1.0 or the
    only one; and the shift it is served at where no file holds the one asked for (a flow shift ≥ 1: the
    nearest variant's record, `flow_shift`), else None."""
    schedule, shift = resolve_alias(index, schedule, shift)
    recs = index.by_schedule.get(schedule)
    if recs is None:
        raise _msg().unknown_schedule(index, schedule, label)
    shifts = [rec["params"].get("shift") for rec in recs]
    if shift is not None and all(s is None for s in shifts):
        raise ValueError(f"shift= only applies to flow schedules; {fmt.short(schedule)!r} has no shift parameter")
    if shift is None and len(recs) == 1:
        return recs[0], None
    want = 1.0 if shift is None else shift
    for rec in recs:
        if rec["params"].get("shift", 1.0) == want:
            return rec, None
    rule = ""
    if shift is not None and schedule == "flow":
        from . import flow_shift

        source = flow_shift.nearest([s for s in shifts if s is not None], shift)
        if source is not None:
            return next(rec for rec in recs if rec["params"].get("shift") == source), shift
        rule = f" ({flow_shift.RULE}; a shift below 1 is not served)"
    num = _msg().num
    have = ", ".join(num(s) for s in shifts if s is not None) + rule
    raise EntryNotFoundError(
        f"{fmt.short(schedule)!r} in {label} has no variant with shift={num(want)}; shifts available: {have}"
    )


def _msg():
    """`_messages`, imported on the first message or served shift: a request answered from a file's own entries
    needs none, so importing the package does not load it."""
    from . import _messages

    return _messages
