"""The lookup's "not found" errors, each saying what does exist and, where the builder can make the missing
entry, the command that computes it; and the two ways numbers read in every message (`ranges`, `num`).

- `unknown_schedule`: a schedule key or alias the index does not list (close matches, every schedule);
- `missing_entry`: a bound entry (nfe, order, p) the file lacks;
- `missing_solver_entry`: a σ = 0-ending request with neither a solver entry nor a bound entry to end with;
- `missing_profile_entry`: a ``profile=`` asked for by name that the file has no entry of.
"""

from __future__ import annotations

from . import format as fmt
from .errors import EntryNotFoundError, ScheduleNotFoundError

TYPE_CHECKING = False  # `typing` costs more import time than this whole package
if TYPE_CHECKING:
    from .reader import DataFile, Index

MAX_NAME = 100  # schedule names longer than this are cut in messages
# what a builder command in a message needs besides the loader
BUILDER_EXTRA = "needs the builder extra: pip install 'optsteps[builder]'"


def unknown_schedule(index: Index, schedule: str, label: str) -> ScheduleNotFoundError:
    """The error for a name that is neither a schedule key nor a model alias: up to three close matches
    (`difflib`, ``_`` read as ``-``), then every schedule and alias."""
    import difflib

    aliases = sorted(index.obj.get("aliases", {}))
    names = sorted(index.by_schedule)
    wanted = schedule[:MAX_NAME].lower().replace("_", "-")
    close = difflib.get_close_matches(wanted, names + aliases, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return ScheduleNotFoundError(
        f"unknown schedule {fmt.short(schedule, MAX_NAME)!r} in {label}.{hint}"
        f" Schedules: {', '.join(fmt.short(n) for n in names) or 'none'}"
        + (f"; model aliases: {', '.join(fmt.short(n) for n in aliases)}" if aliases else "")
    )


def missing_entry(data: DataFile, nfe: int, order: int, p: float, label: str, zero: bool = False) -> EntryNotFoundError:
    """The error for an (nfe, order, p) the file lacks: what exists, and how to compute the missing entry
    (``zero``: it was wanted as the first nfe steps of an nfe + 1 call σ = 0-ending record)."""
    rec = data.rec
    here = [key[0] for key in data.entries if key[1] == order and key[2] == p]
    shift = rec["params"].get("shift")
    command = (
        f"python -m builder solve --schedule {rec['schedule']} --nfe {nfe} --order {order}"
        f" --p {num(p)}" + (f" --shift {num(shift)}" if shift is not None else "") + " --json"
    )
    why = f" (ending='zero' at nfe {nfe + 1} is the nfe-{nfe} entry and a step to sigma = 0)" if zero else ""
    return EntryNotFoundError(
        f"{fmt.short(rec['schedule'])} ({fmt.short(rec['path'])} in {label}) has no entry nfe={nfe}, order={order},"
        f" p={num(p)}{why}."
        f" It has orders {', '.join(map(str, rec['orders']))} and p {', '.join(num(x) for x in rec['p'])};"
        f" for order={order}, p={num(p)}: nfe {ranges(here)}. Compute it on demand ({BUILDER_EXTRA}): {command}"
    )


def missing_solver_entry(data: DataFile, key: tuple, label: str) -> EntryNotFoundError:
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


def missing_profile_entry(data: DataFile, key: tuple, label: str) -> EntryNotFoundError:
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
        + (f" --shift {num(shift)}" if shift else "")
        + f" --nfe {nfe} --profile {profile} --solver {solver} --order {order} --ending {ending} --out FOLDER"
    )
    return EntryNotFoundError(
        f"{fmt.short(rec['schedule'])} ({fmt.short(rec['path'])} in {label}) has no profile={profile!r} entry for"
        f" solver={solver!r}, order={order}, ending={ending!r}, nfe={nfe}; {have}. Use profile='generic' (or None),"
        f" or compute it ({BUILDER_EXTRA}): {command}"
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


def num(x: object) -> str:
    """1.0 -> '1', 0.5 -> '0.5' (how p and shift read in messages and commands)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)
