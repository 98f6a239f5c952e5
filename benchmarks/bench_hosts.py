"""optsteps where pipelines run it: diffusers' own schedulers and a k-diffusion loop, on held-out kinds.

Issue 26. An exact-denoiser model (a Gaussian mixture's closed-form E[x₀ | x_t], :mod:`builder.select.kinds`)
sits behind each host's timestep interface, and the host's own code samples it:

- **SD** (``sd-*``): ε-prediction at diffusers' timesteps, the Stable Diffusion 1.x / SDXL schedule (scaled-linear
  betas 0.00085 → 0.012, 1000 steps, ``steps_offset=1``). The model knows only (x, t): at timestep t it is exact
  for ᾱ_t from its float64 betas; at a fractional t (Euler's ``_sigma_to_t``) it interpolates log σ linearly
  between the neighbouring integer timesteps, the map diffusers' ``_sigma_to_t`` inverts. Schedulers:
  ``DPMSolverMultistepScheduler`` (DPM++ 2M and 3M, ``final_sigmas_type="zero"``), ``UniPCMultistepScheduler``
  (order 2, bh2, its default ``final_sigmas_type``), ``EulerDiscreteScheduler``.
- **Flow** (``flow-*``): SD3-like rectified flow x = (1 − σ) x₀ + σ ε with shift 3, velocity prediction
  v = ε − x₀ at t = 1000 σ. ``FlowMatchEulerDiscreteScheduler(shift=3)``, and ``UniPCMultistepScheduler`` /
  ``DPMSolverMultistepScheduler`` with ``use_flow_sigmas=True, flow_shift=3, prediction_type="flow_prediction"``.
- **k-diffusion** (``kd-*``): the Euler and DPM++ 2M loops of k-diffusion (`host_pipelines.kd_euler`,
  `kd_dpmpp_2m`) on a σ = σ/α array ending in 0, the SD model as a k-diffusion denoiser D(x, σ) evaluated at the
  exact σ (k-diffusion's ``quantize=False``; ComfyUI rounds to the nearest timestep, which would only hurt the
  recipes whose σ's fall between timesteps, not optsteps', which sit on them).

Every run follows the pipeline: ``latents = x_T · init_noise_sigma``, ``set_timesteps`` the way diffusers'
``retrieve_timesteps`` calls it, then ``scale_model_input`` → model → ``step`` per timestep. x_T is an exact
marginal sample at the host's first noise level (SD: t = 999; flow: σ = 1, λ = −20 for the ODE), the same
tensor for every recipe, and the exact answer is the probability-flow ODE from it to σ = 0
(:func:`builder.select.truth.ground_truth`, guided: the guided flow). Error: per problem the mean (and median)
over the batch of ‖x₀ − x₀^exact‖₂.

Keys per host and solver: optsteps (``"sdxl"`` / ``"sd3"``, the model alias with its latent profile entry, and
the generic schedule key ``"scaled-linear"`` / ``"flow"`` shift 3) through ``configure_scheduler`` (UniPC,
DPM-Solver), ``pipeline_kwargs`` (Euler: the ``solver="dpmpp", order=1, ending="zero"`` entry; FlowMatchEuler)
or ``optsteps_loader.kdiffusion.get_sigmas``; against every recipe the host offers (:data:`RECIPES`):
diffusers' ``timestep_spacing`` leading / trailing / linspace, ``use_karras_sigmas``, ``use_exponential_sigmas``,
``use_beta_sigmas``, ``use_lu_lambdas`` (DPM-Solver), the AYS tables via ``timesteps=`` at 10 steps
(``diffusers.schedulers.AysSchedules``, the only step count it publishes); k-diffusion / ComfyUI's karras,
exponential, normal, simple, sgm_uniform, beta(0.6, 0.6), kl_optimal and AYS SD1 / SDXL (ComfyUI's
``NOISE_LEVELS`` with its ``loglinear_interp`` for other step counts, ``builder/solve/data/baselines.json``).

Ratios are geometric means over problems of optsteps' error over a recipe's: "vs best" against the recipe with
the lowest geometric-mean error at that NFE (one recipe for all problems), "vs pp-best" against each problem's
own best recipe; "worst kind" is the kind with the highest vs-pp-best ratio; "tail samples": how many samples
(of all problems' batches) ended with an error above :data:`TAIL` = 10 times their run's median, for optsteps /
for the best recipe — a sample that crossed into another mode. On the latent-fine kind such a sample's error is
8-12 against a median of 0.01-0.04, so one of them decides a problem's mean L2: read the median columns beside
the mean ones. A configured optsteps scheduler
that makes another number of model calls than NFE stops the run (``RuntimeError``).

    python benchmarks/bench_hosts.py --quick            # 2 kinds x 3 NFEs, every host: about a minute
    python benchmarks/bench_hosts.py                    # every kind, NFE 5-30
    python benchmarks/bench_hosts.py --by-kind --hosts sd-dpmpp,kd-dpmpp_2m --nfe 8,10
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from benchmarks.host_pipelines import (
    FLOW_LAMBDA_START,
    HOSTS,
    LEFT_OUT,
    SD_LAMBDA_START,
    FlowModel,
    Host,
    Runner,
    SDModel,
)
from builder.kernels import single_threaded_blas
from builder.select import kinds as kinds_mod
from builder.select.truth import ground_truth

NFES = (5, 6, 8, 10, 12, 15, 20, 25, 30)
QUICK_KINDS = ("latent-fine", "guided")
QUICK_NFES = (6, 10, 20)
TAIL = 10.0  # a sample whose error is this many times its run's median: one that ended in another mode


# ---- the measurement -------------------------------------------------------------------------------------


def truth_for(problem, family: str):
    lam0 = FLOW_LAMBDA_START if family == "flow" else SD_LAMBDA_START
    return ground_truth(problem.mixture, lam0, math.inf, batch=problem.batch, seed=problem.seed)


def measure(hosts: Sequence[Host], problems, nfes: Sequence[int], log=print, runner=Runner) -> dict:
    """errors[(host, key, nfe, problem)] = (mean L2, median L2, model calls, tail samples: errors above
    :data:`TAIL` times the run's median); ``runner``: what runs a (host, key) (a :class:`Runner`)."""
    errors: dict = {}
    for host in hosts:
        t0 = time.time()
        family = "flow" if host.family == "flow" else "sd"
        truths = {p.name: truth_for(p, family) for p in problems}
        for key in (*host.optsteps, *host.recipes):
            run = runner(host, key)
            for nfe in nfes:
                if not run.applies(nfe):
                    continue
                for p in problems:
                    truth = truths[p.name]
                    model = (FlowModel if family == "flow" else SDModel)(p.mixture)
                    with torch.no_grad():
                        out = run.run(model, truth.x_start, nfe).numpy()
                    if run.is_optsteps and model.calls != nfe:
                        raise RuntimeError(
                            f"{host.name} {key!r} made {model.calls} model calls for NFE {nfe}: optsteps promises "
                            "exactly NFE calls"
                        )
                    err = np.linalg.norm(out - truth.x_end, axis=1)
                    if not np.all(np.isfinite(err)):
                        err = np.full_like(err, np.inf)
                    tail = int(np.sum(err > TAIL * np.median(err)))
                    errors[(host.name, key, nfe, p.name)] = (
                        float(err.mean()),
                        float(np.median(err)),
                        model.calls,
                        tail,
                    )
        log(f"# {host.name}: {time.time() - t0:.1f} s")
    return errors


def _gmean(values) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.exp(np.mean(np.log(v)))) if v.size else float("nan")


def summarise(errors: dict, host: Host, key: str, nfe: int, problems, col: int) -> dict | None:
    """Ratios of ``key`` at one NFE (col 0: mean L2, 1: median L2)."""
    names = [p.name for p in problems]
    if (host.name, key, nfe, names[0]) not in errors:
        return None
    recipes = [r for r in host.recipes if (host.name, r, nfe, names[0]) in errors]
    opt = np.array([errors[(host.name, key, nfe, n)][col] for n in names])
    rec = np.array([[errors[(host.name, r, nfe, n)][col] for n in names] for r in recipes])  # (R, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.array([_gmean(row) for row in rec])
    best = int(np.nanargmin(score))
    pp_best = rec.min(axis=0)
    kind_of = {p.name: p.profile for p in problems}
    by_kind = defaultdict(list)
    for i, n in enumerate(names):
        by_kind[kind_of[n]].append(opt[i] / pp_best[i])
    kind_ratio = {k: _gmean(v) for k, v in by_kind.items()}
    worst = max(kind_ratio, key=kind_ratio.get)
    return {
        "vs_best": _gmean(opt / rec[best]),
        "vs_pp": _gmean(opt / pp_best),
        "best": recipes[best],
        "worst_kind": worst,
        "worst_ratio": kind_ratio[worst],
        "by_kind": kind_ratio,
        "by_kind_best": {
            k: _gmean([opt[i] / rec[best, i] for i, n in enumerate(names) if kind_of[n] == k]) for k in by_kind
        },
        "losses": int(np.sum(opt > rec[best])),
        "n": len(names),
        "tail": sum(errors[(host.name, key, nfe, n)][3] for n in names),
        "tail_best": sum(errors[(host.name, recipes[best], nfe, n)][3] for n in names),
    }


def report(errors: dict, hosts: Sequence[Host], problems, nfes: Sequence[int], by_kind: bool, echo=print) -> None:
    kind_names = list(dict.fromkeys(p.profile for p in problems))
    for host in hosts:
        echo(f"\n## {host.name}: {host.label}")
        echo(f"recipes: {', '.join(host.recipes)}")
        for key in host.optsteps:
            echo(f"\n### optsteps {key!r}")
            echo(
                "| NFE | vs best (mean) | vs best (median) | vs pp-best (mean) | vs pp-best (median) "
                "| worst kind (mean, vs pp-best) | best recipe (mean) | problems above best | tail samples |"
            )
            echo("|---|---|---|---|---|---|---|---|---|")
            rows = []
            for nfe in nfes:
                m = summarise(errors, host, key, nfe, problems, 0)
                d = summarise(errors, host, key, nfe, problems, 1)
                if m is None:
                    continue
                rows.append((m, d))
                echo(
                    f"| {nfe} | {m['vs_best']:.3f} | {d['vs_best']:.3f} | {m['vs_pp']:.3f} | {d['vs_pp']:.3f} "
                    f"| {m['worst_kind']} {m['worst_ratio']:.3f} | {m['best']} | {m['losses']}/{m['n']} "
                    f"| {m['tail']} / {m['tail_best']} |"
                )
            if rows:
                cols = [_gmean(r[c][f] for r in rows) for f in ("vs_best", "vs_pp") for c in (0, 1)]
                echo("| all | " + " | ".join(f"{v:.3f}" for v in cols) + " | | | | |")
            if by_kind:
                echo(f"\nby kind, {key!r}: mean-L2 ratio vs the best single recipe / vs the per-problem best")
                echo("| NFE | " + " | ".join(kind_names) + " |")
                echo("|---|" + "---|" * len(kind_names))
                for nfe in nfes:
                    m = summarise(errors, host, key, nfe, problems, 0)
                    if m is None:
                        continue
                    cells = [f"{m['by_kind_best'][k]:.2f} / {m['by_kind'][k]:.2f}" for k in kind_names]
                    echo(f"| {nfe} | " + " | ".join(cells) + " |")


def header(argv: Sequence[str], problems, echo=print) -> None:
    import diffusers

    import optsteps_loader

    data_version = optsteps_loader.info("scaled-linear").get("data_version")
    echo("# bench_hosts")
    echo(f"command: python benchmarks/bench_hosts.py {' '.join(argv)}".rstrip())
    echo(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, numpy {np.__version__}"
    )
    echo(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    echo(f"registry data_version: {data_version}")
    counts = defaultdict(int)
    for p in problems:
        counts[p.profile] += 1
    echo(
        "kinds (held out, builder/select/kinds.py): "
        + ", ".join(f"{k} ({n})" for k, n in counts.items())
        + f"; {len(problems)} problems"
    )
    for line in LEFT_OUT:
        echo(f"left out: {line}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"kinds {QUICK_KINDS}, NFEs {QUICK_NFES}")
    parser.add_argument("--nfe", help="comma-separated NFEs (default 5,6,8,10,12,15,20,25,30)")
    parser.add_argument("--kinds", help=f"comma-separated kinds of {tuple(kinds_mod.KINDS)}")
    parser.add_argument("--hosts", help=f"comma-separated hosts of {tuple(HOSTS)}")
    parser.add_argument("--by-kind", action="store_true", help="per-kind breakdown")
    parser.add_argument("--batch", type=int, help="override the kinds' batch size")
    args = parser.parse_args(argv)
    nfes = tuple(int(v) for v in args.nfe.split(",")) if args.nfe else (QUICK_NFES if args.quick else NFES)
    kinds = args.kinds.split(",") if args.kinds else (list(QUICK_KINDS) if args.quick else None)
    hosts = [HOSTS[h] for h in args.hosts.split(",")] if args.hosts else list(HOSTS.values())
    torch.set_num_threads(1)
    problems = kinds_mod.problems(kinds, batch=args.batch)
    header(argv, problems)
    start = time.time()
    with single_threaded_blas(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        errors = measure(hosts, problems, nfes)
    mismatches = sorted(
        {str(w.message).splitlines()[0] for w in caught if "SolverMismatch" in type(w.message).__name__}
    )
    for line in mismatches:
        print(f"warning: {line}")
    report(errors, hosts, problems, nfes, args.by_kind)
    print(f"\nruntime: {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
