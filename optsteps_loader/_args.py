"""The checks of the public functions' arguments, before anything is read: TypeError / ValueError naming the
argument, the value shown safely (`kind`) and, for a solver name people try, what it is in `get`'s terms.

`get_args` checks all of `get`'s; `schedule_arg`, `int_arg` and `real_arg` one each (`info` takes two).
"""

from __future__ import annotations

import math

from .vocabulary import ENDINGS, ORDERS, PROFILES, SOLVERS

PROFILE_ARGS = (*PROFILES, "generic")  # what profile= takes besides None
MAX_INT_ARG = 10**6  # nfe and order beyond this are surely mistakes (and too long to echo)
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


def get_args(
    schedule: object,
    nfe: object,
    order: object,
    p: object,
    solver: object,
    shift: object,
    ending: object,
    profile: object,
) -> tuple[int, int, float | None, float | None]:
    """`get`'s arguments checked in the order of its signature: ``(nfe, order, p, shift)`` as ints and floats
    (numpy scalars accepted), the others returned as they are once checked. ``nfe`` is only checked to be an
    int: its range is the lookup's (`_lookup.check_nfe`: the message names the NFEs the file has)."""
    schedule_arg(schedule)
    nfe = int_arg("nfe", nfe, minimum=None)
    order = int_arg("order", order)
    if order not in ORDERS:
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    if p is not None:
        p = real_arg("p", p, minimum=0.0)
    if not isinstance(solver, str) or solver not in SOLVERS:
        hint = SOLVER_HINTS.get(solver.lower().replace("-", "_")[:20], "") if isinstance(solver, str) else ""
        raise (ValueError if isinstance(solver, str) else TypeError)(
            f"solver must be one of {', '.join(map(repr, SOLVERS))}, got {kind(solver)}{hint}"
        )
    if shift is not None:
        shift = real_arg("shift", shift, minimum=0.0, strict=True)
    if not isinstance(ending, str) or ending not in ENDINGS:
        raise (ValueError if isinstance(ending, str) else TypeError)(
            f"ending must be one of {', '.join(map(repr, ENDINGS))}, got {kind(ending)}"
        )
    if profile is not None and (not isinstance(profile, str) or profile not in PROFILE_ARGS):
        raise (ValueError if isinstance(profile, str) else TypeError)(
            f"profile must be None or one of {', '.join(map(repr, PROFILE_ARGS))}, got {kind(profile)}"
        )
    if p is not None and profile is not None:
        raise ValueError("p= selects the bound's entries, which have no data profile: drop profile= or p=")
    return nfe, order, p, shift


def schedule_arg(schedule: object) -> None:
    """A schedule key or alias must be a str (whether it exists is the lookup's question)."""
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be a str such as 'vp-linear', not {kind(schedule)}")


def kind(value: object) -> str:
    """A safe description of a bad argument (repr only for plain scalars)."""
    shown = f" {value!r:.40}" if type(value) in (str, bytes, int, float, bool) else ""
    return f"{type(value).__name__}{shown}"


def int_arg(name: str, value: object, minimum: int | None = 1) -> int:
    """An int argument (numpy integers too); ``minimum`` None leaves the range to the lookup (nfe: its
    message names the NFEs the file has)."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{name} must be an int, not {kind(value)}")
        value = value.__index__()  # numpy integers and friends
    if minimum is not None and not minimum <= value <= MAX_INT_ARG:
        shown = value if value.bit_length() < 64 else f"an int of {value.bit_length()} bits"
        raise ValueError(f"{name} must be between 1 and {MAX_INT_ARG}, got {shown}")
    return value


def real_arg(name: str, value: object, minimum: float, strict: bool = False) -> float:
    """A finite real argument (numpy floats too) ≥ ``minimum`` (``strict``: above it), as a float."""
    if type(value) not in (int, float):
        import numbers

        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, not {kind(value)}")
    try:
        x = float(value)
    except (OverflowError, ValueError, TypeError):
        x = math.nan
    if not math.isfinite(x) or x < minimum or (strict and x == minimum):
        from ._messages import num

        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {num(minimum)}, got {kind(value)}")
    return x
