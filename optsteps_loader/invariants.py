"""What a registry's data must satisfy, beyond being strict JSON: the index, a data file, an entry. Stdlib only.

Each function returns sentences, empty when all holds: the loader raises the first ones (`reader`), the
builder's validator reports them all (`builder.registry.validate`), so both refuse the same data:

- `index_problems`: the index's top level and every record of its ``files`` list (`record_problems`), paths
  and (schedule, params) variants unique;
- `file_problems`: a data file's top level (versions, ``schedule`` with its params and endpoints checked
  against the schedule it names by `schedules`, ``defaults``, entries unique and sorted by (order, p, nfe))
  and its agreement with its index record;
- `entry_problems`: one entry in full (array lengths, step orders, monotone nodes, endpoints, λ/α/σ/sigmas
  consistency, the family's rule, every node on its schedule (`schedules.off_schedule`), timesteps and their
  collisions), then what it records about how it was made (`_figures`).

Arithmetic here never raises on hostile finite numbers (no ``**``: ``1e308 ** 2`` is an OverflowError, while
``1e308 * 1e308`` is inf and fails the comparison it feeds). Imports `format`, which imports nothing back.
"""

from __future__ import annotations

import math

from . import schedules
from .format import MAX_FILES, SCHEMA_VERSION, is_num, is_pos_ints, is_sha256_id, path_problem, short
from .vocabulary import ENDINGS, PROFILES

REL_TOL = 1e-12
ABS_TOL = 1e-12
NODE_ARRAYS = ("t", "lambda", "alpha_t", "sigma_t", "sigmas", "timesteps")
FAMILIES = ("vp-continuous", "vp-discrete", "edm", "flow")
TIME_INPUTS = ("t", "timestep", "sigma", "1000*sigma")
CALIBRATED = "calibrated"  # the method (and solver-entry tier) of steps calibrated for one model


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def _first(pairs, ok) -> int | None:
    return next((i for i, (a, b) in enumerate(pairs) if not ok(a, b)), None)


# ---- the index


def variant_key(rec: dict) -> tuple:
    """A record's schedule variant: its schedule name and params (at most one file per variant)."""
    return (rec["schedule"], tuple(sorted((k, repr(v)) for k, v in rec["params"].items())))


def index_problems(obj: dict) -> list[str]:
    """What is wrong with an index whose ``schema_version`` is this format's (the caller checks that first,
    to say "a newer registry needs a newer optsteps"): each as ``files[i]: ...`` where it is about a record."""
    if not isinstance(obj.get("files"), list) or not isinstance(obj.get("data_version"), str):
        return ["'files' must be a list and 'data_version' a string"]
    if len(obj["files"]) > MAX_FILES:
        return [f"lists {len(obj['files'])} files, more than the {MAX_FILES} an index may"]
    out: list[str] = []
    paths: dict[str, int] = {}
    variants: dict[tuple, str] = {}
    for i, rec in enumerate(obj["files"]):
        problems = record_problems(rec)
        if not problems:
            path, variant = rec["path"], variant_key(rec)
            if path in paths:
                problems = [f"{path} is listed more than once (files[{paths[path]}] and files[{i}])"]
            elif variant in variants:
                problems = [f"{path} has the same (schedule, params) as {variants[variant]}"]
            paths.setdefault(path, i)
            variants.setdefault(variant, path)
        out += [f"files[{i}]: {p}" for p in problems]
    return out + alias_problems(obj.get("aliases", {}), obj["files"])


def alias_problems(aliases: object, files: list) -> list[str]:
    """Each alias (``{name: {schedule, shift?, profile?, description}}``) names a schedule variant the index
    lists, or a flow shift the loader serves from one (`flow_shift`: shift ≥ 1, a flow file listed), and a data
    profile of :data:`PROFILES` where it has one."""
    from .flow_shift import nearest

    if not isinstance(aliases, dict):
        return ["'aliases' must be an object"]
    have = {
        (r["schedule"], r["params"].get("shift"))
        for r in files
        if isinstance(r, dict)
        and isinstance(r.get("schedule"), str)
        and isinstance(r.get("params"), dict)
        and (r["params"].get("shift") is None or is_num(r["params"]["shift"]))  # a bad shift is reported elsewhere
    }
    shifts = [float(s) for n, s in have if n == "flow" and s is not None]
    out = []
    for name, a in aliases.items():
        if not (isinstance(a, dict) and isinstance(a.get("schedule"), str) and isinstance(a.get("description"), str)):
            out.append(f"aliases[{short(name)!r}]: needs a 'schedule' and a 'description'")
            continue
        shift = a.get("shift")
        if a.get("profile", PROFILES[0]) not in PROFILES:
            out.append(f"aliases[{short(name)!r}]: 'profile' must be one of {PROFILES}, got {short(a['profile'])!r}")
        if shift is not None and not is_num(shift):
            out.append(f"aliases[{short(name)!r}]: 'shift' must be a number")
        elif (
            (a["schedule"], shift) not in have
            and not (shift is None and (a["schedule"], 1.0) in have)
            and not (a["schedule"] == "flow" and shift is not None and nearest(shifts, float(shift)) is not None)
        ):
            served = " and the loader does not serve (a flow shift below 1)" if a["schedule"] == "flow" else ""
            out.append(
                f"aliases[{short(name)!r}] names {short(a['schedule'])!r} shift={shift!r}, which no file holds{served}"
            )
    return out


def record_problems(rec: object) -> list[str]:
    """What is wrong with one record of the index's ``files`` list (empty: nothing)."""
    if not isinstance(rec, dict):
        return ["not an object"]
    path = rec.get("path")
    why = path_problem(path)
    if why is not None:
        return [why]
    out = []
    if not is_sha256_id(rec.get("sha256")):
        out.append(f"{path}: 'sha256' must be 'sha256:' + 64 lowercase hex digits, got {short(rec.get('sha256'))!r}")
    if not (isinstance(rec.get("schedule"), str) and rec["schedule"] and isinstance(rec.get("params"), dict)):
        return [*out, f"{path}: needs a 'schedule' name and a 'params' object"]
    p = rec.get("p")
    if not (is_pos_ints(rec.get("nfe")) and is_pos_ints(rec.get("orders")) and isinstance(p, list)):
        out.append(f"{path}: 'nfe' and 'orders' must be lists of positive ints, 'p' a list of numbers")
    elif not all(map(is_num, p)):
        out.append(f"{path}: 'p' must be a list of numbers")
    for key in ("entries", "bytes"):
        if key in rec and not (type(rec[key]) is int and rec[key] >= 0):
            out.append(f"{path}: {key!r} must be an int >= 0")
    if "solver_entries" in rec and not (type(rec["solver_entries"]) is int and is_pos_ints(rec.get("solver_nfe"))):
        out.append(f"{path}: 'solver_entries' must be an int and 'solver_nfe' a list of positive ints")
    profiles = rec.get("solver_profiles", [])
    if not (isinstance(profiles, list) and all(p in PROFILES for p in profiles)):
        out.append(f"{path}: 'solver_profiles' must be a list of {PROFILES}")
    shift = rec["params"].get("shift", 1.0)
    if not (is_num(shift) and shift > 0):
        out.append(f"{path}: params.shift must be a positive number")
    return out


# ---- a data file


def entry_key(e: object) -> tuple | None:
    """``(order, p, nfe)`` of a well-typed entry (the registry's sort order), else None."""
    if isinstance(e, dict) and type(e.get("order")) is int and is_num(e.get("p")) and type(e.get("nfe")) is int:
        return (e["order"], e["p"], e["nfe"])
    return None


def file_problems(doc: object, rec: dict | None = None, index: dict | None = None) -> list[str]:
    """A data file's top level: versions, the ``schedule`` block, ``defaults``, entries unique and sorted by
    (order, p, nfe); with its index record and index, their agreement (name, params, nfe/orders/p lists,
    entry count, versions). Entries themselves are `entry_problems`' job."""
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        return [f"not a schema_version {SCHEMA_VERSION} registry file"]
    s, defaults, entries = doc.get("schedule"), doc.get("defaults"), doc.get("entries")
    if not (isinstance(s, dict) and isinstance(defaults, dict) and isinstance(entries, list)):
        return ["needs 'schedule' and 'defaults' objects and an 'entries' list"]
    out = []
    if not (isinstance(s.get("name"), str) and isinstance(s.get("params"), dict)):
        out.append("schedule needs a 'name' and a 'params' object")
    if s.get("family") not in FAMILIES or s.get("time_input") not in TIME_INPUTS:
        out.append(f"schedule.family must be one of {FAMILIES} and schedule.time_input one of {TIME_INPUTS}")
    ends = [s.get(k) for k in ("t_start", "t_end", "lambda_start", "lambda_end")]
    if not all(map(is_num, ends)):
        out.append("schedule.t_start, t_end, lambda_start and lambda_end must be finite numbers")
    elif not (ends[0] > ends[1] and ends[2] < ends[3]):
        out.append(f"schedule: t_start must be above t_end and lambda_start below lambda_end, got {ends}")
    if not isinstance(doc.get("provenance", {}), dict):
        out.append("'provenance' must be an object")
    keys: list = []
    seen: set = set()
    for i, e in enumerate(entries):
        key = entry_key(e)
        if key is None or key[0] < 1 or key[2] < 1:
            out.append(f"entries[{i}]: needs an int 'nfe' >= 1, an int 'order' >= 1 and a number 'p'")
        elif key in seen:
            out.append(f"entries[{i}]: duplicate (order, p, nfe) = {key}")
        elif keys and key < keys[-1]:
            out.append(f"entries[{i}]: not sorted by (order, p, nfe): {key} after {keys[-1]}")
        else:
            keys.append(key)
        if key is not None:
            seen.add(key)
    if out:
        return out
    order, p, solver = defaults.get("order"), defaults.get("p"), defaults.get("solver")
    if not (is_num(p) and p >= 0):
        out.append(f"defaults.p must be a number >= 0, got {short(p)!r}")
    elif not any(k[1] == p for k in keys):
        out.append(f"defaults.p = {p!r} has no entries")
    elif not any(k[0] == order and k[1] == p for k in keys):
        out.append(f"defaults name order={short(order)!r} p={p!r} but no entry has them")
    elif solver is not None and not any((e["order"], e["p"], e.get("solver")) == (order, p, solver) for e in entries):
        out.append(f"defaults name solver {short(solver)!r} but no entry with order={order!r} p={p!r} has it")
    if "solver_entries" in doc or (rec is not None and "solver_entries" in rec):
        out += _solver_entry_keys(doc.get("solver_entries"), rec)
    if rec is not None:
        out += _agreement(doc, keys, rec, index or {})
    return out + schedules.schedule_problems(s)


def solver_entry_key(e: object) -> tuple | None:
    """``(tier, solver, order, ending, nfe)`` of a well-typed solver entry (its sort order), else None. The
    tier: ``""`` for a generic entry, its ``profile`` for a profile entry, ``"calibrated"`` for a calibrated
    one (``method``), so each of them can sit beside the others for the same sampler and NFE."""
    if (
        isinstance(e, dict)
        and isinstance(e.get("profile", ""), str)
        and isinstance(e.get("solver"), str)
        and type(e.get("order")) is int
        and e.get("ending") in ENDINGS
        and type(e.get("nfe")) is int
    ):
        tier = CALIBRATED if e.get("method") == CALIBRATED else e.get("profile", "")
        return (tier, e["solver"], e["order"], e["ending"], e["nfe"])
    return None


def _solver_entry_keys(entries: object, rec: dict | None) -> list[str]:
    if not (isinstance(entries, list) and entries):
        return ["'solver_entries' must be a non-empty list"]
    out, keys = [], []
    for i, e in enumerate(entries):
        key = solver_entry_key(e)
        if key is None or key[2] < 1 or key[4] < 2:
            out.append(
                f"solver_entries[{i}]: needs a 'solver', an int 'order' >= 1, 'ending' eps or zero, an int 'nfe' >= 2"
                " (and a string 'profile' where it has one)"
            )
        elif keys and key <= keys[-1]:
            what = "duplicate" if key == keys[-1] else "not sorted by (tier, solver, order, ending, nfe):"
            out.append(f"solver_entries[{i}]: {what} {key}")
        else:
            keys.append(key)
    if not out and rec is not None:
        want = (rec.get("solver_entries"), rec.get("solver_nfe"), rec.get("solver_profiles", []))
        got = (len(keys), sorted({k[4] for k in keys}), sorted({k[0] for k in keys} - {"", CALIBRATED}))
        if want != got:
            out.append(
                f"its {got[0]} solver entries (nfe {short(str(got[1]))}, profiles {got[2]}) do not match the index"
                f" ({want[0]}, nfe {short(str(want[1]))}, profiles {short(str(want[2]))})"
            )
    return out


def _agreement(doc: dict, keys: list, rec: dict, index: dict) -> list[str]:
    out = []
    s = doc["schedule"]
    if s.get("name") != rec["schedule"]:
        out.append(f"schedule.name {short(s.get('name'))!r} is not the index's {short(rec['schedule'])!r}")
    params = s.get("params") if isinstance(s.get("params"), dict) else {}
    for k, v in rec["params"].items():
        if params.get(k) != v:
            out.append(f"the index says params {short(k)}={short(v)!r} but schedule.params has {params.get(k)!r}")
    for k in ("schema_version", "data_version"):
        if k in doc and k in index and doc[k] != index[k]:
            out.append(f"{k} {short(doc[k])!r} differs from the index's {short(index[k])!r}")
    grid = [sorted({k[j] for k in keys}) for j in (2, 0, 1)]
    want = [rec["nfe"], rec["orders"], rec["p"]]
    count = rec.get("entries", len(keys))
    if grid != want or count != len(keys):
        out.append(
            f"its entries (nfe {short(str(grid[0]))}, orders {grid[1]}, p {short(str(grid[2]))}; {len(keys)} in"
            f" all) do not match the index (nfe {short(str(want[0]))}, orders {short(str(want[1]))}, p"
            f" {short(str(want[2]))}; {count} in all)"
        )
    return out


# ---- an entry


def entry_problems(e: dict, schedule: dict) -> list[str]:
    """Everything one entry must satisfy (its file's `file_problems` passed): nfe+1 finite numbers per node
    array, ``nfe`` step orders each ≤ order and ≤ i+1; λ strictly increasing, t and σ/α strictly decreasing,
    timesteps non-increasing; the endpoints the schedule declares (relative 1e-12); λ = log α − log σ
    (absolute 1e-12), sigmas = σ/α (relative 1e-12); the family's rule (vp: α² + σ² = 1, flow: α + σ = 1,
    edm: α = 1 and t = σ; absolute 1e-12); every node on the schedule the file names (`schedules`: α_t and
    σ_t what its formulas give at t with its params, relative 1e-12); timesteps as ``time_input`` says and
    their collisions listed."""
    nfe, order, ending = e["nfe"], e["order"], e.get("ending", "eps")
    if ending not in ENDINGS:
        return [f"'ending' must be one of {ENDINGS}, got {short(ending)!r}"]
    arrays = {}
    for key in NODE_ARRAYS:
        v = e.get(key)
        n = nfe if ending == "zero" and key in ("lambda", "timesteps") else nfe + 1
        if not (isinstance(v, list) and len(v) == n and all(map(is_num, v))):
            got = f"{len(v)} values" if isinstance(v, list) else type(v).__name__
            what = "nfe+1" if n == nfe + 1 else "nfe"
            return [f"'{key}' must be a list of {what} = {n} finite numbers (has {got})"]
        arrays[key] = v
    if ending == "zero":
        tail = tuple(arrays[k][-1] for k in ("t", "alpha_t", "sigma_t", "sigmas"))
        arrays.update({k: arrays[k][:-1] for k in ("t", "alpha_t", "sigma_t", "sigmas")})  # the N evaluated nodes
        if tail != (0.0, 1.0, 0.0, 0.0):
            return [f"ending 'zero': the last (t, alpha_t, sigma_t, sigmas) must be (0, 1, 0, 0), got {tail}"]
    so = e.get("step_orders")
    if not is_pos_ints(so):
        return [f"'step_orders' must be a list of nfe = {nfe} positive ints"]
    out = []
    if len(so) != nfe:
        out.append(f"'step_orders' has {len(so)} values, expected nfe = {nfe}")
    if (i := next((i for i, k in enumerate(so) if k > order), None)) is not None:
        out.append(f"step_orders[{i}] = {so[i]} exceeds order {order}")
    if (i := next((i for i, k in enumerate(so) if k > i + 1), None)) is not None:
        out.append(f"step_orders[{i}] = {so[i]} but step {i} has only {i + 1} earlier node(s)")
    if "p" in e and not (type(e.get("tau")) is int and is_num(e.get("objective"))):
        out.append("needs an int 'tau' and a finite number 'objective'")
    if any(e.get(k) is not None and not is_num(e[k]) for k in ("objective_uniform_lambda", "objective_uniform_t")):
        out.append("'objective_uniform_lambda' and 'objective_uniform_t' must be finite numbers")
    collisions, quality = e.get("timestep_collisions", []), e.get("quality")
    if not (isinstance(collisions, list) and (quality is None or isinstance(quality, dict))):
        out.append("'timestep_collisions' must be a list and 'quality' null or an object")
    t, lam, alpha, sigma, sigmas, ts = arrays.values()
    for name, seq, ok, what in (
        ("lambda", lam, lambda a, b: b > a, "not strictly increasing"),
        ("t", t, lambda a, b: b < a, "not strictly decreasing"),
        ("sigmas", sigmas, lambda a, b: b < a, "not strictly decreasing"),
        ("timesteps", ts, lambda a, b: b <= a, "increase"),
    ):
        if (i := _first(zip(seq, seq[1:], strict=False), ok)) is not None:
            out.append(f"{name} {what} at index {i + 1} ({seq[i]!r} then {seq[i + 1]!r})")
    ends = ((t, "t", 0, "t_start"), (lam, "lambda", 0, "lambda_start"))
    if ending == "eps":
        ends += ((t, "t", -1, "t_end"), (lam, "lambda", -1, "lambda_end"))
    elif not (lam[-1] <= schedule["lambda_end"] or _close(lam[-1], schedule["lambda_end"])):
        out.append(f"ending 'zero': the last evaluated lambda {lam[-1]!r} must not be above schedule.lambda_end")
    for seq, name, pos, decl in ends:
        if not _close(seq[pos], schedule[decl]):
            where = "first" if pos == 0 else "last"
            out.append(f"{name} {where} value {seq[pos]!r} differs from schedule.{decl} = {schedule[decl]!r}")
    if min(alpha) <= 0 or min(sigma) <= 0:
        return [*out, "alpha_t and sigma_t must be positive"]
    logs = [math.log(a) - math.log(s) for a, s in zip(alpha, sigma, strict=True)]
    if (i := _first(zip(lam, logs, strict=True), lambda a, b: abs(a - b) <= ABS_TOL)) is not None:
        out.append(f"lambda[{i}] = {lam[i]!r} but log(alpha_t) - log(sigma_t) = {logs[i]!r} (tolerance {ABS_TOL:g})")
    ratio = [s / a for a, s in zip(alpha, sigma, strict=True)]
    if (i := _first(zip(sigmas, ratio, strict=True), _close)) is not None:
        out.append(f"sigmas[{i}] = {sigmas[i]!r} but sigma_t/alpha_t = {ratio[i]!r}")
    family = schedule["family"]
    rule = {
        "vp-continuous": ("alpha_t^2 + sigma_t^2", lambda a, s: a * a + s * s),
        "vp-discrete": ("alpha_t^2 + sigma_t^2", lambda a, s: a * a + s * s),
        "flow": ("alpha_t + sigma_t", lambda a, s: a + s),
        "edm": ("alpha_t", lambda a, s: a),
    }[family]
    if (i := _first(zip(alpha, sigma, strict=True), lambda a, s: abs(rule[1](a, s) - 1) <= ABS_TOL)) is not None:
        out.append(f"{rule[0]} = {rule[1](alpha[i], sigma[i])!r} at index {i}, not 1 ({family})")
    if family == "edm" and (i := _first(zip(t, sigma, strict=True), _close)) is not None:
        out.append(f"t[{i}] = {t[i]!r} differs from sigma_t[{i}] = {sigma[i]!r} (edm: t is sigma)")
    out += schedules.off_schedule(t, alpha, sigma, schedule)
    from ._figures import figures_problems  # loaded on the first entry checked, not with the package

    return out + _timestep_problems(ts, collisions, t, sigma, sigmas, schedule) + figures_problems(e, schedule)


def _timestep_problems(ts: list, collisions: object, t: list, sigma: list, sigmas: list, schedule: dict) -> list:
    out = []
    time_input, ok = schedule["time_input"], _close
    expected = {"t": t, "sigma": sigmas, "1000*sigma": [1000.0 * s for s in sigma]}.get(time_input)
    if time_input == "timestep":
        expected = [(x - 1.0 / 1000) * 1000 for x in t]

        def ok(a: float, b: float) -> bool:  # the nearest integer, either way of breaking ties
            return abs(a - b) <= 0.5 + 1e-9

        if (
            schedule["family"] == "vp-discrete"
            and (i := next((i for i, v in enumerate(ts) if type(v) is not int), None)) is not None
        ):
            out.append(f"timesteps[{i}] = {ts[i]!r} is not an integer (vp-discrete)")
    if (i := _first(zip(ts, expected, strict=True), ok)) is not None:
        out.append(f"timesteps[{i}] = {ts[i]!r} does not match time_input {time_input!r} (expected {expected[i]!r})")
    want = schedules.timestep_collisions(ts)
    if want and schedule["family"] == "vp-discrete":
        i, j = want[0]
        out.append(
            f"nodes {i} and {j} share timestep {ts[i]!r}: on a discrete schedule every node needs its own (diffusers "
            "derives σ from the integer timestep, so a shared one is a second model call or a zero-length step)"
        )
    if isinstance(collisions, list) and collisions != want:
        out.append(
            f"timestep_collisions is {short(str(collisions))}, expected {short(str(want))}"
            " (every pair i < j with equal timesteps)"
        )
    return out
