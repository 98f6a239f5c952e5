"""Train the digits denoiser shipped as builder/select/data/digits_denoiser.npz (run once; needs sklearn).

Data: scikit-learn's bundled 8×8 digits (1797 images, 64 pixels, values 0..16), scaled to [−1, 1] by
x/8 − 1 (as ``scripts/fit_digits_gmm.py``). Model: :class:`builder.select.digits_denoiser.DigitsDenoiser` (EDM
preconditioning around the data mean μ, σ_d = RMS of x₀ − μ; residual SiLU MLP; see its module docstring).
Each step draws a batch of images, λ ~ U[λ_min, λ_max] per image and ε ~ N(0, I), forms the VP-normalised
x = α̂ x₀ + σ̂ ε (α̂ = (1 + e^{−2λ})^{−1/2}, σ̂ = (1 + e^{2λ})^{−1/2}) and minimises

    L = mean ‖F_θ(c_in (x̃ − μ), e(λ)) − (x₀ − μ − c_skip (x̃ − μ)) / c_out‖²,   x̃ = x/α̂,

i.e. ‖x̂₀ − x₀‖²/c_out², with Adam and a cosine learning-rate decay. [λ_min, λ_max] = [−9, 8] covers every
registry schedule's endpoints (the widest: flow shift 3 starts at λ_T ≈ −8.01, flow ends at λ_ε ≈ 6.91).
Deterministic: fixed seeds, CPU, one thread. Writes plain float32 arrays and the hyperparameters (np.savez).

    python scripts/train_digits_denoiser.py [--steps 20000] [--out builder/select/data/digits_denoiser.npz]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_RANGE = (-9.0, 8.0)
FREQUENCIES = (0.25, 0.5, 1.0, 2.0)  # rad per unit λ: smooth in λ, as a real network's x̂₀ is
LAMBDA_SCALE = 8.0
HIDDEN = 160
DEPTH = 3
EVAL_LAMBDAS = (-6.0, -3.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0)


def load_data() -> np.ndarray:
    """The digits as float32 (1797, 64) in [−1, 1]: x/8 − 1."""
    from sklearn.datasets import load_digits

    return (load_digits().data.astype(np.float64) / 8.0 - 1.0).astype(np.float32)


def build_network(data: np.ndarray):
    """A fresh DigitsDenoiser (float32) with μ = data mean, σ_d = RMS(x₀ − μ); weights from torch's seed."""
    from builder.select.digits_denoiser import DigitsDenoiser

    mean = data.mean(axis=0)
    sigma_data = float(np.sqrt(np.mean((data - mean) ** 2)))
    return DigitsDenoiser(
        dim=data.shape[1],
        hidden=HIDDEN,
        depth=DEPTH,
        frequencies=np.asarray(FREQUENCIES, dtype=np.float32),
        lambda_scale=LAMBDA_SCALE,
        data_mean=mean,
        sigma_data=sigma_data,
        lambda_range=LAMBDA_RANGE,
    )


def weighted_loss(network, x0, lam, eps):
    """mean ‖F_θ − (x₀ − μ − c_skip (x̃ − μ))/c_out‖² for VP-normalised x = α̂ x₀ + σ̂ ε."""
    import torch

    alpha = torch.rsqrt(1.0 + torch.exp(-2.0 * lam))[:, None]
    sigma = torch.rsqrt(1.0 + torch.exp(2.0 * lam))[:, None]
    x = alpha * x0 + sigma * eps
    inv_alpha, c_skip, c_out, c_in = network.preconditioning(lam)
    centred = x * inv_alpha - network.data_mean
    target = (x0 - network.data_mean - c_skip * centred) / c_out
    return torch.mean((network.raw(c_in * centred, network.embed(lam)) - target) ** 2)


def train(data: np.ndarray, steps: int, batch: int, lr: float, seed: int):
    """Adam + cosine decay; returns (network, per-step losses)."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    network = build_network(data)
    x_all = torch.from_numpy(data)
    opt = torch.optim.Adam(network.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * k / steps)))
    lo, hi = LAMBDA_RANGE
    losses = np.empty(steps)
    for k in range(steps):
        idx = torch.randint(0, x_all.shape[0], (batch,), generator=gen)
        lam = lo + (hi - lo) * torch.rand(batch, generator=gen)
        eps = torch.randn(batch, x_all.shape[1], generator=gen)
        loss = weighted_loss(network, x_all[idx], lam, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        opt.step()
        sched.step()
        losses[k] = loss.item()
        if (k + 1) % 500 == 0:
            print(f"step {k + 1:>6}  loss (mean of last 500) {losses[k - 499 : k + 1].mean():.4f}", flush=True)
    return network.eval(), losses


def report_denoising(network, data: np.ndarray, seed: int) -> None:
    """x̂₀ RMSE per pixel against the noise level s = σ̂/α̂ at a few λ (fixed noise)."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    x0 = torch.from_numpy(data)
    eps = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        for lam in EVAL_LAMBDAS:
            alpha, sigma = 1 / math.sqrt(1 + math.exp(-2 * lam)), 1 / math.sqrt(1 + math.exp(2 * lam))
            x0_hat = network(alpha * x0 + sigma * eps, lam)
            rmse = float(torch.sqrt(torch.mean((x0_hat - x0) ** 2)))
            print(f"λ {lam:+5.1f}: x̂₀ RMSE {rmse:.4f}   noise s = e^-λ {math.exp(-lam):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "builder" / "quality" / "data" / "digits_denoiser.npz")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    from builder.select.digits_denoiser import network_to_arrays

    torch.set_num_threads(1)
    data = load_data()
    started = time.perf_counter()
    network, losses = train(data, args.steps, args.batch, args.lr, args.seed)
    elapsed = time.perf_counter() - started
    print(f"trained {args.steps} steps in {elapsed:.1f} s; final loss (mean of last 500) {losses[-500:].mean():.4f}")
    report_denoising(network, data, args.seed)
    np.savez(args.out, **network_to_arrays(network))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
