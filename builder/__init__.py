"""optsteps builder: offline optimisation of diffusion-sampler time steps into the registry.

The pipeline, one subpackage per stage, upstream to downstream:

- :mod:`builder.solve`: ``schedules`` (α, σ, λ, t(λ)) → ``objective`` (the paper's bound F and ∇F) →
  ``optimize`` (trust-constr multi-start) and ``epigraph`` (the bound's exact minimiser, for research);
- :mod:`builder.select`: ``mixtures`` and ``truth`` (problems with exact answers), ``evaluate`` (sample error),
  ``baselines`` (rule grids and published tables), ``selection`` (choice by measured error), ``learned``,
  ``gate``, ``report``;
- :mod:`builder.registry`: ``entry`` (a result as a registry entry) → ``sweep`` (the grid, cached stages,
  files) → ``validate`` (schemas and invariants) → ``publish`` (the Hub);
- ``demo`` runs one schedule end to end; ``cli`` is the click layer (``python -m builder …``).
"""

__version__ = "0.1.0"
