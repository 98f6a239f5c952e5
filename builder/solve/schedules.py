"""Noise schedules: α(t), σ(t), λ(t), the inverse t(λ), endpoints and the model's time input.

The forward process is q(x_t | x_0) = N(α_t x_0, σ_t² I) and the half-log-SNR is

    λ_t = log α_t − log σ_t,

strictly decreasing in t. Every schedule here gives, as vectorised float64 functions of t,
``marginal_log_alpha``, ``marginal_alpha``, ``marginal_sigma``, ``marginal_lambda``, the inverse
``inverse_lambda`` (closed form where one exists, exact piecewise-linear inversion for discrete tables),
its default interval [t_end, t_start] and ``model_time(t)``, the model's time input (continuous t,
integer DDPM timestep, EDM σ, or 1000·σ for flow models).

Names and parameters are the registry's (docs/registry-format.md); the formulas are docs/method.md's.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from optsteps_loader.errors import ScheduleNotFoundError

Array = NDArray[np.float64]

SCHEDULE_NAMES = ("vp-linear", "vp-cosine", "ddpm-linear", "scaled-linear", "edm", "flow")


def _as_array(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def vp_log_alpha_from_lambda(lam: ArrayLike) -> Array:
    """VP-normalised log α̂(λ) = −½ log(1 + e^{−2λ}) (α̂² + σ̂² = 1)."""
    return -0.5 * np.logaddexp(0.0, -2.0 * _as_array(lam))


@dataclass(frozen=True)
class Schedule:
    """Base class: subclasses implement ``marginal_log_alpha``, ``marginal_sigma`` and ``inverse_lambda``."""

    name: str
    t_start: float
    t_end: float
    family: str = field(default="", init=False)
    time_input: str = field(default="t", init=False)

    # -- quantities of t -------------------------------------------------------------------------------
    def marginal_log_alpha(self, t: ArrayLike) -> Array:
        raise NotImplementedError

    def marginal_alpha(self, t: ArrayLike) -> Array:
        """α_t = exp(log α_t)."""
        return np.exp(self.marginal_log_alpha(t))

    def marginal_sigma(self, t: ArrayLike) -> Array:
        """σ_t; VP schedules: sqrt(1 − α_t²)."""
        return np.sqrt(-np.expm1(2.0 * self.marginal_log_alpha(t)))

    def marginal_lambda(self, t: ArrayLike) -> Array:
        """λ_t = log α_t − log σ_t; VP: log α − ½ log(1 − α²)."""
        log_alpha = self.marginal_log_alpha(t)
        return log_alpha - 0.5 * np.log(-np.expm1(2.0 * log_alpha))

    def inverse_lambda(self, lam: ArrayLike) -> Array:
        raise NotImplementedError

    def model_time(self, t: ArrayLike) -> Array:
        """The model's time input at t (continuous t by default)."""
        return _as_array(t)

    # -- metadata ----------------------------------------------------------------------------------------
    @property
    def lambda_start(self) -> float:
        """λ at the noisiest node t_start (the smallest λ of the grid)."""
        return float(self.marginal_lambda(self.t_start))

    @property
    def lambda_end(self) -> float:
        """λ at the cleanest node t_end (the largest λ of the grid)."""
        return float(self.marginal_lambda(self.t_end))

    @property
    def params(self) -> dict[str, Any]:
        """Schedule constants that identify this variant (written into the registry)."""
        return {}

    @property
    def variant_params(self) -> dict[str, Any]:
        """Parameters that select a registry file among variants of one schedule key (flow: shift)."""
        return {}

    @property
    def description(self) -> str:
        return self.__doc__.strip().splitlines()[0] if self.__doc__ else self.name


@dataclass(frozen=True)
class VPLinear(Schedule):
    """Continuous VP-linear (ScoreSDE / DDPM style): log α(t) = −(β1−β0)t²/4 − β0 t/2."""

    name: str = "vp-linear"
    t_start: float = 1.0
    t_end: float = 1e-3
    beta_0: float = 0.1
    beta_1: float = 20.0
    family: str = field(default="vp-continuous", init=False)
    time_input: str = field(default="t", init=False)

    def marginal_log_alpha(self, t: ArrayLike) -> Array:
        t = _as_array(t)
        return -0.25 * t**2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def inverse_lambda(self, lam: ArrayLike) -> Array:
        """t(λ) = 2ΔβL / [Δβ(β0 + sqrt(β0² + 2ΔβL))] with L = log(1 + e^{−2λ}), Δβ = β1 − β0.

        This is the rationalised root of Δβ t²/2 + β0 t − L = 0, free of cancellation.
        """
        big_l = np.logaddexp(-2.0 * _as_array(lam), 0.0)
        d_beta = self.beta_1 - self.beta_0
        return 2.0 * big_l / (self.beta_0 + np.sqrt(self.beta_0**2 + 2.0 * d_beta * big_l))

    @property
    def params(self) -> dict[str, Any]:
        return {"beta_0": self.beta_0, "beta_1": self.beta_1}


@dataclass(frozen=True)
class VPCosine(Schedule):
    """iDDPM cosine: log α(t) = log cos(((t+s)/(1+s))·π/2) − log cos((s/(1+s))·π/2), T = 0.9946."""

    name: str = "vp-cosine"
    t_start: float = 0.9946
    t_end: float = 1e-3
    s: float = 0.008
    family: str = field(default="vp-continuous", init=False)
    time_input: str = field(default="t", init=False)

    def marginal_log_alpha(self, t: ArrayLike) -> Array:
        """log(cos θ_t / cos θ_0) with θ_t = ((t+s)/(1+s))·π/2, written as

        log1p(−2 sin((θ_t+θ_0)/2) sin((θ_t−θ_0)/2) / cos θ_0), which keeps full relative accuracy for
        small t, where log cos θ_t − log cos θ_0 would cancel.
        """
        t = _as_array(t)
        theta_0 = self.s / (1.0 + self.s) * math.pi / 2.0
        half_dtheta = t / (1.0 + self.s) * math.pi / 4.0
        return np.log1p(-2.0 * np.sin(theta_0 + half_dtheta) * np.sin(half_dtheta) / math.cos(theta_0))

    def inverse_lambda(self, lam: ArrayLike) -> Array:
        """t = (2(1+s)/π)·arccos(exp(log α̂(λ) + log cos(sπ/(2(1+s))))) − s.

        The angle θ = arccos(c) is evaluated as atan2(sqrt(1 − c²), c) with 1 − c² = −expm1(2 log c),
        which stays accurate where c → 1 (small t) and arccos loses digits.
        """
        theta_0 = self.s / (1.0 + self.s) * math.pi / 2.0
        log_cos_theta_0 = math.log1p(-2.0 * math.sin(theta_0 / 2.0) ** 2)  # log cos θ_0 without cancellation
        log_c = vp_log_alpha_from_lambda(lam) + log_cos_theta_0
        theta = np.arctan2(np.sqrt(-np.expm1(2.0 * log_c)), np.exp(log_c))
        return 2.0 * (1.0 + self.s) / math.pi * theta - self.s

    @property
    def params(self) -> dict[str, Any]:
        return {"s": self.s}


@dataclass(frozen=True)
class VPDiscrete(Schedule):
    """Discrete DDPM betas in DPM-Solver's continuous embedding t_n = (n+1)/N.

    log α_n = ½ Σ_{i≤n} log(1 − β_i) (float64), and log α(t) is the piecewise-linear interpolant of
    (t_n, log α_n), extended linearly beyond the end knots. Its inverse interpolates t as a piecewise-
    linear function of log α̂(λ) = −½ log(1 + e^{−2λ}); both maps are exact inverses of each other.
    The model's time input is the integer timestep round((t − 1/N)·N).
    """

    name: str = "scaled-linear"
    t_start: float = 1.0
    t_end: float = 1e-3
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    num_train_timesteps: int = 1000
    family: str = field(default="vp-discrete", init=False)
    time_input: str = field(default="timestep", init=False)

    def _knots(self) -> tuple[Array, Array]:
        n = self.num_train_timesteps
        if self.beta_schedule == "scaled_linear":
            betas = np.linspace(math.sqrt(self.beta_start), math.sqrt(self.beta_end), n) ** 2
        elif self.beta_schedule == "linear":
            betas = np.linspace(self.beta_start, self.beta_end, n)
        else:  # pragma: no cover - guarded by the registry of schedules below
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}")
        log_alpha = 0.5 * np.cumsum(np.log1p(-betas))
        t = np.arange(1, n + 1, dtype=np.float64) / n
        return t, log_alpha

    def marginal_log_alpha(self, t: ArrayLike) -> Array:
        knots_t, knots_log_alpha = self._knots()
        return _interp_linear_extrapolate(_as_array(t), knots_t, knots_log_alpha)

    def inverse_lambda(self, lam: ArrayLike) -> Array:
        knots_t, knots_log_alpha = self._knots()
        log_alpha = vp_log_alpha_from_lambda(lam)
        # log α decreases in t: interpolate on the reversed (increasing) arrays.
        return _interp_linear_extrapolate(log_alpha, knots_log_alpha[::-1], knots_t[::-1])

    def model_time(self, t: ArrayLike) -> Array:
        """Integer DDPM timestep round((t − 1/N)·N), as a float array of whole numbers."""
        n = self.num_train_timesteps
        return np.round((_as_array(t) - 1.0 / n) * n)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "beta_end": self.beta_end,
            "beta_schedule": self.beta_schedule,
            "beta_start": self.beta_start,
            "num_train_timesteps": self.num_train_timesteps,
        }


@dataclass(frozen=True)
class EDM(Schedule):
    """EDM / VE (Karras et al. 2022): α = 1, σ = t, so λ = −log σ; σ ∈ [0.002, 80]; time input σ."""

    name: str = "edm"
    t_start: float = 80.0
    t_end: float = 0.002
    family: str = field(default="edm", init=False)
    time_input: str = field(default="sigma", init=False)

    def marginal_log_alpha(self, t: ArrayLike) -> Array:
        return np.zeros_like(_as_array(t))

    def marginal_sigma(self, t: ArrayLike) -> Array:
        return _as_array(t).copy()

    def marginal_lambda(self, t: ArrayLike) -> Array:
        return -np.log(_as_array(t))

    def inverse_lambda(self, lam: ArrayLike) -> Array:
        """σ(λ) = e^{−λ}."""
        return np.exp(-_as_array(lam))


@dataclass(frozen=True)
class Flow(Schedule):
    """Rectified flow with SD3/FLUX time shift s: σ(t) = s·t / (1 + (s−1)·t), α = 1 − σ.

    λ = log((1−σ)/σ) = log((1−t)/t) − log s, so t(λ) = 1 / (1 + s·e^{λ}). The interval is
    t ∈ [1e-3, 1 − 1e-3] (λ is infinite at t = 1). The model's time input is 1000·σ, as in diffusers'
    ``FlowMatchEulerDiscreteScheduler``.
    """

    name: str = "flow"
    t_start: float = 1.0 - 1e-3
    t_end: float = 1e-3
    shift: float = 1.0
    family: str = field(default="flow", init=False)
    time_input: str = field(default="1000*sigma", init=False)

    def _flow_sigma(self, t: ArrayLike) -> Array:
        t = _as_array(t)
        return self.shift * t / (1.0 + (self.shift - 1.0) * t)

    def marginal_log_alpha(self, t: ArrayLike) -> Array:
        return np.log1p(-self._flow_sigma(t))

    def marginal_sigma(self, t: ArrayLike) -> Array:
        return self._flow_sigma(t)

    def marginal_lambda(self, t: ArrayLike) -> Array:
        t = _as_array(t)
        return np.log1p(-t) - np.log(t) - math.log(self.shift)

    def inverse_lambda(self, lam: ArrayLike) -> Array:
        """t(λ) = 1 / (1 + s·e^{λ}) = sigmoid(−λ − log s)."""
        z = -_as_array(lam) - math.log(self.shift)
        return np.where(z >= 0, 1.0 / (1.0 + np.exp(-z)), np.exp(z) / (1.0 + np.exp(z)))

    def model_time(self, t: ArrayLike) -> Array:
        return 1000.0 * self._flow_sigma(t)

    @property
    def params(self) -> dict[str, Any]:
        return {"shift": float(self.shift)}

    @property
    def variant_params(self) -> dict[str, Any]:
        return {"shift": float(self.shift)}


def _interp_linear_extrapolate(x: Array, xp: Array, fp: Array) -> Array:
    """Piecewise-linear interpolation of (xp, fp) at x (xp increasing), extended linearly past both ends."""
    y = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    if lo.any():
        y = np.where(lo, fp[0] + (x - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0]), y)
    if hi.any():
        y = np.where(hi, fp[-1] + (x - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]), y)
    return y


_FACTORIES: dict[str, Any] = {
    "vp-linear": VPLinear,
    "vp-cosine": VPCosine,
    "ddpm-linear": lambda **kw: VPDiscrete(
        name="ddpm-linear", beta_start=1e-4, beta_end=0.02, beta_schedule="linear", **kw
    ),
    "scaled-linear": lambda **kw: VPDiscrete(name="scaled-linear", **kw),
    "edm": EDM,
    "flow": Flow,
}


def get_schedule(name: str, **params: Any) -> Schedule:
    """The schedule called ``name`` with its default constants, overridden by ``params``.

    >>> get_schedule("vp-linear").lambda_start
    -5.024978406659204
    """
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), SCHEDULE_NAMES, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ScheduleNotFoundError(f"unknown schedule {name!r}.{hint} Known schedules: {', '.join(SCHEDULE_NAMES)}.")
    try:
        schedule = _FACTORIES[name](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameter for schedule {name!r}: {exc}") from None
    _check_interval(schedule)
    return schedule


def _check_interval(schedule: Schedule) -> None:
    if not (math.isfinite(schedule.t_start) and math.isfinite(schedule.t_end)):
        raise ValueError(f"{schedule.name}: t_start and t_end must be finite")
    if not schedule.t_start > schedule.t_end > 0:
        raise ValueError(
            f"{schedule.name}: need t_start > t_end > 0, got t_start={schedule.t_start}, t_end={schedule.t_end}"
        )
    if schedule.family == "flow" and not schedule.t_start < 1.0:
        raise ValueError(f"flow: t_start must be < 1 (λ is −∞ at t = 1), got {schedule.t_start}")
    if schedule.family == "flow" and not schedule.shift > 0:
        raise ValueError(f"flow: shift must be > 0, got {schedule.shift}")
    if schedule.family == "vp-continuous" and isinstance(schedule, VPCosine) and schedule.t_start > 0.9946:
        raise ValueError(f"vp-cosine: t_start must be ≤ 0.9946 (λ → −∞ near t = 1), got {schedule.t_start}")
    lam_start, lam_end = schedule.lambda_start, schedule.lambda_end
    if not (math.isfinite(lam_start) and math.isfinite(lam_end) and lam_start < lam_end):
        raise ValueError(f"{schedule.name}: endpoints give a degenerate λ interval [{lam_start}, {lam_end}]")


def node_arrays(schedule: Schedule, t: ArrayLike) -> dict[str, list[Any]]:
    """t, λ, α, σ, σ/α and the model's time input at the nodes t (noisiest first), as a registry entry
    holds them (integer timesteps on a discrete schedule)."""
    t = np.asarray(t, dtype=np.float64)
    alpha, sigma = schedule.marginal_alpha(t), schedule.marginal_sigma(t)
    timesteps = schedule.model_time(t)
    if schedule.family == "vp-discrete":
        timesteps_list: list[Any] = [int(v) for v in timesteps]
    else:
        timesteps_list = [float(v) for v in timesteps]
    return {
        "t": [float(v) for v in t],
        "lambda": [float(v) for v in schedule.marginal_lambda(t)],
        "alpha_t": [float(v) for v in alpha],
        "sigma_t": [float(v) for v in sigma],
        "sigmas": [float(v) for v in sigma / alpha],
        "timesteps": timesteps_list,
    }


def separate_timesteps(lambdas: ArrayLike, schedule: Schedule) -> Array:
    """A λ-grid whose nodes all have distinct integer timesteps on a discrete schedule (the same array where
    they already do or the schedule is continuous): diffusers computes σ from the integer timestep, so two
    nodes on one are a zero-length step (NaN in DPM-Solver) or a second model call at one input. From the
    cleanest node up, a node whose timestep n_i = round((t_i − 1/N)·N) is not above n_{i+1} moves to n_{i+1} + 1,
    λ_i = λ((n_{i+1} + 2)/N), the least move (a node it reaches moves in turn); the end nodes stay; a grid
    with more nodes than timesteps above its last is a ``ValueError``."""
    lam = np.asarray(lambdas, dtype=np.float64)
    if schedule.family != "vp-discrete":
        return lam
    steps = schedule.model_time(schedule.inverse_lambda(lam))
    moved = []
    for i in range(lam.size - 2, 0, -1):
        if steps[i] <= steps[i + 1]:
            steps[i] = steps[i + 1] + 1
            moved.append(i)
    if steps[0] <= steps[1]:
        raise ValueError(f"{lam.size} nodes do not fit on distinct timesteps of {schedule.name}")
    if not moved:
        return lam
    out = lam.copy()
    out[moved] = schedule.marginal_lambda((steps[moved] + 1.0) / schedule.num_train_timesteps)
    return out
