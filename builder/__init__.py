"""optsteps builder: offline optimisation of diffusion-sampler time steps into the registry.

The pipeline, one subpackage per stage, upstream to downstream:

- :mod:`builder.solve`: ``schedules`` (α, σ, λ, t(λ)), ``grids`` (rule grids, the optimiser's starts and the
  published tables), ``objective`` (the paper's bound F and ∇F), ``optimize`` (trust-constr multi-start)
  and ``epigraph`` (the bound's exact minimiser, for research);
- :mod:`builder.select`: ``mixtures`` and ``truth`` (problems with exact answers), ``evaluate`` (sample
  error, paired statistics), ``selection`` (choice by measured error), ``learned`` (a learned denoiser),
  ``gate`` (the quality gate, measured defaults), ``report`` (docs/report.md);
- :mod:`builder.registry`: ``entry`` (a result as a registry entry) → ``sweep`` (the grid, cached stages,
  files) → ``validate`` (schemas and invariants) → ``publish`` (the Hub), with ``card`` (the dataset card)
  and ``dist`` (the packaged-registry check of a release);
- ``demo`` runs one schedule end to end; ``cli`` is the click layer, the only module defining commands
  (``python -m builder …``).
"""

__version__ = "0.1.0"
