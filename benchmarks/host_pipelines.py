"""The host benchmark's pipelines (`bench_hosts.py`): exact-denoiser models behind diffusers' timestep
interfaces, k-diffusion's deterministic loops, the recipes each host offers, and a runner that samples one
(host, key or recipe, NFE) the way the host's pipeline does. What is measured, and how, is `bench_hosts.py`'s
docstring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from builder.select.mixtures import vp_alpha_sigma

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
            "sd-dpmpp3",
            "sd",
            "diffusers DPMSolverMultistep, DPM++ 3M, final_sigmas_type=zero (SD/SDXL eps)",
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
        "sd-dpmpp3": diffusers.DPMSolverMultistepScheduler,
        "sd-unipc": diffusers.UniPCMultistepScheduler,
        "sd-euler": diffusers.EulerDiscreteScheduler,
        "flow-euler": diffusers.FlowMatchEulerDiscreteScheduler,
        "flow-unipc": diffusers.UniPCMultistepScheduler,
        "flow-dpmpp": diffusers.DPMSolverMultistepScheduler,
    }[host.name]


def _base_config(host: Host) -> dict:
    if host.name in ("sd-dpmpp", "sd-dpmpp3"):
        order = 3 if host.name == "sd-dpmpp3" else 2
        return {**SD_CONFIG, "algorithm_type": "dpmsolver++", "solver_order": order, "final_sigmas_type": "zero"}
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
        if self.is_optsteps and host.name in ("sd-dpmpp", "sd-dpmpp3", "sd-unipc", "flow-unipc", "flow-dpmpp"):
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
