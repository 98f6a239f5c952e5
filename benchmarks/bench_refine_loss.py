"""What one evaluation of the refine stage's loss costs: forward and backward over the fit split.

The refine stage (:mod:`builder.select.refine`) spends nearly all its time here: L-BFGS-B asks for the loss
and its gradient up to ``maxiter`` times per NFE, and each evaluation runs the differentiable sampler over
every fit problem. Timed for the product's :class:`builder.select.differentiable.TorchMixture` against a
literal port of the formulas (below, :class:`LiteralMixture`: one (B, K, D) tensor per term, a division by
v_k in the batch) on the same problems, grid and sampler, alternately, median of ``--repeat``; it prints the
ratio and how far the two losses and gradients are apart (relative).

    taskset -c 0 python benchmarks/bench_refine_loss.py              # vp-linear, NFE 10, UniPC-3 and DPM++ 2M
    python benchmarks/bench_refine_loss.py --nfe 6 --ending zero
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from builder.select import family
from builder.select.differentiable import DT, vp
from builder.select.mixtures import GaussianMixture
from builder.select.refine import Bound, _mean_errors, bind
from builder.select.robust import solver_spec
from builder.solve.schedules import get_schedule
from optsteps_loader.vocabulary import ENDINGS


class LiteralMixture:
    """E[x₀ | x_λ] term by term, as the formulas read: y_k = x − α̂μ_k (diagonal) or z_k = U_kᵀ(x − α̂μ_k)
    (full) as (B, K, D) tensors, Σ_d z²/v by division, r_k (α̂ s_k/v_k ⊙ z_k) formed before mapping back."""

    def __init__(self, mixture: GaussianMixture) -> None:
        self.K, self.D = mixture.means.shape
        self.logw = torch.tensor(np.log(mixture.weights), dtype=DT)
        self.mu = torch.tensor(mixture.means, dtype=DT)
        self.s = torch.tensor(mixture.eigvals, dtype=DT)
        self.diagonal = mixture.eigvecs is None
        if not self.diagonal:
            u = np.asarray(mixture.eigvecs, dtype=np.float64)
            self.proj = torch.tensor(u.transpose(1, 0, 2).reshape(self.D, self.K * self.D))
            self.pmu = torch.tensor(np.einsum("kdr,kd->kr", u, mixture.means))

    def __call__(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        a, sg = vp(lam)
        v = a * a * self.s + sg * sg
        gain = a * self.s / v
        if self.diagonal:
            y = x[:, None, :] - a * self.mu[None]
            logp = self.logw - 0.5 * torch.log(v).sum(-1) - 0.5 * (y * y / v).sum(-1)
            r = torch.softmax(logp, dim=-1)
            return r @ self.mu + torch.einsum("bk,bkd->bd", r, gain * y)
        b = x.shape[0]
        z = (x @ self.proj).view(b, self.K, self.D) - a * self.pmu
        logp = self.logw - 0.5 * torch.log(v).sum(-1) - 0.5 * (z * z / v).sum(-1)
        r = torch.softmax(logp, dim=-1)
        return r @ self.mu + (r[:, :, None] * gain * z).reshape(b, -1) @ self.proj.T


def _loss_and_grad(lam0: torch.Tensor, bound: Bound, spec: dict) -> tuple[float, np.ndarray, float]:
    lam = lam0.clone().requires_grad_(True)
    start = time.perf_counter()
    loss = torch.stack(_mean_errors(lam, bound, spec)).log().mean()
    loss.backward()
    return loss.item(), lam.grad.numpy().copy(), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schedule", default="vp-linear")
    ap.add_argument("--nfe", type=int, default=10)
    ap.add_argument("--ending", choices=ENDINGS, default="eps")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)

    schedule = get_schedule(args.schedule)
    problems = family.split("fit")
    product = bind(problems, schedule.lambda_start, schedule.lambda_end, args.ending)
    literal = dataclasses.replace(product, denoisers=tuple(LiteralMixture(p.mixture) for p in problems))
    nodes = args.nfe + 1 if args.ending == "eps" else args.nfe
    lam0 = torch.linspace(schedule.lambda_start, schedule.lambda_end, args.nfe + 1, dtype=DT)[:nodes]
    print(f"{args.schedule}, NFE {args.nfe}, ending {args.ending}, {len(problems)} fit problems, one thread")
    print("| sampler | literal (ms) | product (ms) | product ÷ literal | loss rel. diff | grad rel. diff |")
    print("|---|---|---|---|---|---|")
    for solver, order in (("unipc", 3), ("dpmpp", 2)):
        spec = solver_spec(solver, order)
        times: dict[str, list[float]] = {"literal": [], "product": []}
        out = {}
        for bound in (literal, product):  # warm-up
            _loss_and_grad(lam0, bound, spec)
        for _ in range(args.repeat):
            for name, bound in (("literal", literal), ("product", product)):
                loss, grad, dt = _loss_and_grad(lam0, bound, spec)
                times[name].append(dt)
                out[name] = (loss, grad)
        lit, prod = statistics.median(times["literal"]), statistics.median(times["product"])
        dl = abs(out["product"][0] - out["literal"][0]) / abs(out["literal"][0])
        dg = np.max(np.abs(out["product"][1] - out["literal"][1])) / np.max(np.abs(out["literal"][1]))
        print(f"| {solver}-{order} | {lit * 1e3:.0f} | {prod * 1e3:.0f} | {prod / lit:.2f} | {dl:.1e} | {dg:.1e} |")


if __name__ == "__main__":
    main()
