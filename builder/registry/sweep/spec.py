"""The grid to sweep: the declarative spec (``builder/registry/spec.json``), its tasks, and ``--only`` slices.

tasks = schedule variants × NFE × order × p      (deterministic order; ``only`` filters a slice)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optsteps_loader.vocabulary import ENDINGS, ORDERS, SOLVERS

from ...solve.schedules import Schedule, get_schedule
from .._canonical import atomic_write_bytes

SPEC_PATH = Path(__file__).resolve().parent.parent / "spec.json"


class SweepError(Exception):
    """A sweep that cannot go on, with a message that says why and what to do (the CLI prints it, no traceback)."""


@dataclass(frozen=True)
class Task:
    """One registry entry to compute."""

    schedule: str
    params: tuple[tuple[str, Any], ...]
    file: str
    nfe: int
    order: int
    p: float
    tau: int | str
    init: str

    def make_schedule(self) -> Schedule:
        return get_schedule(self.schedule, **dict(self.params))

    def fields(self) -> dict[str, Any]:
        """The task as plain JSON data (part of every cache key)."""
        return self.__dict__ | {"params": list(self.params)}

    def label(self) -> str:
        params = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.schedule}{params} nfe={self.nfe} order={self.order} p={self.p}"


@dataclass(frozen=True)
class Spec:
    data_version: str
    license: str
    citation: str
    nfe: tuple[int, ...]
    orders: tuple[int, ...]
    p: tuple[float, ...]
    tau: int | str
    init: str
    schedules: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    aliases: dict[str, Any] = field(default_factory=dict)  # optional: model name -> {schedule, shift?, description}
    solver_entries: dict[str, Any] | None = (
        None  # optional: {nfe, solvers [[name, order]], endings, maxiter, continue?}
    )
    # optional: builder.kernels.fingerprint() of the machines that rebuild this release byte-identically
    kernels: str | None = None


_SPEC_KEYS = ("data_version", "license", "citation", "nfe", "orders", "p", "tau", "init", "schedules")
# A schedule's optional "objective": how its solver chains refine. Left out: the mean log ratio to uniform λ;
# "kinds": the soft maximum over the fit split's kinds of each kind's log ratio to its best rule
# (builder.select.refine, "Robust over kinds").
OBJECTIVES = ("kinds",)


def load_spec(path: str | Path = SPEC_PATH) -> Spec:
    """The spec at ``path``; a missing key, a wrong type or bad JSON is a :class:`SweepError` naming the file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_bytes())
    except OSError as exc:
        raise SweepError(f"cannot read the spec {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise SweepError(f"the spec {path} is not valid JSON: {exc}") from None

    def bad(what: str) -> SweepError:
        return SweepError(f"the spec {path}: {what}")

    if not isinstance(raw, dict):
        raise bad("the top level must be a JSON object")
    missing = [key for key in _SPEC_KEYS if key not in raw]
    if missing:
        raise bad(f"missing key {', '.join(repr(k) for k in missing)} (a spec has {', '.join(_SPEC_KEYS)})")
    for key in ("data_version", "license", "citation", "init"):
        if not isinstance(raw[key], str):
            raise bad(f"{key!r} must be a string, got {raw[key]!r}")
    for key in ("nfe", "orders"):
        if not (isinstance(raw[key], list) and raw[key] and all(_is_int(v) for v in raw[key])):
            raise bad(f"{key!r} must be a non-empty list of integers, got {raw[key]!r}")
    if not (isinstance(raw["p"], list) and raw["p"] and all(_is_number(v) for v in raw["p"])):
        raise bad(f"'p' must be a non-empty list of finite numbers, got {raw['p']!r}")
    if not (raw["tau"] == "auto" or _is_int(raw["tau"])):
        raise bad(f"'tau' must be 'auto' or an integer, got {raw['tau']!r}")
    schedules = raw["schedules"]
    if not isinstance(schedules, list):
        raise bad("'schedules' must be a list")
    for i, sched in enumerate(schedules):
        if not (isinstance(sched, dict) and isinstance(sched.get("name"), str) and isinstance(sched.get("file"), str)):
            raise bad(f"schedules[{i}] must be an object with a 'name' and a 'file'")
        if not isinstance(sched.get("defaults"), dict):
            raise bad(f"schedules[{i}] ({sched['name']}) has no 'defaults' object")
        if sched.get("objective", "kinds") not in OBJECTIVES:
            raise bad(
                f"schedules[{i}] ({sched['name']}) 'objective' must be one of {list(OBJECTIVES)} (or left out: the "
                f"mean log ratio to uniform λ), got {sched['objective']!r}"
            )
        try:
            get_schedule(sched["name"], **(sched.get("params") or {}))
        except (KeyError, TypeError, ValueError) as exc:  # ScheduleNotFoundError is a KeyError
            raise bad(f"schedules[{i}]: {exc.args[0] if exc.args else exc}") from None
    return Spec(
        data_version=raw["data_version"],
        license=raw["license"],
        citation=raw["citation"],
        nfe=tuple(raw["nfe"]),
        orders=tuple(raw["orders"]),
        p=tuple(float(v) for v in raw["p"]),
        tau=raw["tau"],
        init=raw["init"],
        schedules=tuple(schedules),
        aliases=_aliases(raw.get("aliases", {}), schedules, bad),
        solver_entries=_solver_entries(raw.get("solver_entries"), bad),
        kernels=_kernels(raw.get("kernels"), bad),
    )


def _kernels(value: Any, bad: Any) -> str | None:
    """The optional ``kernels`` fingerprint: 16 lowercase hex digits, as ``python -m builder kernels`` prints."""
    if value is None or (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{16}", value)):
        return value
    raise bad(f"'kernels' must be 16 lowercase hex digits (`python -m builder kernels` prints them), got {value!r}")


def alias_names(alias: dict[str, Any], name: str, shift: float | None) -> bool:
    """Whether a model alias names the schedule variant ``name`` with ``shift`` (None: a schedule without
    one); a flow alias without a shift means shift 1."""
    if alias["schedule"] != name:
        return False
    return shift is None or float(alias.get("shift", 1.0)) == float(shift)


def _aliases(aliases: Any, schedules: list, bad: Any) -> dict[str, Any]:
    """The optional ``aliases`` block, checked: each names a schedule variant of the spec, or a flow shift
    the loader serves from one (optsteps_loader/flow_shift.py: shift ≥ 1; it adds no variant and no profile
    chain, `alias_names`), and a data ``profile`` (:data:`builder.select.profile.PROFILES`) where it has one."""
    from ...select.profile import PROFILES
    from optsteps_loader.flow_shift import nearest

    if not isinstance(aliases, dict):
        raise bad("'aliases' must be an object")
    have = {(s["name"], (s.get("params") or {}).get("shift")) for s in schedules}
    flow_shifts = [float(s) for n, s in have if n == "flow" and s is not None]
    for name, a in aliases.items():
        ok = isinstance(a, dict) and set(a) <= {"schedule", "shift", "profile", "description"} and "description" in a
        served = (
            ok
            and a.get("schedule") == "flow"
            and type(a.get("shift")) in (int, float)
            and nearest(flow_shifts, float(a["shift"])) is not None
        )
        named = ok and (a.get("schedule"), a.get("shift")) in have | {(n, 1.0) for n, _ in have}
        if not (named or served):
            raise bad(
                f"alias {name!r} must be {{schedule, shift?, profile?, description}} naming a schedule of the spec"
            )
        if a.get("profile", "latent") not in PROFILES:
            raise bad(f"alias {name!r}: profile must be one of {tuple(PROFILES)}, got {a['profile']!r}")
    return aliases


SOLVER_ORDERS = {solver: ORDERS for solver in SOLVERS}


def _solver_entries(block: Any, bad: Any) -> dict[str, Any] | None:
    """The optional ``solver_entries`` block, checked: ``nfe`` (integers ≥ 3), ``solvers`` ([name, order]
    pairs), ``endings`` (``eps`` / ``zero``), ``maxiter`` (a positive integer)."""
    if block is None:
        return None
    if not isinstance(block, dict) or not {"nfe", "solvers", "endings", "maxiter"} <= set(block) <= {
        "nfe",
        "solvers",
        "endings",
        "maxiter",
        "continue",
    }:
        raise bad(
            "'solver_entries' must be an object with 'nfe', 'solvers', 'endings', 'maxiter' and optionally 'continue'"
        )
    if not (isinstance(block["nfe"], list) and block["nfe"] and all(_is_int(v) and v >= 3 for v in block["nfe"])):
        raise bad(f"solver_entries 'nfe' must be a non-empty list of integers >= 3, got {block['nfe']!r}")
    pairs = block["solvers"]
    if not (
        isinstance(pairs, list)
        and pairs
        and all(
            isinstance(x, list) and len(x) == 2 and x[0] in SOLVER_ORDERS and x[1] in SOLVER_ORDERS[x[0]] for x in pairs
        )
    ):
        raise bad(f"solver_entries 'solvers' must be [name, order] pairs from {SOLVER_ORDERS}, got {pairs!r}")
    if not (isinstance(block["endings"], list) and block["endings"] and set(block["endings"]) <= set(ENDINGS)):
        raise bad(f"solver_entries 'endings' must be a non-empty list of {ENDINGS}, got {block['endings']!r}")
    if not (_is_int(block["maxiter"]) and block["maxiter"] > 0):
        raise bad(f"solver_entries 'maxiter' must be a positive integer, got {block['maxiter']!r}")
    out = {**block, "nfe": sorted(set(block["nfe"])), "solvers": [tuple(x) for x in pairs]}
    if "continue" in block:
        out["continue"] = _continuation(block["continue"], out["nfe"], bad)
    return out


def _continuation(block: Any, nfes: list[int], bad: Any) -> dict[str, Any]:
    """The optional ``continue`` block of ``solver_entries``: chains that continue the generic chains of the
    listed ``endings`` over more NFEs (``nfe``, all above the chains' own), refined for ``maxiter`` iterations
    per NFE."""
    if not isinstance(block, dict) or set(block) != {"nfe", "endings", "maxiter"}:
        raise bad("solver_entries 'continue' must be an object with exactly 'nfe', 'endings', 'maxiter'")
    more = block["nfe"]
    if not (isinstance(more, list) and more and all(_is_int(v) and v > max(nfes) for v in more)):
        raise bad(f"solver_entries 'continue' 'nfe' must be a non-empty list of integers > {max(nfes)}, got {more!r}")
    if not (isinstance(block["endings"], list) and block["endings"] and set(block["endings"]) <= set(ENDINGS)):
        raise bad(
            f"solver_entries 'continue' 'endings' must be a non-empty list of {ENDINGS}, got {block['endings']!r}"
        )
    if not (_is_int(block["maxiter"]) and block["maxiter"] > 0):
        raise bad(f"solver_entries 'continue' 'maxiter' must be a positive integer, got {block['maxiter']!r}")
    return {**block, "nfe": sorted(set(more))}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


_ONLY_KEYS = {"schedule": str, "nfe": int, "order": int, "p": float, "shift": float}


def parse_only(expressions: Iterable[str]) -> dict[str, set[str]]:
    """``["nfe=5,6", "order=3"]`` → {"nfe": {"5", "6"}, "order": {"3"}}; keys: schedule, nfe, order, p, shift.

    A malformed expression or a value of the wrong kind (``nfe=abc``, ``p=1e999``) raises ``ValueError``.
    """
    selection: dict[str, set[str]] = {}
    for expr in expressions:
        key, sep, values = expr.partition("=")
        key = key.strip()
        shown = repr(expr if len(expr) <= 60 else expr[:57] + "...")
        if not sep or key not in _ONLY_KEYS or not values.strip():
            raise ValueError(f"bad --only {shown}: write KEY=V1,V2 with KEY one of {', '.join(sorted(_ONLY_KEYS))}")
        wanted = {v.strip() for v in values.split(",")}
        kind = _ONLY_KEYS[key]
        for value in wanted:
            if not value or (kind is not str and not _parses_as(kind, value)):
                noun = "an integer" if kind is int else "a finite number"
                raise ValueError(f"bad --only {shown}: {key} takes {noun} per value, got {value[:40]!r}")
        selection.setdefault(key, set()).update(wanted)
    return selection


def _parses_as(kind: type, text: str) -> bool:
    try:
        return math.isfinite(kind(text)) if len(text) < 40 else False
    except ValueError:
        return False


def _matches(task: Task, selection: dict[str, set[str]]) -> bool:
    def number_in(value: float, wanted: set[str]) -> bool:
        return any(float(w) == float(value) for w in wanted)

    params = dict(task.params)
    checks = {
        "schedule": lambda w: task.schedule in w,
        "nfe": lambda w: number_in(task.nfe, w),
        "order": lambda w: number_in(task.order, w),
        "p": lambda w: number_in(task.p, w),
        "shift": lambda w: "shift" in params and number_in(params["shift"], w),
    }
    return all(checks[key](wanted) for key, wanted in selection.items())


def tasks_of(spec: Spec, selection: dict[str, set[str]] | None = None) -> list[Task]:
    """Every task of the spec (or of a slice), in a deterministic order."""
    out = []
    for sched in spec.schedules:
        params = tuple(sorted((sched.get("params") or {}).items()))
        for order in spec.orders:
            for p in spec.p:
                for nfe in spec.nfe:
                    task = Task(sched["name"], params, sched["file"], nfe, order, p, spec.tau, spec.init)
                    if not selection or _matches(task, selection):
                        out.append(task)
    return out


def slice_of(spec: Spec, selection: dict[str, set[str]]) -> list[Task]:
    """The tasks of a non-empty selection; a selection that matches nothing is a :class:`SweepError`."""
    tasks = tasks_of(spec, selection)
    if tasks:
        return tasks
    wanted = " ".join(f"{key}={','.join(sorted(values))}" for key, values in sorted(selection.items()))
    shifts = sorted({s["params"]["shift"] for s in spec.schedules if "shift" in (s.get("params") or {})})
    grid = (
        f"schedule={','.join(dict.fromkeys(s['name'] for s in spec.schedules))} "
        f"nfe={','.join(map(str, spec.nfe))} order={','.join(map(str, spec.orders))} "
        f"p={','.join(f'{p:g}' for p in spec.p)}" + (f" shift={','.join(f'{s:g}' for s in shifts)}" if shifts else "")
    )
    raise SweepError(f"--only {wanted} matches no task of the spec (it has {grid}); nothing was built")


def write_default_p(spec_path: str | Path, p_by_file: dict[str, Any]) -> bool:
    """Set ``defaults.p`` of the schedules (by data file) in the spec at ``spec_path``, keeping the file's layout
    (one schedule per line: only the number changes), written atomically; True if it changed. A file the spec
    does not list, or a line whose ``defaults.p`` cannot be found, is a ``SweepError`` and nothing is written."""
    path = Path(spec_path)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.search(r'"file": "([^"]+)"', line)
        if not m or m.group(1) not in p_by_file:
            continue
        p = p_by_file[m.group(1)]
        value = str(int(p)) if float(p).is_integer() else repr(float(p))
        lines[i], count = re.subn(r'("defaults": \{[^}]*"p": )[0-9.eE+-]+', rf"\g<1>{value}", line)
        if count != 1:
            raise SweepError(f"{path}: cannot find defaults.p on the line of {m.group(1)}")
    new_text = "".join(lines)
    written = {s["file"]: s["defaults"].get("p") for s in json.loads(new_text)["schedules"]}
    wrong = {f: p for f, p in p_by_file.items() if f not in written or float(written[f]) != float(p)}
    if wrong:
        raise SweepError(f"{path}: defaults.p not set for {sorted(wrong)} (listed in the spec: {sorted(written)})")
    if new_text == text:
        return False
    atomic_write_bytes(path, new_text.encode())
    return True
