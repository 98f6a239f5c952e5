"""``python -m builder``: the click layer, the only module that defines commands; each calls library functions.

Build: ``solve``, ``sweep``, ``validate``, ``publish``, ``demo``. Quality: ``quality``, ``measure-defaults``,
``report``, ``learned-check``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from builder.solve.optimize import INIT_CHOICES, MAX_NFE, METHODS
from builder.solve.schedules import SCHEDULE_NAMES
from optsteps_loader.errors import ScheduleNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "registry"
SPEC_PATH = REPO_ROOT / "builder" / "registry" / "spec.json"
# ``--init karras`` names the start that registry entries store as ``init`` "edm" (still accepted).
INIT_NAMES = {"karras": "edm"}


def _registry_option(help_text: str, *, exists: bool = False):  # noqa: ANN202 - a click decorator
    """``--registry FOLDER`` (default: the repository's registry/)."""
    return click.option(
        "--registry",
        type=click.Path(file_okay=False, exists=exists, path_type=Path),
        default=DEFAULT_REGISTRY,
        show_default=True,
        help=help_text,
    )


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


# ---- build: solve one grid, sweep the registry, validate, publish, demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """optsteps builder: optimise diffusion-sampler time steps and write the registry."""


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
    from builder.solve.grids import start_grid
    from builder.solve.optimize import solve as solve_grid
    from builder.solve.schedules import get_schedule

    tau_value = _tau(tau)
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
        from builder.registry.entry import make_entry

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
@_registry_option("Registry folder to write.")
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
@click.option(
    "--check",
    is_flag=True,
    help="Rebuild into a temporary folder and fail on any byte difference (from scratch, unless --cache-dir "
    "names a cache to reuse: its keys hash the code, so only stages of unchanged code are reused).",
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
            diffs = sweep_mod.check(registry, cache_dir=cache_dir, **kwargs)
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
    except (OptstepsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("publish")
@_registry_option("Registry folder to publish.")
@click.option("--repo-id", required=True, help="Hub dataset repo, e.g. optsteps/optsteps-registry.")
@click.option("--revision", required=True, help="Tag to create: v<data_version> (optionally with a suffix).")
@click.option("--dry-run", is_flag=True, help="Print what would be uploaded (path, size, sha256); no network.")
@click.option("--force", is_flag=True, help="Move the tag if it already names other registry files.")
@click.option("--endpoint", default=None, help="Hub endpoint [default: $HF_ENDPOINT or https://huggingface.co].")
def publish(registry: Path, repo_id: str, revision: str, dry_run: bool, force: bool, endpoint: str | None) -> None:
    """Upload the registry to a Hub dataset repo and tag it (token: $HF_TOKEN or `hf auth login`)."""
    from builder.registry.publish import PublishError
    from builder.registry.publish import publish as publish_registry

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


# ---- quality: re-measure the registry, choose defaults, report, check on a learned model


@cli.command("quality")
@_registry_option("Registry folder to measure.", exists=True)
@click.option("--quick", "tier", flag_value="quick", default=True, help="The gate: 3 schedules × NFE 5, 6, 8, 10.")
@click.option("--full", "tier", flag_value="full", help="Every entry of the registry (minutes).")
def quality(registry: Path, tier: str) -> None:
    """Re-measure registry entries against the baselines; nonzero exit if the quick gate fails.

    Standard set, UniPC bh2 at the entry's order, corrector on; paired log-ratios on the same noises.
    """
    import optsteps_loader
    from builder.select import gate
    from builder.solve.schedules import get_schedule

    click.echo(gate.ROW_HEADER)
    failures: list[str] = []
    if tier == "quick":
        for name in gate.GATE_SCHEDULES:
            schedule = get_schedule(name)
            for nfe in gate.GATE_NFE:
                steps = optsteps_loader.get(name, nfe, source=str(registry))
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
@_registry_option("Registry folder to measure.", exists=True)
@click.option(
    "--write/--no-write", default=False, show_default=True, help="Write the chosen p into builder/registry/spec.json."
)
@click.option(
    "--held-out/--no-held-out", default=True, show_default=True, help="Measure the choice on held-out problems."
)
@click.option("--nfe", "nfes", multiple=True, type=int, help="NFE to average over (repeatable; default 5–10).")
def measure_defaults(registry: Path, write: bool, held_out: bool, nfes: tuple[int, ...]) -> None:
    """Pick each schedule's default p by measured error at NFE 5–10 (order 3, standard set)."""
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


@cli.command("report")
@_registry_option("Registry folder to measure.", exists=True)
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

    from builder.select import learned
    from optsteps_loader import OptstepsError

    torch.set_num_threads(1)
    model = learned.load_denoiser(learned.WEIGHTS_PATH if weights is None else weights)
    tables = []
    try:
        for schedule in schedules:
            rows = learned.check_schedule(
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
            tables.append(learned.format_table(schedule, rows))
    except (OptstepsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n\n".join(tables))


# ---- calibrate: optimised steps for the user's own model


def _shape(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(v) for v in value.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of sizes such as 4,64,64") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{value!r}: sizes must be positive integers")
    return shape


@cli.command("calibrate")
@click.option("--model", "model_spec", required=True, help="MODULE:FACTORY; FACTORY() returns model(x, timestep).")
@click.option("--prediction", type=click.Choice(["epsilon", "sample", "v", "flow"]), default=None, help="Output type.")
@click.option("--shape", default=None, help="Per-sample shape of x, e.g. 4,64,64 (default: the model's .shape).")
@click.option("--schedule", required=True, help=f"Schedule key: {', '.join(SCHEDULE_NAMES)}.")
@click.option("--shift", type=float, default=None, help="Flow schedules only: the SD3/FLUX time shift.")
@click.option("--nfe", "nfes", required=True, multiple=True, type=click.IntRange(2, MAX_NFE), help="NFE (repeatable).")
@click.option("--solver", type=click.Choice(["unipc", "dpmpp"]), default="unipc", show_default=True)
@click.option("--order", type=click.IntRange(1, 3), default=3, show_default=True)
@click.option("--ending", type=click.Choice(["eps", "zero"]), default="eps", show_default=True, help="Last step.")
@click.option("--noises", type=click.IntRange(2), default=64, show_default=True, help="Start noises (half held out).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, …")
@click.option("--teacher-steps", type=click.IntRange(8), default=200, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=64, show_default=True, help="Noises per model call.")
@click.option("--method", type=click.Choice(["auto", "gradient", "derivative-free"]), default="auto", show_default=True)
@click.option("--maxiter", type=click.IntRange(1), default=100, show_default=True)
@click.option("--weights-hash", default=None, help="sha256 of the weights, recorded and part of the teacher cache key.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Registry folder to write."
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def calibrate_command(model_spec: str, shape: str | None, nfes: tuple[int, ...], out: Path, **options) -> None:
    """Optimise the steps for your own model against an accurate solve of it; write a registry folder."""
    from builder.calibrate import CalibrationError, calibrate, load_factory

    progress = not options.pop("no_progress")
    try:
        model = load_factory(model_spec)
        result = calibrate(
            model, shape=_shape(shape), nfe=list(nfes), model_id=model_spec, out=out, progress=progress, **options
        )
    except (CalibrationError, ScheduleNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    t = result.teacher
    click.echo(
        f"teacher: UniPC-3, {t.steps} uniform-λ steps, estimated error {t.error:.2e} ({t.relative_error:.1e} relative)"
        f"{', from the cache' if t.cached else ''}; model dtype {result.dtype}"
    )
    for note in result.notes:
        click.echo(f"note: {note}")
    for n, fit in result.fits.items():
        fig = result.figures[n]
        rules = {k: v for k, v in fig.items() if k not in ("calibrated", "registry")}
        best = min(rules, key=rules.get)
        registry = f", registry {fig['registry']:.4g}" if "registry" in fig else ""
        click.echo(
            f"NFE {n}: held-out mean L2 {fig['calibrated']:.4g}{registry}, best rule {best} {rules[best]:.4g} "
            f"({fit.method}, start {fit.start}, {fit.iterations} iterations)"
        )
    click.echo(f"{result.model_calls} model calls, {result.seconds:.1f} s; wrote {out}")


def main() -> None:
    cli(prog_name="python -m builder")
