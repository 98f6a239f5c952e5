"""optsteps builder: offline optimisation of diffusion-sampler time steps into the registry.

Modules, upstream to downstream: ``schedules`` (α, σ, λ, t(λ)) → ``objective`` (the bound F and ∇F) →
``optimize`` (trust-constr) → ``entry`` (result → registry entry) → ``sweep`` (grid, cache, files) →
``validate`` (schema and invariants). ``cli`` is a thin click layer over them.
"""

__version__ = "0.1.0"
