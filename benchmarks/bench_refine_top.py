"""How much a chain gains from refining two starts at every NFE, and what it costs.

A generic chain (:func:`builder.select.robust.refine_chain`) refines the best two starts at its first NFE and
the best one after (the warm start from NFE N − 1 nearly always wins). Where L-BFGS-B's basin is decided by
the last bits of the gradient, one start is a coin flip. This runs each chain twice in one process, on the
sweep's fit and validation splits and the shipped bound entries as starts:

- ``shipped``: the chain as the sweep runs it;
- ``top 2``: the same chain with every NFE's refinement given ``top=2`` (the only change: the chain's call of
  :func:`builder.select.refine.refine` is wrapped).

It prints the wall time of each and their ratio, then per NFE the fit loss of each, the ratio of their
validation mean L2 (top 2 / shipped) and each against the per-problem best rule.

    python benchmarks/bench_refine_top.py                                    # four generic t_ε chains
    python benchmarks/bench_refine_top.py --chain vp-linear:dpmpp:2:zero
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from builder.registry.sweep.chains import bound_grids, chains_of
from builder.registry.sweep.spec import load_spec
from builder.select import family, robust
from builder.select.refine import bind

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHAINS = (
    "ddpm-linear:unipc:3:eps",
    "scaled-linear:unipc:3:eps",
    "scaled-linear:dpmpp:2:eps",
    "vp-linear:dpmpp:2:eps",
)


def run(chain, top2: bool) -> tuple[float, list[dict]]:
    """(seconds, records) of one generic chain, as the sweep runs it or with ``top=2`` at every NFE."""
    spec = load_spec()
    doc = json.loads((REPO / "registry" / chain.file).read_text())
    default_p = next(s for s in spec.schedules if s["file"] == chain.file)["defaults"]["p"]
    sched = chain.make_schedule()
    ends = (sched.lambda_start, sched.lambda_end, chain.ending)
    fit, val = bind(family.split("fit"), *ends), bind(family.split("validation"), *ends)
    shipped_refine = robust.refine
    if top2:
        robust.refine = lambda *a, **k: shipped_refine(*a, **{**k, "top": 2})
    try:
        start = time.perf_counter()
        records = robust.refine_chain(
            sched,
            solver=chain.solver,
            order=chain.order,
            ending=chain.ending,
            nfes=chain.nfes,
            fit=fit,
            validation=val,
            bound_grids={int(k): v for k, v in bound_grids(chain, doc["entries"], default_p).items()},
            maxiter=chain.maxiter,
        )
        return time.perf_counter() - start, records
    finally:
        robust.refine = shipped_refine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chain", action="append", help="SCHEDULE:SOLVER:ORDER:ENDING (a generic chain of the spec)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    every = [c for c in chains_of(load_spec()) if not c.profile]
    for text in args.chain or DEFAULT_CHAINS:
        name, solver, order, ending = text.split(":")
        chain = next(
            (c for c in every if (c.schedule, c.solver, c.order, c.ending) == (name, solver, int(order), ending)),
            None,
        )
        if chain is None:
            raise SystemExit(f"no generic chain {text!r} in the spec (flow variants: the first shift is taken)")
        t1, shipped = run(chain, top2=False)
        t2, top2 = run(chain, top2=True)
        print(f"{chain.label()}: shipped {t1:.0f} s, top 2 at every NFE {t2:.0f} s ({t2 / t1:.2f}x)")
        for a, b in zip(shipped, top2, strict=True):
            va, vb = a["quality"]["validation"], b["quality"]["validation"]
            print(
                f"  NFE {a['nfe']:>2}: fit loss {a['optimizer'].get('fit_loss')} / {b['optimizer'].get('fit_loss')};"
                f" validation mean L2 x{vb['mean_l2'] / va['mean_l2']:.3f};"
                f" vs best rule {math.exp(va['log_ratio_best_rule']):.3f} / {math.exp(vb['log_ratio_best_rule']):.3f}"
            )


if __name__ == "__main__":
    main()
