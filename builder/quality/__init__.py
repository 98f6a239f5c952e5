"""Sample-quality measurement (issue 6): exact benchmark problems, ground truth, baselines, evaluation.

- :mod:`.gmm`: Gaussian mixtures with a closed-form denoiser E[x₀ | x_λ] (random ones, and the digits fit);
- :mod:`.truth`: the probability-flow ODE in λ solved tightly (DOP853), cached on disk;
- :mod:`.baselines`: uniform-λ, uniform-t, uniform-√t, Karras grids; the published AYS, GITS, OSS tables;
- :mod:`.evaluate`: the project's sampler on paired noises, L2 to the truth and sliced Wasserstein; paired
  comparisons against a baseline; the standard and held-out problem sets.

Typical use (one process, many grids)::

    from builder.quality import baseline_grids, compare, evaluate_grid, standard_problems
    problems = standard_problems()                 # built once; truths cached on disk
    evaluate_grid(entry_lambdas, problems)         # {"mean_l2", "median_l2", "sw", "problems": {...}}
    compare({"optimized": entry_lambdas, **baseline_grids(schedule, nfe)}, problems)
"""

from builder.quality.baselines import applicable_baselines, baseline_grids, baseline_lambdas
from builder.quality.evaluate import (
    Benchmark,
    Problem,
    ProblemSet,
    compare,
    evaluate_grid,
    held_out_problems,
    standard_problems,
)
from builder.quality.gmm import GaussianMixture, digits_mixture, random_mixture
from builder.quality.truth import ground_truth

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
