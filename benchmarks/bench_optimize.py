"""Time our solve against the released way of solving the same problem, in the same run.

Baselines, both trust-constr with 2-point finite-difference gradients, one uniform-λ start and scipy's
default options (reference.solve_released_way), as the paper's ``step_optim.py`` solves it:

- ``released``: the objective evaluated at the released code's cost (numpy scalar loops, endpoints
  re-derived from the schedule on every call; ``literal=True``);
- ``loop FD``: the same loops on Python floats (``literal=False``), 3× cheaper per evaluation — the
  fastest a finite-difference solve of this bound gets, so the honest floor for a ratio.

Ours: ``builder.solve.optimize.solve`` with the exact gradient, ``--init unif`` (same start) and ``--init best``
(multi-start), both ``method="direct"``, and ``method="epigraph"`` from the same uniform-λ start (the exact
local minimiser of F; see builder.solve.epigraph for why the registry does not use it). Problem: vp-linear,
p = 2, τ = 3 (the released problem).

    python benchmarks/bench_optimize.py [--repeat 3] [--nfe 5 6 8 10 15 20] [--p 2]

Prints, per NFE, the median wall time of each, the ratios released/ours and loop-FD/ours for ``unif``,
and every optimum F; then each ``unif`` solve's iteration count and time per iteration, which split a
ratio into path length (where the kink-crawl stops) and cost per iteration. Run on one core for the per-solve figures:
``taskset -c 0 python benchmarks/bench_optimize.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from benchmarks.reference import solve_released_way
from builder.solve.optimize import solve
from builder.solve.schedules import get_schedule


def _median_time(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 6, 8, 10, 15, 20])
    parser.add_argument("--p", type=float, default=2.0)
    parser.add_argument("--tau", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--schedule", default="vp-linear")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sched = get_schedule(args.schedule)

    header = (
        f"{'nfe':>4} {'released s':>11} {'loop FD s':>10} {'ours(unif) s':>13} {'÷released':>10} {'÷loop FD':>9} "
        f"{'ours(best) s':>13} {'epigraph s':>11} {'÷released':>10} {'F released':>11} {'F loop FD':>11} "
        f"{'F ours unif':>12} {'F ours best':>12} {'F epigraph':>11}"
    )
    print(f"{args.schedule} p={args.p:g} tau={args.tau}; median of {args.repeat} runs each")
    print(header)
    per_iteration = []
    for nfe in args.nfe:
        t_ref, ref = _median_time(lambda n=nfe: solve_released_way(sched, n, args.p, args.tau), args.repeat)
        t_loop, loop = _median_time(
            lambda n=nfe: solve_released_way(sched, n, args.p, args.tau, literal=False), args.repeat
        )
        t_unif, unif = _median_time(lambda n=nfe: solve(sched, n, p=args.p, tau=args.tau, init="unif"), args.repeat)
        t_best, best = _median_time(lambda n=nfe: solve(sched, n, p=args.p, tau=args.tau, init="best"), args.repeat)
        t_epi, epi = _median_time(
            lambda n=nfe: solve(sched, n, p=args.p, tau=args.tau, init="unif", method="epigraph"), args.repeat
        )
        print(
            f"{nfe:>4} {t_ref:>11.3f} {t_loop:>10.3f} {t_unif:>13.3f} {t_ref / t_unif:>9.1f}x "
            f"{t_loop / t_unif:>8.1f}x {t_best:>13.3f} {t_epi:>11.3f} {t_ref / t_epi:>9.1f}x "
            f"{ref.fun:>11.6g} {loop.fun:>11.6g} {unif.fun:>12.6g} {best.fun:>12.6g} {epi.fun:>11.6g}"
            + ("" if best.fun <= min(ref.fun, loop.fun) * (1 + 1e-9) else "  (best above released)")
        )
        per_iteration.append((nfe, [(t_ref, ref.nit), (t_loop, loop.nit), (t_unif, unif.nit)]))

    print("\nwhere a ratio comes from: iterations (path length) and ms per iteration (cost), unif start")
    print(
        f"{'nfe':>4} {'it released':>12} {'it loop FD':>11} {'it ours':>8} {'ms/it rel':>10} {'ms/it loop':>11} "
        f"{'ms/it ours':>11} {'per-it ÷released':>17}"
    )
    for nfe, runs in per_iteration:
        ms = [1e3 * seconds / nit for seconds, nit in runs]
        its = [nit for _, nit in runs]
        print(
            f"{nfe:>4} {its[0]:>12} {its[1]:>11} {its[2]:>8} {ms[0]:>10.3f} {ms[1]:>11.3f} {ms[2]:>11.3f} "
            f"{ms[0] / ms[2]:>16.1f}x"
        )


if __name__ == "__main__":
    main()
