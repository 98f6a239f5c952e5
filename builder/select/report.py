"""``python -m builder report``: docs/report.md and PNG plots from the registry's measured quality.

Everything but the held-out section is read from the entries' ``quality`` records (standard problem set,
UniPC bh2 at the entry's order, corrector on; :mod:`builder.select.selection`), so the report costs seconds.
The held-out section re-measures the default entries at NFE 5–10 on problems never used to choose anything
(:func:`builder.select.gate.held_out_figures`). Plots (matplotlib, Agg backend):

- ``img/steps-<file>.png``: the λ of each node of the default entry at NFE 5, 8 and 10 next to the
  baselines' (uniform-λ, uniform-t, uniform-√t, Karras ρ = 7 and the applicable tables);
- ``img/error-<file>.png``: mean L2 to the ground truth against NFE, default entries and baselines, log-log;
- ``img/solver-<file>.png``: the same on the validation split for the solver entries (UniPC-3 t_ε, DPM++ 2M
  σ = 0) and the rules they were measured against.

The solver entries' section (:func:`solver_entry_rows`) aggregates their recorded fit / validation figures
(:mod:`builder.select.robust`) per schedule × solver × ending over a set of NFEs: the geometric mean over the
NFEs of the error ratio against each rule or table (the worst one shown), against the per-problem best rule,
and against the bound's entry; problems above uniform-λ; entries flagged ``loses_on_validation``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..solve.grids import baseline_grids
from . import gate, selection

__all__ = ["SOLVER_LABELS", "solver_entry_rows", "solver_entry_table", "write_report"]

SOLVER_LABELS = {("unipc", 3): "UniPC-3", ("unipc", 2): "UniPC-2", ("dpmpp", 1): "DPM++ 1 (Euler)"}
SOLVER_LABELS |= {("dpmpp", 2): "DPM++ 2M", ("dpmpp", 3): "DPM++ 3M"}
TARGET_NFES = (5, 6, 8, 10)
# the ">UL" criterion as a share: a row may have this fraction of its problem × NFE cases above uniform-λ
# (a mean-L2 objective over many fit problems trades one problem for many; "none at all" fails a row for one
# case lost by any margin)
UL_SHARE = 0.05

STEP_NFES = (5, 8, 10)
_COLORS = ("C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9")  # C3 (red) is the registry's
_NFE_TICKS = (3, 4, 5, 6, 8, 10, 15, 20, 30, 50)
TABLE_NFES = (5, 6, 8, 10, 15, 20)


def _defaults(root: Path) -> dict[str, dict[str, Any]]:
    """{file path: {"head": file header, "entries": {nfe: entry}}} for each file's default (order, p)."""
    out: dict[str, dict[str, Any]] = {}
    for head, entry in gate.registry_entries(root):
        d = head["defaults"]
        slot = out.setdefault(head["path"], {"head": head, "entries": {}})
        if entry["order"] == d["order"] and entry["p"] == d["p"]:
            slot["entries"][entry["nfe"]] = entry
    return out


def _label(path: str) -> str:
    return path.removeprefix("v1/").removesuffix(".json")


def _plot_steps(path: Path, label: str, schedule: Any, entries: dict[int, dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    nfes = [n for n in STEP_NFES if n in entries]
    fig, axes = plt.subplots(len(nfes), 1, figsize=(8, 1.2 + 1.6 * len(nfes)), squeeze=False)
    for ax, nfe in zip(axes[:, 0], nfes, strict=True):
        rows = {"optsteps (default)": entries[nfe]["lambda"], **baseline_grids(schedule, nfe)}
        for y, lam in enumerate(rows.values()):
            ax.plot(
                lam,
                [y] * len(lam),
                "o-" if y == 0 else "|-",
                ms=6 if y == 0 else 10,
                lw=0.6,
                color="C3" if y == 0 else _COLORS[(y - 1) % len(_COLORS)],
            )
        ax.set_yticks(range(len(rows)), list(rows))
        ax.invert_yaxis()
        ax.set_title(f"{label}: NFE {nfe}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("λ = log(α/σ) of each node (noisy → clean)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_errors(path: Path, label: str, entries: dict[int, dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    nfes = sorted(n for n, e in entries.items() if e.get("quality"))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(nfes, [entries[n]["quality"]["mean_l2"] for n in nfes], "o-", color="C3", lw=2, label="optsteps (default)")
    names = sorted({b for n in nfes for b in entries[n]["quality"]["baselines"]})
    for i, name in enumerate(names):
        xs = [n for n in nfes if name in entries[n]["quality"]["baselines"]]
        ax.plot(
            xs,
            [entries[n]["quality"]["baselines"][name]["mean_l2"] for n in xs],
            ".--",
            lw=1,
            color=_COLORS[i % len(_COLORS)],
            label=name,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [n for n in _NFE_TICKS if nfes and nfes[0] <= n <= nfes[-1]]
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("NFE")
    ax.set_ylabel("mean L2 to the exact ODE solution")
    ax.set_title(f"{label}: UniPC bh2, standard benchmark", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(data: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| schedule | p | NFE | mean L2 | median L2 | × uniform-λ | best baseline | its mean / median L2 "
        "| log-ratio vs best ± se | worse? | selection |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, slot in sorted(data.items()):
        p = slot["head"]["defaults"]["p"]
        for nfe in TABLE_NFES:
            e = slot["entries"].get(nfe)
            if not e or not e.get("quality"):
                continue
            q = e["quality"]
            b = q["baselines"][q["best_baseline"]]
            lines.append(
                f"| {_label(path)} | {p} | {nfe} | {q['mean_l2']:.4g} | {q['median_l2']:.4g} | "
                f"{q.get('ratio_uniform_lambda', math.nan):.3f} | {q['best_baseline']} | "
                f"{b['mean_l2']:.4g} / {b['median_l2']:.4g} | "
                f"{q['log_ratio_best_baseline']:+.3f} ± {q['log_ratio_best_baseline_se']:.3f} | "
                f"{'**yes**' if q['worse_than_best_baseline'] else 'no'} | {q['selection']} |"
            )
    return lines


def _summary(root: Path) -> list[str]:
    total = worse = bench = start = replaced = 0
    for _head, e in gate.registry_entries(root):
        q = e.get("quality")
        if not q:
            continue
        total += 1
        worse += bool(q["worse_than_best_baseline"])
        bench += q["selection"] == "benchmark"
        start += q["selection"] == "start"
        replaced += q["selection_reason"].startswith(selection.REPLACED_WASTEFUL)
    return [
        f"- {total} measured entries; {worse} measure worse than their best baseline beyond noise (flagged in the "
        "entry: `quality.worse_than_best_baseline`, exposed by the loader as `steps.quality`);",
        f"- {bench} entries ship another local optimum of the bound than the lowest-bound one because it measured "
        'better beyond noise on the standard set (`quality.selection == "benchmark"`, held-out figures in '
        "`quality.held_out`);",
        f"- {start} entries ship one of the optimiser's unoptimised starting grids (uniform-λ, uniform-t, "
        "uniform-√t or Karras ρ = 7) because it measured better beyond noise than every local optimum of the bound "
        '(`quality.selection == "start"`, held-out figures in `quality.held_out`);',
        f"- of these benchmark and start entries, {replaced} replace a lowest-bound optimum that wastes a model "
        "evaluation (a collapsed step, or two evaluations at one integer timestep), whether or not they measure "
        "better beyond noise; no shipped "
        "grid wastes one where another does not (`quality.selection_reason` says which).",
    ]


def solver_entry_rows(
    root: str | Path, split: str = "validation", nfes: tuple[int, ...] = TARGET_NFES, profile: str | None = None
) -> list[dict]:
    """One row per schedule variant × (solver, order) × ending with solver entries at ``nfes`` (module doc):
    the generic entries, or with ``profile`` that profile's entries (figures on that profile's problems;
    ``ratio_reference`` is then the ratio to the generic entry, else to the bound's entry)."""
    import numpy as np

    reference = "generic" if profile else "bound"
    groups: dict[tuple, list[dict]] = {}
    for head, e in gate.registry_entries(root, solver_entries=True):
        if e["nfe"] in nfes and e.get("profile") == profile and e["method"] != "calibrated":
            key = (_label(head["path"]), e["solver"], e["order"], e["ending"])
            groups.setdefault(key, []).append(e)
    rows = []
    for (label, solver, order, ending), entries in sorted(groups.items()):
        figs = [e["quality"][split] for e in entries]
        rules = [r for r in figs[0]["baselines"] if r not in ("bound", "generic")]
        mean_lr = {r: float(np.mean([f["baselines"][r]["log_ratio"] for f in figs])) for r in rules}
        worst = max(mean_lr, key=mean_lr.get)
        ref = [f["baselines"][reference]["log_ratio"] for f in figs if reference in f["baselines"]]
        rows.append(
            {
                "schedule": label,
                "solver": SOLVER_LABELS.get((solver, order), f"{solver}-{order}"),
                "ending": ending,
                "profile": profile,
                "nfes": sorted(e["nfe"] for e in entries),
                "worst_rule": worst,
                "ratio_worst_rule": math.exp(mean_lr[worst]),
                "ratio_best_rule": math.exp(float(np.mean([f["log_ratio_best_rule"] for f in figs]))),
                "ratio_reference": math.exp(float(np.mean(ref))) if ref else math.nan,
                "above_uniform_lambda": sum(f["above_uniform_lambda"] for f in figs),
                "cases": sum(f["problems"] for f in figs),
                "loses": sum(bool(e["quality"]["loses_on_validation"]) for e in entries),
                "methods": sorted({e["method"] for e in entries}),
            }
        )
    return rows


def solver_entry_table(rows: list[dict]) -> list[str]:
    """Markdown lines: one per row of :func:`solver_entry_rows`, then how many rows meet the ratio targets."""
    reference = "generic entry" if rows and rows[0]["profile"] else "bound entry"
    lines = [
        f"| solver | ending | schedule | vs worst rule or table | vs best rule | >UL | vs {reference} | loses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['solver']} | {r['ending']} | {r['schedule']} | {r['ratio_worst_rule']:.3f} ({r['worst_rule']}) | "
            f"{r['ratio_best_rule']:.3f} | {r['above_uniform_lambda']}/{r['cases']} | {r['ratio_reference']:.3f} | "
            f"{r['loses']}/{len(r['nfes'])} |"
        )
    if rows:
        met = [r for r in rows if r["ratio_worst_rule"] <= 0.85 and r["ratio_best_rule"] <= 0.95]
        met_all = [r for r in met if r["above_uniform_lambda"] == 0]
        met_share = [r for r in met if r["above_uniform_lambda"] <= UL_SHARE * r["cases"]]
        above, cases = sum(r["above_uniform_lambda"] for r in rows), sum(r["cases"] for r in rows)
        keys = ("ratio_worst_rule", "ratio_best_rule", "ratio_reference")
        geo = {k: math.exp(sum(math.log(r[k]) for r in rows) / len(rows)) for k in keys}
        lines += [
            "",
            f"Rows with ≤ 0.85 against every rule and ≤ 0.95 against the per-problem best: {len(met)} of {len(rows)}"
            f" ({len(met_all)} also with no problem above uniform-λ, {len(met_share)} with at most"
            f" {UL_SHARE:.0%} of their problem × NFE cases above it). Cases above uniform-λ over all rows:"
            f" {above} of {cases} ({above / cases:.1%}). Geometric mean over rows: "
            f"{geo['ratio_worst_rule']:.3f} against the worst rule, {geo['ratio_best_rule']:.3f} against the best, "
            f"{geo['ratio_reference']:.3f} against the {reference}.",
        ]
    return lines


def _plot_solver_entries(path: Path, label: str, entries: list[dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=False)
    for ax, (solver, order, ending) in zip(axes, (("unipc", 3, "eps"), ("dpmpp", 2, "zero")), strict=True):
        mine = sorted(
            (e for e in entries if (e["solver"], e["order"], e["ending"]) == (solver, order, ending)),
            key=lambda e: e["nfe"],
        )
        if not mine:
            continue
        nfes = [e["nfe"] for e in mine]
        names = sorted({n for e in mine for n in e["quality"]["validation"]["baselines"]})
        for color, name in zip(_COLORS, names, strict=False):  # one color per name in both panels
            points = [
                (e["nfe"], b[name]["mean_l2"]) for e in mine if name in (b := e["quality"]["validation"]["baselines"])
            ]
            ax.plot(*zip(*points, strict=True), "o--", color=color, lw=1, ms=3, label=name)
        ax.plot(
            nfes, [e["quality"]["validation"]["mean_l2"] for e in mine], "o-", color="C3", lw=2, label="solver entry"
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE")
        ax.set_title(f"{label}: {SOLVER_LABELS[(solver, order)]}, ending {ending}", fontsize=9)
    axes[0].set_ylabel("validation mean L2")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _profile_sections(root: Path) -> list[str]:
    """The profile entries' tables (what ``get(alias, nfe)`` returns for an alias with a data profile)."""
    profiles = sorted({e["profile"] for _, e in gate.registry_entries(root, solver_entries=True) if "profile" in e})
    lines = []
    for profile in profiles:
        lines += [
            f"## Solver entries for the {profile} profile (validation split, {profile} problems)",
            "",
            f"Refined on the fit split's {profile} problems, starting from the generic entries, for the schedule",
            f"variants a {profile} model alias names; measured on the validation split's {profile} problems.",
            f"`python benchmarks/bench_targets.py --profile {profile}` prints the same table.",
            "",
            *solver_entry_table(solver_entry_rows(root, profile=profile)),
            "",
        ]
    return lines


def write_report(root: str | Path, out: str | Path, *, held_out: bool = True) -> list[Path]:
    """Write ``out/report.md`` and ``out/img/*.png``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    root, out = Path(root), Path(out)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    data = _defaults(root)
    written: list[Path] = []
    lines = [
        "# Measured sample quality of the registry",
        "",
        "Generated by `python -m builder report` from the registry's `quality` records. Error = L2 distance to the",
        "exact probability-flow ODE solution on Gaussian mixtures with a closed-form denoiser (random anisotropic",
        "mixtures and a fit to the scikit-learn digits), sampled with the project's UniPC (bh2, the entry's order,",
        'corrector on) on paired noises. Ratios are geometric-mean error ratios (paired log-ratios); "beyond noise"',
        "means more than 2 standard errors. Standard set: used for every choice; held-out set: never used to choose.",
        "Errors are heavy-tailed: an entry can have the lower geometric-mean (and median) error but a higher mean L2.",
        "",
        "## Solver entries: what `get()` returns (validation split)",
        "",
        "Refined per sampler and ending on the data family's fit split (docs/data-family.md), measured on its",
        "validation split (12 problems never used to choose). Geometric means over NFE 5, 6, 8, 10 of the",
        "mean-L2 ratio; >UL: validation problem × NFE cases above uniform-λ's error; loses: NFEs flagged",
        "`loses_on_validation`. `python benchmarks/bench_targets.py` prints the same table.",
        "",
        *solver_entry_table(solver_entry_rows(root)),
        "",
        *_profile_sections(root),
        "## The bound's entries",
        "",
        *_summary(root),
        "",
        "## Default entries (order 3, measured default p), standard set",
        "",
        *_table(data),
        "",
    ]
    if held_out:
        choice = {path: {"p": slot["head"]["defaults"]["p"]} for path, slot in data.items()}
        figures = gate.held_out_figures(root, choice)
        lines += [
            "## Default entries on held-out problems",
            "",
            "| schedule | NFE | × uniform-λ | best baseline (held-out) | log-ratio vs best ± se |",
            "|---|---|---|---|---|",
        ]
        for path, rows in sorted(figures.items()):
            for r in rows:
                lines.append(
                    f"| {_label(path)} | {r['nfe']} | {r['ratio_uniform_lambda']:.3f} | {r['best_baseline']} | "
                    f"{r['log_ratio_best_baseline']:+.3f} ± {r['log_ratio_best_baseline_se']:.3f} |"
                )
        lines.append("")
    lines += ["## Plots", ""]
    for path, slot in sorted(data.items()):
        label = _label(path)
        schedule = gate.schedule_of(slot["head"])
        steps_png, error_png = img / f"steps-{label}.png", img / f"error-{label}.png"
        if any(n in slot["entries"] for n in STEP_NFES):
            _plot_steps(steps_png, label, schedule, slot["entries"])
            written.append(steps_png)
            lines.append(f"![{label}: step locations](img/{steps_png.name})")
        if any(e.get("quality") for e in slot["entries"].values()):
            _plot_errors(error_png, label, slot["entries"])
            written.append(error_png)
            lines.append(f"![{label}: error vs NFE](img/{error_png.name})")
        solver = [
            e
            for head, e in gate.registry_entries(root, solver_entries=True)
            if head["path"] == path and "profile" not in e and e["method"] != "calibrated"
        ]
        if solver:
            solver_png = img / f"solver-{label}.png"
            _plot_solver_entries(solver_png, label, solver)
            written.append(solver_png)
            lines.append(f"![{label}: solver entries vs NFE](img/{solver_png.name})")
        lines.append("")
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    written.insert(0, report)
    return written
