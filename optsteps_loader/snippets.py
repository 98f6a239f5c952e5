"""Code snippets for an entry: ``optsteps show --format diffusers`` (Python for a diffusers pipeline, one
block per scheduler family) and ``--format k-diffusion`` (the ``sigmas`` list and the samplers that run it).

Each diffusers block loads the entry measured for its scheduler's solver, order and ending with an
``optsteps_loader.get(...)`` call, so the snippet runs what was measured; the k-diffusion list is
:func:`optsteps_loader.kdiffusion.sigma_values`. Standard library only.
"""

from __future__ import annotations

import warnings


def _g(x: object) -> str:
    return f"{x:.10g}" if isinstance(x, float) else str(x)


def _title(steps) -> str:
    params = "".join(f" {k}={_g(v)}" for k, v in steps.params.items())
    served = getattr(steps, "served_from", None)  # a flow shift no file holds (optsteps_loader/flow_shift.py)
    if served is not None:
        params += f" (served from shift {_g(served['shift'])})"
    p = f" p={_g(steps.p)}" if steps.p is not None else ""
    return (
        f"{steps.schedule}{params} nfe={steps.nfe} order={steps.order}{p} solver={steps.solver}"
        f" ending={steps.ending}{f' profile={steps.profile}' if steps.profile else ''} method={steps.method}"
        f" (data {steps.provenance.get('data_version')})"
    )


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
    from .coefficients import FULL_ORDER_FROM

    call, notes = _entry_call(steps, source, solver, order, ending)
    name = title[0].removeprefix("# --- ").split(":")[0]
    if call is None:
        return "\n".join([f"# --- {name}: not printed, as no entry fits it", *notes])
    if "DPMSolverMultistep" in name and order > 1 and ending == "eps" and steps.nfe >= FULL_ORDER_FROM:
        notes += _comment(
            f"At {FULL_ORDER_FROM} steps or more diffusers' DPM-Solver does not lower its last steps' order as this "
            "t_eps entry does; it warns SolverMismatchWarning (no setting undoes it). The sigma = 0 entries "
            "(ending='zero') are measured with diffusers' orders."
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
    """The k-diffusion ``sigmas`` list (:func:`optsteps_loader.kdiffusion.sigma_values`): N + 1
    values, N model calls; for a t_ε entry the last value is its last node, not 0 (see that module). A
    comment names the entry and the samplers that run it (`optsteps_loader.kdiffusion.RUN_WITH`)."""
    from ._endings import ending_of
    from .kdiffusion import RUN_WITH, sampler_for, sigma_values

    values = sigma_values(steps)
    note = "ends at t_eps: no trailing 0" if ending_of(steps) == "eps" else "ends at sigma = 0"
    name = sampler_for(steps.solver, steps.order)
    run = RUN_WITH[name] if name else f"optsteps_loader.{steps.solver}.sample(..., order={steps.order})"
    return (
        f"# optsteps {_title(steps)}; {steps.nfe} model calls, {note}\n"
        f"# the {steps.solver} order-{steps.order} entry: run it with {run}; --solver, --order, --ending pick "
        "another\n"
        f"sigmas={values!r}"
    )
