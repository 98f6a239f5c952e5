"""The ``optsteps`` command (``python -m optsteps_loader``): ``list``, ``show``, ``verify``.

A thin click layer: each command parses its options and calls one library function. Library errors are
printed as ``Error: <message>`` without a traceback and exit with status 1; bad usage exits with 2 (click).
click is imported when the command runs (``pip install 'optsteps[cli]'``), never by the library.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

FORMATS = ("table", "json", "diffusers", "k-diffusion")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``optsteps`` console script."""
    try:
        import click  # noqa: F401
    except ImportError:
        sys.stderr.write("the optsteps command needs click: pip install 'optsteps[cli]'\n")
        raise SystemExit(2) from None
    build_cli().main(args=argv, prog_name="optsteps")


@contextmanager
def _reported():
    """Library errors become a clean ``Error: ...`` and exit status 1."""
    import click

    from .errors import OptstepsError

    try:
        yield
    except (OptstepsError, TypeError, ValueError) as err:
        raise click.ClickException(str(err)) from None


def build_cli():
    """The click group (built on call, so that importing this module does not need click)."""
    import click

    from . import __version__, available, get, verify

    source_option = click.option(
        "--source",
        metavar="PATH|hub",
        help="A registry folder, or 'hub' "
        "(default: $OPTSTEPS_REGISTRY_DIR, else the registry bundled with the package).",
    )
    revision_option = click.option("--revision", help="With --source hub: branch, tag or commit.")

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="optsteps")
    def cli() -> None:
        """Optimized time steps for few-step diffusion samplers (Xue et al., CVPR 2024)."""

    @cli.command("list")
    @source_option
    @revision_option
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    def list_command(source: str | None, revision: str | None, fmt: str) -> None:
        """List the schedules, their variants and grids (NFE, orders, p)."""
        from ._api import ranges

        with _reported():
            listing = available(source, revision=revision)
        if fmt == "json":
            click.echo(json.dumps(listing, indent=1, sort_keys=True))
            return
        rows = [("schedule", "params", "nfe", "orders", "p")]
        for name, variants in listing.items():
            for v in variants:
                params = ", ".join(f"{k}={_g(x)}" for k, x in sorted(v["params"].items())) or "-"
                rows.append(
                    (name, params, ranges(v["nfe"]), ",".join(map(str, v["orders"])), ",".join(map(_g, v["p"])))
                )
        click.echo(_table(rows))

    @cli.command("show")
    @click.argument("schedule")
    @click.option("--nfe", type=int, required=True, help="Number of steps N (N+1 nodes).")
    @click.option("--order", type=int, default=3, show_default=True, help="Solver order (1, 2 or 3).")
    @click.option("--p", type=float, default=None, help="Objective exponent [default: the schedule's].")
    @click.option("--shift", type=float, default=None, help="Flow schedules: the time shift [default: 1].")
    @click.option("--solver", type=click.Choice(["unipc", "dpmpp"]), default="unipc", show_default=True)
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
    @source_option
    @revision_option
    def show_command(
        schedule: str,
        nfe: int,
        order: int,
        p: float | None,
        shift: float | None,
        solver: str,
        fmt: str,
        source: str | None,
        revision: str | None,
    ) -> None:
        """Print the optimized steps of SCHEDULE at --nfe N."""
        with _reported():
            steps = get(schedule, nfe, order=order, p=p, solver=solver, source=source, revision=revision, shift=shift)
        click.echo(_FORMATTERS[fmt](steps))

    @cli.command("verify")
    @source_option
    @revision_option
    @click.option("--allow-missing", is_flag=True, help="A vendored subset: files listed in the index may be absent.")
    def verify_command(source: str | None, revision: str | None, allow_missing: bool) -> None:
        """Check a registry: index, hashes, structure of every entry, JSON Schema when available."""
        with _reported():
            report = verify(source, revision=revision, allow_missing=allow_missing)
        click.echo(
            f"ok: {report['source']} (data {report['data_version']}): {report['files']} files,"
            f" {report['entries']} entries verified"
        )
        click.echo(f"schema: {report['schema']}")
        for key in ("missing", "unlisted"):
            if report[key]:
                click.echo(f"{key}: {', '.join(report[key])}")

    return cli


def _g(x: object) -> str:
    return f"{x:.10g}" if isinstance(x, float) else str(x)


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)  # noqa: B905


def _title(steps) -> str:
    params = "".join(f" {k}={_g(v)}" for k, v in steps.params.items())
    return (
        f"{steps.schedule}{params} nfe={steps.nfe} order={steps.order} p={_g(steps.p)}"
        f" solver={steps.solver} (data {steps.provenance.get('data_version')})"
    )


def format_table(steps) -> str:
    """A human-readable table of the nodes."""
    head = [
        f"{_title(steps)}; model time input: {steps.time_input}",
        f"objective {steps.objective:.6g}"
        + (
            f" (uniform-λ grid: {steps.objective_uniform_lambda:.6g})"
            if steps.objective_uniform_lambda is not None
            else ""
        ),
    ]
    rows = [("i", "t", "lambda", "alpha_t", "sigma_t", "sigmas", "timestep", "step order")]
    for i in range(steps.nfe + 1):
        rows.append(
            (
                i,
                _g(steps.t[i]),
                _g(steps.lambdas[i]),
                _g(steps.alpha_t[i]),
                _g(steps.sigma_t[i]),
                _g(steps.sigmas[i]),
                _g(steps.timesteps[i]),
                steps.step_orders[i] if i < steps.nfe else "",
            )
        )
    return "\n".join(head) + "\n" + _table(rows)


def to_plain(obj: object) -> object:
    """JSON-ready data from a `Steps` (or anything it holds): mappings become dicts, tuples lists."""
    import dataclasses
    from collections.abc import Mapping

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    return [to_plain(v) for v in obj] if isinstance(obj, (tuple, list)) else obj


def format_json(steps) -> str:
    """Every field of the record, as JSON (floats exact)."""
    return json.dumps(to_plain(steps), indent=1, sort_keys=True)


def _flow(steps) -> bool:
    return steps.time_input == "1000*sigma"


def format_diffusers(steps) -> str:
    """The lists a diffusers user passes to a pipeline: ``timesteps=`` (discrete and flow models) or
    ``sigmas=``. They hold the N model-evaluation nodes: the scheduler appends the final one itself.
    ``sigmas`` is σ/α (k-diffusion convention) except for flow models, where diffusers' sigma is σ_t."""
    sigmas = (steps.sigma_t if _flow(steps) else steps.sigmas)[:-1]
    lines = [
        f"# optsteps {_title(steps)}",
        "# UniPC / DPM-Solver++: optsteps_loader.diffusers.configure_scheduler(scheduler, steps)",
        "# schedulers taking custom lists: pass ONE of these (N values; they append the last step)",
    ]
    if steps.time_input in ("timestep", "1000*sigma"):
        lines.append(f"timesteps={list(steps.timesteps[:-1])!r}")
    lines.append(f"sigmas={list(sigmas)!r}")
    return "\n".join(lines)


def format_k_diffusion(steps) -> str:
    """The k-diffusion / ComfyUI ``sigmas`` list: N+1 nodes then a trailing 0 (flow models: σ_t)."""
    sigmas = (*steps.sigma_t, 0.0) if _flow(steps) else steps.sigmas_with_zero()
    return f"# optsteps {_title(steps)}\nsigmas={list(sigmas)!r}"


_FORMATTERS = {
    "table": format_table,
    "json": format_json,
    "diffusers": format_diffusers,
    "k-diffusion": format_k_diffusion,
}
