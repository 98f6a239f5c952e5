"""The ``optsteps`` command (``python -m optsteps_loader``): ``list``, ``show``, ``verify``, and ``calibrate``
(the builder's, installed as ``optsteps_builder``).

A thin click layer: each command parses its options and calls one library function. Library errors are
printed as ``Error: <message>`` without a traceback and exit with status 1; bad usage exits with 2 (click).
click is imported when the command runs (``pip install 'optsteps[cli]'``), never by the library.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from contextlib import contextmanager

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
        from ._api import ranges

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
                if shift and a["schedule"] == "flow" and a["shift"] not in shipped:  # optsteps_loader/_shift.py
                    from ._shift import nearest

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
        type=click.Choice(["unipc", "dpmpp"]),
        default=None,
        help="[default: unipc; k-diffusion format: dpmpp, which with --order 2 is k-diffusion's sample_dpmpp_2m].",
    )
    @click.option(
        "--ending",
        type=click.Choice(["eps", "zero"]),
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


def _g(x: object) -> str:
    return f"{x:.10g}" if isinstance(x, float) else str(x)


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)  # noqa: B905


def _title(steps) -> str:
    params = "".join(f" {k}={_g(v)}" for k, v in steps.params.items())
    served = getattr(steps, "served_from", None)  # a flow shift no file holds (optsteps_loader/_shift.py)
    if served is not None:
        params += f" (served from shift {_g(served['shift'])})"
    p = f" p={_g(steps.p)}" if steps.p is not None else ""
    return (
        f"{steps.schedule}{params} nfe={steps.nfe} order={steps.order}{p} solver={steps.solver}"
        f" ending={steps.ending}{f' profile={steps.profile}' if steps.profile else ''} method={steps.method}"
        f" (data {steps.provenance.get('data_version')})"
    )


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


def _flow(steps) -> bool:
    return steps.time_input == "1000*sigma"


def _get_call(
    steps, source: str | None, solver: str, order: int, ending: str, p: float | None, profile: str | None
) -> str:
    """``optsteps_loader.get(...)`` for ``steps``'s schedule and NFE with this solver, order, ending, ``p``
    (the bound's entry, by name) and ``profile``."""
    args = [repr(steps.schedule), str(steps.nfe), f"order={order}"]
    if p is not None:
        args.append(f"p={_g(p)}")
    if "shift" in steps.params:
        args.append(f"shift={_g(steps.params['shift'])}")
    if solver != "unipc":
        args.append(f"solver={solver!r}")
    if ending != "eps":
        args.append(f"ending={ending!r}")
    if profile:
        args.append(f"profile={profile!r}")
    if source is not None:
        args.append(f"source={source!r}")
    return f"optsteps_loader.get({', '.join(args)})"


def _entry_call(steps, source: str | None, solver: str, order: int, ending: str) -> tuple[str | None, list[str]]:
    """The ``optsteps_loader.get(...)`` call a block prints for ``solver``, ``order`` and ``ending`` next to
    ``steps``, and comment lines about the entry it loads. The call returns, without a warning, the entry
    `get` gives for that request and ``steps``'s profile — else for the generic profile (noted) — or where
    `get` would fall back to the bound's entry, that entry by its p (noted as not measured); the shown record
    itself where it is the bound's entry asked for by name. Where there is no entry at all: None, and why."""
    from . import EntryNotFoundError, FallbackWarning, get

    if steps.method.startswith("bound") and steps.requested is None and steps.p is not None:
        if (solver, order, ending) == (steps.solver, steps.order, steps.ending):  # the entry shown, by name
            return _get_call(steps, source, solver, order, ending, steps.p, None), []
    notes = []
    for profile in dict.fromkeys([steps.profile, None]):
        kwargs = {"order": order, "solver": solver, "ending": ending, "source": source, "profile": profile}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FallbackWarning)
                entry = get(steps.schedule, steps.nfe, shift=steps.params.get("shift"), **kwargs)
            break
        except EntryNotFoundError as err:
            missing = err
            notes = [f"there is no {profile!r} entry for this solver, order and ending: the generic one."]
    else:
        return None, _comment(f"no entry to load: {missing}")
    if entry.requested is None:
        return _get_call(steps, source, solver, order, ending, None, profile), _comment(" ".join(notes))
    notes.append(
        f"Not measured: there is no solver entry for this solver, order and ending at nfe {steps.nfe}, so this is "
        f"the paper's bound entry (method={entry.method!r}), asked for by its p."
    )
    return _get_call(steps, source, solver, order, ending, entry.p, None), _comment(" ".join(notes))


def _comment(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text[:1].upper() + text[1:], 110, initial_indent="# ", subsequent_indent="# ")


def _block(title: list[str], steps, source: str | None, solver: str, order: int, ending: str, body: list[str]):
    """One block of `format_diffusers`: its title comment, the imports, ``steps = <the entry's get call>`` and
    ``body``; where no entry exists for its solver, order and ending, the title and why instead of code."""
    from ._scheduler_fit import LOWER_ORDER_FINAL_BELOW

    call, notes = _entry_call(steps, source, solver, order, ending)
    name = title[0].removeprefix("# --- ").split(":")[0]
    if call is None:
        return "\n".join([f"# --- {name}: not printed, as no entry fits it", *notes])
    if "DPMSolverMultistep" in name and order > 1 and steps.nfe >= LOWER_ORDER_FINAL_BELOW:
        notes += _comment(
            f"At {LOWER_ORDER_FINAL_BELOW} steps or more diffusers' DPM-Solver does not lower its last steps' "
            "order as the entries do; where its step orders then differ from the entry's it warns "
            "SolverMismatchWarning (no setting undoes it)."
        )
    imports = ["import optsteps_loader", "from optsteps_loader.diffusers import configure_scheduler, pipeline_kwargs"]
    return "\n".join([*title, *notes, *imports, f"steps = {call}", *body])


def format_diffusers(steps, source: str | None = None) -> str:
    """Python for a diffusers pipeline ``pipe``, one block per scheduler family; run one block, then
    ``pipe(prompt, **kwargs)``. Each block loads the entry measured for its scheduler's solver, order and
    ending (`_entry_call`: the bound's entry by its p where there is none, said in a comment) and makes
    exactly N model calls on its nodes; where no entry fits a family (Heun; continuous-time entries; no entry
    for that solver and order), a comment says why instead of code."""
    from ._endings import ending_of

    n, order, ending = steps.nfe, steps.order, ending_of(steps)
    last = "sigma = 0" if ending == "zero" else f"t_eps (sigma/alpha = {steps.sigmas[n]:.6g})"
    head = [
        f"# optsteps {_title(steps)}",
        f"# {n} model calls, ending at {last}. Each block is Python for a diffusers pipeline `pipe` whose model",
        "# uses this schedule: run ONE block, then image = pipe(prompt, **kwargs).images[0]",
    ]
    configured = ["configure_scheduler(pipe.scheduler, steps)", f'kwargs = {{"num_inference_steps": {n}}}']
    if steps.time_input == "sigma":
        blocks = [
            _block(
                [
                    "# --- EDMDPMSolverMultistepScheduler (EDM-parameterised pipelines): the scheduler follows the "
                    "entry;",
                    "# diffusers' 1000-step schedulers do not run EDM entries",
                ],
                steps,
                source,
                "dpmpp",
                order,
                ending,
                [
                    "from diffusers import EDMDPMSolverMultistepScheduler",
                    "pipe.scheduler = EDMDPMSolverMultistepScheduler.from_config(pipe.scheduler.config, "
                    f"solver_order={order})",
                    *configured,
                ],
            ),
            _block(
                [
                    "# --- EDMEulerScheduler: Euler, ending with a step to sigma = 0, pipe(sigmas=...)",
                ],
                steps,
                source,
                "dpmpp",
                1,
                "zero",
                [
                    "from diffusers import EDMEulerScheduler",
                    "pipe.scheduler = EDMEulerScheduler.from_config(",
                    '    pipe.scheduler.config, sigma_schedule="karras", final_sigmas_type="zero"',
                    ")",
                    "kwargs = pipeline_kwargs(pipe.scheduler, steps)  # {'sigmas': positions on its Karras map}",
                ],
            ),
        ]
        return "\n\n".join(["\n".join(head), *blocks])
    if steps.time_input == "t":
        return "\n".join(
            [
                *head,
                "# This entry is continuous-time (t in (0, 1]): diffusers' 1000-step schedulers do not run it. Use",
                "# optsteps_loader.unipc.sample / dpmpp.sample, or the entry of your model's schedule",
                "# (scaled-linear: SD 1.x/2.x/SDXL; ddpm-linear; flow: SD3/FLUX).",
            ]
        )
    flow = _flow(steps)
    flow_args = ', use_flow_sigmas=True, prediction_type="flow_prediction"' if flow else ""
    blocks = []
    for name in ("UniPCMultistepScheduler", "DPMSolverMultistepScheduler"):
        blocks.append(
            _block(
                [f"# --- {name}: the scheduler follows the entry"],
                steps,
                source,
                "unipc" if name.startswith("UniPC") else "dpmpp",
                order,
                ending,
                [
                    f"from diffusers import {name}",
                    f"pipe.scheduler = {name}.from_config(pipe.scheduler.config, solver_order={order}{flow_args})",
                    *configured,
                ],
            )
        )
    if flow:
        blocks.append(
            _block(
                [
                    "# --- FlowMatchEulerDiscreteScheduler (SD3, FLUX): Euler, ending with a step to sigma = 0;",
                    "# the sigmas are unshifted here so the scheduler shifts them once",
                ],
                steps,
                source,
                "dpmpp",
                1,
                "zero",
                [
                    "mu = None  # FLUX.1 [dev] shifts by image size (use_dynamic_shifting): the mu its pipeline uses",
                    'if pipe.scheduler.config.get("use_dynamic_shifting"):',
                    "    height, width, c = 1024, 1024, pipe.scheduler.config  # the size you will ask pipe() for",
                    "    slope = (c.max_shift - c.base_shift) / (c.max_image_seq_len - c.base_image_seq_len)",
                    "    mu = c.base_shift + slope * ((height // 16) * (width // 16) - c.base_image_seq_len)",
                    "kwargs = pipeline_kwargs(pipe.scheduler, steps, mu=mu)  # {'sigmas': [...]}",
                ],
            )
        )
    else:
        final = "zero" if ending == "zero" else "sigma_min"
        for name, comment, block_order in (
            ("DPMSolverMultistepScheduler", ["the standard path, pipe(timesteps=...)"], order),
            (
                "DPMSolverSinglestepScheduler",
                [
                    "order 1 (DDIM: the DPM-Solver++ order-1 entry), pipe(timesteps=...);",
                    "# its single-step orders 2 and 3 are other solvers than the multistep one the entries were "
                    "measured with",
                ],
                1,
            ),
        ):
            blocks.append(
                _block(
                    [f"# --- {name}: {comment[0]}", *comment[1:]],
                    steps,
                    source,
                    "dpmpp",
                    block_order,
                    ending,
                    [
                        f"from diffusers import {name}",
                        f"pipe.scheduler = {name}.from_config(",
                        f'    pipe.scheduler.config, solver_order={block_order}, final_sigmas_type="{final}"',
                        ")",
                        "kwargs = pipeline_kwargs(pipe.scheduler, steps)  # {'timesteps': [...]}",
                    ],
                )
            )
        blocks.append(
            _block(
                [
                    "# --- EulerDiscreteScheduler: first order (DPM-Solver++ order 1), the standard path, "
                    "pipe(sigmas=...)",
                ],
                steps,
                source,
                "dpmpp",
                1,
                ending,
                [
                    "from diffusers import EulerDiscreteScheduler",
                    "pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)",
                    "kwargs = pipeline_kwargs(pipe.scheduler, steps)  # {'sigmas': [...]}",
                ],
            )
        )
    blocks.append("# HeunDiscreteScheduler calls the model twice per step: no registry entry fits it.")
    return "\n\n".join(["\n".join(head), *blocks])


def format_k_diffusion(steps) -> str:
    """The k-diffusion ``sigmas`` list (:func:`optsteps_loader.kdiffusion.sigmas` without torch): N + 1
    values, N model calls; for a t_ε entry the last value is its last node, not 0 (see that module). A
    comment names the entry and the samplers that run it (`optsteps_loader.kdiffusion.RUN_WITH`)."""
    from ._endings import ending_of
    from .kdiffusion import RUN_WITH, sampler_for

    column = steps.sigma_t if _flow(steps) else steps.sigmas
    values = [*column[: steps.nfe], column[steps.nfe] if ending_of(steps) == "eps" else 0.0]
    note = "ends at t_eps: no trailing 0" if ending_of(steps) == "eps" else "ends at sigma = 0"
    name = sampler_for(steps.solver, steps.order)
    run = RUN_WITH[name] if name else f"optsteps_loader.{steps.solver}.sample(..., order={steps.order})"
    return (
        f"# optsteps {_title(steps)}; {steps.nfe} model calls, {note}\n"
        f"# the {steps.solver} order-{steps.order} entry: run it with {run}; --solver, --order, --ending pick "
        "another\n"
        f"sigmas={values!r}"
    )


_FORMATTERS = {
    "table": format_table,
    "json": format_json,
    "diffusers": format_diffusers,
    "k-diffusion": format_k_diffusion,
}
