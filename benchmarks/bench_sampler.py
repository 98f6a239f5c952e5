"""Per-step overhead of the reference samplers against diffusers' ``scheduler.step()``.

CPU part: a trivial model on a 1×4×8×8 float32 tensor, 10 steps; each full sampling run is timed (ours:
``sample()`` including its coefficient computation; diffusers: ``set_timesteps`` plus the ``step()`` loop),
the bare model calls are subtracted, and the per-step overhead is printed with the ratio (goal: ours ≤ 1/4
of diffusers'). GPU part (only with CUDA): 10-step sampling of a small random UNet against 10 bare model
calls (goal: within 5 %).

Run: ``python benchmarks/bench_sampler.py``.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings

import torch

from optsteps_loader import dpmpp, unipc
from optsteps_loader.steps import Steps

NFE = 10


def sd_steps(alphas_cumprod, nfe: int = NFE) -> Steps:
    """A 10-step grid on Stable Diffusion's discrete schedule (uniform integer timesteps down to 1)."""
    timesteps = [round(999 - i * 998 / nfe) for i in range(nfe + 1)]
    abar = [float(alphas_cumprod[n]) for n in timesteps]
    alpha = [math.sqrt(a) for a in abar]
    sigma = [math.sqrt(1 - a) for a in abar]
    return Steps(
        schedule="scaled-linear",
        nfe=nfe,
        order=3,
        p=1,
        solver="unipc",
        t=tuple((n + 1) / 1000 for n in timesteps),
        lambdas=tuple(math.log(a / s) for a, s in zip(alpha, sigma, strict=True)),
        alpha_t=tuple(alpha),
        sigma_t=tuple(sigma),
        sigmas=tuple(s / a for a, s in zip(alpha, sigma, strict=True)),
        timesteps=tuple(timesteps),
        step_orders=tuple(min(3, s + 1, nfe - s) for s in range(nfe)),
        tau=3,
        objective=0.0,
        time_input="timestep",
    )


def trivial_model(x, timestep):
    return x * 0.5


def best_time(fn, repeat: int = 30, number: int = 20) -> float:
    """Median over ``repeat`` of the mean time of ``number`` calls (seconds)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def cpu_benchmark() -> None:
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # numpy 2 notice inside diffusers
    betas = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    x = torch.randn(1, 4, 8, 8)
    ts = torch.tensor(999)

    bare = best_time(lambda: [trivial_model(x, ts) for _ in range(NFE)]) / NFE
    print(f"CPU, 1x4x8x8 float32, {NFE} steps, 1 thread; bare trivial model call: {bare * 1e6:.1f} us")
    print(f"{'sampler':<34}{'ours us/step':>14}{'diffusers us/step':>20}{'ratio':>8}")
    cases = [
        (
            "UniPC bh2 order 3 (+UniC)",
            UniPCMultistepScheduler,
            {"solver_order": 3, "solver_type": "bh2"},
            lambda s: unipc.sample(trivial_model, x, s, order=3, variant="bh2"),
        ),
        (
            "UniPC bh1 order 2 (+UniC)",
            UniPCMultistepScheduler,
            {"solver_order": 2, "solver_type": "bh1"},
            lambda s: unipc.sample(trivial_model, x, s, order=2, variant="bh1"),
        ),
        (
            "DPM-Solver++ 2M",
            DPMSolverMultistepScheduler,
            {"solver_order": 2},
            lambda s: dpmpp.sample(trivial_model, x, s, order=2),
        ),
        (
            "DPM-Solver++ 3M",
            DPMSolverMultistepScheduler,
            {"solver_order": 3},
            lambda s: dpmpp.sample(trivial_model, x, s, order=3),
        ),
    ]
    for name, cls, kwargs, ours_fn in cases:
        scheduler = cls(**betas, **kwargs)
        steps = sd_steps(scheduler.alphas_cumprod)

        def theirs(scheduler=scheduler):
            scheduler.set_timesteps(NFE)
            sample = x
            for t in scheduler.timesteps:
                sample = scheduler.step(trivial_model(sample, t), t, sample).prev_sample
            return sample

        ours_step = best_time(lambda steps=steps, fn=ours_fn: fn(steps)) / NFE - bare
        theirs_step = best_time(theirs) / NFE - bare
        print(f"{name:<34}{ours_step * 1e6:>14.1f}{theirs_step * 1e6:>20.1f}{ours_step / theirs_step:>8.3f}")
    print("(overhead per step = time per step minus the bare model call; goal ratio <= 0.25)")


def gpu_benchmark() -> None:
    if not torch.cuda.is_available():
        print("GPU benchmark skipped: torch.cuda.is_available() is False")
        return
    from diffusers import UNet2DModel

    device = torch.device("cuda")
    unet = (
        UNet2DModel(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            block_out_channels=(64, 128, 128),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        )
        .to(device, torch.float16)
        .eval()
    )
    steps = sd_steps([0.9999 ** (n + 1) * (1 - n / 1100) for n in range(1000)])
    x = torch.randn(8, 4, 32, 32, device=device, dtype=torch.float16)
    ts = torch.full((8,), 500, device=device, dtype=torch.long)

    def model(x, t):
        return unet(x, t).sample

    def timed(fn, repeat=20):
        with torch.inference_mode():
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    def trivial(x, t):
        return x * 0.5

    name = torch.cuda.get_device_name()
    for label, net in [("small UNet (8x4x32x32 fp16)", model), ("trivial model x*0.5 (sampler work alone)", trivial)]:
        bare = timed(lambda net=net: [net(x, ts) for _ in range(NFE)])
        for solver, fn in [
            ("UniPC bh2 order 3", lambda net=net: unipc.sample(net, x, steps, order=3, variant="bh2")),
            ("DPM-Solver++ 2M", lambda net=net: dpmpp.sample(net, x, steps, order=2)),
        ]:
            total = timed(fn)
            print(
                f"GPU {name}: {solver}, {NFE} steps, {label}: {total * 1e3:.2f} ms vs {NFE} bare calls "
                f"{bare * 1e3:.2f} ms (+{(total / bare - 1) * 100:.1f} %, {(total - bare) / NFE * 1e3:.3f} ms per step)"
            )


if __name__ == "__main__":
    cpu_benchmark()
    gpu_benchmark()
