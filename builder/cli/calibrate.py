"""``calibrate``: optimised steps for the user's own model; ``refine --profile``: steps for one data profile.
Both write a registry folder."""

from __future__ import annotations

from pathlib import Path

import click

from optsteps_loader.errors import ScheduleNotFoundError
from optsteps_loader.vocabulary import ENDINGS, SOLVERS

from ..select.profile import PROFILES
from ..solve.optimize import MAX_NFE
from ..solve.schedules import SCHEDULE_NAMES
from ._common import (
    cli,
)

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
@click.option("--solver", type=click.Choice(list(SOLVERS)), default="unipc", show_default=True)
@click.option("--order", type=click.IntRange(1, 3), default=3, show_default=True)
@click.option(
    "--ending",
    type=click.Choice(list(ENDINGS)),
    default="eps",
    show_default=True,
    help="eps: end at t_eps; zero: a last step to sigma = 0 (diffusers final_sigmas_type='zero', ComfyUI).",
)
@click.option(
    "--profile",
    type=click.Choice(["latent", "pixel"]),
    default=None,
    help="Start from the registry's entry for this data profile [default: the generic entry].",
)
@click.option("--noises", type=click.IntRange(2), default=64, show_default=True, help="Start noises (half held out).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, …")
@click.option("--teacher-steps", type=click.IntRange(8), default=200, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=64, show_default=True, help="Noises per model call.")
@click.option("--method", type=click.Choice(["auto", "gradient", "derivative-free"]), default="auto", show_default=True)
@click.option("--maxiter", type=click.IntRange(1), default=100, show_default=True)
@click.option(
    "--restarts",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="More optimisations from perturbed starts; the best held-out grid is kept (costs that many times more).",
)
@click.option("--weights-hash", default=None, help="sha256 of the weights, recorded and part of the teacher cache key.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new registry folder, or an existing (vendored) registry to merge the entries into.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="torch and BLAS threads for the run; more only pays for a large model on the CPU (docs/calibrate.md).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def calibrate_command(model_spec: str, shape: str | None, nfes: tuple[int, ...], out: Path, **options) -> None:
    """Optimise the steps for your own model against an accurate solve of it; write a registry folder."""
    from ..calibrate import CalibrationError, calibrate, load_factory

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
            f"({fit.method}, start {fit.start}, {fit.nit} iterations)"
        )
    click.echo(f"{result.model_calls} model calls, {result.seconds:.1f} s; wrote {out}")


# ---- refine --profile: solver entries refined for one data profile


@cli.command("refine")
@click.option("--schedule", required=True, help="Schedule key or model alias (sdxl, sd3, flux, ...).")
@click.option("--shift", type=float, default=None, help="Flow schedules only: the SD3/FLUX time shift.")
@click.option("--nfe", "nfes", required=True, multiple=True, type=click.IntRange(3, 10), help="NFE (repeatable).")
@click.option("--profile", type=click.Choice(list(PROFILES)), required=True, help="Your model's data.")
@click.option("--solver", type=click.Choice(list(SOLVERS)), default="unipc", show_default=True)
@click.option("--order", type=click.IntRange(1, 3), default=3, show_default=True)
@click.option("--ending", type=click.Choice(list(ENDINGS)), default="eps", show_default=True, help="Last step.")
@click.option("--maxiter", type=click.IntRange(1), default=60, show_default=True, help="L-BFGS-B iterations.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new registry folder, or an existing (vendored) registry to merge the entries into.",
)
def refine_command(schedule, shift, nfes, profile, solver, order, ending, maxiter, out) -> None:
    """Solver entries refined on one data profile's problems (latent: SD/SDXL/SD3/FLUX latents; pixel: image
    space), written as a registry folder that get(..., source=FOLDER) reads (docs/data-family.md)."""
    import math

    import optsteps_loader

    from ..profiles import refine_profile
    from ..registry.merge import MergeError, write_folder

    try:
        files = refine_profile(
            schedule,
            nfes,
            profile=profile,
            out=out,
            solver=solver,
            order=order,
            ending=ending,
            shift=shift,
            maxiter=maxiter,
        )
        write_folder(out, files)
    except (optsteps_loader.OptstepsError, MergeError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    key = {"solver": solver, "order": order, "ending": ending}
    for n in sorted(set(nfes)):
        q = optsteps_loader.get(schedule, n, shift=shift, source=out, profile=profile, **key).quality["validation"]
        reg = q["baselines"].get("generic")
        versus = f", {math.exp(reg['log_ratio']):.3f}x the generic entry's" if reg else ""
        click.echo(f"nfe {n}: {profile} validation mean L2 {q['mean_l2']:.4g}{versus} ({q['problems']} problems)")
    click.echo(f"wrote {out}: optsteps_loader.get({schedule!r}, nfe, profile={profile!r}, source={str(out)!r}, ...)")
