"""Would a data-profile knob (pixel-space vs latent-space models) pay? Measured before adding one.

For each schedule × NFE (UniPC bh2 order 3, t_ε ending), the shipped solver entry was refined on the whole
fit split. Here the same refinement runs on the fit split's pixel-like problems only, and on its latent-like
problems only (starts: the shipped entry and the rule grids, best one refined), and each profile's grid is
compared with the shipped one on the *validation* problems of its own profile:

    gain = exp(mean_p log(e_p(profile grid) / e_p(shipped)))   over that profile's validation problems

with the standard error by problem. A knob is worth its words if the gain is well below 1 beyond noise (say
< 0.95 with 2 se) on some rows; otherwise one entry serves both and the registry keeps one.

    python benchmarks/bench_profile_knob.py                  # scaled-linear and flow shift 3 at NFE 6 and 8
    python benchmarks/bench_profile_knob.py --schedules edm,vp-linear --nfes 5,10
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

import optsteps_loader
from builder.select import family
from builder.select.refine import bind, errors, refine, rule_starts
from builder.select.robust import solver_spec
from builder.solve.schedules import get_schedule

VARIANTS = {"scaled-linear": ("scaled-linear", {}), "flow-s3": ("flow", {"shift": 3.0})}
VARIANTS |= {"edm": ("edm", {}), "vp-linear": ("vp-linear", {}), "flow-s1": ("flow", {"shift": 1.0})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schedules", default="scaled-linear,flow-s3")
    ap.add_argument("--nfes", default="6,8")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = solver_spec("unipc", 3)
    fit, val = family.split("fit"), family.split("validation")
    print("| schedule | NFE | profile | fit problems | gain on its validation problems (± se) | refine s |")
    print("|---|---|---|---|---|---|")
    for key in args.schedules.split(","):
        name, params = VARIANTS[key]
        sched = get_schedule(name, **params)
        ends = (sched.lambda_start, sched.lambda_end, "eps")
        for nfe in (int(n) for n in args.nfes.split(",")):
            shipped = np.asarray(optsteps_loader.get(name, nfe, **params).lambdas)
            for profile in ("pixel", "latent"):
                mine = bind([p for p in fit if p.profile == profile], *ends)
                theirs = bind([p for p in val if p.profile == profile], *ends)
                starts = {**rule_starts(sched, nfe), "shipped": shipped}
                res = refine(mine, starts, top=1, reference="uniform-lambda", **spec)
                a = np.array([e.mean() for e in errors(res.x, theirs, **spec)])
                b = np.array([e.mean() for e in errors(shipped, theirs, **spec)])
                lr = np.log(a / b)
                se = lr.std(ddof=1) / math.sqrt(lr.size)
                print(
                    f"| {key} | {nfe} | {profile} | {len(mine.names)} | {math.exp(lr.mean()):.3f} "
                    f"(± {se:.3f}, {lr.size} problems) | {res.seconds:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
