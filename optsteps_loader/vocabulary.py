"""The words `optsteps_loader.get` takes, each defined once: solver names, orders, endings, data profiles.

The loader owns this vocabulary: its argument checks and data checks, its command line, the builder and the
benchmarks import it from here (a public module, stdlib-free: importing it loads nothing else).
"""

__all__ = ["ENDINGS", "ORDERS", "PROFILES", "SOLVERS"]

SOLVERS = ("unipc", "dpmpp")  # UniPC bh2 with its corrector; DPM-Solver++ multistep (order 1: Euler / DDIM)
ORDERS = (1, 2, 3)
# the last node t_ε (the official UniPC / DPM-Solver code), or a last step to σ = 0 (diffusers, k-diffusion,
# ComfyUI); either way N model calls (`optsteps_loader._endings`)
ENDINGS = ("eps", "zero")
# the data profiles of solver entries and model aliases (builder/select/profile.py builds them)
PROFILES = ("latent", "pixel")
