"""Baseline step grids, as λ-grids between a schedule's endpoints (N+1 values, noisiest first).

Formula baselines (every schedule; t ∈ [t_end, t_start] is the schedule's own time, T = t_start, ε = t_end):

- ``uniform-lambda``: λ_i = λ_T + (i/N)(λ_ε − λ_T) (DPM-Solver's "logSNR"; the paper's baseline);
- ``uniform-t``: t_i = T + (i/N)(ε − T), λ_i = λ(t_i) (DPM-Solver's "time_uniform");
- ``uniform-sqrt-t``: t_i = (√T + (i/N)(√ε − √T))², λ_i = λ(t_i) (the released code's "quad");
- ``karras-rho7``: s_i = (s_max^{1/ρ} + (i/N)(s_min^{1/ρ} − s_max^{1/ρ}))^ρ with ρ = 7 in s = σ/α = e^{−λ},
  s_max = e^{−λ_T}, s_min = e^{−λ_ε}; λ_i = −log s_i (EDM; the released code's "edm" init).

Published tables (``data/baselines.json``, verbatim copies of ../shared/baselines with their sources):

- ``ays-sd1``, ``ays-sdxl`` (Align Your Steps, ComfyUI ``NOISE_LEVELS``) and ``gits`` (GITS, ComfyUI, coeff
  1.20, its node's default) apply to ``scaled-linear``: their σ is the EDM σ/α of SD's discrete schedule,
  so λ = −log σ;
- ``oss-flux``, ``oss-wan`` (Optimal Stepsize, ComfyUI) apply to the ``flow`` family: their σ is the flow σ
  (x = (1−σ)x₀ + σε), so λ = log((1−σ)/σ).

Other step counts use ComfyUI's ``loglinear_interp`` (``np.interp`` of log σ over ``linspace(0, 1)``) of
the native row: AYS's 10-step row, OSS's native row, GITS's 20-step row beyond 20 steps (GITS has rows for
2–20 steps). Conversion to the schedule: the table's first and last node are *replaced* by the schedule's
λ_T and λ_ε (for SD they agree to ~1e-9 already; OSS's 0.001 end and FLUX's 0.9968 start are the model's
own endpoints, not the schedule's), and interior nodes are clipped into [λ_T, λ_ε]. A table grid that is
then not strictly increasing is reported as not applicable (``None``) rather than repaired.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from builder.select.mixtures import DATA_DIR, Array
from builder.solve.schedules import Schedule

__all__ = [
    "FORMULA_BASELINES",
    "TABLE_BASELINES",
    "applicable_baselines",
    "baseline_lambdas",
    "baseline_grids",
    "loglinear_interp",
    "published_sources",
]

FORMULA_BASELINES = ("uniform-lambda", "uniform-t", "uniform-sqrt-t", "karras-rho7")
TABLE_BASELINES = ("ays-sd1", "ays-sdxl", "gits", "oss-flux", "oss-wan")
GITS_COEFF = "1.20"
KARRAS_RHO = 7.0


@functools.lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads((DATA_DIR / "baselines.json").read_text())


def published_sources() -> dict[str, object]:
    """Source / attribution records of the published tables (for reports)."""
    t = _tables()
    return {"ays": t["ays"]["source"], "gits": t["gits"]["source"], "oss": t["oss"]["source"]}


def loglinear_interp(sigmas: Array, num: int) -> Array:
    """ComfyUI's ``loglinear_interp``: resample a descending σ table to ``num`` values, linear in log σ.

    ys = log σ reversed, interpolated from linspace(0, 1, len) to linspace(0, 1, num), exp, reversed back.
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(sigmas))
    ys = np.log(sigmas[::-1])
    return np.exp(np.interp(np.linspace(0.0, 1.0, num), xs, ys))[::-1].copy()


def _table_sigmas(name: str, nfe: int) -> tuple[Array, str]:
    """(descending σ with nfe + 1 values, σ kind "edm" or "flow") for a table baseline."""
    t = _tables()
    if name in ("ays-sd1", "ays-sdxl"):
        row = np.asarray(t["ays"]["comfyui_sigmas_10step"]["SD1" if name == "ays-sd1" else "SDXL"])
        return (row if nfe == 10 else loglinear_interp(row, nfe + 1)), "edm"
    if name == "gits":
        rows = t["gits"]["tables"][GITS_COEFF]
        if str(nfe) in rows:
            return np.asarray(rows[str(nfe)], dtype=np.float64), "edm"
        return loglinear_interp(np.asarray(rows["20"]), nfe + 1), "edm"
    if name in ("oss-flux", "oss-wan"):
        row = np.asarray(t["oss"]["sigmas"]["FLUX" if name == "oss-flux" else "Wan"], dtype=np.float64)
        return (row if len(row) == nfe + 1 else loglinear_interp(row, nfe + 1)), "flow"
    raise KeyError(name)


def applicable_baselines(schedule: Schedule) -> tuple[str, ...]:
    """The baseline names that apply to ``schedule`` (formula baselines always; tables by family)."""
    names = list(FORMULA_BASELINES)
    if schedule.name == "scaled-linear":
        names += ["ays-sd1", "ays-sdxl", "gits"]
    if schedule.family == "flow":
        names += ["oss-flux", "oss-wan"]
    return tuple(names)


def _with_endpoints(lam: Array, schedule: Schedule) -> Array:
    lam = np.array(lam, dtype=np.float64)
    lam[0], lam[-1] = schedule.lambda_start, schedule.lambda_end
    return lam


def baseline_lambdas(name: str, schedule: Schedule, nfe: int) -> Array | None:
    """The λ-grid (nfe + 1 values, increasing, exact endpoints) of baseline ``name`` on ``schedule``.

    Returns None when a published table does not fit the schedule at this NFE (not strictly increasing
    after clipping); raises ``KeyError`` for an unknown name and ``ValueError`` for nfe < 1.
    """
    if nfe < 1:
        raise ValueError(f"nfe must be ≥ 1, got {nfe}")
    lam_t, lam_e = schedule.lambda_start, schedule.lambda_end
    frac = np.arange(nfe + 1, dtype=np.float64) / nfe
    if name == "uniform-lambda":
        return _with_endpoints(lam_t + frac * (lam_e - lam_t), schedule)
    if name == "uniform-t":
        t = schedule.t_start + frac * (schedule.t_end - schedule.t_start)
        return _with_endpoints(schedule.marginal_lambda(t), schedule)
    if name == "uniform-sqrt-t":
        root_t, root_e = math.sqrt(schedule.t_start), math.sqrt(schedule.t_end)
        t = (root_t + frac * (root_e - root_t)) ** 2
        return _with_endpoints(schedule.marginal_lambda(t), schedule)
    if name == "karras-rho7":
        # s^{1/ρ} = e^{−λ/ρ}; λ_i = −ρ log(s_max^{1/ρ} + (i/N)(s_min^{1/ρ} − s_max^{1/ρ})).
        a, b = math.exp(-lam_t / KARRAS_RHO), math.exp(-lam_e / KARRAS_RHO)
        return _with_endpoints(-KARRAS_RHO * np.log(a + frac * (b - a)), schedule)
    if name not in TABLE_BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(FORMULA_BASELINES + TABLE_BASELINES)}")
    if name == "gits" and nfe < 2:
        return None  # GITS has rows for 2..20 steps only
    sigmas, kind = _table_sigmas(name, nfe)
    with np.errstate(divide="ignore"):
        lam = -np.log(sigmas) if kind == "edm" else np.log1p(-sigmas) - np.log(sigmas)
    lam = _with_endpoints(np.clip(lam, lam_t, lam_e), schedule)
    return lam if np.all(np.diff(lam) > 0) else None


def baseline_grids(schedule: Schedule, nfe: int, names: tuple[str, ...] | None = None) -> dict[str, Array]:
    """{name: λ-grid} for the applicable baselines (or ``names``), leaving out tables that do not fit."""
    out = {}
    for name in applicable_baselines(schedule) if names is None else names:
        lam = baseline_lambdas(name, schedule, nfe)
        if lam is not None:
            out[name] = lam
    return out
