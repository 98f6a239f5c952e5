"""Quality commands: ``quality`` (the gate), ``measure-defaults``, ``report``, ``learned-check``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ._common import (
    REPO_ROOT,
    SPEC_PATH,
    cli,
    registry_option,
)

# ---- quality: re-measure the registry, choose defaults, report, check on a learned model


@cli.command("quality")
@registry_option("Registry folder to measure.", exists=True)
@click.option("--quick", "tier", flag_value="quick", default=True, help="The gate: 3 schedules × NFE 5, 6, 8, 10.")
@click.option("--full", "tier", flag_value="full", help="Every entry of the registry (minutes).")
def quality(registry: Path, tier: str) -> None:
    """Re-measure registry entries against the baselines; nonzero exit if the quick gate fails.

    Standard set, UniPC bh2 at the entry's order, corrector on; paired log-ratios on the same noises.
    """
    import optsteps_loader

    from ..select import gate
    from ..solve.schedules import get_schedule

    click.echo(gate.ROW_HEADER)
    failures: list[str] = []
    if tier == "quick":
        for name in gate.GATE_SCHEDULES:
            schedule = get_schedule(name)
            for nfe in gate.GATE_NFE:
                p = optsteps_loader.info(name, source=str(registry))["defaults"]["p"]  # the bound's entry
                steps = optsteps_loader.get(name, nfe, p=p, source=str(registry))
                stored = dict(steps.quality) if steps.quality is not None else None
                row = gate.check_entry(schedule, steps.lambdas, steps.order, stored)
                click.echo(gate.format_row(name, f"{steps.p:g}", row))
                failures += gate.gate_failures(row, name)
    else:
        untruthful = worse = 0
        for head, entry in gate.registry_entries(registry):
            schedule = gate.schedule_of(head)
            row = gate.check_entry(schedule, entry["lambda"], entry["order"], entry.get("quality"))
            label = head["path"].removeprefix("v1/").removesuffix(".json")
            click.echo(gate.format_row(f"{label} o{entry['order']}", entry["p"], row))
            worse += row["worse_than_best_baseline"]
            if not row["flag_truthful"]:
                untruthful += 1
                failures.append(f"{label} order {entry['order']} p {entry['p']} NFE {entry['nfe']}: flag not truthful")
        click.echo(f"{worse} entries measure worse than their best baseline beyond noise (flagged in the entry)")
    if failures:
        click.echo("\n".join(["", "gate failures:", *failures]), err=True)
        sys.exit(1)
    click.echo("quality gate: OK" if tier == "quick" else "full tier: every flag is truthful")


@cli.command("measure-defaults")
@registry_option("Registry folder to measure.", exists=True)
@click.option(
    "--write/--no-write", default=False, show_default=True, help="Write the chosen p into builder/registry/spec.json."
)
@click.option(
    "--held-out/--no-held-out", default=True, show_default=True, help="Measure the choice on held-out problems."
)
@click.option("--nfe", "nfes", multiple=True, type=int, help="NFE to average over (repeatable; default 5–10).")
def measure_defaults(registry: Path, write: bool, held_out: bool, nfes: tuple[int, ...]) -> None:
    """Pick each schedule's default p by measured error at NFE 5–10 (order 3, standard set)."""
    from ..select import gate

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
        from ..registry.sweep.spec import write_default_p

        changed = write_default_p(SPEC_PATH, {path: c["p"] for path, c in choice.items()})
        click.echo(f"{SPEC_PATH}: {'updated' if changed else 'unchanged'}")


@cli.command("report")
@registry_option("Registry folder to measure.", exists=True)
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
    from ..select.report import write_report

    written = write_report(registry, out, held_out=held_out)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command("learned-check")
@click.option(
    "--schedule",
    "schedules",
    multiple=True,
    default=("scaled-linear", "vp-linear"),
    show_default=True,
    help="Schedule key (repeatable).",
)
@click.option(
    "--nfe",
    "nfes",
    multiple=True,
    type=click.IntRange(2, 50),
    default=(5, 6, 8, 10),
    show_default=True,
    help="Number of steps (repeatable).",
)
@click.option("--p", type=float, default=None, help="Registry entry's p (default: the schedule's measured default).")
@click.option("--shift", type=float, default=None, help="Flow shift (flow schedules only).")
@click.option(
    "--source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Registry folder (default: the loader's: $OPTSTEPS_REGISTRY_DIR or the bundled registry).",
)
@click.option(
    "--live", is_flag=True, help="Solve the grids live (builder.solve.optimize.solve, spec's τ and p) instead."
)
@click.option("--batch", type=click.IntRange(2, 4096), default=256, show_default=True, help="Samples (paired noises).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Denoiser .npz (default: builder/select/data/digits_denoiser.npz).",
)
def learned_check(
    schedules: tuple[str, ...],
    nfes: tuple[int, ...],
    p: float | None,
    shift: float | None,
    source: Path | None,
    live: bool,
    batch: int,
    seed: int,
    weights: Path | None,
) -> None:
    """Sample the learned digits denoiser with the default steps and the baselines; L2 to its own exact flow."""
    import torch

    from optsteps_loader import OptstepsError

    from ..select import learned

    torch.set_num_threads(1)
    model = learned.load_denoiser(learned.WEIGHTS_PATH if weights is None else weights)
    tables = []
    try:
        for schedule in schedules:
            grid_p, tau = p, None
            if live:  # the sweep's problem: its τ, and its default p unless --p
                default_p, tau = sweep_problem(schedule, shift)
                grid_p = default_p if p is None else p
            rows = learned.check_schedule(
                schedule,
                sorted(set(nfes)),
                model,
                batch=batch,
                seed=seed,
                p=grid_p,
                shift=shift,
                source=None if source is None else str(source),
                tau=tau,
            )
            tables.append(learned.format_table(schedule, rows))
    except (OptstepsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n\n".join(tables))


def sweep_problem(schedule: str, shift: float | None = None) -> tuple[float, int | str]:
    """(default p, τ) the sweep solves ``schedule`` with (``builder/registry/spec.json``; flow: the first listed shift
    when ``shift`` is None)."""
    from ..registry.sweep import load_spec

    spec = load_spec()
    for entry in spec.schedules:
        params = entry.get("params", {})
        if entry["name"] == schedule and (shift is None or float(params.get("shift", shift)) == float(shift)):
            return float(entry["defaults"]["p"]), spec.tau
    raise ValueError(
        f"builder/registry/spec.json has no schedule {schedule!r}" + ("" if shift is None else f" shift {shift}")
    )
