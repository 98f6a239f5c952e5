"""Time the quality benchmark and print paired comparisons of baselines (and optimised grids, if available).

    python benchmarks/bench_quality.py [--schedule vp-linear] [--nfe 5 6 8 10] [--held-out] [--no-optimized]

Per NFE: ms per grid evaluation (median of repeats, standard problem set, UniPC-3 bh1), then one row per
grid: mean / median L2 to the ground truth (averaged over problems), SW₂, and the paired geometric-mean
error ratio to uniform-λ with its standard error. ``optimized-p{1,2}`` are ``builder.solve.optimize.solve`` with
the released settings (τ = 3, init "unif") when that module is importable.
"""

from __future__ import annotations

import argparse
import statistics
import time

from builder.select import (
    baseline_grids,
    compare,
    evaluate_grid,
    held_out_problems,
    standard_problems,
)
from builder.solve.schedules import get_schedule


def _optimized(schedule, nfe: int) -> dict:
    try:
        from builder.solve.optimize import solve
    except ImportError:
        return {}
    out = {}
    for p in (1, 2):
        res = solve(schedule, nfe, order=3, p=p, tau=3, init="unif")
        out[f"optimized-p{p}"] = res.lambdas
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedule", default="vp-linear")
    ap.add_argument("--shift", type=float, default=None, help="flow shift")
    ap.add_argument("--nfe", type=int, nargs="+", default=[5, 6, 8, 10])
    ap.add_argument("--variant", default="bh1")
    ap.add_argument("--held-out", action="store_true")
    ap.add_argument("--no-optimized", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    schedule = get_schedule(args.schedule, **({} if args.shift is None else {"shift": args.shift}))
    problems = held_out_problems() if args.held_out else standard_problems()
    started = time.perf_counter()
    problems.for_schedule(schedule)
    ready = time.perf_counter() - started
    print(f"{schedule.name} {schedule.params}: benchmark '{problems.name}' ready in {ready:.1f} s")
    for nfe in args.nfe:
        grids = baseline_grids(schedule, nfe)
        if not args.no_optimized:
            grids.update(_optimized(schedule, nfe))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evaluate_grid(grids["uniform-lambda"], problems, variant=args.variant)
            times.append(time.perf_counter() - t0)
        print(f"\nNFE {nfe}: {1e3 * statistics.median(times):.1f} ms per grid (median of {args.repeats})")
        print(f"  {'grid':16s} {'mean L2':>9s} {'median L2':>9s} {'SW2':>9s} {'ratio':>7s} {'±se':>6s}")
        for row in compare(grids, problems, variant=args.variant):
            print(
                f"  {row['name']:16s} {row['mean_l2']:9.4f} {row['median_l2']:9.4f} {row['sw']:9.4f} "
                f"{row['ratio']:7.3f} {row['log_ratio_se']:6.3f}"
            )


if __name__ == "__main__":
    main()
