"""``python -m builder learned-check``: the registry's default steps vs baselines on a learned digits denoiser.

One table per schedule: rows NFE; columns the mean L2 to the model's own exact flow of the optsteps grid and of
every applicable baseline, the optsteps grid's geometric-mean error ratio to uniform-λ, and the best baseline
with the optsteps grid's paired log-ratio against it (± one standard error; negative: optsteps better).
See :mod:`builder.select.learned` for the model, the truth and the formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

DEFAULT_SCHEDULES = ("scaled-linear", "vp-linear")
DEFAULT_NFE = (5, 6, 8, 10)
SUBJECT = "optsteps"


def format_table(schedule: str, rows: Sequence[dict[str, Any]]) -> str:
    """The text table of :func:`builder.select.learned.learned_check` results for one schedule (same NFE set)."""
    first = rows[0]
    names = [SUBJECT] + [n for n in first["grids"] if n != SUBJECT]
    title = (
        f"{schedule}: {first['grid_source']} grid (order {first['order']}, p {first['p']:g}) vs baselines, "
        f"mean L2 to the digits denoiser's own flow (batch {first['batch']}, truth nfev {first['truth_nfev']})"
    )
    columns = " ".join(f"{n:>14}" for n in names)
    head = f"{'nfe':>4} {columns} {'x unif-λ':>9} {'best baseline':>15} {'log-ratio':>9}"
    lines = [title, head]
    for row in rows:
        grids = row["grids"]
        cells = " ".join(f"{grids[n]['mean_l2']:>14.5f}" if n in grids else f"{'-':>14}" for n in names)
        lines.append(
            f"{row['nfe']:>4} {cells} {grids[SUBJECT]['ratio']:>9.3f} {row['best_baseline']:>15} "
            f"{row['log_ratio_best_baseline']:>+9.3f} ±{row['log_ratio_best_baseline_se']:.3f}"
        )
    return "\n".join(lines)


def run_schedule(
    schedule: str, nfes: Sequence[int], model: Any, *, batch: int, seed: int, **grid_kw: Any
) -> list[dict[str, Any]]:
    """check_grids rows for one schedule; every NFE runs on one truth (solved once: the endpoints are shared)."""
    from builder.select import learned

    rows: list[dict[str, Any]] = []
    truth = None
    for nfe in nfes:
        grid = learned.subject_grid(schedule, nfe, **grid_kw)
        if truth is None:
            sched = grid.schedule
            truth = learned.model_truth(model, sched.lambda_start, sched.lambda_end, batch=batch, seed=seed)
        rows.append(learned.check_grids(grid, model=model, truth=truth))
    return rows


@click.command("learned-check")
@click.option(
    "--schedule",
    "schedules",
    multiple=True,
    default=DEFAULT_SCHEDULES,
    show_default=True,
    help="Schedule key (repeatable).",
)
@click.option(
    "--nfe",
    "nfes",
    multiple=True,
    type=click.IntRange(2, 50),
    default=DEFAULT_NFE,
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

    from builder.select import learned
    from builder.solve.schedules import ScheduleNotFoundError
    from optsteps_loader import OptstepsError

    torch.set_num_threads(1)
    model = learned.load_denoiser(learned.WEIGHTS_PATH if weights is None else weights)
    tables = []
    try:
        for schedule in schedules:
            rows = run_schedule(
                schedule,
                sorted(set(nfes)),
                model,
                batch=batch,
                seed=seed,
                p=p,
                shift=shift,
                source=None if source is None else str(source),
                live=live,
            )
            tables.append(format_table(schedule, rows))
    except (OptstepsError, ScheduleNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n\n".join(tables))
