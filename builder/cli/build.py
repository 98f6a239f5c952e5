"""Build commands: ``solve`` one grid, ``sweep`` the registry, ``validate``, ``publish``, ``demo``, ``kernels``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from optsteps_loader.errors import ScheduleNotFoundError

from ..kernels import fingerprint_difference
from ..solve.optimize import INIT_CHOICES, MAX_NFE, METHODS
from ..solve.schedules import SCHEDULE_NAMES
from ._common import (
    DEFAULT_REGISTRY,
    INIT_NAMES,
    cli,
    parse_tau,
    registry_option,
    spec_option,
)

# ---- build: solve one grid, sweep the registry, validate, publish, demo


@cli.command()
@click.option("--schedule", required=True, help=f"Schedule key: {', '.join(SCHEDULE_NAMES)}.")
@click.option("--nfe", required=True, type=click.IntRange(2, MAX_NFE), help="Number of steps (= NFE).")
@click.option("--order", default=3, show_default=True, type=click.IntRange(1, 3), help="Maximum solver order.")
@click.option("--p", "p", default=2.0, show_default=True, type=click.FloatRange(min=0), help="Error model σ^p/α.")
@click.option("--tau", default="auto", show_default=True, help="Truncation τ: 'auto' (3 if NFE ≤ 7 else 0) or int.")
@click.option(
    "--init",
    default="best",
    show_default=True,
    type=click.Choice([n for n in INIT_CHOICES if n != "edm"] + ["karras", "edm"]),
    help="Starting grid: unif (uniform λ), unif_t (uniform t), quad (uniform √t), karras (Karras ρ = 7; "
    "'edm' is an old name for it), or best (all of them and two blends; the lowest bound wins).",
)
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
    from ..solve.grids import start_grid
    from ..solve.optimize import solve as solve_grid
    from ..solve.schedules import get_schedule

    tau_value = parse_tau(tau)
    try:
        sched = get_schedule(schedule)
        if shift is not None:
            if sched.family != "flow":
                raise click.BadParameter(
                    f"--shift only applies to flow schedules; {schedule!r} ({sched.family}) has no shift",
                    param_hint="--shift",
                )
            sched = get_schedule(schedule, shift=shift)
        init = INIT_NAMES.get(init, init)
        result = solve_grid(sched, nfe, order=order, p=p, tau=tau_value, init=init, method=method)
    except (ScheduleNotFoundError, TypeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    shipped = _shipped_difference(sched, result)
    if as_json:
        from ..registry.entry import make_entry

        entry = make_entry(sched, result, tau_value)
        payload = {
            "schedule": sched.name,
            "params": sched.params,
            "time_input": sched.time_input,
            **entry,
            "method": result.method,
            "seconds": float(result.seconds),
            "registry": shipped,
        }
        click.echo(json.dumps(payload, indent=1))
        return
    uniform = start_grid(sched, nfe, "unif")
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
    click.echo(f"registry: {shipped['note']}")


def _shipped_difference(sched, result) -> dict:
    """How this solve differs from the registry's entry for the same (schedule, NFE, order, p).

    The sweep solves with the spec's τ and ``init="best"``, then selects by measured sampling error (it may
    ship a starting grid, ``quality.selection == "start"``); ``solve`` runs one problem as asked.
    """
    import optsteps_loader

    shift = sched.params.get("shift")
    try:
        steps = optsteps_loader.get(sched.name, result.nfe, order=result.order, p=result.p, shift=shift)
    except (optsteps_loader.OptstepsError, ValueError) as exc:
        return {"found": False, "note": f"no shipped entry to compare ({str(exc).split('. ')[0]})"}
    selection = (steps.quality or {}).get("selection")
    init = steps.provenance.get("init")
    same = len(steps.lambdas) == len(result.lambdas) and all(
        abs(a - b) <= 1e-9 for a, b in zip(steps.lambdas, result.lambdas, strict=True)
    )
    causes = []
    if steps.tau != int(result.tau):
        causes.append(f"τ {steps.tau} there, {int(result.tau)} here (--tau {steps.tau} solves its problem)")
    if init != result.init:
        causes.append(f"winning start {init} there, {result.init} here")
    if selection not in (None, "lowest-bound"):
        kind = "another local optimum of the bound" if selection == "benchmark" else "an unoptimised starting grid"
        causes.append(f"the registry shipped {kind} ({selection!r}), chosen by measured sampling error")
    if same:
        note = "same grid as the shipped entry"
    else:
        note = "differs from the shipped entry" + (f": {'; '.join(causes)}" if causes else " (optimiser path)")
    return {
        "found": True,
        "same_grid": same,
        "tau": steps.tau,
        "init": init,
        "selection": selection,
        "objective": steps.objective,
        "note": note,
    }


@cli.command()
@registry_option("Registry folder to write.")
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
@spec_option()
@click.option(
    "--check",
    is_flag=True,
    help="Rebuild into a temporary folder and fail on any byte difference (from scratch, unless --cache-dir "
    "names a cache to reuse: its keys hash the code, so only stages of unchanged code are reused).",
)
@click.option(
    "--shard",
    metavar="K/N",
    default=None,
    help="Compute only shard K of N (every N-th schedule variant) into --cache-dir and write no registry; a "
    "run over the union of the N cache folders assembles the registry (a CI matrix, then a merge job).",
)
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
    shard: str | None,
    no_progress: bool,
    force: bool,
) -> None:
    """Build the registry from builder/registry/spec.json (resumable; parallel)."""
    if shard is not None:
        _sweep_shard(shard, cache_dir, spec_path, workers, no_progress, only or schedules or check)
        return
    from ..registry import sweep as sweep_mod

    try:
        selection = sweep_mod.parse_only([*only, *(f"schedule={s}" for s in schedules)])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from None
    for name in selection.get("schedule", ()):
        if name not in SCHEDULE_NAMES:
            from ..solve.schedules import get_schedule

            try:
                get_schedule(name)
            except ScheduleNotFoundError as exc:
                raise click.ClickException(str(exc)) from None
    try:
        spec = sweep_mod.load_spec(spec_path) if spec_path else sweep_mod.load_spec()
        kwargs = {"spec": spec, "selection": selection or None, "workers": workers, "progress": not no_progress}
        if check:
            if kernels_differ := fingerprint_difference(spec.kernels):
                click.echo(f"warning: {kernels_differ}", err=True)
            diffs = sweep_mod.check(registry, cache_dir=cache_dir, **kwargs)
        else:
            files = sweep_mod.build(registry, cache_dir=cache_dir, force=force, **kwargs)
    except sweep_mod.SweepError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        if diffs:
            click.echo("\n\n".join(diffs), err=True)
            if kernels_differ:
                raise click.ClickException(f"{len(diffs)} file(s) differ from a rebuild; {kernels_differ}")
            same = f" (this machine's kernel fingerprint is the release's, {spec.kernels})" if spec.kernels else ""
            raise click.ClickException(f"{len(diffs)} file(s) differ from a rebuild{same}: commit the rebuilt registry")
        click.echo(f"{registry}: byte-identical to a rebuild")
        return
    click.echo(f"wrote {len(files)} files to {registry}")


def _sweep_shard(
    shard: str, cache_dir: Path | None, spec_path: Path | None, workers: int | None, no_progress: bool, other: object
) -> None:
    from ..registry import sweep as sweep_mod

    k, sep, n = shard.partition("/")
    if not (sep and k.isdigit() and n.isdigit()):
        raise click.BadParameter(f"write K/N (e.g. 2/4), got {shard[:40]!r}", param_hint="--shard")
    if cache_dir is None or other:
        raise click.UsageError(
            "--shard needs --cache-dir (the shard's output) and takes no --only, --schedule, --check"
        )
    try:
        spec = sweep_mod.load_spec(spec_path) if spec_path else sweep_mod.load_spec()
        files = sweep_mod.build_shard((int(k), int(n)), cache_dir, spec=spec, workers=workers, progress=not no_progress)
    except sweep_mod.SweepError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"shard {k}/{n}: {', '.join(files) or 'no schedule variant'} computed into {cache_dir}")


@cli.command()
@spec_option("Grid spec whose 'kernels' fingerprint to compare with (default: builder/registry/spec.json).")
def kernels(spec_path: Path | None) -> None:
    """Print the numerical kernels this machine runs for the builder and their fingerprint, against the release's."""
    from .. import kernels as k
    from ..registry import sweep as sweep_mod

    click.echo(f"CPU: {k.cpu_name()} ({'runs' if k.cpu_can_pin() else 'cannot run'} the pinned x86-64-v3 level)")
    click.echo("pinned: " + " ".join(f"{name}={value}" for name, value in k.PINNED_ENV.items()))
    problems = k.unpinned_kernels()
    click.echo("loaded libraries: " + ("; ".join(problems) if problems else "run the pinned kernels"))
    here = k.fingerprint()
    click.echo(f"kernel fingerprint: {here}")
    try:
        reference = (sweep_mod.load_spec(spec_path) if spec_path else sweep_mod.load_spec()).kernels
    except sweep_mod.SweepError as exc:
        raise click.ClickException(str(exc)) from None
    if reference is None:
        click.echo("the spec names no release fingerprint")
    elif reference == here:
        click.echo(f"the release's fingerprint ({reference}): the same, so a rebuild here is expected byte-identical")
    else:
        click.echo(f"the release's fingerprint ({reference}): different, so a rebuild here may differ in rounding")


@cli.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_REGISTRY)
@click.option("--allow-missing", is_flag=True, help="Accept files listed in the index but absent (vendored subset).")
def validate(path: Path, allow_missing: bool) -> None:
    """Check a registry folder: schemas, hashes, canonical bytes and invariants."""
    from ..registry.validate import format_report, validate_registry

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
    from optsteps_loader import OptstepsError

    from ..demo import format_demo, run_demo

    try:
        click.echo(format_demo(run_demo(schedule, nfe, variant=variant)))
    except (OptstepsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("publish")
@registry_option("Registry folder to publish.")
@click.option("--repo-id", required=True, help="Hub dataset repo, e.g. optsteps/optsteps-registry.")
@click.option("--revision", required=True, help="Tag to create: v<data_version> (optionally with a suffix).")
@click.option("--dry-run", is_flag=True, help="Print what would be uploaded (path, size, sha256); no network.")
@click.option("--force", is_flag=True, help="Move the tag if it already names other registry files.")
@click.option("--endpoint", default=None, help="Hub endpoint [default: $HF_ENDPOINT or https://huggingface.co].")
def publish(registry: Path, repo_id: str, revision: str, dry_run: bool, force: bool, endpoint: str | None) -> None:
    """Upload the registry to a Hub dataset repo and tag it (token: $HF_TOKEN or `hf auth login`)."""
    from ..registry.publish import PublishError
    from ..registry.publish import publish as publish_registry

    try:
        result = publish_registry(registry, repo_id, revision, dry_run=dry_run, endpoint=endpoint, force=force)
    except PublishError as err:
        raise click.ClickException(str(err)) from None
    if dry_run:
        click.echo(result.format())
        click.echo("dry run: nothing was uploaded")
        return
    click.echo(result.plan.format())
    click.echo(result.format())
