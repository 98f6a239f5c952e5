"""Small, valid registries in the exact format of docs/registry-format.md, for tests and benchmarks.

The schedules are closed-form (no optimizer) from their formulas (docs/method.md, 'The setting'), independent of
``builder.solve.schedules``: nodes on a uniform-λ grid, warped by (order, p) so that every entry differs.
Bytes, sha256 and sizes in the index are written with the registry-format module the builder uses, so the
loader cannot tell these from a real registry; tests never depend on the committed ``registry/``.

- ``vp-linear``: DPM-Solver's continuous VP, β(t) = β0 + t(β1 − β0), log α = −(β1−β0)t²/4 − β0 t/2,
  t ∈ [1e-3, 1], ``time_input`` "t".
- ``ddpm-linear``: the 1000-step DDPM table (β linear 1e-4 → 0.02) in DPM-Solver's embedding, log α
  piecewise linear in t between t_n = (n+1)/1000; integer ``timesteps`` round((t − 1/1000)·1000), one
  apart near t_end at NFE 30 (none shared), ``time_input`` "timestep".
- ``edm``: σ from 80 to 0.002, α = 1, t = σ, ``time_input`` "sigma".
- ``flow``: rectified flow with the SD3/FLUX shift s: σ = s t / (1 + (s − 1) t), α = 1 − σ; one file per
  shift, ``params`` {"shift": s}, ``time_input`` "1000*sigma".

Each entry's ``input_hash`` is the builder's: sha256 of the canonical JSON of its problem key.

`make_registry` writes a grid of these; `write_registry` writes given documents (by default
`standard_files`, a small registry of three files); `read_json`, `rewrite` and `rehash_index` edit one;
`cut_copy` copies a real registry cut down to some of its files and NFEs (validating a whole shipped registry
takes ~20 s of jsonschema); `bounded` runs a read of one with a deadline (a hang fails the test instead of stalling it).
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

from optsteps_loader.format import atomic_write_bytes, canonical_bytes, input_hash
from optsteps_loader.format import sha256_id as sha256

__all__ = ["canonical_bytes", "sha256"]

DATA_VERSION = "2026.01.01"
GENERATOR = "tests.registry_factory"
DEFAULTS = {"order": 3, "p": 1, "solver": "unipc", "tau": "auto"}
VP = {"beta_0": 0.1, "beta_1": 20.0}
VP_T = (1.0, 1e-3)
EDM_SIGMA = (80.0, 0.002)
DDPM_STEPS = 1000
DEADLINE = 20.0  # seconds for a `bounded` call; every read of a fixture answers in well under one


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


# --- closed-form schedules -------------------------------------------------------------------------------


def vp_log_alpha(t: float) -> float:
    """log α(t) = −(β1−β0) t²/4 − β0 t/2."""
    return -(VP["beta_1"] - VP["beta_0"]) / 4 * t * t - VP["beta_0"] / 2 * t


def vp_lambda(t: float) -> float:
    """λ(t) = log α − ½ log(1 − α²)."""
    la = vp_log_alpha(t)
    return la - 0.5 * math.log(-math.expm1(2 * la))


def vp_t_of_lambda(lam: float) -> float:
    """Inverse of λ(t): log α = −½ log(1 + e^{−2λ}) solved as a t² + b t + c = 0 (stable root)."""
    a, b = (VP["beta_1"] - VP["beta_0"]) / 4, VP["beta_0"] / 2
    c = -0.5 * math.log1p(math.exp(-2 * lam))
    return -2 * c / (b + math.sqrt(b * b - 4 * a * c))


def _grid(lam_start: float, lam_end: float, nfe: int, order: int, p: float) -> list[float]:
    """Uniform in λ, warped by (order, p) so entries differ; strictly increasing, fixed ends."""
    k = 1.0 + 0.05 * p + 0.02 * (order - 1)
    return [lam_start + (lam_end - lam_start) * (i / nfe) ** k for i in range(nfe + 1)]


def _vp_nodes(nfe: int, order: int, p: float, log_alpha=vp_log_alpha, t_of=vp_t_of_lambda, ends=VP_T) -> dict:
    """Nodes of a variance-preserving schedule given by ``log_alpha(t)`` and its inverse ``t_of(λ)``."""

    def lam_of(t: float) -> float:
        la = log_alpha(t)
        return la - 0.5 * math.log(-math.expm1(2 * la))

    lams = _grid(lam_of(ends[0]), lam_of(ends[1]), nfe, order, p)
    t = [ends[0]] + [t_of(x) for x in lams[1:-1]] + [ends[1]]
    alpha = [math.exp(log_alpha(x)) for x in t]
    sigma = [math.sqrt(-math.expm1(2 * log_alpha(x))) for x in t]
    return {
        "t": t,
        "lambda": [lam_of(x) for x in t],
        "alpha_t": alpha,
        "sigma_t": sigma,
        "sigmas": [s / a for s, a in zip(sigma, alpha, strict=True)],
    }


def _edm_nodes(nfe: int, order: int, p: float) -> dict:
    lams = _grid(-math.log(EDM_SIGMA[0]), -math.log(EDM_SIGMA[1]), nfe, order, p)
    sigma = [EDM_SIGMA[0]] + [math.exp(-x) for x in lams[1:-1]] + [EDM_SIGMA[1]]
    return {
        "t": sigma,
        "lambda": [-math.log(s) for s in sigma],
        "alpha_t": [1.0] * (nfe + 1),
        "sigma_t": sigma,
        "sigmas": sigma,
        "timesteps": sigma,
    }


def _flow_nodes(nfe: int, order: int, p: float, shift: float) -> dict:
    lams = _grid(math.log(1e-3 / 0.999) - math.log(shift), math.log(0.999 / 1e-3) - math.log(shift), nfe, order, p)
    t = [0.999] + [1.0 / (1.0 + shift * math.exp(x)) for x in lams[1:-1]] + [1e-3]  # t(λ) = 1 / (1 + s·e^λ)
    sigma = [shift * x / (1.0 + (shift - 1.0) * x) for x in t]
    return {
        "t": t,
        "lambda": [math.log((1 - x) / x) for x in sigma],
        "alpha_t": [1 - x for x in sigma],
        "sigma_t": sigma,
        "sigmas": [x / (1 - x) for x in sigma],
        "timesteps": [1000.0 * x for x in sigma],
    }


def _ddpm_log_alpha_knots() -> list[float]:
    """log α_n = ½ Σ_{i≤n} log(1 − β_i) of the 1000-step linear DDPM table (β 1e-4 → 0.02), at t_n = (n+1)/1000."""
    n, out, total = DDPM_STEPS, [], 0.0
    for i in range(n):
        total += math.log1p(-(1e-4 + i * (0.02 - 1e-4) / (n - 1) if i < n - 1 else 0.02))
        out.append(0.5 * total)
    return out


def _ddpm_nodes(nfe: int, order: int, p: float) -> dict:
    """The discrete table in DPM-Solver's embedding: log α piecewise linear in t between the knots."""
    knots, n = _ddpm_log_alpha_knots(), DDPM_STEPS

    def log_alpha(t: float) -> float:
        i = min(max(int(t * n) - 1, 0), n - 2)
        return knots[i] + (t - (i + 1) / n) * (knots[i + 1] - knots[i]) * n

    def t_of(lam: float) -> float:  # invert log α(t) = −½ log(1 + e^{−2λ}) on its segment
        la = -0.5 * math.log1p(math.exp(-2 * lam))
        i = next((i for i in range(n - 1) if knots[i + 1] <= la), n - 2)
        return (i + 1) / n + (la - knots[i]) / ((knots[i + 1] - knots[i]) * n)

    nodes = _vp_nodes(nfe, order, p, log_alpha, t_of, (1.0, 1e-3))
    nodes["timesteps"] = [round((x - 1 / n) * n) for x in nodes["t"]]
    return nodes


SCHEDULES = {
    "vp-linear": {
        "family": "vp-continuous",
        "params": VP,
        "time_input": "t",
        "description": "continuous VP, linear beta 0.1 -> 20 (fixture)",
    },
    "ddpm-linear": {
        "family": "vp-discrete",
        "params": {"beta_end": 0.02, "beta_schedule": "linear", "beta_start": 1e-4, "num_train_timesteps": 1000},
        "time_input": "timestep",
        "description": "discrete DDPM, linear beta (fixture)",
    },
    "edm": {
        "family": "edm",
        "params": {},
        "time_input": "sigma",
        "description": "EDM (Karras et al.), sigma 0.002 to 80 (fixture)",
    },
    "flow": {
        "family": "flow",
        "params": {},
        "time_input": "1000*sigma",
        "description": "rectified flow alpha = 1 - t, sigma = t, shifted (fixture)",
    },
}


def make_entry(schedule: str, nfe: int, order: int, p: float, shift: float = 1.0) -> dict:
    """One registry entry with every key of docs/registry-format.md."""
    if schedule == "flow":
        nodes = _flow_nodes(nfe, order, p, shift)
    elif schedule == "edm":
        nodes = _edm_nodes(nfe, order, p)
    elif schedule == "ddpm-linear":
        nodes = _ddpm_nodes(nfe, order, p)
    else:
        nodes = _vp_nodes(nfe, order, p)
        nodes["timesteps"] = list(nodes["t"])
    ts = nodes["timesteps"]
    collisions = [[i, j] for i in range(nfe + 1) for j in range(i + 1, nfe + 1) if ts[i] == ts[j]]
    params = {"shift": shift} if schedule == "flow" else SCHEDULES[schedule]["params"]
    key = {"schedule": schedule, "params": params, "t_start": nodes["t"][0], "t_end": nodes["t"][-1]}
    key.update(nfe=nfe, order=order, p=float(p), tau=3)
    objective = 1.0 / nfe**order * (1.0 + 0.1 * p)
    return {
        "nfe": nfe,
        "order": order,
        "p": p,
        "tau": 3,
        "solver": "unipc",
        "init": "unif",
        "step_orders": [min(order, i + 1, nfe - i) for i in range(nfe)],
        **nodes,
        "timestep_collisions": collisions,
        "objective": objective,
        "objective_uniform_lambda": objective * 1.25,
        "objective_uniform_t": objective * 2.0,
        "optimizer": {"success": True, "status": 1, "message": "closed-form fixture", "nit": 0, "nfev": 1, "starts": 1},
        "input_hash": input_hash(key),
        "quality": None,
    }


def make_file(schedule: str, nfes, orders, ps, shift: float | None = None) -> dict:
    """One data file: ``schedule``/``defaults`` blocks and entries sorted by (order, p, nfe)."""
    spec = SCHEDULES[schedule]
    nfes, orders, ps = sorted(nfes), sorted(orders), sorted(ps)
    params = dict(spec["params"]) if shift is None else {"shift": shift}
    probe = make_entry(schedule, 2, 1, 0, shift or 1.0)
    entries = [make_entry(schedule, n, k, p, shift or 1.0) for k in orders for p in ps for n in nfes]
    return {
        "schema_version": 1,
        "data_version": DATA_VERSION,
        "provenance": {"builder": GENERATOR, "numpy": "fixture", "scipy": "fixture"},
        "schedule": {
            "name": schedule,
            "family": spec["family"],
            "params": params,
            "t_start": probe["t"][0],
            "t_end": probe["t"][-1],
            "lambda_start": probe["lambda"][0],
            "lambda_end": probe["lambda"][-1],
            "time_input": spec["time_input"],
            "description": spec["description"],
        },
        "defaults": {
            **DEFAULTS,
            "order": 3 if 3 in orders else max(orders),
            "p": DEFAULTS["p"] if DEFAULTS["p"] in ps else min(ps),
        },
        "entries": entries,
    }


def make_registry(
    root: str | os.PathLike,
    *,
    schedules=("vp-linear", "ddpm-linear", "flow"),
    nfes=range(3, 9),
    orders=(1, 2, 3),
    ps=(0, 1, 2),
    shifts=(1.0, 3.0),
) -> Path:
    """Write a registry folder (``index.json`` + ``v1/*.json``) of every schedule × order × p × NFE under
    ``root`` and return ``root``."""
    files = {}
    for schedule in schedules:
        if schedule == "flow":
            files.update({f"v1/flow-shift{s:g}.json": make_file(schedule, nfes, orders, ps, s) for s in shifts})
        else:
            files[f"v1/{schedule}.json"] = make_file(schedule, nfes, orders, ps)
    write_registry(Path(root), files)
    return Path(root)


def standard_files() -> dict[str, dict]:
    """path -> document of the small standard registry: VP-linear (orders 2, 3 × p 0, 1 × NFE 3, 5, 10),
    EDM (order 3, p 1, NFE 4, 6) and DDPM-linear (order 3, p 1, NFE 5 and 30, the latter with nodes one
    timestep apart near t_end)."""
    return {
        "v1/ddpm-linear.json": make_file("ddpm-linear", (5, 30), (3,), (1,)),
        "v1/edm.json": make_file("edm", (4, 6), (3,), (1,)),
        "v1/vp-linear.json": make_file("vp-linear", (3, 5, 10), (2, 3), (0, 1)),
    }


def index_record(path: str, doc: dict, data: bytes) -> dict:
    """The index's record of a data file (flow files list their shift as the variant's params)."""
    entries = doc["entries"]
    params = doc["schedule"]["params"]
    return {
        "path": path,
        "schedule": doc["schedule"]["name"],
        "params": {"shift": params["shift"]} if "shift" in params else {},
        "sha256": sha256(data),
        "bytes": len(data),
        "entries": len(entries),
        "nfe": sorted({e["nfe"] for e in entries}),
        "orders": sorted({e["order"] for e in entries}),
        "p": sorted({e["p"] for e in entries}),
    }


def write_registry(root: Path, files: dict[str, dict] | None = None) -> dict:
    """Write ``files`` (path -> document; default `standard_files`) and a matching index under ``root``;
    return the index."""
    files = standard_files() if files is None else files
    records = []
    for path, doc in sorted(files.items()):
        data = canonical_bytes(doc)
        write_bytes(root / path, data)
        records.append(index_record(path, doc, data))
    return write_index(root, records)


def write_index(root: Path, records: list[dict], **overrides) -> dict:
    index = {
        "schema_version": 1,
        "data_version": DATA_VERSION,
        "generator": GENERATOR,
        "license": "CC-BY-4.0",
        "citation": "Xue et al., CVPR 2024 (fixture)",
        "files": sorted(records, key=lambda r: r["path"]),
        **overrides,
    }
    write_bytes(Path(root) / "index.json", canonical_bytes(index))
    return index


def cut_copy(source: str | os.PathLike, root: str | os.PathLike, paths, nfe=None) -> Path:
    """Copy the registry at ``source`` to ``root`` with only the data files ``paths``, each cut down to its
    entries (bound and solver) at the NFEs ``nfe`` (all if None); the index lists only those files (and the
    model aliases of their schedule variants), each record's counts, NFE lists, hash and size changed to match.
    A real registry, smaller: still valid."""
    source, root = Path(source), Path(root)
    index = read_json(source, "index.json")
    index["files"] = [rec for rec in index["files"] if rec["path"] in paths]
    if len(index["files"]) != len(set(paths)):
        raise ValueError(f"{source} lists {[r['path'] for r in index['files']]}, not every one of {list(paths)}")
    held = {(rec["schedule"], rec["params"].get("shift")) for rec in index["files"]}
    aliases = index.get("aliases", {})
    index["aliases"] = {name: a for name, a in aliases.items() if (a["schedule"], a.get("shift")) in held}
    for rec in index["files"]:
        doc = read_json(source, rec["path"])
        for key in ("entries", "solver_entries") if nfe is not None else ():
            if key in doc:
                doc[key] = [e for e in doc[key] if e["nfe"] in nfe]
        data = canonical_bytes(doc)
        write_bytes(root / rec["path"], data)
        rec.update(index_record(rec["path"], doc, data))
        if "solver_entries" in doc:
            rec["solver_entries"] = len(doc["solver_entries"])
            rec["solver_nfe"] = sorted({e["nfe"] for e in doc["solver_entries"]})
    write_bytes(root / "index.json", canonical_bytes(index))
    return root


def read_json(root: str | os.PathLike, rel: str) -> dict:
    return json.loads((Path(root) / rel).read_bytes())


def rewrite(root: str | os.PathLike, rel: str, obj: object, *, rehash: bool = True) -> None:
    """Replace a data file with ``obj`` (canonical bytes); with ``rehash`` also update its index record."""
    write_bytes(Path(root) / rel, canonical_bytes(obj))
    if rehash:
        rehash_index(root, rel)


def rehash_index(root: str | os.PathLike, *paths: str) -> None:
    """Recompute ``sha256`` and ``bytes`` in the index for ``paths`` (default: every present file), after a
    deliberate edit."""
    root = Path(root)
    index = read_json(root, "index.json")
    for rec in index["files"]:
        path = root / rec["path"]
        if (not paths or rec["path"] in paths) and path.is_file():
            data = path.read_bytes()
            rec["sha256"], rec["bytes"] = sha256(data), len(data)
    write_bytes(root / "index.json", canonical_bytes(index))


def bounded(call, deadline: float = DEADLINE) -> tuple[str, object]:
    """``call()`` in a daemon thread: ``("ok", result)`` or ``("raised", exception)``; fails the test after
    ``deadline`` seconds without an answer (a hang)."""
    out: list = []

    def run() -> None:
        try:
            out.append(("ok", call()))
        except BaseException as err:  # noqa: BLE001 (returned for the test to inspect)
            out.append(("raised", err))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(deadline)
    assert out, f"no answer within {deadline} s (a hang)"
    return out[0]


def tiny_spec():
    """The smallest sweep spec the builder runs: vp-linear, NFE 3, order 1, p 1 (one task, seconds)."""
    import dataclasses

    from builder.registry import sweep

    return dataclasses.replace(
        sweep.load_spec(),
        nfe=(3,),
        orders=(1,),
        p=(1.0,),
        schedules=({"name": "vp-linear", "file": "v1/vp-linear.json", "defaults": {"order": 1, "p": 1}},),
        aliases={},
        solver_entries=None,
    )


def tiny_solver_spec():
    """:func:`tiny_spec` with solver entries: edm, NFE 3-4, order 2, UniPC and DPM++ 2M, both endings, a few
    refinement iterations; generic, and for the pixel profile its alias names (about a minute)."""
    import dataclasses

    return dataclasses.replace(
        tiny_spec(),
        nfe=(3, 4),
        orders=(2,),
        schedules=({"name": "edm", "file": "v1/edm.json", "defaults": {"order": 2, "p": 1}},),
        aliases={"karras": {"schedule": "edm", "profile": "pixel", "description": "EDM (Karras et al. 2022)"}},
        solver_entries={
            "nfe": [3, 4],
            "solvers": [("unipc", 2), ("dpmpp", 2)],
            "endings": ["eps", "zero"],
            "maxiter": 3,
        },
    )
