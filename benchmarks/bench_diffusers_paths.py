"""diffusers' two optsteps paths on the same entry: ``configure_scheduler`` against ``pipeline_kwargs``.

``pipeline_kwargs`` hands DPMSolverMultistepScheduler the entry's integer ``timesteps=``, and diffusers takes σ
at them from its own betas. ``configure_scheduler`` writes the entry's own σ's into the scheduler and calls the
model at the same integer timesteps. A solver entry's nodes sit at integer timesteps
(`builder.select.host_grid.as_run`), so both paths run one grid. A bound entry's nodes sit between timesteps:
``configure_scheduler`` then steps with a σ the model was not called at. This measures what that costs, on
held-out kinds (`builder.select.kinds`), with the exact-denoiser SD model of `bench_hosts.py`: per NFE and
entry, the geometric mean over problems (and the range) of configure's mean L2 over kwargs'.

    python benchmarks/bench_diffusers_paths.py                       # latent-fine and guided kinds
    python benchmarks/bench_diffusers_paths.py --kinds pixel-like,scale
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

import optsteps_loader
from benchmarks.bench_hosts import truth_for
from benchmarks.host_pipelines import HOSTS, SDModel, _base_config, pipeline_loop
from builder.kernels import single_threaded_blas
from builder.select import kinds as kinds_mod
from optsteps_loader.diffusers import configure_scheduler, pipeline_kwargs

# (NFE, get() keywords): solver entries, the bound's p = 2 entries with a final denoise, the NFE-36 fallback
CASES = ((12, {}), (20, {}), (30, {}), (12, {"p": 2.0}), (20, {"p": 2.0}), (30, {"p": 2.0}), (36, {}))


def run(problems, order: int) -> list[str]:
    import diffusers

    host = HOSTS["sd-dpmpp3" if order == 3 else "sd-dpmpp"]
    truths = {p.name: truth_for(p, "sd") for p in problems}
    lines = []
    for nfe, kw in CASES:
        errs = {"configure": [], "kwargs": []}
        for p in problems:
            for path in errs:
                s = diffusers.DPMSolverMultistepScheduler.from_config(_base_config(host))
                if path == "configure":
                    configure_scheduler(s, "scaled-linear", **kw)
                    extra = {}
                else:
                    steps = optsteps_loader.get("scaled-linear", nfe, ending="zero", solver="dpmpp", order=order, **kw)
                    extra = pipeline_kwargs(s, steps)
                t = truths[p.name]
                with torch.no_grad():
                    out = pipeline_loop(s, SDModel(p.mixture), torch.from_numpy(np.array(t.x_start)), nfe, **extra)
                errs[path].append(float(np.linalg.norm(out.numpy() - t.x_end, axis=1).mean()))
        r = np.array(errs["configure"]) / np.array(errs["kwargs"])
        method = optsteps_loader.get("scaled-linear", nfe, ending="zero", solver="dpmpp", order=order, **kw).method
        lines.append(
            f"| {order} | {nfe} | {method}{' p=' + str(kw['p']) if 'p' in kw else ''} | "
            f"{np.exp(np.log(r).mean()):.3f} | {r.min():.3f} | {r.max():.3f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="latent-fine,guided", help="comma-separated kinds of builder.select.kinds")
    args = ap.parse_args()
    torch.set_num_threads(1)
    problems = kinds_mod.problems(args.kinds.split(","))
    print(f"kinds {args.kinds}: {len(problems)} problems; DPMSolverMultistep, final_sigmas_type='zero'")
    print("| DPM++ order | NFE | entry | configure / kwargs (geometric mean) | min | max |")
    print("|---|---|---|---|---|---|")
    with single_threaded_blas(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NFE-36 request falls back to the bound entry on purpose
        for order in (2, 3):
            for line in run(problems, order):
                print(line)


if __name__ == "__main__":
    main()
