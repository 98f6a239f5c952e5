"""The ``optsteps`` command (``python -m optsteps_loader``): ``list``, ``show``, ``verify``, and ``calibrate``
(the builder's, installed as ``optsteps_builder``).

A thin click layer: each command parses its options and calls one library function; ``show``'s table and
JSON formats are here, its code snippets in :mod:`optsteps_loader.snippets`. Library errors are
printed as ``Error: <message>`` without a traceback and exit with status 1; bad usage exits with 2 (click).
click is imported when the command runs (``pip install 'optsteps[cli]'``), never by the library.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from contextlib import contextmanager

from .snippets import _g, _title, format_diffusers, format_k_diffusion
from .vocabulary import ENDINGS, SOLVERS

FORMATS = ("table", "json", "diffusers", "k-diffusion")
# `show`'s --solver, --order, --ending when not given: the package's default entry, and for --format
# k-diffusion what k-diffusion users run (DPM++ 2M to sigma = 0: sample_dpmpp_2m)
SHOW_DEFAULTS = {
    False: {"solver": "unipc", "order": 3, "ending": "eps"},
    True: {"solver": "dpmpp", "order": 2, "ending": "zero"},
}


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

    from . import FallbackWarning, __version__, aliases, available, get, verify

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
        from ._messages import ranges

        with _reported():
            listing = available(source, revision=revision)
            names = aliases(source, revision=revision)
        if fmt == "json":
            click.echo(json.dumps({"schedules": listing, "aliases": names}, indent=1, sort_keys=True))
            return
        rows = [("schedule", "params", "solver entries: nfe", "bound entries: nfe", "orders", "p")]
        for name, variants in listing.items():
            for v in variants:
                params = ", ".join(f"{k}={_g(x)}" for k, x in sorted(v["params"].items())) or "-"
                solver_nfe = ranges(v["solver_nfe"]) if v.get("solver_nfe") else "-"
                if v.get("solver_profiles"):
                    solver_nfe += f" (generic, {', '.join(v['solver_profiles'])})"
                orders, ps = ",".join(map(str, v["orders"])), ",".join(map(_g, v["p"]))
                rows.append((name, params, solver_nfe, ranges(v["nfe"]), orders, ps))
        click.echo(_table(rows))
        if names:
            click.echo("\nmodel aliases (get(alias, nfe) reads the schedule, and the profile's solver entries):")
            alias_rows = [("alias", "schedule", "profile", "")]
            shipped = [v["params"]["shift"] for v in listing.get("flow", ()) if "shift" in v["params"]]
            for alias, a in names.items():
                shift = f" shift={_g(a['shift'])}" if "shift" in a else ""
                if shift and a["schedule"] == "flow" and a["shift"] not in shipped:  # optsteps_loader/flow_shift.py
                    from .flow_shift import nearest

                    shift += f" (served from {_g(nearest(shipped, a['shift']))})"
                alias_rows.append((alias, a["schedule"] + shift, a.get("profile", "-"), a["description"]))
            click.echo(_table(alias_rows))

    @cli.command("show")
    @click.argument("schedule")
    @click.option("--nfe", type=int, required=True, help="Number of steps N (N+1 nodes).")
    @click.option(
        "--order", type=int, default=None, help="Solver order (1, 2 or 3) [default: 3; k-diffusion format: 2]."
    )
    @click.option(
        "--p", type=float, default=None, help="The bound's exponent p: the bound's entry [default: the solver entry]."
    )
    @click.option("--shift", type=float, default=None, help="Flow schedules: the time shift [default: 1].")
    @click.option(
        "--solver",
        type=click.Choice(list(SOLVERS)),
        default=None,
        help="[default: unipc; k-diffusion format: dpmpp, which with --order 2 is k-diffusion's sample_dpmpp_2m].",
    )
    @click.option(
        "--ending",
        type=click.Choice(list(ENDINGS)),
        default=None,
        help="eps: end at t_eps (official UniPC/DPM-Solver); zero: the last step goes to sigma = 0 (diffusers "
        "final_sigmas_type='zero', k-diffusion, ComfyUI) [default: eps; k-diffusion format: zero].",
    )
    @click.option(
        "--profile",
        type=click.Choice(["latent", "pixel", "generic"]),
        default=None,
        help="The model's data: latent (SD, SDXL, SD3, FLUX) or pixel; generic: refined on every profile "
        "[default: a model alias's own profile, else generic].",
    )
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
    @source_option
    @revision_option
    def show_command(
        schedule: str,
        nfe: int,
        order: int | None,
        p: float | None,
        shift: float | None,
        solver: str | None,
        ending: str | None,
        profile: str | None,
        fmt: str,
        source: str | None,
        revision: str | None,
    ) -> None:
        """Print the optimized steps of SCHEDULE at --nfe N (--format k-diffusion: by default the sigma = 0
        DPM++ 2M entry, what k-diffusion's sample_dpmpp_2m runs)."""
        defaults = SHOW_DEFAULTS[fmt == "k-diffusion"]
        order = defaults["order"] if order is None else order
        solver = solver or defaults["solver"]
        ending = ending or defaults["ending"]
        with _reported(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FallbackWarning)
            steps = get(
                schedule,
                nfe,
                order=order,
                p=p,
                solver=solver,
                source=source,
                revision=revision,
                shift=shift,
                ending=ending,
                profile=profile,
            )
        for warning in caught:  # a fallback: said on stderr, before the entry
            click.echo(f"{warning.category.__name__}: {warning.message}", err=True)
        if fmt == "diffusers":
            click.echo(format_diffusers(steps, source))
        else:
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
        click.echo(f"pin: {report['pin']}")
        for key in ("missing", "unlisted"):
            if report[key]:
                click.echo(f"{key}: {', '.join(report[key])}")

    @cli.command(
        "calibrate",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def calibrate_command(args: tuple[str, ...]) -> None:
        """Tune the steps to your own model (`optsteps calibrate --help`; needs optsteps[builder])."""
        builder_cli = _builder_cli()
        builder_cli.main(args=["calibrate", *args], prog_name="optsteps", standalone_mode=True)

    return cli


def _builder_cli():
    """The builder's click group: installed as ``optsteps_builder`` (a wheel), or ``builder`` in a checkout."""
    import importlib

    import click

    for name in ("optsteps_builder.cli", "builder.cli"):
        try:
            return importlib.import_module(name).cli
        except ModuleNotFoundError as err:
            if err.name not in (name, name.split(".")[0]):
                missing = err.name
                raise click.ClickException(
                    f"optsteps calibrate needs {missing}: pip install 'optsteps[builder]'"
                ) from None
    raise click.ClickException("optsteps calibrate needs the builder: pip install 'optsteps[builder]'")


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)  # noqa: B905


def _summary(steps) -> str:
    """One line on where the entry came from and how it measures."""
    if steps.objective is not None:
        line = f"objective {steps.objective:.6g}"
        if steps.objective_uniform_lambda is not None:
            line += f" (uniform-λ grid: {steps.objective_uniform_lambda:.6g})"
        return line
    if steps.method == "calibrated" and steps.quality:
        q = steps.quality
        versus = {k: math.exp(b["log_ratio"]) for k, b in q["baselines"].items()}
        registry = f", {versus['registry']:.3f}x the registry entry's" if "registry" in versus else ""
        return (
            f"calibrated for {steps.calibration['model']}: held-out mean L2 {q['mean_l2']:.4g}{registry}, "
            f"{versus[q['best_baseline']]:.3f}x the best rule's ({q['best_baseline']})"
        )
    q = (steps.quality or {}).get("validation")
    if not q:
        return ""
    worst = q["worst"]
    return (
        f"validation ({q['problems']} problems): mean L2 {q['mean_l2']:.4g}, error ratio to the per-problem best rule "
        f"{math.exp(q['log_ratio_best_rule']):.3f}, to the worst-for-it baseline ({worst}) "
        f"{math.exp(q['baselines'][worst]['log_ratio']):.3f}"
    )


def format_table(steps) -> str:
    """A human-readable table of the nodes."""
    head = [f"{_title(steps)}; model time input: {steps.time_input}", _summary(steps)]
    rows = [("i", "t", "lambda", "alpha_t", "sigma_t", "sigmas", "timestep", "step order")]
    for i in range(steps.nfe + 1):
        evaluated = i < len(steps.lambdas)  # "zero": the σ = 0 node has no λ and no model call
        rows.append(
            (
                i,
                _g(steps.t[i]),
                _g(steps.lambdas[i]) if evaluated else "+inf",
                _g(steps.alpha_t[i]),
                _g(steps.sigma_t[i]),
                _g(steps.sigmas[i]),
                _g(steps.timesteps[i]) if evaluated else "-",
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


_FORMATTERS = {
    "table": format_table,
    "json": format_json,
    "diffusers": format_diffusers,
    "k-diffusion": format_k_diffusion,
}
