"""How much does a trust-constr optimum of the bound depend on the last bits of its start?

Comparing our ``--tau 3 --init unif`` optimum with the finite-difference solve's from the same start is
meaningful only if each is stable. This measures whether it is: it perturbs the interior of the
uniform-λ start by ``--scale`` (default 1e-12, far below anything a grid's user could see) in ``--starts``
seeded random directions and solves each perturbed start three ways:

- ``direct``: builder.solve.optimize.solve, the registry's method (exact gradient);
- ``FD``: reference.solve_released_way (finite differences, the released way; ``literal=False``);
- ``epigraph``: builder.solve.optimize.solve(method="epigraph"), which stops at a stationary point of F.

    python benchmarks/bench_start_sensitivity.py [--nfe 8 10 15 20] [--starts 10] [--scale 1e-12]

Prints per NFE and method: F from the exact start, and min / median / max over the perturbed ones; then
the share of perturbed starts where direct ≤ FD (same start). A spread much wider than the gap between
the two methods means the single-start comparison measures where a kink-crawl happens to stop, not the
optimiser.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from benchmarks.reference import solve_released_way
from builder.solve.grids import start_grid
from builder.solve.optimize import solve
from builder.solve.schedules import get_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[8, 10, 15, 20])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1e-12)
    parser.add_argument("--p", type=float, default=2.0)
    parser.add_argument("--tau", type=int, default=3)
    parser.add_argument("--schedule", default="vp-linear")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sched = get_schedule(args.schedule)
    rng = np.random.default_rng(20261126)

    print(
        f"{args.schedule} p={args.p:g} tau={args.tau}; uniform-λ start, interior perturbed by "
        f"{args.scale:g}·N(0, 1) in {args.starts} seeded directions"
    )
    print(f"{'nfe':>4} {'method':>9} {'F exact start':>14} {'min':>10} {'median':>10} {'max':>10}")
    for nfe in args.nfe:
        base = start_grid(sched, nfe, "unif")
        starts = [base]
        for _ in range(args.starts):
            grid = base.copy()
            grid[1:-1] += args.scale * rng.standard_normal(nfe - 1)
            starts.append(grid)
        values = {"direct": [], "FD": [], "epigraph": []}
        for grid in starts:
            values["direct"].append(solve(sched, nfe, p=args.p, tau=args.tau, init=grid).fun)
            values["FD"].append(solve_released_way(sched, nfe, args.p, args.tau, literal=False, x0=grid[1:-1]).fun)
            values["epigraph"].append(solve(sched, nfe, p=args.p, tau=args.tau, init=grid, method="epigraph").fun)
        for method, found in values.items():
            perturbed = np.array(found[1:])
            print(
                f"{nfe:>4} {method:>9} {found[0]:>14.6g} {perturbed.min():>10.6g} "
                f"{np.median(perturbed):>10.6g} {perturbed.max():>10.6g}"
            )
        direct, fd = np.array(values["direct"][1:]), np.array(values["FD"][1:])
        print(f"{nfe:>4} direct ≤ FD from the same perturbed start: {np.mean(direct <= fd * (1 + 1e-9)):.0%}")


if __name__ == "__main__":
    main()
