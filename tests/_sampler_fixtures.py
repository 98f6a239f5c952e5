"""Shared helpers for the sampler tests: closed-form grids, toy models, a Gaussian-mixture ground truth.

Nothing here reads the registry: every ``Steps`` is built from a schedule computed in the test, so the
sampler tests do not depend on the builder.
"""

from __future__ import annotations

import math

import numpy as np

from optsteps_loader.steps import Steps

BETA_0, BETA_1 = 0.1, 20.0  # VP-linear (ScoreSDE) defaults
T_START, T_END = 1.0, 1e-3


def make_steps(
    alpha: list[float],
    sigma: list[float],
    timesteps: list[float | int],
    *,
    order: int = 3,
    t: list[float] | None = None,
    schedule: str = "test",
    solver: str = "unipc",
    variant: str | None = None,
) -> Steps:
    """A ``Steps`` record from per-node α and σ (noisiest first), measured (as it claims) with ``solver``
    (and UniPC ``variant``, None: bh2); λ and σ/α are derived here."""
    lambdas = [math.log(a) - math.log(s) for a, s in zip(alpha, sigma, strict=True)]
    n = len(alpha) - 1
    return Steps(
        schedule=schedule,
        nfe=n,
        order=order,
        p=1,
        solver=solver,
        variant=variant,
        t=tuple(float(v) for v in (t if t is not None else timesteps)),
        lambdas=tuple(lambdas),
        alpha_t=tuple(float(a) for a in alpha),
        sigma_t=tuple(float(s) for s in sigma),
        sigmas=tuple(s / a for a, s in zip(alpha, sigma, strict=True)),
        timesteps=tuple(timesteps),
        step_orders=tuple(min(order, s + 1, n - s) for s in range(n)),
        tau=3,
        objective=0.0,
    )


def vp_linear_log_alpha(t: float) -> float:
    """log α(t) = −(β1−β0) t²/4 − β0 t/2."""
    return -(BETA_1 - BETA_0) * t * t / 4.0 - BETA_0 * t / 2.0


def vp_linear_lambda(t: float) -> float:
    """λ(t) = log α − ½ log(1 − α²)."""
    log_alpha = vp_linear_log_alpha(t)
    return log_alpha - 0.5 * math.log(-math.expm1(2.0 * log_alpha))


def vp_linear_t(lam: float) -> float:
    """Inverse of :func:`vp_linear_lambda` (rationalised root)."""
    big_l = float(np.logaddexp(-2.0 * lam, 0.0))
    d = BETA_1 - BETA_0
    return 2.0 * d * big_l / (d * (BETA_0 + math.sqrt(BETA_0**2 + 2.0 * d * big_l)))


def vp_from_lambdas(lambdas, *, order: int = 3) -> Steps:
    """A VP-linear ``Steps`` on a given λ grid (α = sigmoid(2λ)^½, σ = sigmoid(−2λ)^½, time input t)."""
    alpha = [math.sqrt(1.0 / (1.0 + math.exp(-2.0 * v))) for v in lambdas]
    sigma = [math.sqrt(1.0 / (1.0 + math.exp(2.0 * v))) for v in lambdas]
    t = [vp_linear_t(v) for v in lambdas]
    return make_steps(alpha, sigma, t, order=order, t=t, schedule="vp-linear")


def vp_uniform_lambda(nfe: int, *, order: int = 3) -> Steps:
    """Uniform-λ grid between λ(T=1) and λ(ε=1e-3) on VP-linear."""
    lam = np.linspace(vp_linear_lambda(T_START), vp_linear_lambda(T_END), nfe + 1)
    return vp_from_lambdas(lam.tolist(), order=order)


def discrete_steps(alphas_cumprod, timesteps: list[int], *, order: int = 3, **kwargs) -> Steps:
    """A grid on a discrete (diffusers) schedule at the given integer timesteps, in float64 (``kwargs``: of
    :func:`make_steps`)."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)[timesteps]
    return make_steps(
        np.sqrt(abar).tolist(), np.sqrt(1.0 - abar).tolist(), [int(v) for v in timesteps], order=order, **kwargs
    )


def flow_steps(sigmas: list[float], *, order: int = 3, **kwargs) -> Steps:
    """A rectified-flow grid (α = 1 − σ), time input 1000·σ (``kwargs``: of :func:`make_steps`)."""
    return make_steps([1.0 - s for s in sigmas], sigmas, [1000.0 * s for s in sigmas], order=order, **kwargs)


def toy_model(x, timestep):
    """A fixed, smooth, nonlinear function of x and the time input (any batch shape)."""
    import torch

    tau = timestep.to(x.dtype).reshape(timestep.shape + (1,) * (x.dim() - timestep.dim()))
    tau = tau / 1000.0 if not timestep.is_floating_point() or tau.abs().max() > 2 else tau
    return torch.tanh(x) * (0.4 + 0.5 * tau) + 0.3 * torch.sin(1.7 * x + 2.0 * tau) - 0.1 * x


class CountingModel:
    """Wraps a model and counts calls."""

    def __init__(self, model=toy_model):
        self.model = model
        self.calls = 0

    def __call__(self, x, timestep):
        self.calls += 1
        return self.model(x, timestep)


# --- a per-coordinate two-component Gaussian mixture with a closed-form denoiser -------------------------
MIX_WEIGHTS = (0.3, 0.7)
MIX_MEANS = (-1.0, 0.8)
MIX_STDS = (0.35, 0.5)


def mixture_x0(x, alpha, sigma):
    """E[x_0 | x_t = x] for x_0 ~ Σ_k w_k N(μ_k, s_k²) per coordinate, x_t = α x_0 + σ ε (numpy or torch)."""
    lib = np if isinstance(x, np.ndarray) else _torch()
    logits, means = [], []
    for w, mu, s in zip(MIX_WEIGHTS, MIX_MEANS, MIX_STDS, strict=True):
        var = alpha * alpha * s * s + sigma * sigma
        logits.append(math.log(w) - 0.5 * math.log(var) - 0.5 * (x - alpha * mu) ** 2 / var)
        means.append(mu + alpha * s * s / var * (x - alpha * mu))
    top = logits[0] if len(logits) == 1 else lib.maximum(logits[0], logits[1])
    e = [lib.exp(v - top) for v in logits]
    return (e[0] * means[0] + e[1] * means[1]) / (e[0] + e[1])


def _torch():
    import torch

    return torch


def mixture_ode_solution(x_start: np.ndarray, lam_start: float, lam_end: float) -> np.ndarray:
    """Tight solve of the probability-flow ODE in λ: y = x/σ, dy/dλ = e^λ x̂_0(σ y, λ) (DOP853, rtol 1e-10)."""
    from scipy.integrate import solve_ivp

    def alpha_sigma(lam):
        return math.sqrt(1.0 / (1.0 + math.exp(-2.0 * lam))), math.sqrt(1.0 / (1.0 + math.exp(2.0 * lam)))

    def rhs(lam, y):
        alpha, sigma = alpha_sigma(lam)
        return math.exp(lam) * mixture_x0(sigma * y, alpha, sigma)

    _, sigma0 = alpha_sigma(lam_start)
    sol = solve_ivp(rhs, (lam_start, lam_end), x_start / sigma0, method="DOP853", rtol=1e-10, atol=1e-12)
    assert sol.success, sol.message
    _, sigma1 = alpha_sigma(lam_end)
    return sol.y[:, -1] * sigma1


# --- diffusers on the same grid ---------------------------------------------------------------------------
SD_BETAS = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
# 10 steps on deliberately uneven integer timesteps (11 nodes, the last one t_end > 0)
GRID_TIMESTEPS = [999, 870, 700, 560, 420, 300, 200, 120, 60, 25, 8]


def diffusers_state_on_grid(scheduler, steps) -> None:
    """Put ``steps`` into a diffusers multistep scheduler by hand, the way ``step()`` reads its state.

    diffusers 0.42 stores N+1 ``sigmas`` (σ/α, or the flow σ with ``use_flow_sigmas``) whose last value is
    normally the 0 (or σ_min) that ``final_sigmas_type`` appends; our grid ends at its last node instead, so
    that node goes there and the last step lands on t_end exactly like our sampler. ``timesteps`` hold the
    first N model inputs. ``begin_index = 0`` skips the timestep→index search.
    """
    import torch

    flow = scheduler.config.use_flow_sigmas
    scheduler.set_timesteps(steps.nfe)  # resets the multistep state
    values = steps.sigma_t if flow else steps.sigmas
    scheduler.sigmas = torch.tensor(values, dtype=torch.float64)
    integer = all(isinstance(v, int) for v in steps.timesteps)
    scheduler.timesteps = torch.tensor(steps.timesteps[:-1], dtype=torch.int64 if integer else torch.float64)
    scheduler.set_begin_index(0)


def run_diffusers(scheduler, model, x):
    """The usual diffusers loop: model output at each timestep, then ``scheduler.step``."""
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.expand(x.shape[:1])), t, x).prev_sample
    return x


def relative_error(a, b) -> float:
    return float((a - b).norm() / b.norm())
