"""Flow entries at a shift the registry has no file for ("served" shifts). Standard library only.

The flow schedule σ_s(t) = s·t / (1 + (s − 1)·t) (`schedules`) only re-parametrises time: the samplers step
in λ = log((1 − σ)/σ), the model takes 1000·σ, so the same σ grid samples alike at any shift. The shift
moves only where a grid may end: the interval t ∈ [t_end, t_start] is σ_s(t_end) … σ_s(t_start). (Measured
on the shipped registry, ``python benchmarks/bench_flow_shift.py``: the refined shift-1 and shift-3 entries'
interior nodes agree in σ to a median of 0.004.) So a flow request with a shift ≥ 1 that no file holds is
served from the shipped variant nearest in log(shift) (the smaller on a tie):

- interior nodes keep their σ (and λ);
- end nodes keep their t, so they sit where the requested shift's schedule puts its ends: the first node at
  σ_s(t_start), an ``"eps"`` grid's last at σ_s(t_end), and a node the refinement held at its floor next to
  an end (one minimal step h_min = (λ_ε − λ_T)/(50·N) from it, or from the node already held) with them;
- α, σ, λ, σ/α and the timesteps (1000·σ) are recomputed at the requested shift by `schedules`' formulas.

Refused, with `EntryNotFoundError`: a shift below 1, and a grid whose moved ends would come closer to a kept
node than the source grid's own step there or h_min (a large shift moves σ_ε past a fine grid's last nodes).
The figures (``objective``, ``quality``) stay the source entry's, measured at its shift.
"""

from __future__ import annotations

import math

from . import schedules
from .errors import EntryNotFoundError

MIN_STEP_FRACTION = 1.0 / 50.0  # h_min = (λ_ε − λ_T)·MIN_STEP_FRACTION/N: the refinement's floor (builder)
HELD = 1e-4  # a step within this fraction of h_min is one the refinement held at its floor
RULE = "flow shifts ≥ 1 are served from the nearest shipped variant (docs/registry-format.md)"


def nearest(shifts: list[float], shift: float) -> float | None:
    """The shipped shift nearest to ``shift`` in log(shift) (the smaller on a tie); None where ``shift`` < 1
    or nothing is shipped."""
    if shift < 1.0 or not shifts:
        return None
    return min(shifts, key=lambda s: (abs(math.log(shift) - math.log(s)), s))


def schedule_block(block: dict, shift: float) -> dict:
    """A flow file's ``schedule`` block at another shift: the same t_start, t_end; λ at them recomputed."""
    coefficients = schedules.at("flow", {"shift": shift})
    ends = {}
    for key, lam_key in (("t_start", "lambda_start"), ("t_end", "lambda_end")):
        alpha, sigma = coefficients(block[key])
        ends[lam_key] = math.log(alpha) - math.log(sigma)
    return {**block, "params": {"shift": float(shift)}, **ends}


def served(steps, block: dict, shift: float, command: str) -> dict:
    """The node sequences of ``steps`` (a flow entry of the file whose ``schedule`` block is ``block``) at
    ``shift``: ``{"t", "alpha_t", "sigma_t", "sigmas", "lambdas", "timesteps", "timestep_collisions"}``, for
    `dataclasses.replace`. `EntryNotFoundError` where the moved ends leave no valid grid (module docstring),
    naming ``command``, the builder command that computes the entry at that shift."""
    n, zero = steps.nfe, steps.ending == "zero"
    finite = n if zero else n + 1  # the nodes with σ > 0
    t, alpha, sigma = steps.t[:finite], steps.alpha_t[:finite], steps.sigma_t[:finite]
    lam = list(steps.lambdas[:finite])
    # a "zero" grid's last evaluated node is free below λ_ε (its last gap measured to λ_ε), or at t_end itself
    # (a bound entry and a denoise step)
    to_end = zero and t[-1] != block["t_end"]
    bounds = [*lam, block["lambda_end"]] if to_end else lam
    h_min = (block["lambda_end"] - block["lambda_start"]) * MIN_STEP_FRACTION / n
    held = [False] * len(bounds)
    held[0] = held[-1] = True  # the ends (a "zero" grid's λ_ε stands for its end)
    for order in (range(1, len(bounds)), range(len(bounds) - 2, -1, -1)):
        for i in order:
            j = i - 1 if order.step > 0 else i + 1
            if held[j] and abs(abs(bounds[i] - bounds[j]) - h_min) <= HELD * h_min:
                held[i] = True
    coefficients = schedules.at("flow", {"shift": shift})
    new_t = [
        t[i] if held[i] else schedules.flow_time(shift, alpha[i], sigma[i]) for i in range(finite)
    ]  # held nodes keep t, the others σ
    nodes = [coefficients(x) for x in new_t]
    new_lam = [math.log(a) - math.log(s) for a, s in nodes]
    moved = schedule_block(block, shift)
    new_bounds = [*new_lam, moved["lambda_end"]] if to_end else new_lam
    for i in range(1, len(bounds)):
        old, new = bounds[i] - bounds[i - 1], new_bounds[i] - new_bounds[i - 1]
        if not new >= min(old, h_min) * (1.0 - 1e-9):
            where = f"sigma {nodes[i - 1][1]:.4g} and {nodes[i][1]:.4g}" if i < finite else "the last node and t_end"
            raise EntryNotFoundError(
                f"{RULE}; at shift={_num(shift)} the ends of the shift-{_num(block['params']['shift'])} grid"
                f" (nfe={n}, order={steps.order}, ending={steps.ending!r}) move so that the step between {where}"
                f" is {new:.3g} in lambda, below {min(old, h_min):.3g}: that grid does not fit this shift."
                f" Compute one for it (needs the builder extra: pip install 'optsteps[builder]'): {command}"
            )
    out = {
        "t": tuple(new_t),
        "alpha_t": tuple(a for a, _ in nodes),
        "sigma_t": tuple(s for _, s in nodes),
        "sigmas": tuple(s / a for a, s in nodes),
        "lambdas": tuple(new_lam),
        "timesteps": tuple(1000.0 * s for _, s in nodes),
    }
    if zero:  # the σ = 0 node stays (0, 1, 0, 0)
        out.update({k: (*out[k], getattr(steps, k)[n]) for k in ("t", "alpha_t", "sigma_t", "sigmas")})
    ts = out["timesteps"]
    out["timestep_collisions"] = tuple(map(tuple, schedules.timestep_collisions(ts)))
    return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
