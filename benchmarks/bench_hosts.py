"""optsteps where pipelines run it: diffusers' own schedulers and a k-diffusion loop, on held-out kinds.

Issue 26. An exact-denoiser model (a Gaussian mixture's closed-form E[x₀ | x_t], :mod:`builder.select.kinds`)
sits behind each host's timestep interface, and the host's own code samples it:

- **SD** (``sd-*``): ε-prediction at diffusers' timesteps, the Stable Diffusion 1.x / SDXL schedule (scaled-linear
  betas 0.00085 → 0.012, 1000 steps, ``steps_offset=1``). The model knows only (x, t): at timestep t it is exact
  for ᾱ_t from its float64 betas; at a fractional t (Euler's ``_sigma_to_t``) it interpolates log σ linearly
  between the neighbouring integer timesteps, the map diffusers' ``_sigma_to_t`` inverts. Schedulers:
  ``DPMSolverMultistepScheduler`` (DPM++ 2M, ``final_sigmas_type="zero"``), ``UniPCMultistepScheduler``
  (order 2, bh2, its default ``final_sigmas_type``), ``EulerDiscreteScheduler``.
- **Flow** (``flow-*``): SD3-like rectified flow x = (1 − σ) x₀ + σ ε with shift 3, velocity prediction
  v = ε − x₀ at t = 1000 σ. ``FlowMatchEulerDiscreteScheduler(shift=3)``, and ``UniPCMultistepScheduler`` /
  ``DPMSolverMultistepScheduler`` with ``use_flow_sigmas=True, flow_shift=3, prediction_type="flow_prediction"``.
- **k-diffusion** (``kd-*``): the Euler and DPM++ 2M loops of k-diffusion (:func:`kd_euler`, :func:`kd_dpmpp_2m`,
  written here) on a σ = σ/α array ending in 0, the SD model as a k-diffusion denoiser D(x, σ) evaluated at the
  exact σ (k-diffusion's ``quantize=False``; ComfyUI rounds to the nearest timestep, which would only hurt the
  recipes whose σ's fall between timesteps, not optsteps', which sit on them).

Every run follows the pipeline: ``latents = x_T · init_noise_sigma``, ``set_timesteps`` the way diffusers'
``retrieve_timesteps`` calls it, then ``scale_model_input`` → model → ``step`` per timestep. x_T is an exact
marginal sample at the host's first noise level (SD: t = 999; flow: σ = 1, λ = −20 for the ODE), the same
tensor for every recipe, and the exact answer is the probability-flow ODE from it to σ = 0
(:func:`builder.select.truth.ground_truth`, guided: the guided flow). Error: per problem the mean (and median)
over the batch of ‖x₀ − x₀^exact‖₂.

Keys per host and solver: optsteps (``"sdxl"`` / ``"sd3"``, the model alias with its latent profile entry, and
the generic schedule key ``"scaled-linear"`` / ``"flow"`` shift 3) through ``configure_scheduler`` (UniPC,
DPM-Solver), ``pipeline_kwargs`` (Euler: the ``solver="dpmpp", order=1, ending="zero"`` entry; FlowMatchEuler)
or ``optsteps_loader.kdiffusion.get_sigmas``; against every recipe the host offers (:data:`RECIPES`):
diffusers' ``timestep_spacing`` leading / trailing / linspace, ``use_karras_sigmas``, ``use_exponential_sigmas``,
``use_beta_sigmas``, ``use_lu_lambdas`` (DPM-Solver), the AYS tables via ``timesteps=`` at 10 steps
(``diffusers.schedulers.AysSchedules``, the only step count it publishes); k-diffusion / ComfyUI's karras,
exponential, normal, simple, sgm_uniform, beta(0.6, 0.6), kl_optimal and AYS SD1 / SDXL (ComfyUI's
``NOISE_LEVELS`` with its ``loglinear_interp`` for other step counts, ``builder/solve/data/baselines.json``).

Ratios are geometric means over problems of optsteps' error over a recipe's: "vs best" against the recipe with
the lowest geometric-mean error at that NFE (one recipe for all problems), "vs pp-best" against each problem's
own best recipe; "worst kind" is the kind with the highest vs-pp-best ratio. A configured optsteps scheduler
that makes another number of model calls than NFE stops the run (``RuntimeError``).

    python benchmarks/bench_hosts.py --quick            # 2 kinds x 3 NFEs, every host: about a minute
    python benchmarks/bench_hosts.py                    # every kind, NFE 5-30
    python benchmarks/bench_hosts.py --by-kind --hosts sd-dpmpp,kd-dpmpp_2m --nfe 8,10
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.select import kinds as kinds_mod  # noqa: E402
from builder.select.evaluate import single_threaded_blas  # noqa: E402
from builder.select.mixtures import vp_alpha_sigma  # noqa: E402
from builder.select.truth import ground_truth  # noqa: E402

NFES = (5, 6, 8, 10, 12, 15, 20, 25, 30)
QUICK_KINDS = ("latent-fine", "guided")
QUICK_NFES = (6, 10, 20)
NUM_TRAIN = 1000
FLOW_SHIFT = 3.0
FLOW_LAMBDA_START = -20.0  # σ = 1 in the flow: x_T = α̂ x₀ + σ̂ ε with α̂ = 2e-9
SD_CONFIG = {
    "num_train_timesteps": NUM_TRAIN,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


# ---- the models behind the hosts' interfaces -----------------------------------------------------------------


def sd_log_sigmas() -> np.ndarray:
    """log(σ_t/α_t) at t = 0..999 for SD's scaled-linear betas, float64: β = linspace(√0.00085, √0.012)²."""
    betas = np.linspace(SD_CONFIG["beta_start"] ** 0.5, SD_CONFIG["beta_end"] ** 0.5, NUM_TRAIN) ** 2
    abar = np.cumprod(1.0 - betas)
    return 0.5 * np.log((1.0 - abar) / abar)


SD_LOG_SIGMAS = sd_log_sigmas()
SD_LAMBDA_START = -float(SD_LOG_SIGMAS[-1])  # λ at t = 999


class Model:
    """Counts calls; ``mixture`` is anything with ``denoise(x, λ)`` (a mixture or a guided mixture)."""

    def __init__(self, mixture) -> None:
        self.mixture = mixture
        self.calls = 0

    def x0(self, x_vp: torch.Tensor, lam: float) -> torch.Tensor:
        self.calls += 1
        out = self.mixture.denoise(x_vp.detach().cpu().numpy().astype(np.float64), float(lam))
        return torch.from_numpy(out).to(x_vp.dtype)


class SDModel(Model):
    """ε-prediction at timestep t: ε̂ = (x − α_t x̂₀(x, λ_t)) / σ_t, λ_t = −log σ/α interpolated in t."""

    @staticmethod
    def lam(t: float) -> float:
        return -float(np.interp(float(t), np.arange(NUM_TRAIN), SD_LOG_SIGMAS))

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        t = float(torch.as_tensor(t).reshape(-1)[0])
        lam = self.lam(t)
        alpha, sigma = vp_alpha_sigma(lam)
        return (x - alpha * self.x0(x, lam)) / sigma

    def denoiser(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """k-diffusion's D(x, σ) for x = x₀ + σ ε (σ = σ/α), at the exact σ."""
        lam = -math.log(sigma)
        alpha, _ = vp_alpha_sigma(lam)
        return self.x0(x * alpha, lam)


class FlowModel(Model):
    """Velocity at t = 1000 σ: v̂ = (x − x̂₀)/σ, x̂₀ = E[x₀ | x] with x/((1 − σ) + ... ) VP-normalised."""

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        sigma = float(torch.as_tensor(t).reshape(-1)[0]) / NUM_TRAIN
        alpha = 1.0 - sigma
        lam = max(math.log(max(alpha, 1e-300)) - math.log(sigma), -40.0)
        x_vp = x / math.sqrt(alpha * alpha + sigma * sigma)
        return (x - self.x0(x_vp, lam)) / sigma


# ---- k-diffusion samplers (crowsonkb/k-diffusion sampling.py, deterministic) --------------------------------


def kd_euler(denoiser: Callable, x: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """sample_euler with s_churn = 0: d = (x − D(x, σ_i))/σ_i, x ← x + d (σ_{i+1} − σ_i)."""
    for i in range(len(sigmas) - 1):
        d = (x - denoiser(x, sigmas[i])) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def kd_dpmpp_2m(denoiser: Callable, x: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """sample_dpmpp_2m: t = −log σ, h = t_{i+1} − t_i; first step and the step to σ = 0 are first order,
    else D' = (1 + 1/(2r)) D_i − D_{i−1}/(2r) with r = h_{i−1}/h; x ← (σ_{i+1}/σ_i) x − expm1(−h) D'."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, t_next = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
            h = t_next - t
            if old is not None:
                r = (t - (-math.log(sigmas[i - 1]))) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            else:
                denoised_d = denoised
            x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * denoised_d
        old = denoised
    return x


# ---- recipes ---------------------------------------------------------------------------------------------


def comfy_sd_sigmas() -> np.ndarray:
    """ComfyUI ModelSamplingDiscrete.sigmas (ascending, σ/α at t = 0..999), float64."""
    return np.exp(SD_LOG_SIGMAS)


def comfy_sigma(t: np.ndarray) -> np.ndarray:
    """ModelSamplingDiscrete.sigma(t): log σ linear in t between integer timesteps."""
    return np.exp(np.interp(np.asarray(t, dtype=np.float64), np.arange(NUM_TRAIN), SD_LOG_SIGMAS))


def kd_recipe(name: str, n: int) -> list[float]:
    """ComfyUI's ``calculate_sigmas(model_sampling, name, n)`` for SD (n + 1 values, the last 0), and AYS."""
    table = comfy_sd_sigmas()
    smin, smax = float(table[0]), float(table[-1])
    if name == "karras":  # k-diffusion get_sigmas_karras, rho 7
        ramp = np.linspace(0, 1, n)
        s = (smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    elif name == "exponential":
        s = np.exp(np.linspace(math.log(smax), math.log(smin), n))
    elif name == "normal":
        s = comfy_sigma(np.linspace(NUM_TRAIN - 1, 0, n))
    elif name == "sgm_uniform":
        s = comfy_sigma(np.linspace(NUM_TRAIN - 1, 0, n + 1)[:-1])
    elif name == "simple":
        ss = len(table) / n
        s = np.array([table[-(1 + int(x * ss))] for x in range(n)])
    elif name == "beta":
        import scipy.stats

        ts = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, n, endpoint=False), 0.6, 0.6) * (len(table) - 1))
        s, last = [], -1
        for t in ts:
            if t != last:
                s.append(table[int(t)])
            last = t
        s = np.array(s)
    elif name == "kl_optimal":
        adj = np.arange(n) / (n - 1)
        s = np.tan(adj * math.atan(smin) + (1 - adj) * math.atan(smax))
    elif name in ("ays-sd1", "ays-sdxl"):
        from builder.solve.grids import TABLES_PATH, loglinear_interp

        row = json.loads(TABLES_PATH.read_text())["ays"]["comfyui_sigmas_10step"][
            "SD1" if name == "ays-sd1" else "SDXL"
        ]
        row = np.asarray(row, dtype=np.float64)
        s = (row if n == 10 else loglinear_interp(row, n + 1))[:-1]  # ComfyUI sets the last value to 0
    else:
        raise ValueError(name)
    return [float(v) for v in s] + [0.0]


KD_RECIPES = ("karras", "exponential", "normal", "simple", "sgm_uniform", "beta", "kl_optimal", "ays-sd1", "ays-sdxl")
SD_SPACINGS = ("leading", "trailing", "linspace")
SD_SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@dataclass(frozen=True)
class Host:
    """One host × solver: how to build its scheduler, which recipes it offers, how optsteps gets in."""

    name: str
    family: str  # "sd" | "flow" | "kd"
    label: str
    optsteps: tuple[str, ...]  # the alias entry and the generic key, as labels
    recipes: tuple[str, ...]


HOSTS: dict[str, Host] = {
    h.name: h
    for h in (
        Host(
            "sd-dpmpp",
            "sd",
            "diffusers DPMSolverMultistep, DPM++ 2M, final_sigmas_type=zero (SD/SDXL eps)",
            ("sdxl", "scaled-linear"),
            (*SD_SPACINGS, *SD_SIGMA_FLAGS, "use_lu_lambdas", "ays-sd (timesteps=)", "ays-sdxl (timesteps=)"),
        ),
        Host(
            "sd-unipc",
            "sd",
            "diffusers UniPCMultistep, order 2, bh2 (SD/SDXL eps)",
            ("sdxl", "scaled-linear"),
            (*SD_SPACINGS, *SD_SIGMA_FLAGS),
        ),
        Host(
            "sd-euler",
            "sd",
            "diffusers EulerDiscrete (SD/SDXL eps), optsteps via pipeline_kwargs (dpmpp order 1, zero)",
            ("sdxl", "scaled-linear"),
            (*SD_SPACINGS, *SD_SIGMA_FLAGS, "ays-sd (timesteps=)", "ays-sdxl (timesteps=)"),
        ),
        Host(
            "flow-euler",
            "flow",
            "diffusers FlowMatchEulerDiscrete shift 3 (SD3-like velocity), optsteps via pipeline_kwargs",
            ("sd3", "flow-s3"),
            ("default", *SD_SIGMA_FLAGS),
        ),
        Host(
            "flow-unipc",
            "flow",
            "diffusers UniPCMultistep use_flow_sigmas, flow_shift 3, order 2, bh2",
            ("sd3", "flow-s3"),
            ("default", "use_karras_sigmas"),
        ),
        Host(
            "flow-dpmpp",
            "flow",
            "diffusers DPMSolverMultistep use_flow_sigmas, flow_shift 3, DPM++ 2M, zero",
            ("sd3", "flow-s3"),
            ("default",),
        ),
        Host("kd-euler", "kd", "k-diffusion Euler loop on SD sigmas", ("sdxl", "scaled-linear"), KD_RECIPES),
        Host("kd-dpmpp_2m", "kd", "k-diffusion DPM++ 2M loop on SD sigmas", ("sdxl", "scaled-linear"), KD_RECIPES),
    )
}
# Recipes a host offers that are left out, and why (printed under the header).
LEFT_OUT = (
    "flow-unipc: use_exponential_sigmas / use_beta_sigmas build VP sigmas without the flow conversion (sigma > 1)",
    "flow-dpmpp: use_karras/exponential/beta_sigmas, use_lu_lambdas take precedence over use_flow_sigmas (VP sigmas)",
    "sd-unipc: set_timesteps takes no custom timesteps for non-flow models, so no AYS table",
    "AYS in diffusers: AysSchedules has 10-step rows only; used at NFE 10",
)


def _scheduler_class(host: Host):
    import diffusers

    return {
        "sd-dpmpp": diffusers.DPMSolverMultistepScheduler,
        "sd-unipc": diffusers.UniPCMultistepScheduler,
        "sd-euler": diffusers.EulerDiscreteScheduler,
        "flow-euler": diffusers.FlowMatchEulerDiscreteScheduler,
        "flow-unipc": diffusers.UniPCMultistepScheduler,
        "flow-dpmpp": diffusers.DPMSolverMultistepScheduler,
    }[host.name]


def _base_config(host: Host) -> dict:
    if host.name == "sd-dpmpp":
        return {**SD_CONFIG, "algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"}
    if host.name == "sd-unipc":
        return {**SD_CONFIG, "solver_order": 2, "solver_type": "bh2"}
    if host.name == "sd-euler":
        return dict(SD_CONFIG)
    if host.name == "flow-euler":
        return {"num_train_timesteps": NUM_TRAIN, "shift": FLOW_SHIFT}
    flow = {"use_flow_sigmas": True, "flow_shift": FLOW_SHIFT, "prediction_type": "flow_prediction"}
    if host.name == "flow-unipc":
        return {"num_train_timesteps": NUM_TRAIN, "solver_order": 2, "solver_type": "bh2", **flow}
    return {
        "num_train_timesteps": NUM_TRAIN,
        "algorithm_type": "dpmsolver++",
        "solver_order": 2,
        "final_sigmas_type": "zero",
        **flow,
    }


def _optsteps_get_kwargs(label: str) -> dict:
    return {"shift": FLOW_SHIFT} if label == "flow-s3" else {}


def _optsteps_key(label: str) -> str:
    return "flow" if label == "flow-s3" else label


class Runner:
    """One (host, key): a scheduler built once; ``run(model, x_T, nfe)`` returns x₀ and the model's call count."""

    def __init__(self, host: Host, key: str) -> None:
        self.host, self.key = host, key
        self.is_optsteps = key in host.optsteps
        self.scheduler = None
        if host.family == "kd":
            return
        cls = _scheduler_class(host)
        config = _base_config(host)
        if not self.is_optsteps:
            if key in SD_SPACINGS:
                config["timestep_spacing"] = key
            elif key.startswith("use_"):
                config[key] = True
        self.scheduler = cls.from_config(config)
        if self.is_optsteps and host.name in ("sd-dpmpp", "sd-unipc", "flow-unipc", "flow-dpmpp"):
            from optsteps_loader.diffusers import configure_scheduler

            configure_scheduler(self.scheduler, _optsteps_key(key), **_optsteps_get_kwargs(key))

    def applies(self, nfe: int) -> bool:
        return not self.key.startswith("ays") or self.host.family == "kd" or nfe == 10

    def set_kwargs(self, nfe: int) -> dict:
        """What the pipeline hands ``retrieve_timesteps`` for this key."""
        if self.key.startswith("ays-sd"):
            from diffusers.schedulers import AysSchedules

            row = "StableDiffusionXLTimesteps" if self.key.startswith("ays-sdxl") else "StableDiffusionTimesteps"
            return {"timesteps": list(AysSchedules[row])}
        if self.is_optsteps and self.host.name in ("sd-euler", "flow-euler"):
            import optsteps_loader
            from optsteps_loader.diffusers import pipeline_kwargs

            steps = optsteps_loader.get(
                _optsteps_key(self.key), nfe, solver="dpmpp", order=1, ending="zero", **_optsteps_get_kwargs(self.key)
            )
            return pipeline_kwargs(self.scheduler, steps)
        return {}

    def kd_sigmas(self, nfe: int) -> list[float]:
        if self.is_optsteps:
            from optsteps_loader.kdiffusion import get_sigmas

            sampler = "euler" if self.host.name == "kd-euler" else "dpmpp_2m"
            s = get_sigmas(_optsteps_key(self.key), nfe, sampler=sampler, dtype=torch.float64)
            return [float(v) for v in s]
        return kd_recipe(self.key, nfe)

    def run(self, model: Model, x_start: np.ndarray, nfe: int) -> torch.Tensor:
        x = torch.from_numpy(np.array(x_start, dtype=np.float64))
        if self.host.family == "kd":
            sigmas = self.kd_sigmas(nfe)
            x = x * math.sqrt(1.0 + sigmas[0] ** 2)  # ComfyUI: noise · √(1 + σ_max²) at full denoise
            loop = kd_euler if self.host.name == "kd-euler" else kd_dpmpp_2m
            return loop(model.denoiser, x, sigmas)
        return pipeline_loop(self.scheduler, model, x, nfe, **self.set_kwargs(nfe))


def pipeline_loop(
    scheduler, model: Callable, latents: torch.Tensor, num_inference_steps: int, **kwargs
) -> torch.Tensor:
    """diffusers' ``retrieve_timesteps`` and denoising loop: ``latents`` is the pipeline's randn tensor."""
    if kwargs.get("timesteps") is not None or kwargs.get("sigmas") is not None:
        scheduler.set_timesteps(**kwargs)
    else:
        scheduler.set_timesteps(num_inference_steps)
    latents = latents * getattr(scheduler, "init_noise_sigma", 1.0)  # FlowMatchEuler has none (SD3: randn)
    scale = getattr(scheduler, "scale_model_input", lambda sample, t: sample)
    for t in scheduler.timesteps:
        model_input = scale(latents, t)
        latents = scheduler.step(model(model_input, t), t, latents, return_dict=False)[0]
    return latents


# ---- the measurement -------------------------------------------------------------------------------------


def truth_for(problem, family: str):
    lam0 = FLOW_LAMBDA_START if family == "flow" else SD_LAMBDA_START
    return ground_truth(problem.mixture, lam0, math.inf, batch=problem.batch, seed=problem.seed)


def measure(hosts: Sequence[Host], problems, nfes: Sequence[int], log=print) -> dict:
    """errors[(host, key, nfe, problem)] = (mean L2, median L2, model calls)."""
    errors: dict = {}
    for host in hosts:
        t0 = time.time()
        family = "flow" if host.family == "flow" else "sd"
        truths = {p.name: truth_for(p, family) for p in problems}
        for key in (*host.optsteps, *host.recipes):
            runner = Runner(host, key)
            for nfe in nfes:
                if not runner.applies(nfe):
                    continue
                for p in problems:
                    truth = truths[p.name]
                    model = (FlowModel if family == "flow" else SDModel)(p.mixture)
                    with torch.no_grad():
                        out = runner.run(model, truth.x_start, nfe).numpy()
                    if runner.is_optsteps and model.calls != nfe:
                        raise RuntimeError(
                            f"{host.name} {key!r} made {model.calls} model calls for NFE {nfe}: optsteps promises "
                            "exactly NFE calls"
                        )
                    err = np.linalg.norm(out - truth.x_end, axis=1)
                    if not np.all(np.isfinite(err)):
                        err = np.full_like(err, np.inf)
                    errors[(host.name, key, nfe, p.name)] = (float(err.mean()), float(np.median(err)), model.calls)
        log(f"# {host.name}: {time.time() - t0:.1f} s")
    return errors


def _gmean(values) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.exp(np.mean(np.log(v)))) if v.size else float("nan")


def summarise(errors: dict, host: Host, key: str, nfe: int, problems, col: int) -> dict | None:
    """Ratios of ``key`` at one NFE (col 0: mean L2, 1: median L2)."""
    names = [p.name for p in problems]
    if (host.name, key, nfe, names[0]) not in errors:
        return None
    recipes = [r for r in host.recipes if (host.name, r, nfe, names[0]) in errors]
    opt = np.array([errors[(host.name, key, nfe, n)][col] for n in names])
    rec = np.array([[errors[(host.name, r, nfe, n)][col] for n in names] for r in recipes])  # (R, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.array([_gmean(row) for row in rec])
    best = int(np.nanargmin(score))
    pp_best = rec.min(axis=0)
    kind_of = {p.name: p.profile for p in problems}
    by_kind = defaultdict(list)
    for i, n in enumerate(names):
        by_kind[kind_of[n]].append(opt[i] / pp_best[i])
    kind_ratio = {k: _gmean(v) for k, v in by_kind.items()}
    worst = max(kind_ratio, key=kind_ratio.get)
    return {
        "vs_best": _gmean(opt / rec[best]),
        "vs_pp": _gmean(opt / pp_best),
        "best": recipes[best],
        "worst_kind": worst,
        "worst_ratio": kind_ratio[worst],
        "by_kind": kind_ratio,
        "by_kind_best": {
            k: _gmean([opt[i] / rec[best, i] for i, n in enumerate(names) if kind_of[n] == k]) for k in by_kind
        },
        "losses": int(np.sum(opt > rec[best])),
        "n": len(names),
    }


def report(errors: dict, hosts: Sequence[Host], problems, nfes: Sequence[int], by_kind: bool, echo=print) -> None:
    kind_names = list(dict.fromkeys(p.profile for p in problems))
    for host in hosts:
        echo(f"\n## {host.name}: {host.label}")
        echo(f"recipes: {', '.join(host.recipes)}")
        for key in host.optsteps:
            echo(f"\n### optsteps {key!r}")
            echo(
                "| NFE | vs best (mean) | vs best (median) | vs pp-best (mean) | vs pp-best (median) "
                "| worst kind (mean, vs pp-best) | best recipe (mean) | problems above best |"
            )
            echo("|---|---|---|---|---|---|---|---|")
            rows = []
            for nfe in nfes:
                m = summarise(errors, host, key, nfe, problems, 0)
                d = summarise(errors, host, key, nfe, problems, 1)
                if m is None:
                    continue
                rows.append((m, d))
                echo(
                    f"| {nfe} | {m['vs_best']:.3f} | {d['vs_best']:.3f} | {m['vs_pp']:.3f} | {d['vs_pp']:.3f} "
                    f"| {m['worst_kind']} {m['worst_ratio']:.3f} | {m['best']} | {m['losses']}/{m['n']} |"
                )
            if rows:
                cols = [_gmean(r[c][f] for r in rows) for f in ("vs_best", "vs_pp") for c in (0, 1)]
                echo("| all | " + " | ".join(f"{v:.3f}" for v in cols) + " | | | |")
            if by_kind:
                echo(f"\nby kind, {key!r}: mean-L2 ratio vs the best single recipe / vs the per-problem best")
                echo("| NFE | " + " | ".join(kind_names) + " |")
                echo("|---|" + "---|" * len(kind_names))
                for nfe in nfes:
                    m = summarise(errors, host, key, nfe, problems, 0)
                    if m is None:
                        continue
                    cells = [f"{m['by_kind_best'][k]:.2f} / {m['by_kind'][k]:.2f}" for k in kind_names]
                    echo(f"| {nfe} | " + " | ".join(cells) + " |")


def header(argv: Sequence[str], problems, echo=print) -> None:
    import diffusers

    import optsteps_loader

    data_version = optsteps_loader.info("scaled-linear").get("data_version")
    echo("# bench_hosts")
    echo(f"command: python benchmarks/bench_hosts.py {' '.join(argv)}".rstrip())
    echo(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, numpy {np.__version__}"
    )
    echo(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    echo(f"registry data_version: {data_version}")
    counts = defaultdict(int)
    for p in problems:
        counts[p.profile] += 1
    echo(
        "kinds (held out, builder/select/kinds.py): "
        + ", ".join(f"{k} ({n})" for k, n in counts.items())
        + f"; {len(problems)} problems"
    )
    for line in LEFT_OUT:
        echo(f"left out: {line}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"kinds {QUICK_KINDS}, NFEs {QUICK_NFES}")
    parser.add_argument("--nfe", help="comma-separated NFEs (default 5,6,8,10,12,15,20,25,30)")
    parser.add_argument("--kinds", help=f"comma-separated kinds of {tuple(kinds_mod.KINDS)}")
    parser.add_argument("--hosts", help=f"comma-separated hosts of {tuple(HOSTS)}")
    parser.add_argument("--by-kind", action="store_true", help="per-kind breakdown")
    parser.add_argument("--batch", type=int, help="override the kinds' batch size")
    args = parser.parse_args(argv)
    nfes = tuple(int(v) for v in args.nfe.split(",")) if args.nfe else (QUICK_NFES if args.quick else NFES)
    kinds = args.kinds.split(",") if args.kinds else (list(QUICK_KINDS) if args.quick else None)
    hosts = [HOSTS[h] for h in args.hosts.split(",")] if args.hosts else list(HOSTS.values())
    torch.set_num_threads(1)
    problems = kinds_mod.problems(kinds, batch=args.batch)
    header(argv, problems)
    start = time.time()
    with single_threaded_blas(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        errors = measure(hosts, problems, nfes)
    mismatches = sorted(
        {str(w.message).splitlines()[0] for w in caught if "SolverMismatch" in type(w.message).__name__}
    )
    for line in mismatches:
        print(f"warning: {line}")
    report(errors, hosts, problems, nfes, args.by_kind)
    print(f"\nruntime: {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
