"""``python -m builder``: a thin click layer over the builder's functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from builder.solve.optimize import INIT_CHOICES, MAX_NFE, METHODS
from builder.solve.schedules import SCHEDULE_NAMES, ScheduleNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "registry"


def _tau(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        tau = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither 'auto' nor an integer") from None
    if tau < 0:
        raise click.BadParameter(f"tau must be ≥ 0, got {tau}")
    return tau


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """optsteps builder: optimise diffusion-sampler time steps and write the registry."""


@cli.command()
@click.option("--schedule", required=True, help=f"Schedule key: {', '.join(SCHEDULE_NAMES)}.")
@click.option("--nfe", required=True, type=click.IntRange(2, MAX_NFE), help="Number of steps (= NFE).")
@click.option("--order", default=3, show_default=True, type=click.IntRange(1, 3), help="Maximum solver order.")
@click.option("--p", "p", default=2.0, show_default=True, type=click.FloatRange(min=0), help="Error model σ^p/α.")
@click.option("--tau", default="auto", show_default=True, help="Truncation τ: 'auto' (3 if NFE ≤ 7 else 0) or int.")
@click.option("--init", default="best", show_default=True, type=click.Choice(INIT_CHOICES), help="Starting grid.")
@click.option(
    "--method",
    default="direct",
    show_default=True,
    type=click.Choice(METHODS),
    help="direct: trust-constr on F (the registry's); epigraph: F's |.| terms as constraints (a stationary point).",
)
@click.option("--shift", type=float, default=None, help="Flow schedules only: the SD3/FLUX time shift.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def solve(
    schedule: str,
    nfe: int,
    order: int,
    p: float,
    tau: str,
    init: str,
    method: str,
    shift: float | None,
    as_json: bool,
) -> None:
    """Optimise one step grid and print it next to the uniform-λ baseline."""
    from builder.solve.optimize import initial_grid
    from builder.solve.optimize import solve as solve_grid
    from builder.solve.schedules import get_schedule

    tau_value = _tau(tau)
    params = {} if shift is None else {"shift": shift}
    try:
        sched = get_schedule(schedule, **params)
        result = solve_grid(sched, nfe, order=order, p=p, tau=tau_value, init=init, method=method)
    except ScheduleNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        payload = {
            "schedule": sched.name,
            "params": sched.params,
            "nfe": nfe,
            "order": order,
            "p": p,
            "tau": int(result.tau),
            "init": result.init,
            "method": result.method,
            "t": result.t.tolist(),
            "lambda": result.lambdas.tolist(),
            "timesteps": result.timesteps.tolist(),
            "step_orders": result.step_orders.tolist(),
            "objective": float(result.fun),
            "objective_uniform_lambda": float(result.objective_uniform_lambda),
            "objective_uniform_t": float(result.objective_uniform_t),
            "success": bool(result.success),
            "status": int(result.status),
            "message": str(result.message),
            "nit": int(result.nit),
            "starts": int(result.starts),
            "seconds": float(result.seconds),
        }
        click.echo(json.dumps(payload, indent=1))
        return
    uniform = initial_grid(sched, nfe, "unif")
    click.echo(
        f"{sched.name} nfe={nfe} order={order} p={p:g} tau={result.tau} init={result.init} method={method} "
        f"({result.starts} start{'s' if result.starts > 1 else ''}, {result.seconds:.2f} s, {result.message})"
    )
    click.echo(f"{'i':>3} {'lambda (opt)':>14} {'t (opt)':>14} {'timestep':>12} {'lambda (uniform)':>17}")
    for i, (lam, t, ts, lam_u) in enumerate(zip(result.lambdas, result.t, result.timesteps, uniform, strict=True)):
        click.echo(f"{i:>3} {lam:>14.6f} {t:>14.6g} {ts:>12.6g} {lam_u:>17.6f}")
    gain = 1.0 - result.fun / result.objective_uniform_lambda
    click.echo(
        f"bound F: optimized {result.fun:.6g}   uniform-λ {result.objective_uniform_lambda:.6g}   "
        f"uniform-t {result.objective_uniform_t:.6g}   ({gain:.1%} below uniform-λ)"
    )


@cli.command()
@click.option(
    "--registry",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_REGISTRY,
    show_default=True,
    help="Registry folder to write.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Rebuild a slice: schedule=, nfe=, order=, p=, shift= (repeatable; all must match).",
)
@click.option("--schedule", "schedules", multiple=True, help="Rebuild only this schedule (repeatable).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Worker processes (default: all cores).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where finished entries are kept for resuming (default: .optsteps-cache beside the registry, "
    "or $OPTSTEPS_BUILD_CACHE).",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Grid spec (default: builder/registry/spec.json).",
)
@click.option("--check", is_flag=True, help="Rebuild into a temporary folder and fail on any byte difference.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--force", is_flag=True, help="Write into a folder that is neither empty nor a registry.")
def sweep(
    registry: Path,
    only: tuple[str, ...],
    schedules: tuple[str, ...],
    workers: int | None,
    cache_dir: Path | None,
    spec_path: Path | None,
    check: bool,
    no_progress: bool,
    force: bool,
) -> None:
    """Build the registry from builder/registry/spec.json (resumable; parallel)."""
    from builder.registry import sweep as sweep_mod

    try:
        selection = sweep_mod.parse_only([*only, *(f"schedule={s}" for s in schedules)])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from None
    for name in selection.get("schedule", ()):
        if name not in SCHEDULE_NAMES:
            from builder.solve.schedules import get_schedule

            try:
                get_schedule(name)
            except ScheduleNotFoundError as exc:
                raise click.ClickException(str(exc)) from None
    try:
        spec = sweep_mod.load_spec(spec_path) if spec_path else sweep_mod.load_spec()
        kwargs = {"spec": spec, "selection": selection or None, "workers": workers, "progress": not no_progress}
        if check:
            diffs = sweep_mod.check(registry, **kwargs)
        else:
            files = sweep_mod.build(registry, cache_dir=cache_dir, force=force, **kwargs)
    except sweep_mod.SweepError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        if diffs:
            click.echo("\n\n".join(diffs), err=True)
            raise click.ClickException(f"{len(diffs)} file(s) differ from a rebuild: commit the rebuilt registry")
        click.echo(f"{registry}: byte-identical to a rebuild")
        return
    click.echo(f"wrote {len(files)} files to {registry}")


@cli.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_REGISTRY)
@click.option("--allow-missing", is_flag=True, help="Accept files listed in the index but absent (vendored subset).")
def validate(path: Path, allow_missing: bool) -> None:
    """Check a registry folder: schemas, hashes, canonical bytes and invariants."""
    from builder.registry.validate import format_report, validate_registry

    report = validate_registry(path, allow_missing=allow_missing)
    click.echo(format_report(report))
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--schedule", default="vp-linear", show_default=True, help="Schedule key.")
@click.option("--nfe", default=6, show_default=True, type=click.IntRange(2, MAX_NFE), help="Number of steps.")
@click.option("--variant", default="bh2", show_default=True, type=click.Choice(["bh1", "bh2"]), help="UniPC B(h).")
def demo(schedule: str, nfe: int, variant: str) -> None:
    """Solve, load the shipped entry, and measure its sample error against baselines."""
    from builder.demo import format_demo, run_demo
    from optsteps_loader import OptstepsError

    try:
        click.echo(format_demo(run_demo(schedule, nfe, variant=variant)))
    except (OptstepsError, ScheduleNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _register_plugins() -> None:
    """Commands that live beside the modules they drive."""
    from builder.registry.publish import publish_command

    cli.add_command(publish_command, "publish")


_register_plugins()

from builder.select.cli import measure_defaults, quality, report  # noqa: E402
from builder.select.learned_cli import learned_check  # noqa: E402

cli.add_command(quality)
cli.add_command(learned_check)
cli.add_command(report)
cli.add_command(measure_defaults)


def main() -> None:
    cli(prog_name="python -m builder")
