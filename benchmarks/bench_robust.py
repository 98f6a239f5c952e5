"""The ratio-target table on the VALIDATION split: shipped registry entries vs grids refined live on the fit split.

For each schedule × NFE × solver (UniPC bh2 order 3; DPM-Solver++ 2M, order 2) and each candidate grid G —
(a) the shipped registry entry, (b) the grid refined on the fit split (:func:`builder.select.refine.refine`,
from the four rule grids and the registry entry), and for discrete schedules (c) (b) rounded to integer
timesteps — per validation problem p: e_p(G) = mean over the batch of ‖x_G − x_exact‖₂ (and the median).

- ``worst rule``: max over every fixed rule and applicable published table R of exp(mean_p log(e_p(G)/e_p(R)))
  (target ≤ 0.85), with R's name;
- ``vs best``: exp(mean_p log(e_p(G)/min_R e_p(R))) (target ≤ 0.95);
- ``>UL``: validation problems where e_p(G) > e_p(uniform-λ) (target 0);
- ``±``: standard error by problem, sd_p(log ratio)/√P;
- ``mean L2`` / ``median L2``: mean over problems of e_p / of the per-problem median.

Per-schedule rows aggregate over the NFEs run (geometric mean of the per-NFE ratios, sum of the counts).
Every entry's row is written as JSON under ``--out`` (one file per entry), and ``--table DIR`` prints the
table from such files, so a long run can be split into runs of a few minutes each:

    taskset -c 0 python benchmarks/bench_robust.py --quick                    # ~3 min, 2 entries
    python benchmarks/bench_robust.py --solvers unipc3 --schedules vp-linear,vp-cosine --out results/
    python benchmarks/bench_robust.py --table results/
    python benchmarks/bench_robust.py --warm-start --schedules edm --nfes 5,6,8,10    # NFE N+1 from N
    python benchmarks/bench_robust.py --warm-start --warm-from results/ --nfes 6 --solvers unipc3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from builder.select import family
from builder.select.evaluate import paired
from builder.select.host_grid import as_run
from builder.select.refine import bind, errors, insert_node, refine, rule_grids, rule_starts
from builder.solve.schedules import get_schedule
from optsteps_loader.vocabulary import ENDINGS

SCHEDULES = {
    "vp-linear": ("vp-linear", {}),
    "vp-cosine": ("vp-cosine", {}),
    "ddpm-linear": ("ddpm-linear", {}),
    "scaled-linear": ("scaled-linear", {}),
    "edm": ("edm", {}),
    "flow-s1": ("flow", {"shift": 1.0}),
    "flow-s3": ("flow", {"shift": 3.0}),
}
SOLVERS = {"unipc3": ("unipc", 3), "dpmpp2": ("dpmpp", 2)}
DISCRETE = ("ddpm-linear", "scaled-linear")

# The earlier prototype's fit split: pixel D ≤ 256 and a ≤ 2.2, latent a ≥ 0.2 and f ≥ 0.05, lowdim
# K 12–32 — narrower than validation (which has D = 320, a = 2.5; a = 0.1; f = 0.02; K = 8 and 48).
PROTOTYPE_FIT_SPECS: tuple[tuple[str, tuple], ...] = (
    ("pixel", (64, 4, 1.2, 0.3, 1)),
    ("pixel", (128, 8, 1.8, 0.2, 2)),
    ("pixel", (256, 6, 2.2, 0.4, 3)),
    ("pixel", (96, 3, 1.5, 0.5, 4)),
    ("latent", (16, 4, 0.2, 0.9, 1)),
    ("latent", (32, 8, 0.5, 0.3, 2)),
    ("latent", (64, 16, 0.8, 0.05, 3)),
    ("latent", (24, 12, 0.3, 0.6, 4)),
    ("lowdim", (2, 16, 0.02, 0.08, 1)),
    ("lowdim", (4, 32, 0.03, 0.12, 2)),
    ("lowdim", (8, 12, 0.02, 0.1, 3)),
    ("digits", ()),
)


def prototype_fit() -> tuple:
    """The prototype's fit split (``--fit prototype-fit``), built as ``family.split`` builds "fit": batch
    64, noise seeds 0, 1, …"""
    return tuple(
        family.problem(g, a, batch=family.FIT_BATCH, seed=i, split_name="prototype-fit")
        for i, (g, a) in enumerate(PROTOTYPE_FIT_SPECS)
    )


def registry_grid(key: str, nfe: int, solver: str, order: int, ending: str) -> np.ndarray | None:
    """The shipped entry's λ for this solver (the σ = 0 ending uses the NFE − 1 entry's nodes), or None."""
    import optsteps_loader

    name, params = SCHEDULES[key]
    try:
        st = optsteps_loader.get(name, nfe if ending == "eps" else nfe - 1, order=order, solver=solver, **params)
    except Exception:  # an entry that does not exist is reported as missing
        return None
    return np.asarray(st.lambdas, dtype=np.float64)


def summarise(errs: dict[str, list[np.ndarray]], candidates: list[str], rules: list[str]) -> dict:
    """Per candidate: ratios vs each rule and vs the per-problem best rule (with SEs by problem), losses."""
    mean = {k: np.array([e.mean() for e in v]) for k, v in errs.items()}
    median = {k: np.array([np.median(e) for e in v]) for k, v in errs.items()}
    best = np.min(np.stack([mean[r] for r in rules]), axis=0)
    out = {}
    for g in candidates:
        row: dict = {"mean_l2": float(mean[g].mean()), "median_l2": float(median[g].mean())}
        ratios = {}
        for r in rules:
            lr = np.log(mean[g] / mean[r])
            ratios[r] = (float(lr.mean()), float(lr.std(ddof=1) / math.sqrt(lr.size)))
        row["log_ratio_vs"] = ratios
        worst = max(rules, key=lambda r: ratios[r][0])
        row["worst_rule"] = worst
        lr = np.log(mean[g] / best)
        row["log_ratio_vs_best"] = (float(lr.mean()), float(lr.std(ddof=1) / math.sqrt(lr.size)))
        row["above_uniform_lambda"] = int(np.sum(mean[g] > mean["uniform-lambda"] * (1 + 1e-12)))
        names = [f"p{i}" for i in range(len(errs[g]))]
        row["paired_per_sample_vs_uniform_lambda"] = paired(
            dict(zip(names, errs[g], strict=True)), dict(zip(names, errs["uniform-lambda"], strict=True))
        )
        row["per_problem_mean_l2"] = mean[g].tolist()
        out[g] = row
    return out


def run_entry(key, nfe, solver_key, fit, val, args, warm: np.ndarray | None = None) -> dict:
    solver, order = SOLVERS[solver_key]
    sched = get_schedule(SCHEDULES[key][0], **SCHEDULES[key][1])
    ending = args.ending
    starts = rule_starts(sched, nfe, ending)
    reg = registry_grid(key, nfe, solver, order, ending)
    if reg is not None:
        starts["registry"] = reg
    if warm is not None:
        starts = {"uniform-lambda": starts["uniform-lambda"], "warm": warm}
    res = refine(
        fit,
        starts,
        solver=solver,
        order=order,
        variant="bh2",
        penalty=args.penalty,
        sharpness=args.sharpness,
        top=1 if warm is not None else args.top,
        maxiter=args.maxiter,
        reference="uniform-lambda",
    )
    grids = rule_grids(sched, nfe, ending)
    rules = list(grids)
    grids["refined"] = res.x
    candidates = ["refined"]
    if reg is not None:
        grids["registry"] = reg
        candidates.insert(0, "registry")
    if key in DISCRETE:
        try:
            grids["refined-rounded"] = as_run(res.x, sched)
            candidates.append("refined-rounded")
        except ValueError:  # two nodes share a timestep: no rounded grid to measure
            pass
    spec = {"solver": solver, "order": order} | ({"variant": "bh2"} if solver == "unipc" else {})
    errs = {k: errors(g, val, **spec) for k, g in grids.items()}
    return {
        "schedule": key,
        "nfe": nfe,
        "solver": solver_key,
        "ending": ending,
        "fit": args.fit,
        "penalty": args.penalty,
        "sharpness": args.sharpness,
        "warm_start": warm is not None,
        "family": {"fit": family.digest(args.fit_problems), "validation": family.digest(args.val_problems)},
        "refine": {
            "seconds": res.seconds,
            "start": res.start,
            "fun": res.fun,
            "mean_log_ratio_fit": res.mean_log_ratio,
            "nit": res.nit,
            "nfev_total": res.nfev_total,
            "starts": res.starts,
            "success": res.success,
        },
        "grids": {k: np.asarray(v).tolist() for k, v in grids.items() if k in candidates},
        "validation": summarise(errs, candidates, rules),
    }


def _fmt(row: dict, se: bool = True) -> str:
    w = row["worst_rule"]
    lr, s = row["log_ratio_vs"][w]
    b, bs = row["log_ratio_vs_best"]
    pm = (lambda v: f"±{v:.2f}") if se else (lambda v: "")
    return (
        f"{math.exp(lr):.3f}{pm(s)} ({w}) | {math.exp(b):.3f}{pm(bs)} | {row['above_uniform_lambda']} | "
        f"{row['mean_l2']:.4f} | {row['median_l2']:.4f}"
    )


def table(rows: list[dict]) -> str:
    """Markdown: one line per entry and candidate, then per-schedule aggregates and refinement seconds."""
    lines = []
    rows = sorted(rows, key=lambda r: (r["solver"], list(SCHEDULES).index(r["schedule"]), r["nfe"]))
    head = "| solver | schedule | NFE | grid | worst rule (±se) | vs best (±se) | >UL | mean L2 | median L2 |"
    lines += [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for c, v in r["validation"].items():
            lines.append(f"| {r['solver']} | {r['schedule']} | {r['nfe']} | {c} | {_fmt(v)} |")
    lines += ["", "Per schedule, over the NFEs run (geometric mean of the per-NFE ratios; >UL summed):", ""]
    lines += [
        "| solver | schedule | NFEs | grid | worst rule | vs best | >UL | refine s/entry |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["solver"], r["schedule"]), []).append(r)
    for (solver, sched), rs in groups.items():
        for c in ("registry", "refined", "refined-rounded"):
            vs = [r["validation"][c] for r in rs if c in r["validation"]]
            if not vs:
                continue
            rules = vs[0]["log_ratio_vs"].keys()
            agg = {ru: np.mean([v["log_ratio_vs"][ru][0] for v in vs]) for ru in rules}
            worst = max(agg, key=agg.get)
            best = np.mean([v["log_ratio_vs_best"][0] for v in vs])
            secs = np.mean([r["refine"]["seconds"] for r in rs]) if c == "refined" else float("nan")
            nfes = ",".join(str(r["nfe"]) for r in rs)
            lines.append(
                f"| {solver} | {sched} | {nfes} | {c} | {math.exp(agg[worst]):.3f} ({worst}) | {math.exp(best):.3f} | "
                f"{sum(v['above_uniform_lambda'] for v in vs)} | {'' if math.isnan(secs) else f'{secs:.1f}'} |"
            )
    by_nfe: dict = {}
    for r in rows:
        by_nfe.setdefault((r["solver"], r["nfe"]), []).append(r["refine"]["seconds"])
    lines += ["", "Seconds per refinement (mean, min–max over schedules):"]
    for (solver, nfe), s in sorted(by_nfe.items()):
        lines.append(f"- {solver} NFE {nfe}: {np.mean(s):.1f} s ({min(s):.1f}–{max(s):.1f}), {len(s)} entries")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="scaled-linear and edm at NFE 6, UniPC order 3")
    ap.add_argument("--schedules", default=",".join(SCHEDULES))
    ap.add_argument("--nfes", default="5,6,8,10")
    ap.add_argument("--solvers", default="unipc3,dpmpp2")
    ap.add_argument("--ending", default="eps", choices=ENDINGS)
    ap.add_argument("--fit", default="fit", choices=("fit", "prototype-fit"), help="the fit split to refine on")
    ap.add_argument("--penalty", type=float, default=0.0, help="w in mean ℓ + w·mean softplus(k ℓ)")
    ap.add_argument("--sharpness", type=float, default=10.0, help="k in the penalty")
    ap.add_argument("--top", type=int, default=2, help="starts refined (the best by fit loss)")
    ap.add_argument("--maxiter", type=int, default=60)
    ap.add_argument("--warm-start", action="store_true", help="NFE N+1 from the refined NFE N grid (insert_node)")
    ap.add_argument(
        "--warm-from", type=Path, default=None, help="with --warm-start: the NFE N−1 rows of an earlier --out"
    )
    ap.add_argument("--out", type=Path, default=None, help="write one JSON per entry here")
    ap.add_argument("--table", type=Path, default=None, help="print the table from a folder of JSON rows and exit")
    args = ap.parse_args()
    if args.table is not None:
        print(table([json.loads(p.read_text()) for p in sorted(args.table.glob("*.json"))]))
        return
    if args.quick:
        args.schedules, args.nfes, args.solvers = "scaled-linear,edm", "6", "unipc3"
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - only speed depends on it
        pass
    args.fit_problems = family.split("fit") if args.fit == "fit" else prototype_fit()
    args.val_problems = family.split("validation")
    rows = []
    for solver_key in args.solvers.split(","):
        for key in args.schedules.split(","):
            sched = get_schedule(SCHEDULES[key][0], **SCHEDULES[key][1])
            fit = bind(args.fit_problems, sched.lambda_start, sched.lambda_end, args.ending)
            val = bind(args.val_problems, sched.lambda_start, sched.lambda_end, args.ending)
            prev = None
            for nfe in (int(n) for n in args.nfes.split(",")):
                t0 = time.perf_counter()
                warm = None
                if args.warm_start and args.warm_from is not None:
                    saved = args.warm_from / f"{solver_key}-{key}-{args.ending}-n{nfe - 1:02d}.json"
                    prev = json.loads(saved.read_text()) if saved.is_file() else None
                if args.warm_start and prev is not None and prev["nfe"] == nfe - 1:
                    warm = insert_node(prev["grids"]["refined"], args.ending, sched.lambda_end)
                row = run_entry(key, nfe, solver_key, fit, val, args, warm)
                prev = row
                rows.append(row)
                if args.out is not None:
                    args.out.mkdir(parents=True, exist_ok=True)
                    tag = f"{solver_key}-{key}-{args.ending}-n{nfe:02d}" + ("-warm" if warm is not None else "")
                    (args.out / f"{tag}.json").write_text(json.dumps(row, indent=1))
                v = row["validation"]
                print(
                    f"{solver_key} {key} N={nfe} refine {row['refine']['seconds']:.1f}s start={row['refine']['start']} "
                    f"nit={row['refine']['nit']} | refined {_fmt(v['refined'], se=False)}"
                    + (f" | registry {_fmt(v['registry'], se=False)}" if "registry" in v else "")
                    + f" [{time.perf_counter() - t0:.0f}s]",
                    flush=True,
                )
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
