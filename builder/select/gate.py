"""The quality gate, the measured defaults, and re-measurement of registry entries.

**Re-measurement.** :func:`check_entry` runs an entry's λ-grid again with the standard sampler
(:mod:`builder.select.selection`: UniPC bh2, the entry's order, corrector on) on the standard problem set,
against every applicable baseline on the same noises, and compares with what the entry claims.

**Gate** (per default entry; d = paired log-ratio entry vs baseline, se its standard error):

- beats uniform-λ by a clear margin: d_uλ + 2·se_uλ < log(GATE_MAX_RATIO) (geometric-mean error at most
  95% of uniform-λ's, beyond noise);
- not worse than the best baseline beyond noise: d_best ≤ 2·se_best;
- truthful: the entry's stored ``worse_than_best_baseline`` equals the re-measured flag. A flag within
  BORDERLINE standard errors of the threshold is accepted either way (a re-measurement on another machine
  may round differently).

**Measured defaults.** For each schedule variant, the default p minimises the mean over NFE 5–10 (order 3)
of the entry's stored log-ratio against uniform-λ on the standard set:

    p* = argmin_p  mean_{N=5..10} d_uλ(entry(p, N))

and the held-out figures (:func:`held_out_figures`) of the chosen entries report the result on problems not
used to choose. The τ policy is the spec's ``tau`` (one value for every entry).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..solve.schedules import Schedule, get_schedule
from . import selection
from .evaluate import paired

__all__ = [
    "GATE_MAX_RATIO",
    "GATE_NFE",
    "GATE_SCHEDULES",
    "DEFAULTS_NFE",
    "check_entry",
    "gate_failures",
    "measured_defaults",
    "held_out_figures",
    "registry_entries",
    "ROW_HEADER",
    "format_row",
]

GATE_SCHEDULES = ("vp-linear", "scaled-linear", "edm")
GATE_NFE = (5, 6, 8, 10)
GATE_MAX_RATIO = 0.95
DEFAULTS_NFE = (5, 6, 7, 8, 9, 10)
BORDERLINE = 0.5  # standard errors around the worse-than-best threshold where a flag may go either way


ROW_HEADER = (
    f"{'schedule':<16} {'nfe':>4} {'p':>4} {'mean L2':>9} {'x unif-λ':>7} {'best baseline':>15} "
    f"{'log-ratio':>8} {'±se':>6} {'selection':>12}"
)


def format_row(label: str, p: object, row: dict[str, Any]) -> str:
    """One line of the ``quality`` table (columns :data:`ROW_HEADER`) for a :func:`check_entry` row."""
    flag = "WORSE" if row["worse_than_best_baseline"] else ""
    return (
        f"{label:<16} {row['nfe']:>4} {p!s:>4} {row['mean_l2']:>9.4f} {row['ratio_uniform_lambda']:>7.3f} "
        f"{row['best_baseline']:>15} {row['log_ratio_best_baseline']:>+8.3f} ±{row['log_ratio_best_baseline_se']:.3f} "
        f"{str(row['selection']):>12} {flag}"
    )


def registry_entries(
    root: str | Path, *, solver_entries: bool = False
) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    """(file document without its entry lists, entry) for every bound entry (or, with ``solver_entries``,
    every solver entry) of the registry folder at ``root``."""
    root = Path(root)
    index = json.loads((root / "index.json").read_text())
    key = "solver_entries" if solver_entries else "entries"
    for item in index["files"]:
        doc = json.loads((root / item["path"]).read_text())
        head = {k: v for k, v in doc.items() if k not in ("entries", "solver_entries")}
        head["path"] = item["path"]
        for entry in doc.get(key, []):
            yield head, entry


def schedule_of(head: dict[str, Any]) -> Schedule:
    """The builder's schedule object for a registry file's ``schedule`` record."""
    sched = head["schedule"]
    params = {"shift": sched["params"]["shift"]} if sched["family"] == "flow" else {}
    return get_schedule(sched["name"], **params)


def check_entry(schedule: Schedule, lambdas: Sequence[float], order: int, stored: dict[str, Any] | None) -> dict:
    """Re-measure one grid against the baselines; returns the figures and the gate's verdicts."""
    nfe = len(lambdas) - 1
    m = selection.measure(lambdas, order)
    baselines = selection.measure_baselines(schedule, nfe, order)
    best = selection.best_baseline(schedule, nfe, baselines)
    d_u, se_u = paired(m.errors, baselines["uniform-lambda"].errors)
    d_b, se_b = paired(m.errors, baselines[best].errors)
    worse = d_b > selection.NOISE_SE * se_b
    stored_flag = None if not stored else stored.get("worse_than_best_baseline")
    borderline = abs(d_b - selection.NOISE_SE * se_b) <= BORDERLINE * se_b
    return {
        "nfe": nfe,
        "mean_l2": m.mean_l2,
        "median_l2": m.median_l2,
        "ratio_uniform_lambda": math.exp(d_u),
        "log_ratio_uniform_lambda": d_u,
        "log_ratio_uniform_lambda_se": se_u,
        "best_baseline": best,
        "log_ratio_best_baseline": d_b,
        "log_ratio_best_baseline_se": se_b,
        "worse_than_best_baseline": worse,
        "stored_flag": stored_flag,
        "beats_uniform_lambda": d_u + selection.NOISE_SE * se_u < math.log(GATE_MAX_RATIO),
        "flag_truthful": stored_flag is not None and (stored_flag == worse or borderline),
        "selection": None if not stored else stored.get("selection"),
    }


def gate_failures(row: dict[str, Any], schedule: str) -> list[str]:
    """Why a default entry's re-measured row fails the gate (empty: it passes)."""
    out = []
    label = f"{schedule} NFE {row['nfe']}"
    if not row["beats_uniform_lambda"]:
        out.append(
            f"{label}: {row['ratio_uniform_lambda']:.3f}x uniform-λ (±{row['log_ratio_uniform_lambda_se']:.3f} in "
            f"log), not below {GATE_MAX_RATIO} beyond noise"
        )
    if not row["flag_truthful"]:
        out.append(
            f"{label}: stored worse_than_best_baseline={row['stored_flag']} "
            f"but measured {row['worse_than_best_baseline']}"
        )
    if row["worse_than_best_baseline"]:
        out.append(
            f"{label}: worse than {row['best_baseline']} by {row['log_ratio_best_baseline']:.3f} "
            f"(±{row['log_ratio_best_baseline_se']:.3f}) in log-error"
        )
    return out


def measured_defaults(root: str | Path, nfe: Sequence[int] = DEFAULTS_NFE, order: int = 3) -> dict[str, Any]:
    """{file path: {"p": best p, "scores": {p: mean d_uλ}, "current": the file's default p, "tau": its τ
    policy}} from a built registry's stored quality figures (entries without quality are skipped)."""
    scores: dict[str, dict[float, list[float]]] = {}
    current: dict[str, Any] = {}
    tau: dict[str, Any] = {}
    for head, entry in registry_entries(root):
        current[head["path"]] = head["defaults"]["p"]
        tau[head["path"]] = head["defaults"]["tau"]
        q = entry.get("quality")
        if entry["order"] != order or entry["nfe"] not in nfe or not q:
            continue
        d = q["baselines"]["uniform-lambda"]["log_ratio"]
        scores.setdefault(head["path"], {}).setdefault(entry["p"], []).append(d)
    out = {}
    for path, by_p in scores.items():
        complete = {p: v for p, v in by_p.items() if len(v) == len(nfe)}
        if not complete:
            continue
        mean = {p: sum(v) / len(v) for p, v in complete.items()}
        best = min(sorted(mean), key=lambda p: (mean[p], p != current[path]))
        out[path] = {"p": best, "scores": mean, "current": current[path], "tau": tau[path]}
    return out


def held_out_figures(
    root: str | Path, choice: dict[str, Any], nfe: Sequence[int] = DEFAULTS_NFE, order: int = 3
) -> dict[str, list[dict[str, Any]]]:
    """Held-out measurement of the chosen default entries: per NFE, ratio to uniform-λ and to the held-out
    best baseline (paired log-ratios with standard errors)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for head, entry in registry_entries(root):
        path = head["path"]
        if path not in choice or entry["order"] != order or entry["nfe"] not in nfe:
            continue
        if entry["p"] != choice[path]["p"]:
            continue
        schedule = schedule_of(head)
        m = selection.measure(entry["lambda"], order, "held-out")
        base = selection.measure_baselines(schedule, entry["nfe"], order, "held-out")
        best = min(base, key=lambda n: base[n].log_error)
        d_u, se_u = paired(m.errors, base["uniform-lambda"].errors)
        d_b, se_b = paired(m.errors, base[best].errors)
        out.setdefault(path, []).append(
            {
                "nfe": entry["nfe"],
                "ratio_uniform_lambda": math.exp(d_u),
                "log_ratio_uniform_lambda_se": se_u,
                "best_baseline": best,
                "log_ratio_best_baseline": d_b,
                "log_ratio_best_baseline_se": se_b,
            }
        )
    for rows in out.values():
        rows.sort(key=lambda r: r["nfe"])
    return out
