"""The solver entries' ratio targets, measured on the shipped registry's solver entries.

**Recorded figures** (default; no computation): every solver entry carries its fit and validation figures
(:mod:`builder.select.robust`). Per schedule variant × solver/order × ending, over the NFEs asked for
(default 5, 6, 8, 10), with r_n(R) = exp(log_ratio against R at NFE n)
(:func:`builder.select.report.solver_entry_rows`, the table docs/report.md shows):

- ``vs worst rule``: max over the rules and published tables R of exp(mean_n log r_n(R))   (target ≤ 0.85)
- ``vs best rule``: exp(mean_n log_ratio_best_rule_n), the per-problem best rule           (target ≤ 0.95)
- ``>UL``: validation problems whose mean L2 is above uniform-λ's, summed over the NFEs       (target 0;
  the summary also counts rows with at most 5% of their cases above it, the share the project proposes)
- ``vs bound entry``: the same ratio against the bound's entry (what ``get()`` returned before);
- ``loses``: entries flagged ``loses_on_validation``.

With ``--profile latent`` (or ``pixel``): the profile entries (what ``get(alias, nfe)`` returns for a model
alias of that profile), their figures on that profile's problems, and ``vs generic entry`` in place of the
bound's column: what the profile entry gains over the generic one.

**The learned tier** (``--learned``): the digits network (:mod:`builder.select.learned`) sampled with each
solver entry and each rule / table grid from the same 128 starts, against the network's own exact flow
(to t_ε, or to σ = 0 for the ``zero`` ending); per NFE the ratio of the entry's mean L2 to the lowest rule's,
geometric mean over the NFEs (target ≤ 0.85). About a minute per schedule and solver.

    python benchmarks/bench_targets.py                        # validation split, NFE 5, 6, 8, 10
    python benchmarks/bench_targets.py --split fit --nfes 3-12
    python benchmarks/bench_targets.py --profile latent
    python benchmarks/bench_targets.py --learned --solvers unipc3,dpmpp2
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import optsteps_loader

REPO = Path(__file__).resolve().parents[1]

SOLVER_KEYS = {"unipc3": ("unipc", 3), "unipc2": ("unipc", 2), "dpmpp1": ("dpmpp", 1), "dpmpp2": ("dpmpp", 2)}
SOLVER_KEYS["dpmpp3"] = ("dpmpp", 3)


def _nfes(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def variants() -> list[tuple[str, dict, str]]:
    """(schedule key, get() kwargs, label) of every file that has solver entries."""
    out = []
    for name, recs in optsteps_loader.available().items():
        for rec in recs:
            if rec.get("solver_entries"):
                shift = rec["params"].get("shift")
                out.append((name, {} if shift is None else {"shift": shift}, name + (f" s{shift:g}" if shift else "")))
    return out


def learned_rows(nfes: list[int], solvers: list[str], endings: list[str]) -> list[dict]:
    import torch

    from builder.select.differentiable import sample
    from builder.select.learned import load_denoiser, model_truth
    from builder.select.refine import rule_grids
    from builder.select.robust import solver_spec
    from builder.select.truth import LAMBDA_INFINITY
    from builder.solve.schedules import get_schedule

    torch.set_num_threads(1)
    model = load_denoiser()
    net = model.network

    def denoise(x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        return net(x, float(lam))

    rows = []
    for name, kw, label in variants():
        schedule = get_schedule(name, **kw)
        for ending in endings:
            end = schedule.lambda_end if ending == "eps" else LAMBDA_INFINITY
            truth = model_truth(model, schedule.lambda_start, end, batch=128, seed=7)
            x0, xe = torch.from_numpy(truth.x_start), torch.from_numpy(truth.x_end)

            def err(lam, spec, ending=ending, x0=x0, xe=xe) -> float:
                with torch.no_grad():
                    x = sample(denoise, x0, torch.as_tensor(np.asarray(lam, dtype=np.float64)), ending=ending, **spec)
                return float(torch.linalg.vector_norm(x - xe, dim=1).mean())

            for key in solvers:
                solver, order = SOLVER_KEYS[key]
                spec = solver_spec(solver, order)
                logs, logs_bound = [], []
                for n in nfes:
                    st = optsteps_loader.get(name, n, solver=solver, order=order, ending=ending, **kw)
                    if st.method == "bound":
                        continue
                    rules = list(rule_grids(schedule, n, ending).values())
                    e = err(st.lambdas, spec)
                    logs.append(math.log(e / min(err(g, spec) for g in rules)))
                    if ending == "eps":
                        bound = optsteps_loader.get(
                            name, n, order=order, p=optsteps_loader.info(name, **kw)["defaults"]["p"], **kw
                        )
                        logs_bound.append(math.log(e / err(bound.lambdas, spec)))
                if logs:
                    rows.append(
                        {
                            "schedule": label,
                            "solver": key,
                            "ending": ending,
                            "best": math.exp(np.mean(logs)),
                            "worst_nfe": math.exp(max(logs)),
                            "bound": math.exp(np.mean(logs_bound)) if logs_bound else float("nan"),
                        }
                    )
                    r = rows[-1]
                    print(
                        f"| {key} | {ending} | {label} | {r['best']:.3f} | {r['worst_nfe']:.3f} | {r['bound']:.3f} |",
                        flush=True,
                    )
    return rows


def solver_entries(root: Path) -> dict[tuple, dict]:
    """Every shipped (not calibrated) solver entry of the registry folder ``root``, keyed by (file path,
    *:func:`optsteps_loader.invariants.solver_entry_key`), i.e. (path, tier, solver, order, ending, nfe)."""
    import json

    from optsteps_loader.invariants import solver_entry_key

    out = {}
    for rec in json.loads((root / "index.json").read_text())["files"]:
        for e in json.loads((root / rec["path"]).read_text()).get("solver_entries", []):
            if e["method"] != "calibrated":
                out[(rec["path"], *solver_entry_key(e))] = e
    return out


def compare(new: Path, old: Path, nfes: list[int]) -> None:
    """Print the --against table (module docstring)."""
    every_a, every_b = solver_entries(new), solver_entries(old)

    def l2(e: dict) -> float:
        return e["quality"]["validation"]["mean_l2"]

    common = every_a.keys() & every_b.keys()
    ratios = np.array([l2(every_a[k]) / l2(every_b[k]) for k in common])
    moved = sum(np.max(np.abs(np.subtract(every_a[k]["lambda"], every_b[k]["lambda"]))) > 0.01 for k in common)
    print(
        f"every NFE, {len(common)} entries in both: validation mean L2 geometric mean "
        f"{math.exp(np.log(ratios).mean()):.3f}, {ratios.min():.3f}-{ratios.max():.3f}; "
        f"{int(np.sum(ratios > 1.01))} worse and {int(np.sum(ratios < 0.99))} better by more than 1%; "
        f"{moved} grids moved by more than 0.01 in λ\n"
    )
    a = {k: l2(e) for k, e in every_a.items() if e["nfe"] in nfes}
    b = {k: l2(e) for k, e in every_b.items() if e["nfe"] in nfes}
    groups: dict[str, list[float]] = {}
    for k in a.keys() & b.keys():
        ratio = math.log(a[k] / b[k])
        groups.setdefault(f"{k[1] or 'generic'} {k[4]}", []).append(ratio)
        if not k[1]:
            groups.setdefault(f"generic {k[2]}-{k[3]} {k[4]}", []).append(ratio)
    print(f"validation mean L2, {new} / {old}, NFE {','.join(map(str, nfes))}:\n")
    print("| entries | n | geometric mean | min | max |\n|---|---|---|---|---|")
    for name, r in sorted(groups.items()):
        print(f"| {name} | {len(r)} | {math.exp(np.mean(r)):.3f} | {math.exp(min(r)):.3f} | {math.exp(max(r)):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="validation", choices=("validation", "fit"))
    ap.add_argument("--nfes", default="5,6,8,10", help="e.g. 5,6,8,10 or 3-12")
    ap.add_argument("--solvers", default=",".join(SOLVER_KEYS))
    ap.add_argument("--endings", default="eps,zero")
    ap.add_argument("--profile", choices=("latent", "pixel"), help="the profile entries (recorded figures)")
    ap.add_argument("--against", type=Path, help="another registry folder: entry-by-entry ratios (recorded)")
    ap.add_argument("--learned", action="store_true", help="the learned digits network tier (computes)")
    ap.add_argument("--registry", type=Path, default=REPO / "registry", help="the registry folder (recorded figures)")
    args = ap.parse_args()
    nfes, solvers, endings = _nfes(args.nfes), args.solvers.split(","), args.endings.split(",")
    if args.against:
        compare(args.registry, args.against, nfes)
        return
    if args.learned:
        print(
            "Learned digits network: entry's mean L2 / the best rule's, geometric mean over the NFEs (target ≤ 0.85)\n"
        )
        print("| solver | ending | schedule | vs best rule | worst NFE | vs bound entry |")
        print("|---|---|---|---|---|---|")
        rows = learned_rows(nfes, solvers, endings)
        vals = [r["best"] for r in rows]
        print(
            f"\nvs best rule: geometric mean {math.exp(np.mean(np.log(vals))):.3f}, max {max(vals):.3f};"
            f" rows ≤ 0.85: {sum(v <= 0.85 for v in vals)} of {len(vals)}"
        )
        return
    from builder.select.report import solver_entry_rows, solver_entry_table

    rows = solver_entry_rows(args.registry, args.split, tuple(nfes), profile=args.profile)
    which = (
        f"{args.profile} entries on the {args.split} split's {args.profile} problems"
        if args.profile
        else (f"Solver entries on the {args.split} split")
    )
    print(f"{which}, geometric means over NFE {','.join(map(str, nfes))}:\n")
    print("\n".join(solver_entry_table(rows)))
    if args.profile:
        print(above_generic(args.registry, args.split, args.profile, nfes))


def above_generic(registry: Path, split: str, profile: str, nfes: list[int]) -> str:
    """The (entry, NFE) cases where a profile entry's recorded error is above the generic entry's, per NFE."""
    cases = [
        (e["quality"][split]["baselines"]["generic"]["log_ratio"], Path(k[0]).stem, e)
        for k, e in sorted(solver_entries(registry).items())
        if k[1] == profile and e["nfe"] in nfes
    ]
    above = sorted((c for c in cases if c[0] > 0), key=lambda c: -c[0])
    where = ", ".join(f"{f} {e['solver']}-{e['order']} {e['ending']} NFE {e['nfe']}" for _, f, e in above)
    worst = f", by at most {math.expm1(above[0][0]):.1%}: {where}" if above else ""
    return f"(Entry, NFE) cases above the generic entry: {len(above)} of {len(cases)}{worst}."


if __name__ == "__main__":
    main()
