"""The host rules of the promise selection (:mod:`builder.select.promise`): the grids a user can pick in a
host, as formulas (:func:`host_rules`).

s = σ/α = e^{−λ} is the EDM / k-diffusion σ of a VP model; a discrete schedule's timestep n (0…999) is
t = (n + 1)/1000 (the schedule's own embedding); ComfyUI's flow table index i is t = (i + 1)/1000 as well
(``ModelSamplingDiscreteFlow``).

- from :func:`builder.select.refine.rule_grids` (every schedule): ``uniform-lambda`` (DPM-Solver's logSNR,
  diffusers ``use_lu_lambdas``; also ``exponential``: k-diffusion's ``get_sigmas_exponential`` and diffusers'
  ``use_exponential_sigmas`` are uniform in log s = −λ, the same grid), ``uniform-t``, ``uniform-sqrt-t``,
  ``karras-rho7``; scaled-linear: ``ays-sd1``, ``ays-sdxl`` (ComfyUI's 10-step rows, ``loglinear_interp`` to
  other N), ``gits``; flow: ``oss-flux``, ``oss-wan``;
- ``kl-optimal`` (every schedule): s_i = tan((1 − a_i) atan s_max + a_i atan s_min), a_i = i/(M − 1)
  (ComfyUI ``kl_optimal_scheduler``);
- ``beta-0.6`` (VP and EDM schedules; diffusers ``use_beta_sigmas``): s_i = s_min + F⁻¹(1 − i/(M − 1)) (s_max −
  s_min), F the Beta(0.6, 0.6) CDF;
- discrete schedules only, diffusers' ``timestep_spacing`` (steps_offset 1 on scaled-linear, 0 otherwise, as
  SD's and DDPM's configs): ``leading`` n_i = (M − 1 − i)·⌊1000/M⌋ + offset; ``trailing``
  n_i = round(1000 − i·1000/M) − 1; ``linspace`` n_i = round(999 (1 − i/(M − 1)));
- discrete and flow schedules, ComfyUI's schedulers on the model's table: ``sgm-uniform`` n_i = 999 (1 − i/M)
  (fractional, i < M); ``simple`` n_i = 999 − ⌊i·1000/M⌋; ``beta-comfy`` n_i = round(999 F⁻¹(1 − i/M)) (ComfyUI
  ``beta_scheduler``, which drops repeated timesteps; here a rule with a repeat does not apply). ComfyUI's
  ``normal`` is ``linspace`` without the rounding and is left out.

The published tables come from ``rule_grids``, which builds their ``"zero"`` grids as the hosts run them (the
N-step row with its last σ set to 0). Each formula above gives M finite nodes (noisiest first). **Endings**, in the
registry's convention: ``"zero"`` (N calls, the last step to σ = 0, as diffusers / k-diffusion / ComfyUI run): the
rule's M = N nodes; ``"eps"`` (N steps to λ_ε): the M = N + 1 rule when the rule ends at λ_ε (s_min), else the M =
N rule followed by λ_ε (a diffusers scheduler with ``final_sigmas_type="sigma_min"``). The first node is the
schedule's λ_T (every sampler here starts from x_T there; ``leading`` and the flow table's t = 1 are moved to it,
as :mod:`builder.solve.grids` does for tables) and nodes are clipped to ≤ λ_ε; a grid that is then not strictly
increasing does not apply (left out). Grids equal to an earlier rule's (to 1e-12) are left out too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["BETA_AB", "host_rules"]

BETA_AB = 0.6


def _beta_ppf(q: np.ndarray) -> np.ndarray:
    from scipy.stats import beta

    return beta.ppf(q, BETA_AB, BETA_AB)


def _lam_of_index(schedule, n: np.ndarray) -> np.ndarray:
    """λ at table index n (0…999, fractional allowed): t = (n + 1)/1000 (discrete schedules, ComfyUI's flow)."""
    with np.errstate(divide="ignore"):
        return schedule.marginal_lambda((np.asarray(n, dtype=np.float64) + 1.0) / 1000.0)


def _lam_of_s(s: np.ndarray) -> np.ndarray:
    return -np.log(np.asarray(s, dtype=np.float64))


def _tables(schedule) -> dict[str, Callable[[int], np.ndarray]]:
    """{rule: M ↦ M λ-nodes, noisiest first} for the rules not in ``rule_grids`` (module docstring)."""
    s_max, s_min = math.exp(-schedule.lambda_start), math.exp(-schedule.lambda_end)
    flow = schedule.family == "flow"
    discrete = schedule.family == "vp-discrete"
    out: dict[str, Callable[[int], np.ndarray]] = {}
    if flow:  # ComfyUI's kl_optimal on the flow σ = 1/(1 + e^λ)
        f_max, f_min = 1.0 / (1.0 + math.exp(schedule.lambda_start)), 1.0 / (1.0 + math.exp(schedule.lambda_end))

        def kl_flow(m: int) -> np.ndarray:
            a = np.arange(m) / (m - 1)
            f = np.tan((1 - a) * math.atan(f_max) + a * math.atan(f_min))
            return np.log1p(-f) - np.log(f)

        out["kl-optimal"] = kl_flow
    else:
        out["kl-optimal"] = lambda m: _lam_of_s(
            np.tan((1 - np.arange(m) / (m - 1)) * math.atan(s_max) + np.arange(m) / (m - 1) * math.atan(s_min))
        )
        out["beta-0.6"] = lambda m: _lam_of_s(s_min + _beta_ppf(1 - np.arange(m) / (m - 1)) * (s_max - s_min))
    if discrete:
        offset = 1 if schedule.name == "scaled-linear" else 0
        out["leading"] = lambda m: _lam_of_index(schedule, (m - 1 - np.arange(m)) * (1000 // m) + offset)
        out["trailing"] = lambda m: _lam_of_index(schedule, np.round(1000 - np.arange(m) * 1000 / m) - 1)
        out["linspace"] = lambda m: _lam_of_index(schedule, np.round(999 * (1 - np.arange(m) / (m - 1))))
    if discrete or flow:
        out["sgm-uniform"] = lambda m: _lam_of_index(schedule, 999 * (1 - np.arange(m) / m))
        out["simple"] = lambda m: _lam_of_index(schedule, 999 - np.floor(np.arange(m) * 1000 / m))
        out["beta-comfy"] = lambda m: _lam_of_index(schedule, np.round(999 * _beta_ppf(1 - np.arange(m) / m)))
    return out


def _to_grid(table: Callable[[int], np.ndarray], schedule, nfe: int, ending: str) -> np.ndarray | None:
    """The registry's grid of a host table for ``nfe`` calls and ``ending`` (module docstring, Endings)."""
    lam_t, lam_e = schedule.lambda_start, schedule.lambda_end
    if ending == "zero":
        lam = table(nfe) if nfe >= 2 else np.array([lam_t])
    else:
        lam = table(nfe) if nfe >= 2 else np.array([lam_t, lam_e])
        if abs(lam[-1] - lam_e) <= 1e-9 * max(1.0, abs(lam_e)):
            lam = table(nfe + 1)
        else:
            lam = np.append(lam, lam_e)
    lam = np.minimum(np.array(lam, dtype=np.float64), lam_e)
    lam[0] = lam_t
    if ending == "eps":
        lam[-1] = lam_e
    return lam if np.all(np.isfinite(lam)) and np.all(np.diff(lam) > 0) else None


def host_rules(schedule, nfe: int, ending: str = "eps") -> dict[str, np.ndarray]:
    """{rule: λ-grid} of every host rule that applies to ``schedule`` at ``nfe`` calls, in the registry's
    convention for ``ending`` (N + 1 nodes for ``"eps"``, N for ``"zero"``); module docstring for the formulas."""
    from .refine import rule_grids  # torch: not needed for the formulas

    out = dict(rule_grids(schedule, nfe, ending))
    for name, table in _tables(schedule).items():
        grid = _to_grid(table, schedule, nfe, ending)
        if grid is not None and not any(g.shape == grid.shape and np.allclose(g, grid, 0, 1e-12) for g in out.values()):
            out[name] = grid
    return out
