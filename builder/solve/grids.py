"""Fixed step grids: the rules and the published tables, as λ-grids between a schedule's endpoints.

Every grid has N+1 values, increasing in λ (noisiest node first), and the schedule's own endpoints λ_T and
λ_ε exactly. The optimiser's starting grids (:mod:`builder.solve.optimize`) and the select stage's baselines
(:mod:`builder.select.selection`) are both built here.

**Rules** (every schedule; t ∈ [ε, T] is the schedule's own time, T = t_start, ε = t_end):

- ``uniform-lambda``: λ_i = λ_T + (i/N)(λ_ε − λ_T) (DPM-Solver's "logSNR"; the paper's baseline);
- ``uniform-t``: t_i = T + (i/N)(ε − T), λ_i = λ(t_i) (DPM-Solver's "time_uniform");
- ``uniform-sqrt-t``: t_i = (√T + (i/N)(√ε − √T))², λ_i = λ(t_i) (the released code's "quad");
- ``karras-rho7``: :func:`karras` with ρ = 7 (EDM; k-diffusion's ``get_sigmas_karras``):
  s_i = (s_max^{1/ρ} + (i/N)(s_min^{1/ρ} − s_max^{1/ρ}))^ρ in s = σ/α = e^{−λ}, s_max = e^{−λ_T},
  s_min = e^{−λ_ε}; λ_i = −log s_i.

**The optimiser's starts** (:data:`STARTS`; their names are what registry entries store as ``init``):
``unif``, ``unif_t``, ``quad`` and ``edm`` are the four rules above, and :data:`BLENDS` the half-and-half
blends ½(unif + quad) and ½(unif + edm). The ``edm`` start evaluates the Karras formula in powers of s and
the ``karras-rho7`` baseline in logarithms (λ_i = −ρ log(e^{−λ_T/ρ} + (i/N)(e^{−λ_ε/ρ} − e^{−λ_T/ρ})));
the two differ by rounding (≤ 2e-15 in λ). Both are kept: the registry's optima were solved from the
first and its measured baselines (and the entries that ship a starting grid) computed with the second,
so a rebuild gives the same bytes.

**Published tables** (``data/baselines.json``, verbatim copies with their sources):

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
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .schedules import Schedule

__all__ = [
    "BLENDS",
    "FORMULA_BASELINES",
    "LAST_SIGMA_ZEROED",
    "STARTS",
    "TABLE_BASELINES",
    "applicable_baselines",
    "baseline_grids",
    "baseline_lambdas",
    "karras",
    "loglinear_interp",
    "published_sources",
    "start_grid",
    "start_grids",
    "uniform_lambda",
    "uniform_sqrt_t",
    "uniform_t",
]

Array = NDArray[np.float64]

TABLES_PATH = Path(__file__).with_name("data") / "baselines.json"
FORMULA_BASELINES = ("uniform-lambda", "uniform-t", "uniform-sqrt-t", "karras-rho7")
TABLE_BASELINES = ("ays-sd1", "ays-sdxl", "gits", "oss-flux", "oss-wan")
# Tables whose σ = 0 grid for N calls is the N-step row with its last σ set to 0, as ComfyUI's AYS, GITS and
# OSS nodes build it (``sigmas[-1] = 0``) and diffusers runs AysSchedules (its 10 timesteps, then σ = 0):
# builder.select.refine.rule_grid. ComfyUI runs the OSS tables the same way; they join this list when the flow
# files are next rebuilt (until then their σ = 0 grid is the (N − 1)-step row followed by σ = 0, as the formula
# rules are built).
LAST_SIGMA_ZEROED = ("ays-sd1", "ays-sdxl", "gits")
KARRAS_RHO = 7.0
GITS_COEFF = "1.20"
# The optimiser's named starts (the ``init`` values entries store) and the rule each one is.
STARTS: dict[str, str] = {
    "unif": "uniform-lambda",
    "unif_t": "uniform-t",
    "quad": "uniform-sqrt-t",
    "edm": "karras-rho7",
}
BLENDS = (("unif", "quad"), ("unif", "edm"))


def _fractions(nfe: int) -> Array:
    """i/N for i = 0..N."""
    return np.arange(nfe + 1, dtype=np.float64) / nfe


def _with_endpoints(lam: NDArray, schedule: Schedule) -> Array:
    lam = np.array(lam, dtype=np.float64)
    lam[0], lam[-1] = schedule.lambda_start, schedule.lambda_end
    return lam


def uniform_lambda(schedule: Schedule, nfe: int) -> Array:
    """λ_i = λ_T + (i/N)(λ_ε − λ_T)."""
    lam_t, lam_e = schedule.lambda_start, schedule.lambda_end
    return _with_endpoints(lam_t + _fractions(nfe) * (lam_e - lam_t), schedule)


def uniform_t(schedule: Schedule, nfe: int) -> Array:
    """t_i = T + (i/N)(ε − T), λ_i = λ(t_i)."""
    t = schedule.t_start + _fractions(nfe) * (schedule.t_end - schedule.t_start)
    return _with_endpoints(schedule.marginal_lambda(t), schedule)


def uniform_sqrt_t(schedule: Schedule, nfe: int) -> Array:
    """t_i = (√T + (i/N)(√ε − √T))², λ_i = λ(t_i)."""
    root_t, root_e = math.sqrt(schedule.t_start), math.sqrt(schedule.t_end)
    t = (root_t + _fractions(nfe) * (root_e - root_t)) ** 2
    return _with_endpoints(schedule.marginal_lambda(t), schedule)


def karras(schedule: Schedule, nfe: int, rho: float = KARRAS_RHO, *, log_space: bool = False) -> Array:
    """Karras et al.'s ρ-grid in s = σ/α = e^{−λ} (module docstring), as k-diffusion's ``get_sigmas_karras``.

    ``log_space=False`` evaluates s_i^{1/ρ} from s_max = e^{−λ_T}, s_min = e^{−λ_ε} and λ_i = −log(s_i)
    (the ``edm`` start); ``log_space=True`` evaluates λ_i = −ρ log(e^{−λ_T/ρ} + (i/N)(e^{−λ_ε/ρ} − e^{−λ_T/ρ}))
    (the ``karras-rho7`` baseline). They differ by rounding only.
    """
    lam_t, lam_e = schedule.lambda_start, schedule.lambda_end
    frac = _fractions(nfe)
    if log_space:
        a, b = math.exp(-lam_t / rho), math.exp(-lam_e / rho)
        return _with_endpoints(-rho * np.log(a + frac * (b - a)), schedule)
    s_max, s_min = np.exp(-lam_t), np.exp(-lam_e)
    sigma = (s_max ** (1 / rho) + frac * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return _with_endpoints(-np.log(sigma), schedule)


def start_grid(schedule: Schedule, nfe: int, init: str) -> Array:
    """The optimiser's named start ``init`` (a key of :data:`STARTS`): its rule's grid, with Karras in powers
    of s (module docstring)."""
    if init not in STARTS:
        raise ValueError(f"unknown start {init!r}; choose one of {', '.join(STARTS)}")
    if init == "edm":
        return karras(schedule, nfe)
    return baseline_lambdas(STARTS[init], schedule, nfe)


def start_grids(schedule: Schedule, nfe: int) -> list[tuple[str, Array]]:
    """Every named start, then the :data:`BLENDS` (named ``"first+second"``): the multi-start's six grids."""
    grids = {name: start_grid(schedule, nfe, name) for name in STARTS}
    starts = list(grids.items())
    for first, second in BLENDS:
        starts.append((f"{first}+{second}", 0.5 * (grids[first] + grids[second])))
    return starts


@functools.lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads(TABLES_PATH.read_text())


def published_sources() -> dict[str, object]:
    """Source / attribution records of the published tables (for reports)."""
    t = _tables()
    return {"ays": t["ays"]["source"], "gits": t["gits"]["source"], "oss": t["oss"]["source"]}


def loglinear_interp(sigmas: NDArray, num: int) -> Array:
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
    """The baseline names that apply to ``schedule`` (rules always; tables by family)."""
    names = list(FORMULA_BASELINES)
    if schedule.name == "scaled-linear":
        names += ["ays-sd1", "ays-sdxl", "gits"]
    if schedule.family == "flow":
        names += ["oss-flux", "oss-wan"]
    return tuple(names)


def baseline_lambdas(name: str, schedule: Schedule, nfe: int) -> Array | None:
    """The λ-grid of baseline ``name`` (a rule or a table) on ``schedule``.

    Returns None when a published table does not fit the schedule at this NFE (not strictly increasing
    after clipping); raises ``KeyError`` for an unknown name and ``ValueError`` for nfe < 1.
    """
    if nfe < 1:
        raise ValueError(f"nfe must be ≥ 1, got {nfe}")
    if name == "uniform-lambda":
        return uniform_lambda(schedule, nfe)
    if name == "uniform-t":
        return uniform_t(schedule, nfe)
    if name == "uniform-sqrt-t":
        return uniform_sqrt_t(schedule, nfe)
    if name == "karras-rho7":
        return karras(schedule, nfe, KARRAS_RHO, log_space=True)
    if name not in TABLE_BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(FORMULA_BASELINES + TABLE_BASELINES)}")
    if name == "gits" and nfe < 2:
        return None  # GITS has rows for 2..20 steps only
    sigmas, kind = _table_sigmas(name, nfe)
    with np.errstate(divide="ignore"):
        lam = -np.log(sigmas) if kind == "edm" else np.log1p(-sigmas) - np.log(sigmas)
    lam = _with_endpoints(np.clip(lam, schedule.lambda_start, schedule.lambda_end), schedule)
    return lam if np.all(np.diff(lam) > 0) else None


def baseline_grids(schedule: Schedule, nfe: int, names: tuple[str, ...] | None = None) -> dict[str, Array]:
    """{name: λ-grid} for the applicable baselines (or ``names``), leaving out tables that do not fit."""
    out = {}
    for name in applicable_baselines(schedule) if names is None else names:
        lam = baseline_lambdas(name, schedule, nfe)
        if lam is not None:
            out[name] = lam
    return out
