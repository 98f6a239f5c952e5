"""The registry's schedules as the loader checks them: each name's family, time input and params, and
α(t), σ(t) at a node. Standard library only, scalar.

A data file's ``schedule`` block names its schedule and params; every node of every entry must lie on that
schedule (`invariants`): α_t and σ_t at the node's t are what the formulas below give, to `REL_TOL`. So an
edit of t, α, σ or λ, or of a param, that keeps the file hash-consistent is still refused.

The builder computes the same quantities, vectorised and differentiable, in ``builder/solve/schedules.py``
(which writes the registry); the two are tested against each other (tests/test_schedules_check.py). A name
this module does not know is refused: a registry of a newer format needs a newer optsteps.

=============  =============  ==========  ===============================================================
name           family         time input  α(t), σ(t)
=============  =============  ==========  ===============================================================
vp-linear      vp-continuous  t           log α = −(β1−β0)t²/4 − β0 t/2, σ = √(1 − α²)
vp-cosine      vp-continuous  t           α = cos(((t+s)/(1+s))·π/2) / cos((s/(1+s))·π/2), σ = √(1 − α²)
ddpm-linear,   vp-discrete    timestep    log α_n = ½ Σ_{i≤n} log(1 − β_i) at t_n = (n+1)/N, piecewise
scaled-linear                             linear in t (extended linearly past the ends); β linear or
                                          √-linear ("scaled_linear") from beta_start to beta_end
edm            edm            sigma       α = 1, σ = t
flow           flow           1000*sigma  σ = s·t / (1 + (s−1)·t), α = 1 − σ (s: shift); inverse:
                                          t = σ / (σ + s·α) (`flow_time`)
=============  =============  ==========  ===============================================================
"""

from __future__ import annotations

import math
from bisect import bisect_right

from .format import is_num, short

REL_TOL = 1e-12  # α_t, σ_t and λ against the formulas (the builder's numpy agrees to ~1e-15 on the registry)
MAX_TRAIN_TIMESTEPS = 100_000


def _positive(x: object) -> bool:
    return is_num(x) and x > 0


def _unit(x: object) -> bool:
    return is_num(x) and 0 < x < 1


def _steps(x: object) -> bool:
    return type(x) is int and 2 <= x <= MAX_TRAIN_TIMESTEPS


# name -> (family, time_input, {param: (test, what it must be)})
_DISCRETE = {
    "beta_start": (_unit, "a number in (0, 1)"),
    "beta_end": (_unit, "a number in (0, 1)"),
    "beta_schedule": (lambda x: x in ("linear", "scaled_linear"), "'linear' or 'scaled_linear'"),
    "num_train_timesteps": (_steps, f"an int from 2 to {MAX_TRAIN_TIMESTEPS}"),
}
SCHEDULES: dict[str, tuple[str, str, dict]] = {
    "vp-linear": (
        "vp-continuous",
        "t",
        {"beta_0": (_positive, "a number > 0"), "beta_1": (_positive, "a number > beta_0")},
    ),
    "vp-cosine": ("vp-continuous", "t", {"s": (_unit, "a number in (0, 1)")}),
    "ddpm-linear": ("vp-discrete", "timestep", _DISCRETE),
    "scaled-linear": ("vp-discrete", "timestep", _DISCRETE),
    "edm": ("edm", "sigma", {}),
    "flow": ("flow", "1000*sigma", {"shift": (_positive, "a number > 0")}),
}


def schedule_problems(s: dict) -> list[str]:
    """What is wrong with a data file's ``schedule`` block (name, family, time_input, params, endpoints)
    against the schedule it names; empty when it is one this module can check nodes against."""
    from .format import short

    name, params = s.get("name"), s.get("params")
    if name not in SCHEDULES:
        return [f"schedule.name {short(name)!r} is not one this loader knows ({', '.join(SCHEDULES)})"]
    family, time_input, spec = SCHEDULES[name]
    out = []
    if (s.get("family"), s.get("time_input")) != (family, time_input):
        out.append(f"schedule {name!r} has family {family!r} and time_input {time_input!r}")
    if not isinstance(params, dict):
        return [*out, "schedule.params must be an object"]
    if sorted(params) != sorted(spec):
        unknown, missing = sorted(set(params) - set(spec)), sorted(set(spec) - set(params))
        out.append(
            f"schedule.params of {name!r} must be exactly {sorted(spec) or '{}'}"
            + (f"; unknown: {short(str(unknown))}" if unknown else "")
            + (f"; missing: {missing}" if missing else "")
        )
        return out
    for key, (ok, what) in spec.items():
        if not ok(params[key]):
            out.append(f"schedule.params.{key} must be {what}, got {short(params[key])!r}")
    if not out and name == "vp-linear" and not params["beta_1"] > params["beta_0"]:
        out.append(f"schedule.params.beta_1 must be > beta_0, got {params['beta_1']!r} <= {params['beta_0']!r}")
    if not out and spec is _DISCRETE and not params["beta_end"] >= params["beta_start"]:
        out.append(f"schedule.params.beta_end must be >= beta_start, got {params['beta_end']!r}")
    if out:
        return out
    coefficients = at(name, params)
    for key, lam_key in (("t_start", "lambda_start"), ("t_end", "lambda_end")):
        t, lam = s.get(key), s.get(lam_key)
        if not (_positive(t) and is_num(lam)):
            continue  # reported by the file's own checks
        if name == "flow" and not t < 1:
            out.append(f"schedule.{key} must be below 1 for flow, got {t!r}")
            continue
        alpha, sigma = coefficients(t)
        want = math.log(alpha) - math.log(sigma) if alpha > 0 and sigma > 0 else math.nan
        if not abs(want - lam) <= REL_TOL * max(1.0, abs(want)):
            out.append(f"schedule.{lam_key} = {lam!r} but {name} with these params gives {want!r} at {key} = {t!r}")
    return out


def at(name: str, params: dict):
    """``t -> (α_t, σ_t)`` for a schedule whose block passed `schedule_problems`."""
    return _at(name, tuple(sorted(params.items())))


def off_schedule(t: list, alpha: list, sigma: list, schedule: dict) -> list[str]:
    """The first node whose (α_t, σ_t) is not the schedule's at its t (`at`: every family's t ↔ α, σ relation,
    with the file's params), to `REL_TOL`: the check `invariants.entry_problems` runs on every entry."""
    coefficients, tol = at(schedule["name"], schedule["params"]), REL_TOL
    for i, x in enumerate(t):
        a, s = coefficients(x)
        if not (abs(a - alpha[i]) <= tol * abs(a) and abs(s - sigma[i]) <= tol * abs(s)):
            return [
                f"(alpha_t, sigma_t)[{i}] = ({alpha[i]!r}, {sigma[i]!r}) but {schedule['name']} with"
                f" {short(str(schedule['params']))} gives ({a!r}, {s!r}) at t[{i}] = {x!r} (relative tolerance {tol:g})"
            ]
    return []


_AT: dict = {}  # (name, params) -> α, σ at t: a few schedules per registry (a dict: functools costs the import)


def _at(name: str, items: tuple):
    key = (name, items)
    if key not in _AT:
        if len(_AT) >= 64:
            _AT.clear()
        _AT[key] = _formula(name, items)
    return _AT[key]


def _formula(name: str, items: tuple):
    p = dict(items)
    if name == "vp-linear":
        b0, db = p["beta_0"], p["beta_1"] - p["beta_0"]
        return lambda t: _vp(-0.25 * t * t * db - 0.5 * t * b0)
    if name == "vp-cosine":
        s = p["s"]
        theta_0 = s / (1.0 + s) * math.pi / 2.0

        def cosine(t: float) -> tuple[float, float]:  # log(cos θ_t / cos θ_0) without cancellation at small t
            half = t / (1.0 + s) * math.pi / 4.0
            arg = -2.0 * math.sin(theta_0 + half) * math.sin(half) / math.cos(theta_0)
            return _vp(math.log1p(arg)) if arg > -1.0 else (0.0, 1.0)

        return cosine
    if name in ("ddpm-linear", "scaled-linear"):
        return _discrete(p["beta_start"], p["beta_end"], p["beta_schedule"], p["num_train_timesteps"])
    if name == "edm":
        return lambda t: (1.0, t)
    shift = p["shift"]

    def flow(t: float) -> tuple[float, float]:
        sigma = shift * t / (1.0 + (shift - 1.0) * t)
        return 1.0 - sigma, sigma

    return flow


def timestep_collisions(timesteps: list | tuple) -> list[list[int]]:
    """Every pair [i, j], i < j, of nodes whose timesteps coincide, in order: an entry's
    ``timestep_collisions`` (on a discrete schedule it must be empty, `invariants`)."""
    n = len(timesteps)
    return [[i, j] for i in range(n) for j in range(i + 1, n) if timesteps[i] == timesteps[j]]


def flow_time(shift: float, alpha: float, sigma: float) -> float:
    """The flow schedule's t at a node (α, σ = 1 − α), inverting σ = s·t / (1 + (s − 1)·t):
    t = σ / (σ + s·α), from both coefficients so that neither end loses digits to 1 − σ."""
    return sigma / (sigma + shift * alpha)


def _vp(log_alpha: float) -> tuple[float, float]:
    """(α, σ) of a variance-preserving schedule from log α: σ = √(1 − α²) (via expm1, exact near α = 1)."""
    if not log_alpha < 0:
        return math.exp(log_alpha), 0.0
    return math.exp(log_alpha), math.sqrt(-math.expm1(2.0 * log_alpha))


def _discrete(start: float, end: float, kind: str, n: int):
    if kind == "scaled_linear":
        a, step = math.sqrt(start), (math.sqrt(end) - math.sqrt(start)) / (n - 1)
        betas = [(a + i * step) ** 2 for i in range(n - 1)] + [math.sqrt(end) ** 2]
    else:
        step = (end - start) / (n - 1)
        betas = [start + i * step for i in range(n - 1)] + [end]
    knots_t = [(i + 1) / n for i in range(n)]
    knots, total = [], 0.0
    for beta in betas:
        total += math.log1p(-beta)
        knots.append(0.5 * total)

    def discrete(t: float) -> tuple[float, float]:
        i = min(max(bisect_right(knots_t, t) - 1, 0), n - 2)  # the segment, or the end one (extrapolated)
        x0, x1 = knots_t[i], knots_t[i + 1]
        return _vp(knots[i] + (t - x0) * (knots[i + 1] - knots[i]) / (x1 - x0))

    return discrete
