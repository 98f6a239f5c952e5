"""The held-out choice (builder/select/promise.py) over the shipped registry: what each entry would ship.

The sweep makes these decisions itself (builder/registry/sweep/choice.py); this re-runs them on a registry
folder with other settings, to measure a setting before it goes into the sweep. For every registry file
(``registry/v1/*.json``, read with json), solver and order of its solver entries (UniPC-2/3 bh2, DPM++
1/2M/3M), ending and NFE:

- :func:`builder.select.promise.decide_cell` with the generic solver entry's grid as ``refined`` and each profile
  entry's grid as that profile's ``refined`` (against the generic decision's grid);
- where the file has no solver entry (the loader returns the bound's entry): the best host rule (``decide_cell``
  with no candidate).

"before" is what the loader returns: the solver entry, else the bound's entry (``"eps"``: its NFE-N grid for the
order; ``"zero"``: its NFE-(N-1) grid then sigma = 0), as the file has it. "candidate always" is the solver
entry's grid as the decisions see it (:func:`builder.select.promise.shipped`, as are the rules'). Figures are
on the REPORT problems only (the decision used the GATE ones): the geometric-mean ratio of the grid's error to
the best single host rule's on those problems (profile rows: the profile's kinds), "worst kind" the kind with
the highest ratio.

    python benchmarks/bench_promise.py                     # the whole registry, 2 processes
    python benchmarks/bench_promise.py --files scaled-linear --nfe 8,10 --solvers dpmpp-2,unipc-2
    python benchmarks/bench_promise.py --files scaled-linear,ddpm-linear,edm,flow-shift3 --nfe 5,8,10,15,20,30 \
        --solvers dpmpp-2,dpmpp-3,unipc-2 --tolerance 0.05      # the tolerance measurement
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from optsteps_loader.vocabulary import ENDINGS

REPO = Path(__file__).resolve().parents[1]
SOLVERS = (("unipc", 3), ("unipc", 2), ("dpmpp", 1), ("dpmpp", 2), ("dpmpp", 3))
NFES = tuple(range(3, 31))
REFINED_MAX = 10  # the summary's NFE bands: 3-10 and 11-30


def _label(solver: str, order: int) -> str:
    return f"{solver}-{order}"


def _schedule(obj: dict):
    from builder.solve.schedules import get_schedule

    rec = obj["schedule"]
    # the variant's own parameters (flow: shift); the others are the schedule's defaults, checked below
    schedule = get_schedule(rec["name"], **{k: v for k, v in rec["params"].items() if k == "shift"})
    for end in ("lambda_start", "lambda_end"):
        if not math.isclose(getattr(schedule, end), rec[end], rel_tol=0, abs_tol=1e-9):
            raise RuntimeError(f"{rec['name']}: builder's {end} {getattr(schedule, end)} != file's {rec[end]}")
    return schedule


def _solver_grid(obj: dict, solver: str, order: int, ending: str, nfe: int, profile: str | None):
    """The λ of the file's solver entry for this request (not a calibrated one), or None."""
    for e in obj["solver_entries"]:
        key = (e["solver"], e["order"], e["ending"], e.get("profile"), e["nfe"], e["method"] == "calibrated")
        if key == (solver, order, ending, profile, nfe, False):
            return np.asarray(e["lambda"], dtype=np.float64)
    return None


def _before(obj: dict, solver: str, order: int, ending: str, nfe: int, profile: str | None):
    """The grid the loader returns today for this request (module docstring)."""
    grid = _solver_grid(obj, solver, order, ending, nfe, profile)
    if grid is not None or profile is not None:
        return grid
    p = obj["defaults"]["p"]
    want = nfe if ending == "eps" else nfe - 1
    for e in obj["entries"]:
        if (e["nfe"], e["order"], e["p"]) == (want, order, p):
            return np.asarray(e["lambda"], dtype=np.float64)
    return None


def run_job(job: tuple) -> list[dict]:
    """One (registry file, ending): every solver, order and NFE; returns one row per decision."""
    import torch

    from builder.select import promise

    torch.set_num_threads(1)
    path, ending, nfes, solvers, options = job
    obj = json.loads(Path(path).read_text())
    schedule = _schedule(obj)
    variant = Path(path).stem
    profiles = sorted({e["profile"] for e in obj["solver_entries"] if e.get("profile")})
    sp = promise.split(schedule, ending, per_kind=options["per_kind"], batch=options["batch"])
    rows = []
    for solver, order in solvers:
        spec = promise.solver_spec(solver, order)
        for nfe in nfes:
            memo = {}
            opt = options | {"memo": memo}
            refined = _solver_grid(obj, solver, order, ending, nfe, None)
            prof = {p: g for p in profiles if (g := _solver_grid(obj, solver, order, ending, nfe, p)) is not None}
            decisions = promise.decide_cell(schedule, solver, order, ending, nfe, refined, prof, options=opt)
            rules = {k: promise.shipped(g, schedule) for k, g in promise.host_rules(schedule, nfe, ending).items()}
            for who, d in decisions.items():
                profile = None if who == "generic" else who
                before = _before(obj, solver, order, ending, nfe, profile)
                scope = None if profile is None else promise.PROFILE_KINDS[profile]
                fig = None
                if before is not None:
                    errs = promise.evaluate({"before": before, **rules}, sp.report, spec, memo)
                    fig = promise.report_figures(errs, sp.report_kinds, "before", list(rules), scope)
                cand = refined if profile is None else prof.get(profile)
                cand = None if cand is None else promise.shipped(cand, schedule)
                cfig = None
                if cand is not None:
                    errs = promise.evaluate({"candidate": cand, **rules}, sp.report, spec, memo)
                    cfig = promise.report_figures(errs, sp.report_kinds, "candidate", list(rules), scope)
                rows.append(
                    {
                        "candidate": None if cfig is None else cfig["ratio"],
                        "variant": variant,
                        "profile": who,
                        "solver": solver,
                        "order": order,
                        "ending": ending,
                        "nfe": nfe,
                        "method": d.method,
                        "name": d.name,
                        "best_rule": d.best_rule,
                        "after": d.ratio,
                        "after_by_kind": d.by_kind,
                        "before": None if fig is None else fig["ratio"],
                        "before_by_kind": None if fig is None else fig["by_kind"],
                        "reasons": list(d.reasons),
                    }
                )
    return rows


def _gm(values) -> float:
    values = [v for v in values if v is not None]
    return math.exp(float(np.mean(np.log(values)))) if values else float("nan")


def summarise(rows: list[dict], echo=print) -> None:
    low = [r for r in rows if r["nfe"] <= REFINED_MAX]
    high = [r for r in rows if r["nfe"] > REFINED_MAX]
    for tier in ("generic", "profile"):
        sel = [r for r in low if (r["profile"] == "generic") == (tier == "generic")]
        if not sel:
            continue
        m = Counter(r["method"] for r in sel)
        rules = Counter(r["name"] for r in sel if r["method"] == "rule")
        echo(
            f"NFE 3-{REFINED_MAX} {tier} entries: {len(sel)}: keep refined {m['refined']}, rule {m['rule']}"
            + (f" ({', '.join(f'{k} {v}' for k, v in rules.most_common())})" if rules else "")
            + (f", fall back to generic {m['generic']}" if tier == "profile" else "")
        )
    if high:
        rules = Counter(r["name"] for r in high if r["method"] == "rule")
        m = Counter(r["method"] for r in high)
        echo(
            f"NFE {REFINED_MAX + 1}-30 entries: {len(high)}: keep refined {m['refined']}, rule {m['rule']}, "
            f"generic {m['generic']} ({', '.join(f'{k} {v}' for k, v in rules.most_common())})"
        )
    for label, sel in (("NFE 3-10", low), ("NFE 11-30", high)):
        if sel:
            before = [r["before"] for r in sel if r["before"] is not None]
            after = [r["after"] for r in sel]
            echo(
                f"{label}: geometric-mean ratio vs best single rule (REPORT): before {_gm(before):.3f}, after "
                f"{_gm(after):.3f}; worst entry before {max(before):.2f}, after {max(after):.2f}"
            )
            with_entry = [r for r in sel if r["candidate"] is not None]
            if with_entry:
                cand = [r["candidate"] for r in with_entry]
                chosen = [r["after"] for r in with_entry]
                echo(
                    f"{label}, the {len(with_entry)} with a solver entry: its grid shipped always {_gm(cand):.3f} "
                    f"(worst {max(cand):.2f}, {sum(v > 1.0001 for v in cand)} above 1), as chosen {_gm(chosen):.3f} "
                    f"(worst {max(chosen):.2f}, {sum(v > 1.0001 for v in chosen)} above 1)"
                )
    echo("")
    echo(
        f"{'variant':<14}{'profile':<9}{'solver':<9}{'end':<5}| {'3-10 before':>11} {'after':>6} {'kept':>5} |"
        f" {'11-30 before':>12} {'after':>6} | worst kind after (ratio, NFE)"
    )
    groups = defaultdict(list)
    for r in rows:
        groups[(r["variant"], r["profile"], _label(r["solver"], r["order"]), r["ending"])].append(r)
    for key in sorted(groups):
        g = groups[key]
        lo = [r for r in g if r["nfe"] <= REFINED_MAX]
        hi = [r for r in g if r["nfe"] > REFINED_MAX]
        kept = sum(r["method"] == "refined" for r in lo)
        worst = max(((v, k, r["nfe"]) for r in g for k, v in r["after_by_kind"].items()), default=None)
        hi_txt = f"{_gm(r['before'] for r in hi):>12.3f} {_gm(r['after'] for r in hi):>6.3f}" if hi else " " * 19
        echo(
            f"{key[0]:<14}{key[1]:<9}{key[2]:<9}{key[3]:<5}| {_gm(r['before'] for r in lo):>11.3f} "
            f"{_gm(r['after'] for r in lo):>6.3f} {kept:>2}/{len(lo):<2} | {hi_txt} | "
            + (f"{worst[1]} {worst[0]:.2f} @{worst[2]}" if worst else "")
        )


def focus(rows: list[dict], echo=print) -> None:
    """The bench_hosts finding's rows: scaled-linear, DPM++ 2M and UniPC-2, ending zero, by kind."""
    sel = [
        r
        for r in rows
        if r["variant"] == "scaled-linear"
        and r["ending"] == "zero"
        and (r["solver"], r["order"]) in (("dpmpp", 2), ("unipc", 2))
        and r["nfe"] in (8, 10, 20, 30)
    ]
    if not sel:
        return
    echo("\nscaled-linear, ending zero (diffusers' default), by kind (REPORT ratio vs best single rule):")
    for r in sorted(sel, key=lambda r: (r["solver"], r["order"], r["profile"], r["nfe"])):
        kinds = ", ".join(
            f"{k} {r['before_by_kind'][k]:.2f}->{v:.2f}" if r["before_by_kind"] else f"{k} {v:.2f}"
            for k, v in r["after_by_kind"].items()
        )
        before = f"{r['before']:.2f}" if r["before"] is not None else "-"
        echo(
            f"  {_label(r['solver'], r['order'])} {r['profile']:<8} NFE {r['nfe']:>2}: {r['method']:<7} "
            f"{r['name']:<14} before {before} after {r['after']:.2f} | {kinds}"
        )


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", help="comma-separated registry file stems (default: all of registry/v1)")
    parser.add_argument("--solvers", help="comma-separated solver-order, e.g. dpmpp-2,unipc-2")
    parser.add_argument("--endings", default=",".join(ENDINGS))
    parser.add_argument("--nfe", help="comma-separated NFEs (default 3-30)")
    parser.add_argument("--per-kind", type=int, default=2, help="GATE and REPORT problems per kind (default 2)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--temperature", type=float, help="soft-maximum temperature (default promise.TEMPERATURE)")
    parser.add_argument("--tolerance", type=float, help="per-kind loss allowed (default promise.TOLERANCE)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    files = sorted((REPO / "registry" / "v1").glob("*.json"))
    if args.files:
        want = set(args.files.split(","))
        files = [f for f in files if f.stem in want]
    solvers = SOLVERS
    if args.solvers:
        solvers = tuple((s.split("-")[0], int(s.split("-")[1])) for s in args.solvers.split(","))
    nfes = tuple(int(v) for v in args.nfe.split(",")) if args.nfe else NFES
    options = {"per_kind": args.per_kind, "batch": args.batch}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.tolerance is not None:
        options["tolerance"] = args.tolerance
    # scaled-linear and ddpm-linear have the most rules: start them first
    jobs = [(str(f), e, nfes, solvers, options) for f in files for e in args.endings.split(",")]
    jobs.sort(key=lambda j: (Path(j[0]).stem not in ("scaled-linear", "ddpm-linear"), j[0], j[1]))
    print("# bench_promise")
    print(f"command: python benchmarks/bench_promise.py {' '.join(argv)}".rstrip())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"files: {', '.join(f.stem for f in files)}; solvers {', '.join(_label(*s) for s in solvers)}; "
        f"endings {args.endings}; NFE {nfes[0]}-{nfes[-1]}; {args.per_kind} GATE + {args.per_kind} REPORT "
        f"problem(s) per kind, batch {args.batch}; temperature {options.get('temperature', 0.05)}; "
        f"{args.jobs} processes"
    )
    start, cpu0 = time.time(), os.times()
    if args.jobs > 1:
        with mp.get_context("fork").Pool(args.jobs) as pool:
            results = pool.map(run_job, jobs, chunksize=1)
    else:
        results = [run_job(j) for j in jobs]
    rows = [r for res in results for r in res]
    elapsed = time.time() - start
    cpu1 = os.times()
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])
    summarise(rows)
    focus(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(
        f"\nruntime: {elapsed:.1f} s wall, {cpu:.1f} s CPU over all processes ({len(rows)} decisions; "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
