"""The select stage: exact benchmark problems, ground truth, baselines, evaluation, selection by measurement.

- :mod:`.mixtures`: Gaussian mixtures with a closed-form denoiser E[x₀ | x_λ] (random ones, and the digits fit);
- :mod:`.truth`: the probability-flow ODE in λ solved tightly (DOP853), cached on disk;
- :mod:`.evaluate`: the project's sampler on paired noises, L2 to the truth and sliced Wasserstein; paired
  comparisons against a baseline; the standard and held-out problem sets;
- :mod:`.selection`: per-entry figures and the choice among the solve's candidates and the starting grids;
- :mod:`.learned`: the learned digits denoiser (:mod:`.digits_denoiser`) checked against its own exact flow,
  on the registry's or a live-solved grid (:mod:`.learned_grids`);
- :mod:`.gate`, :mod:`.report`: the quality gate over a registry, measured defaults, docs/report.md.

The baselines (rule grids and the published AYS, GITS, OSS tables) come from :mod:`builder.solve.grids`,
which also builds the optimiser's starts; they are re-exported here.

Typical use (one process, many grids)::

    from . import baseline_grids, compare, evaluate_grid, standard_problems
    problems = standard_problems()                 # built once; truths cached on disk
    evaluate_grid(entry_lambdas, problems)         # {"mean_l2", "median_l2", "sw", "problems": {...}}
    compare({"optimized": entry_lambdas, **baseline_grids(schedule, nfe)}, problems)
"""

from ..solve.grids import applicable_baselines, baseline_grids, baseline_lambdas
from .evaluate import (
    Benchmark,
    Problem,
    ProblemSet,
    compare,
    evaluate_grid,
    held_out_problems,
    standard_problems,
)
from .mixtures import GaussianMixture, digits_mixture, random_mixture
from .truth import ground_truth

__all__ = [
    "Benchmark",
    "GaussianMixture",
    "Problem",
    "ProblemSet",
    "applicable_baselines",
    "baseline_grids",
    "baseline_lambdas",
    "compare",
    "digits_mixture",
    "evaluate_grid",
    "ground_truth",
    "held_out_problems",
    "random_mixture",
    "standard_problems",
]
