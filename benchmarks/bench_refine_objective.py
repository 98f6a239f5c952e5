"""Which refine objective generalises to held-out kinds: the mean log ratio or the soft maximum over kinds.

Issue 26 asks for a robust objective. This benchmark refines one schedule × solver × ending at each NFE asked
for, twice, from the same starts on the data family's fit split (:func:`builder.select.refine.refine`, the
sweep's ``maxiter`` and ``top``):

- ``mean``: the sweep's loss today, mean_p log(e_p / e_p(uniform λ));
- ``robust``: the soft maximum over the fit split's kinds (its generators: pixel, latent, lowdim, digits) of
  each kind's mean log ratio to that kind's best rule, T = ``--temperature`` (refine.py's docstring);

from the starts the sweep's chains see at that NFE: every rule and published table (for σ = 0, as the hosts run
them: :func:`builder.select.refine.rule_grid`), and the shipped entry's grid. Each refined grid is made as it
ships (:func:`builder.select.promise.shipped`: distinct integer timesteps) and run through diffusers' own
scheduler (``benchmarks/bench_hosts.py``'s hosts, ``timesteps=``) on the held-out kinds
(:mod:`builder.select.kinds`, none of them fit on), beside the shipped entries (the generic key and the model
alias, through ``configure_scheduler``) and every recipe the host offers. Ratios as in bench_hosts: geometric
mean over problems against the best single recipe, per kind.

    python benchmarks/bench_refine_objective.py                           # sd-dpmpp, NFE 8 and 10
    python benchmarks/bench_refine_objective.py --host sd-dpmpp3 --nfe 6,10 --temperature 0.1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from benchmarks import bench_hosts
from benchmarks.host_pipelines import HOSTS, Runner, _base_config, _scheduler_class
from builder.kernels import single_threaded_blas
from builder.registry.entry import solver_nodes
from builder.select import family
from builder.select import kinds as kinds_mod
from builder.select.promise import shipped
from builder.select.refine import bind, refine, rule_grids
from builder.solve.schedules import get_schedule

# host -> (solver, order, ending) of the entries configure_scheduler gives it
SOLVER_OF = {"sd-dpmpp": ("dpmpp", 2, "zero"), "sd-dpmpp3": ("dpmpp", 3, "zero"), "sd-euler": ("dpmpp", 1, "zero")}
MAXITER, TOP = 60, 2  # the sweep's generic chains (spec solver_entries.maxiter; builder.select.robust)


class CandidateRunner(Runner):
    """A Runner that also runs grids given as integer timesteps (``grids[key][nfe]``) through ``timesteps=``."""

    def __init__(self, host, key: str, grids: dict[str, dict[int, list[int]]]) -> None:
        self.grids = grids
        if key not in self.grids:
            super().__init__(host, key)
            return
        self.host, self.key, self.is_optsteps = host, key, True
        self.scheduler = _scheduler_class(host).from_config(_base_config(host))

    def applies(self, nfe: int) -> bool:
        return nfe in self.grids[self.key] if self.key in self.grids else super().applies(nfe)

    def set_kwargs(self, nfe: int) -> dict:
        return {"timesteps": self.grids[self.key][nfe]} if self.key in self.grids else super().set_kwargs(nfe)


def refined_grids(schedule_name: str, solver: str, order: int, ending: str, nfe: int, temperature: float, log=print):
    """{"mean": λ, "robust": λ}: the two refinements from the same starts (module docstring), as they ship."""
    import optsteps_loader

    schedule = get_schedule(schedule_name)
    problems = family.split("fit")
    bound = bind(problems, schedule.lambda_start, schedule.lambda_end, ending)
    rules = rule_grids(schedule, nfe, ending)
    entry = optsteps_loader.get(schedule_name, nfe, solver=solver, order=order, ending=ending, profile="generic")
    starts = {**rules, "shipped": np.asarray(entry.lambdas, dtype=np.float64)}
    spec = {"solver": solver, "order": order}
    out = {}
    for name, extra in (("mean", {}), ("robust", {"kinds": [p.profile for p in problems], "rules": list(rules)})):
        t0 = time.time()
        res = refine(bound, starts, top=TOP, maxiter=MAXITER, temperature=temperature, **spec, **extra)
        out[name] = shipped(res.x, schedule)
        seconds = time.time() - t0
        log(f"# NFE {nfe} {name}: from {res.start}, fit loss {res.fun_start:+.4f} -> {res.fun:+.4f}, {seconds:.0f} s")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="sd-dpmpp", choices=sorted(SOLVER_OF))
    parser.add_argument("--nfe", default="8,10", help="comma-separated NFEs")
    parser.add_argument("--temperature", type=float, default=0.05)
    args = parser.parse_args(argv)
    nfes = [int(v) for v in args.nfe.split(",")]
    solver, order, ending = SOLVER_OF[args.host]
    torch.set_num_threads(1)
    schedule = get_schedule("scaled-linear")
    print(f"# bench_refine_objective\ncommand: python benchmarks/bench_refine_objective.py {' '.join(argv)}".rstrip())
    print(f"host {args.host}: {solver} order {order}, ending {ending}; T = {args.temperature}")
    grids: dict[str, dict[int, list[int]]] = {"refined mean": {}, "refined robust": {}}
    with single_threaded_blas():
        for nfe in nfes:
            found = refined_grids("scaled-linear", solver, order, ending, nfe, args.temperature)
            for name, lam in found.items():
                grids[f"refined {name}"][nfe] = solver_nodes(schedule, ending, lam)["timesteps"]
                print(f"#   {name} timesteps: {grids[f'refined {name}'][nfe]}")
        host = HOSTS[args.host]
        host = type(host)(host.name, host.family, host.label, (*host.optsteps, *grids), host.recipes)
        problems = kinds_mod.problems(None)
        errors = bench_hosts.measure([host], problems, nfes, runner=lambda h, k: CandidateRunner(h, k, grids))
    bench_hosts.report(errors, [host], problems, nfes, by_kind=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
