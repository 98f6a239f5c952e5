"""``calibrate`` on the learned digits network (CPU) and, where CUDA is available, an SD-sized random UNet.

    python benchmarks/bench_calibrate.py [--nfe 5 8] [--noises 128] [--seeds 0 1] [--eval-noises 256] [--quick]
    python benchmarks/bench_calibrate.py --solver dpmpp --order 2 --ending zero   # DPM++ 2M as diffusers runs it

**Digits** (``builder.calibrate.examples:digits``, vp-linear; UniPC bh2 order 3 t_ε unless ``--solver``,
``--order``, ``--ending`` say otherwise; for ``zero`` every grid is compared with the model's x̂₀ at the
teacher's answer, :func:`builder.calibrate.teacher_answers`): for each seed, calibrate
NFE 5 and 8 (``noises`` noises, half held out), printing wall time and model calls (per-sample
evaluations). Then every calibrated grid, the registry entry and every rule are measured on an independent
evaluation set (``eval-noises`` noises from seed 1000, its own teacher, never used by any calibration):
mean L2 to the teacher and the ratios calibrated/registry and calibrated/best rule. Stability: the two
seeds' calibrated grids' evaluation errors differ by less than ``--tolerance`` (relative, default 5 %).

**SD-sized UNet** (only with ``torch.cuda.is_available()``): a random-weight diffusers
``UNet2DConditionModel`` with Stable Diffusion 1.5's configuration (~860 M parameters) in float16 on
(4, 64, 64) latents, text embeddings (77 × 768) and classifier-free guidance 7.5 inside the callable,
scaled-linear, NFE 8; a few noises and iterations so it runs unattended in a few minutes. Prints the teacher
time, the time per iteration, the method chosen, and the peak memory (``torch.cuda.max_memory_allocated``).
A random network has no data distribution, so only the cost figures mean anything there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from builder.calibrate import calibrate, teacher_answers
from builder.calibrate.examples import digits
from builder.calibrate.model import ModelDenoiser
from builder.calibrate.optimize import grid_errors
from builder.calibrate.teacher import teacher
from builder.select.refine import rule_grids
from builder.solve.schedules import get_schedule
from optsteps_loader.vocabulary import ENDINGS, ORDERS, SOLVERS


def digits_figures(args: argparse.Namespace, cache: Path) -> bool:
    model = digits()
    sched = get_schedule("vp-linear")
    sampler = {"solver": args.solver, "order": args.order, "ending": args.ending}
    spec = sampler | ({"variant": "bh2"} if args.solver == "unipc" else {})
    grids: dict[tuple[int, int], np.ndarray] = {}
    registry: dict[int, np.ndarray] = {}
    print(
        f"digits, vp-linear, {args.solver} order {args.order}, ending {args.ending}, {args.noises} noises "
        f"({args.noises // 2} held out) per calibration"
    )
    for seed in args.seeds:
        t0 = time.perf_counter()
        res = calibrate(
            model,
            schedule="vp-linear",
            nfe=args.nfe,
            noises=args.noises,
            seed=seed,
            cache=cache,
            progress=False,
            restarts=args.restarts,
            **sampler,
        )
        print(
            f"  seed {seed}: {time.perf_counter() - t0:.1f} s, {res.model_calls} model calls "
            f"(teacher {res.teacher.steps} steps, est. error {res.teacher.error:.2e}, cached {res.teacher.cached})"
        )
        for n, fit in res.fits.items():
            grids[(seed, n)] = fit.x
            print(
                f"    NFE {n}: {fit.method} ({fit.method_reason}); start {fit.start}, restart {fit.restart}, "
                f"{fit.nit} iterations; "
                f"held-out {fit.held_out_start:.4f} -> {fit.held_out:.4f}"
            )
            if fit.timings:
                ratio = fit.timings["gradient_seconds"] / fit.timings["loss_seconds"]
                print(f"      one gradient costs {ratio:.1f} loss evaluations (a finite difference: {n})")
    import optsteps_loader

    for n in args.nfe:
        registry[n] = np.array(optsteps_loader.get("vp-linear", n, profile="generic", **sampler).lambdas)
    denoise = ModelDenoiser(model, sched, "sample", (64,))
    ev = teacher(
        denoise,
        lambda_start=sched.lambda_start,
        lambda_end=sched.lambda_end,
        noises=args.eval_noises,
        seed=1000,
        cache=cache,
    )
    answers = teacher_answers(denoise, ev, sched.lambda_end, args.ending)
    ok = True
    print(f"evaluation set: {args.eval_noises} noises (seed 1000), mean L2 to the teacher")
    for n in args.nfe:
        rules = rule_grids(sched, n, args.ending)
        errs = {name: grid_errors(g, denoise, ev.x_start, answers, spec, 64).mean() for name, g in rules.items()}
        best = min(errs, key=errs.get)
        reg = grid_errors(registry[n], denoise, ev.x_start, answers, spec, 64).mean()
        cal = {s: grid_errors(grids[(s, n)], denoise, ev.x_start, answers, spec, 64).mean() for s in args.seeds}
        cells = "  ".join(f"seed {s} {e:.4f}" for s, e in cal.items())
        print(f"  NFE {n}: calibrated {cells} | registry {reg:.4f} | best rule {best} {errs[best]:.4f}")
        for s, e in cal.items():
            print(f"    seed {s}: x registry {e / reg:.3f}, x best rule {e / errs[best]:.3f}")
            ok &= e < reg and e < errs[best]
        spread = (max(cal.values()) - min(cal.values())) / min(cal.values())
        stable = spread <= args.tolerance
        ok &= stable
        print(f"    seeds differ by {100 * spread:.1f} % (tolerance {100 * args.tolerance:.0f} %): {stable}")
    return ok


def unet_figures(args: argparse.Namespace, cache: Path) -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        cross_attention_dim=768,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=8,
        layers_per_block=2,
    )
    unet = unet.to("cuda", torch.float16).eval().requires_grad_(False)
    params = sum(p.numel() for p in unet.parameters())
    cond = torch.randn(1, 77, 768, device="cuda", dtype=torch.float16)
    uncond = torch.zeros_like(cond)
    scale = 7.5

    # A random network is no denoiser, and calibrate refuses one (its x̂₀ would pass the noise through). The
    # callable therefore returns the exact ε-prediction for N(0, I) data, E[ε | x_t] = σ_t x_t (VP), plus a
    # small multiple of the guided UNet output: the UNet runs at full cost, the flow is a real one.
    abar = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0)
    sigma_of_t = (1 - abar).sqrt().to("cuda", torch.float16)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        emb = torch.cat([uncond.expand(b, -1, -1), cond.expand(b, -1, -1)])
        eps = unet(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=emb).sample
        e_u, e_c = eps.chunk(2)
        guided = e_u + scale * (e_c - e_u)
        return sigma_of_t[t.long()].view(-1, 1, 1, 1) * x + 1e-3 * guided

    noises, iters, teacher_steps = (4, 2, 16) if args.quick else (8, 4, 40)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = calibrate(
        model,
        prediction="epsilon",
        shape=(4, 64, 64),
        schedule="scaled-linear",
        nfe=8,
        noises=noises,
        device="cuda",
        teacher_steps=teacher_steps,
        teacher_rtol=1.0,  # the UNet's term is rounded to integer timesteps: only the cost is measured here
        batch=noises,
        maxiter=iters,
        patience=iters,
        cache=cache,
        progress=False,
    )
    fit = res.fits[8]
    seconds = time.perf_counter() - t0
    print(
        f"SD-sized random UNet2DConditionModel ({params / 1e6:.0f} M parameters, {res.dtype}, CFG 7.5 inside the "
        f"callable): {noises} noises, teacher {teacher_steps} steps, NFE 8, {fit.nit} iterations "
        f"({fit.method}: {fit.method_reason})"
    )
    print(
        f"  {seconds:.1f} s in all, {res.model_calls} model calls, {seconds / max(1, fit.nit):.1f} s per "
        f"iteration (upper bound, teacher included); peak memory "
        f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 8])
    parser.add_argument("--noises", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--eval-noises", type=int, default=256)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--solver", choices=SOLVERS, default="unipc")
    parser.add_argument("--order", type=int, choices=ORDERS, default=3)
    parser.add_argument("--ending", choices=ENDINGS, default="eps")
    parser.add_argument("--restarts", type=int, default=0, help="perturbed restarts per calibration")
    parser.add_argument("--quick", action="store_true", help="fewer noises (a smoke run)")
    parser.add_argument("--no-gpu", action="store_true", help="skip the UNet part even where CUDA is available")
    args = parser.parse_args()
    if args.quick:
        args.noises, args.eval_noises = 32, 64
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="optsteps-bench-calibrate-") as tmp:
        ok = digits_figures(args, Path(tmp))
        if torch.cuda.is_available() and not args.no_gpu:
            unet_figures(args, Path(tmp))
    print("calibrated beats the registry entry and the best rule, stable across seeds:", ok)


if __name__ == "__main__":
    main()
