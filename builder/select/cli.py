"""``python -m builder quality | report | measure-defaults``: measured sample quality of the registry (issue 6)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REGISTRY = REPO_ROOT / "registry"
SPEC_PATH = REPO_ROOT / "builder" / "registry" / "spec.json"

_registry_option = click.option(
    "--registry",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DEFAULT_REGISTRY,
    show_default=True,
    help="Registry folder to measure.",
)


def _row_line(schedule: str, p: object, row: dict) -> str:
    flag = "WORSE" if row["worse_than_best_baseline"] else ""
    return (
        f"{schedule:<16} {row['nfe']:>4} {p!s:>4} {row['mean_l2']:>9.4f} {row['ratio_uniform_lambda']:>7.3f} "
        f"{row['best_baseline']:>15} {row['log_ratio_best_baseline']:>+8.3f} ±{row['log_ratio_best_baseline_se']:.3f} "
        f"{str(row['selection']):>12} {flag}"
    )


_HEADER = (
    f"{'schedule':<16} {'nfe':>4} {'p':>4} {'mean L2':>9} {'x unif-λ':>7} {'best baseline':>15} "
    f"{'log-ratio':>8} {'±se':>6} {'selection':>12}"
)


@click.command("quality")
@_registry_option
@click.option("--quick", "tier", flag_value="quick", default=True, help="The gate: 3 schedules × NFE 5, 6, 8, 10.")
@click.option("--full", "tier", flag_value="full", help="Every entry of the registry (minutes).")
def quality(registry: Path, tier: str) -> None:
    """Re-measure registry entries against the baselines; nonzero exit if the quick gate fails.

    Standard set, UniPC bh2 at the entry's order, corrector on; paired log-ratios on the same noises.
    """
    import optsteps_loader
    from builder.select import gate
    from builder.solve.schedules import get_schedule

    click.echo(_HEADER)
    failures: list[str] = []
    if tier == "quick":
        for name in gate.GATE_SCHEDULES:
            schedule = get_schedule(name)
            for nfe in gate.GATE_NFE:
                steps = optsteps_loader.get(name, nfe, source=str(registry))
                stored = dict(steps.quality) if steps.quality is not None else None
                row = gate.check_entry(schedule, steps.lambdas, steps.order, stored)
                click.echo(_row_line(name, f"{steps.p:g}", row))
                failures += gate.gate_failures(row, name)
    else:
        untruthful = worse = 0
        for head, entry in gate.registry_entries(registry):
            schedule = gate.schedule_of(head)
            row = gate.check_entry(schedule, entry["lambda"], entry["order"], entry.get("quality"))
            label = head["path"].removeprefix("v1/").removesuffix(".json")
            click.echo(_row_line(f"{label} o{entry['order']}", entry["p"], row))
            worse += row["worse_than_best_baseline"]
            if not row["flag_truthful"]:
                untruthful += 1
                failures.append(f"{label} order {entry['order']} p {entry['p']} NFE {entry['nfe']}: flag not truthful")
        click.echo(f"{worse} entries measure worse than their best baseline beyond noise (flagged in the entry)")
    if failures:
        click.echo("\n".join(["", "gate failures:", *failures]), err=True)
        sys.exit(1)
    click.echo("quality gate: OK" if tier == "quick" else "full tier: every flag is truthful")


@click.command("measure-defaults")
@_registry_option
@click.option(
    "--write/--no-write", default=False, show_default=True, help="Write the chosen p into builder/registry/spec.json."
)
@click.option(
    "--held-out/--no-held-out", default=True, show_default=True, help="Measure the choice on held-out problems."
)
@click.option("--nfe", "nfes", multiple=True, type=int, help="NFE to average over (repeatable; default 5–10).")
def measure_defaults(registry: Path, write: bool, held_out: bool, nfes: tuple[int, ...]) -> None:
    """Pick each schedule's default p by measured error at NFE 5–10 (order 3, standard set)."""
    import json

    from builder.select import gate

    nfe = tuple(sorted(set(nfes))) or gate.DEFAULTS_NFE
    span = ", ".join(map(str, nfe))
    choice = gate.measured_defaults(registry, nfe=nfe)
    if not choice:
        raise click.ClickException(
            f"no file has order-3 entries with quality figures at every NFE of {span}: build them "
            "(python -m builder sweep) or pass --nfe with the NFEs the registry has"
        )
    spec_tau = json.loads(SPEC_PATH.read_text())["tau"]
    click.echo(f"p by mean log-ratio to uniform-λ over NFE {span} (order 3, standard set); spec tau = {spec_tau!r}")
    for path, c in sorted(choice.items()):
        scores = "  ".join(f"p={p:g}: {s:+.3f}" for p, s in sorted(c["scores"].items()))
        click.echo(f"{path:<22} tau {c['tau']!s:>4}  default p {c['current']} -> {c['p']:g}   ({scores})")
    if held_out:
        click.echo("\nheld-out problems (not used to choose), ratio to uniform-λ and log-ratio to the best baseline:")
        for path, rows in sorted(gate.held_out_figures(registry, choice, nfe=nfe).items()):
            for r in rows:
                click.echo(
                    f"{path:<22} NFE {r['nfe']:>2}: {r['ratio_uniform_lambda']:.3f}x uniform-λ, "
                    f"{r['log_ratio_best_baseline']:+.3f} ±{r['log_ratio_best_baseline_se']:.3f} "
                    f"vs {r['best_baseline']}"
                )
    if write:
        changed = gate.write_spec_defaults(SPEC_PATH, {path: c["p"] for path, c in choice.items()})
        click.echo(f"{SPEC_PATH}: {'updated' if changed else 'unchanged'}")


@click.command("report")
@_registry_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO_ROOT / "docs",
    show_default=True,
    help="Folder for report.md and img/.",
)
@click.option(
    "--held-out/--no-held-out", default=True, show_default=True, help="Measure defaults on held-out problems."
)
def report(registry: Path, out: Path, held_out: bool) -> None:
    """Write docs/report.md and PNG plots (step locations, error vs NFE) from the registry's quality figures."""
    from builder.select.report import write_report

    written = write_report(registry, out, held_out=held_out)
    for path in written:
        click.echo(f"wrote {path}")
