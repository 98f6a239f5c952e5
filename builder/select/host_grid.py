"""A λ-grid as the hosts run it: on a discrete schedule, every node at the λ of the integer timestep the model
is called at.

A discrete (DDPM-betas) model is only ever called at an integer timestep n (the entry's ``timesteps``;
diffusers, k-diffusion's ``CompVisDenoiser`` and ComfyUI all round or look up the table there), while the
solver steps with the entry's own σ/α. A node refined in continuous t sits between two timesteps: the model
then answers for λ(n) = λ((n + 1)/N) while the solver treats the answer as one for the node's λ. Where the
solver weighs model outputs with large multistep coefficients (a short step before a long one under a
third-order step: coefficients near ±10) that mismatch is amplified into the result:
``benchmarks/bench_hosts.py`` measured DPM++ 3M grids at NFE 27-30 at 1.7-3.7x the best diffusers recipe
while the same grids, sampled with the model at the nodes' own λ, beat it.

:func:`as_run` moves each node to λ(n) of its own timestep n = round((t − 1/N)·N), t = t(λ) (the schedule's
``model_time``): the grid the model and the solver then agree on, and the grid a registry entry ships. The
end nodes λ_T and λ_ε are timesteps N − 1 and 0 already (t = 1 and 1/N: the same floats), so they stay; the
last evaluated node of a σ = 0 grid is free and moves too (to λ_ε where it rounds to timestep 0: the model
is called at the smallest trained noise level, then the last step goes to σ = 0). The nodes keep their
order when their timesteps are distinct (:func:`builder.solve.schedules.separate_timesteps`, which the
refine chain applies, makes them so). Continuous schedules (VP-linear, VP-cosine, EDM, flow) call the model at
the node's own time: unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_run"]


def as_run(lambdas: Sequence[float], schedule) -> np.ndarray:
    """The grid with every node at λ((n + 1)/N) of its integer timestep n (discrete schedules; a copy of the
    grid otherwise). A ``ValueError`` where two nodes share a timestep (the grid would not be strictly
    increasing)."""
    lam = np.array(lambdas, dtype=np.float64)
    if schedule.family != "vp-discrete":
        return lam
    steps = schedule.model_time(schedule.inverse_lambda(lam))
    out = schedule.marginal_lambda((steps + 1.0) / schedule.num_train_timesteps)
    if not np.all(np.diff(out) > 0):
        raise ValueError(f"two nodes of the grid share a timestep of {schedule.name}: separate them first")
    return out
