"""What the bound's exact minimiser buys: released solve vs ``method="direct"`` vs ``method="epigraph"``.

    python benchmarks/bench_exact_minimum.py [--schedule vp-linear] [--nfe 5 8 10 15 20 30] [--tau 3 0] [--p 2]

Same problem, same uniform-λ start for all three solves:

- ``released``: reference.solve_released_way (trust-constr, finite differences, scipy defaults);
- ``direct``: builder.solve.optimize.solve(method="direct", init="unif") (exact gradient, what the registry uses);
- ``epigraph``: builder.solve.optimize.solve(method="epigraph", init="unif") (F's ℓ1 part as constraints: a
  stationary point of F).

Per problem it prints each solve's wall time, F, trust-constr status and smallest step min_i h_i, then the
paired sampling error of each grid on the standard quality problems (UniPC-3 bh1): the geometric-mean error
ratio to uniform-λ with its standard error (< 1 is better). One core: ``taskset -c 0 python ...``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from benchmarks.reference import solve_released_way
from builder.select import compare, standard_problems
from builder.solve.grids import start_grid
from builder.solve.optimize import solve
from builder.solve.schedules import get_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", default="vp-linear")
    parser.add_argument("--shift", type=float, default=None, help="flow shift")
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 8, 10, 15, 20, 30])
    parser.add_argument("--tau", type=int, nargs="+", default=[3, 0])
    parser.add_argument("--p", type=float, default=2.0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    schedule = get_schedule(args.schedule, **({} if args.shift is None else {"shift": args.shift}))
    problems = standard_problems()
    print(f"{schedule.name} {schedule.params} p={args.p:g}, start: uniform lambda")
    print(
        f"{'nfe':>3} {'tau':>3} {'solve':>9} {'s':>7} {'F':>11} {'status':>6} {'min h':>9} "
        f"{'err/unif-λ':>10} {'±se':>6}"
    )
    for nfe in args.nfe:
        for tau in args.tau:
            rows = {}
            started = time.perf_counter()
            ref = solve_released_way(schedule, nfe, args.p, tau)
            ref_lam = np.concatenate([[schedule.lambda_start], ref.x, [schedule.lambda_end]])
            rows["released"] = (time.perf_counter() - started, ref.fun, ref.status, ref_lam)
            for method in ("direct", "epigraph"):
                started = time.perf_counter()
                res = solve(schedule, nfe, p=args.p, tau=tau, init="unif", method=method)
                rows[method] = (time.perf_counter() - started, res.fun, res.status, res.lambdas)
            grids = {"uniform-lambda": start_grid(schedule, nfe, "unif")}
            grids.update({name: row[3] for name, row in rows.items() if np.all(np.diff(row[3]) > 0)})
            errors = {row["name"]: row for row in compare(grids, problems)}
            for name, (seconds, fun, status, lam) in rows.items():
                err = errors.get(name)
                quality = f"{err['ratio']:10.3f} {err['log_ratio_se']:6.3f}" if err else f"{'invalid':>10} {'':>6}"
                print(
                    f"{nfe:>3} {tau:>3} {name:>9} {seconds:7.3f} {fun:11.6g} {status:>6} "
                    f"{np.diff(lam).min():9.2e} {quality}"
                )


if __name__ == "__main__":
    main()
