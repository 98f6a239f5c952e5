"""A small, valid registry for tests, built from METHOD.md's formulas (independent of builder.solve.schedules).

Three data files:
- ``v1/vp-linear.json``: VP-linear (β0 = 0.1, β1 = 20, t from 1 to 1e-3), family ``vp-continuous``;
- ``v1/edm.json``: EDM, σ from 80 to 0.002, α = 1, t = σ;
- ``v1/vp-linear-discrete.json``: the same VP-linear curve labelled ``vp-discrete`` so that entries carry
  integer timesteps ``round((t - 1/1000) * 1000)`` and, at NFE 40, real timestep collisions near t_end.

Nodes are a smooth warp of the uniform-λ grid (not the optimizer's output, but valid and non-trivial).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from builder.registry._canonical import atomic_write_bytes, canonical_bytes, sha256_of

BETA_0, BETA_1 = 0.1, 20.0
DATA_VERSION = "2026.11.25"
PROVENANCE = {"builder": "optsteps 0.1.0", "numpy": "2.4.6", "scipy": "1.17.1"}


# ---- schedule maths (METHOD §1)


def vp_log_alpha(t: float) -> float:
    """log α(t) = −(β1−β0) t²/4 − β0 t/2."""
    return -(BETA_1 - BETA_0) * t * t / 4 - BETA_0 * t / 2


def vp_lambda(t: float) -> float:
    """λ(t) = log α − ½ log(1 − α²)."""
    log_alpha = vp_log_alpha(t)
    return log_alpha - 0.5 * math.log(-math.expm1(2 * log_alpha))


def vp_t_of_lambda(lam: float) -> float:
    """The rationalised root of (β1−β0) t²/2 + β0 t − L = 0 with L = log(1 + e^{−2λ})."""
    L = math.log1p(math.exp(-2 * lam)) if lam > -350 else -2 * lam
    d = BETA_1 - BETA_0
    return 2 * d * L / (d * (BETA_0 + math.sqrt(BETA_0**2 + 2 * d * L)))


def _grid(lam_start: float, lam_end: float, nfe: int) -> list[float]:
    """A strictly increasing, smoothly warped λ grid with exact endpoints."""
    out = []
    for i in range(nfe + 1):
        u = i / nfe
        w = u + 0.1 * u * (1 - u)  # monotone warp of [0, 1] onto itself
        out.append(lam_start + (lam_end - lam_start) * w)
    out[0], out[-1] = lam_start, lam_end
    return out


def _step_orders(nfe: int, order: int) -> list[int]:
    """Warm-up from order 1, lower order on the final steps: e.g. [1, 2, 3, 3, 2, 1] for nfe 6, order 3."""
    return [min(order, i + 1, nfe - i) for i in range(nfe)]


def _collisions(timesteps: list[Any]) -> list[list[int]]:
    n = len(timesteps)
    return [[i, j] for i in range(n) for j in range(i + 1, n) if timesteps[i] == timesteps[j]]


def _common(nfe: int, order: int, p: float, schedule: str) -> dict[str, Any]:
    key = {"schedule": schedule, "nfe": nfe, "order": order, "p": p, "tau": 3}
    return {
        "nfe": nfe,
        "order": order,
        "p": p,
        "tau": 3,
        "solver": "unipc",
        "init": "unif",
        "step_orders": _step_orders(nfe, order),
        "objective": 1.0 / (nfe**order),
        "objective_uniform_lambda": 1.5 / (nfe**order),
        "objective_uniform_t": 3.0 / (nfe**order),
        "optimizer": {
            "success": True,
            "status": 1,
            "message": "`gtol` termination condition is satisfied.",
            "nit": 10 * nfe,
            "nfev": 10 * nfe + 1,
            "starts": 4,
        },
        "input_hash": sha256_of(canonical_bytes(key)),
        "quality": None,
    }


# ---- entries and files


VP_T_START, VP_T_END = 1.0, 1e-3


def vp_entry(nfe: int, order: int, p: float, *, discrete: bool = False) -> dict[str, Any]:
    lam = _grid(vp_lambda(VP_T_START), vp_lambda(VP_T_END), nfe)
    t = [vp_t_of_lambda(x) for x in lam]
    t[0], t[-1] = VP_T_START, VP_T_END
    log_alpha = [-0.5 * math.log1p(math.exp(-2 * x)) for x in lam]
    alpha = [math.exp(a) for a in log_alpha]
    sigma = [math.exp(a - x) for a, x in zip(log_alpha, lam, strict=True)]
    if discrete:
        timesteps: list[Any] = [round((x - 1 / 1000) * 1000) for x in t]
    else:
        timesteps = list(t)
    entry = _common(nfe, order, p, "vp-linear-discrete" if discrete else "vp-linear")
    entry.update(
        t=t,
        alpha_t=alpha,
        sigma_t=sigma,
        sigmas=[s / a for s, a in zip(sigma, alpha, strict=True)],
        timesteps=timesteps,
        timestep_collisions=_collisions(timesteps),
        **{"lambda": lam},
    )
    return entry


EDM_SIGMA_MAX, EDM_SIGMA_MIN = 80.0, 0.002


def edm_entry(nfe: int, order: int, p: float) -> dict[str, Any]:
    lam = _grid(-math.log(EDM_SIGMA_MAX), -math.log(EDM_SIGMA_MIN), nfe)
    sigma = [math.exp(-x) for x in lam]
    sigma[0], sigma[-1] = EDM_SIGMA_MAX, EDM_SIGMA_MIN
    entry = _common(nfe, order, p, "edm")
    entry.update(
        t=list(sigma),
        alpha_t=[1.0] * (nfe + 1),
        sigma_t=sigma,
        sigmas=list(sigma),
        timesteps=list(sigma),
        timestep_collisions=[],
        **{"lambda": lam},
    )
    return entry


def vp_schedule(discrete: bool = False) -> dict[str, Any]:
    return {
        "name": "vp-linear-discrete" if discrete else "vp-linear",
        "family": "vp-discrete" if discrete else "vp-continuous",
        "params": {"beta_0": BETA_0, "beta_1": BETA_1},
        "t_start": VP_T_START,
        "t_end": VP_T_END,
        "lambda_start": vp_lambda(VP_T_START),
        "lambda_end": vp_lambda(VP_T_END),
        "time_input": "timestep" if discrete else "t",
        "description": "Test fixture: VP-linear (ScoreSDE), beta 0.1 to 20.",
    }


def edm_schedule() -> dict[str, Any]:
    return {
        "name": "edm",
        "family": "edm",
        "params": {"sigma_max": EDM_SIGMA_MAX, "sigma_min": EDM_SIGMA_MIN},
        "t_start": EDM_SIGMA_MAX,
        "t_end": EDM_SIGMA_MIN,
        "lambda_start": -math.log(EDM_SIGMA_MAX),
        "lambda_end": -math.log(EDM_SIGMA_MIN),
        "time_input": "sigma",
        "description": "Test fixture: EDM (Karras et al.), sigma 0.002 to 80.",
    }


def data_file(
    schedule: dict[str, Any], entries: list[dict[str, Any]], default_order: int, default_p: float
) -> dict[str, Any]:
    entries = sorted(entries, key=lambda e: (e["order"], e["p"], e["nfe"]))
    return {
        "schema_version": 1,
        "data_version": DATA_VERSION,
        "provenance": dict(PROVENANCE),
        "schedule": schedule,
        "defaults": {"order": default_order, "p": default_p, "solver": "unipc", "tau": "auto"},
        "entries": entries,
    }


def standard_files() -> dict[str, dict[str, Any]]:
    """path -> document for the small standard registry."""
    vp = [vp_entry(n, k, p) for k in (2, 3) for p in (0, 1) for n in (3, 5, 10)]
    edm = [edm_entry(n, 3, 1) for n in (4, 6)]
    disc = [vp_entry(n, 3, 1, discrete=True) for n in (5, 40)]
    return {
        "v1/edm.json": data_file(edm_schedule(), edm, 3, 1),
        "v1/vp-linear-discrete.json": data_file(vp_schedule(discrete=True), disc, 3, 1),
        "v1/vp-linear.json": data_file(vp_schedule(), vp, 3, 1),
    }


def index_record(path: str, doc: dict[str, Any], data: bytes, params: dict[str, Any] | None = None) -> dict[str, Any]:
    entries = doc["entries"]
    return {
        "path": path,
        "schedule": doc["schedule"]["name"],
        "params": {} if params is None else params,
        "sha256": sha256_of(data),
        "bytes": len(data),
        "entries": len(entries),
        "nfe": sorted({e["nfe"] for e in entries}),
        "orders": sorted({e["order"] for e in entries}),
        "p": sorted({e["p"] for e in entries}),
    }


def write_registry(root: Path, files: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``files`` (default: :func:`standard_files`) and a matching index under ``root``."""
    files = standard_files() if files is None else files
    records = []
    for path, doc in sorted(files.items()):
        data = canonical_bytes(doc)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(root / path, data)
        records.append(index_record(path, doc, data))
    index = {
        "schema_version": 1,
        "data_version": DATA_VERSION,
        "generator": PROVENANCE["builder"],
        "license": "CC-BY-4.0",
        "citation": "Xue et al., Accelerating Diffusion Sampling with Optimized Time Steps, CVPR 2024",
        "files": records,
    }
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / "index.json", canonical_bytes(index))
    return index


def rehash(root: Path, path: str) -> None:
    """Update index.json's sha256 and byte size for ``path`` to the file's current bytes."""
    index = json.loads((root / "index.json").read_text())
    data = (root / path).read_bytes()
    for record in index["files"]:
        if record["path"] == path:
            record["sha256"] = sha256_of(data)
            record["bytes"] = len(data)
    atomic_write_bytes(root / "index.json", canonical_bytes(index))


def rewrite(root: Path, path: str, doc: dict[str, Any], *, update_index: bool = True) -> None:
    """Write ``doc`` canonically at ``path`` and (by default) refresh its hash in the index."""
    atomic_write_bytes(root / path, canonical_bytes(doc))
    if update_index:
        rehash(root, path)


def load(root: Path, path: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((root / path).read_text()))
