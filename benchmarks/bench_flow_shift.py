"""How far apart the shipped flow variants' grids are, and which shifts the loader can serve from them.

    python benchmarks/bench_flow_shift.py [--registry FOLDER] [--shifts 1.5 1.9 5 7 12 16]

1. For every key both flow files hold (solver entries: profile, solver, order, ending, nfe; bound entries:
   order, p, nfe), the largest difference between the shift-1 and the shift-3 grid over the interior nodes
   (nodes 1 … N−1: every node but the ends; a σ = 0-ending grid's last evaluated node is one of them), in σ,
   in λ = log((1 − σ)/σ) and in t, and at the end nodes in σ. The same σ is the same grid to a sampler (it
   steps in λ, the model takes 1000·σ); the same t is what the ends share (both files end at t = 0.999, 0.001).
2. For each shift asked: how many entries `optsteps_loader.get` serves (the nearest variant's interior σ, the
   ends at that shift: optsteps_loader/flow_shift.py) and how many it refuses (the moved end would come closer
   to a kept node than the grid's minimal step).

Reads files only; no builder, no numpy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def interior_gaps(a: dict, b: dict) -> dict[str, float]:
    """The largest |difference| over the interior nodes 1 … N−1 in σ, λ and t, and over the ends in σ."""
    n = a["nfe"]
    out = {}
    for key in ("sigma_t", "lambda", "t"):
        out[key] = max((abs(x - y) for x, y in zip(a[key][1:n], b[key][1:n], strict=True)), default=0.0)
    ends = [0] if a.get("ending", "eps") == "zero" else [0, n]
    out["end_sigma"] = max(abs(a["sigma_t"][i] - b["sigma_t"][i]) for i in ends)
    return out


def quantiles(values: list[float]) -> str:
    v = sorted(values)
    return f"{statistics.median(v):.4f}, {v[int(0.9 * (len(v) - 1))]:.4f}, {v[-1]:.4f}"


def compare(registry: Path) -> list[str]:
    one, three = (json.loads((registry / "v1" / f"flow-shift{s}.json").read_bytes()) for s in (1, 3))
    lines = [
        "| entries | keys | interior Δσ: median, p90, max | interior Δλ: median, p90, max |"
        " interior Δt: median, p90, max | end Δσ: max | interior Δσ > 0.01 |",
        "|---|---|---|---|---|---|---|",
    ]
    outliers = []
    for kind, key_of, field in (
        ("solver", lambda e: (e.get("profile", ""), e["solver"], e["order"], e["ending"], e["nfe"]), "solver_entries"),
        ("bound", lambda e: (e["order"], e["p"], e["nfe"]), "entries"),
    ):
        a = {key_of(e): e for e in one.get(field, ())}
        b = {key_of(e): e for e in three.get(field, ())}
        rows = {k: interior_gaps(a[k], b[k]) for k in sorted(a.keys() & b.keys())}
        if not rows:
            continue
        col = {name: [r[name] for r in rows.values()] for name in ("sigma_t", "lambda", "t", "end_sigma")}
        big = [k for k, r in rows.items() if r["sigma_t"] > 0.01]
        lines.append(
            f"| {kind} | {len(rows)} | {quantiles(col['sigma_t'])} | {quantiles(col['lambda'])} |"
            f" {quantiles(col['t'])} | {max(col['end_sigma']):.4f} | {len(big)} |"
        )
        if kind == "solver":
            outliers = [(k, rows[k]["sigma_t"]) for k in big if rows[k]["sigma_t"] > 0.05]
    if outliers:
        shown = ", ".join(f"{'/'.join(map(str, k))} ({d:.3f})" for k, d in outliers)
        lines.append(f"\nSolver entries whose interior σ differs by more than 0.05 (two local optima): {shown}")
    return lines


def coverage(registry: Path, shifts: list[float]) -> list[str]:
    import optsteps_loader
    from optsteps_loader import EntryNotFoundError
    from optsteps_loader.vocabulary import ENDINGS

    three = json.loads((registry / "v1" / "flow-shift3.json").read_bytes())
    requests = [
        (
            "solver",
            {**{k: e[k] for k in ("solver", "order", "ending")}, "profile": e.get("profile", "generic")},
            e["nfe"],
        )
        for e in three.get("solver_entries", ())
    ]
    requests += [
        ("bound", dict(order=e["order"], p=e["p"], ending=ending), e["nfe"] + (ending == "zero"))
        for e in three["entries"]
        for ending in ENDINGS
    ]
    lines = [
        "| shift | served from | solver entries served / refused | bound entries (both endings) served / refused |",
        "|---|---|---|---|",
    ]
    for shift in shifts:
        counts = {"solver": [0, 0], "bound": [0, 0]}
        source = None
        for kind, kwargs, nfe in requests:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    steps = optsteps_loader.get("flow", nfe, shift=shift, source=registry, **kwargs)
                counts[kind][0] += 1
                source = source or (steps.served_from or {}).get("shift", shift)
            except EntryNotFoundError:
                counts[kind][1] += 1
        lines.append(
            f"| {shift:g} | {source if source is not None else '-'} | {counts['solver'][0]} / {counts['solver'][1]}"
            f" | {counts['bound'][0]} / {counts['bound'][1]} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, default=REPO / "registry")
    parser.add_argument("--shifts", type=float, nargs="+", default=[1.5, 1.9, 2.0, 5.0, 7.0, 12.0, 16.0, 30.0])
    args = parser.parse_args()
    print("Shift 1 against shift 3, per key both flow files hold:\n")
    print("\n".join(compare(args.registry)))
    print("\nServed shifts (the nearest variant's interior σ, the ends at the shift asked for):\n")
    print("\n".join(coverage(args.registry, args.shifts)))


if __name__ == "__main__":
    main()
