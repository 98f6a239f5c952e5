"""The held-out kinds (builder/select/kinds.py) and the host benchmark's model wrappers (benchmarks/bench_hosts.py)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from builder.select import family, kinds
from builder.select.truth import ground_truth, initial_batch, solve_truth

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_hosts", REPO / "benchmarks" / "bench_hosts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_hosts", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(kinds.KINDS))
def test_every_kind_is_deterministic_and_described(name):
    kind = kinds.KINDS[name]
    assert kind.description and "\n" not in kind.description
    assert kind.build.__doc__  # the formula
    a, b = kinds.kind_problems(name), kinds.kind_problems(name)
    assert len(a) == len(kind.specs) >= 2
    for p, q in zip(a, b, strict=True):
        assert (p.name, p.seed, p.batch) == (q.name, q.seed, q.batch)
        assert p.mixture.digest == q.mixture.digest
        x, y = p.mixture.sample(8, np.random.default_rng(p.seed)), q.mixture.sample(8, np.random.default_rng(q.seed))
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(p.mixture.denoise(x, 0.3), q.mixture.denoise(y, 0.3))
        assert 16 <= p.batch <= 64 and p.mixture.dim <= 64


def test_kinds_keep_their_stated_ranges():
    rng = np.random.default_rng(0)
    for p in kinds.kind_problems("latent-fine"):
        assert 0.01**2 <= p.mixture.eigvals.min() and p.mixture.eigvals.max() <= 0.3**2
        assert abs(np.sqrt(p.mixture.sample(2000, rng).var(axis=0).mean()) - 1.0) < 0.1
    stds = [np.sqrt(p.mixture.sample(2000, rng).var(axis=0).mean()) for p in kinds.kind_problems("scale")]
    assert min(stds) < 0.3 and max(stds) > 2.7
    assert all(2 <= p.mixture.dim <= 8 for p in kinds.kind_problems("lowdim"))
    assert sorted({p.mixture.scale for p in kinds.kind_problems("guided")}) == list(kinds.GUIDANCE_SCALES)


def test_kinds_seeds_do_not_overlap_the_family_splits():
    fam = [p for split in family.SPECS for p in family.split(split)]
    ours = kinds.problems()
    assert not {p.seed for p in fam} & {p.seed for p in ours}
    assert len({p.seed for p in ours}) == len(ours)
    fam_seeds = {args[-1] for specs in family.SPECS.values() for _, args in specs if args}
    our_seeds = {p.spec[1][-1] for p in ours if p.spec[1] and p.spec[1][0] != "digits"}
    assert our_seeds and min(our_seeds) >= kinds.MIXTURE_SEED_BASE > max(fam_seeds)
    fam_digests = {p.mixture.digest for p in fam if p.profile != "digits"}
    assert not fam_digests & {p.mixture.digest for p in ours}


def test_guided_at_w1_is_the_conditional_and_its_truth_is_the_guided_flow():
    base = family.latent_mixture(8, 6, 0.4, 0.6, kinds.MIXTURE_SEED_BASE)
    cond = kinds.class_conditional(base, [1, 4])
    g1 = kinds.GuidedMixture(base, cond, 1.0)
    x = initial_batch(cond, 0.0, 16, 5)
    for lam in (-3.0, 0.0, 4.0):
        np.testing.assert_allclose(g1.denoise(x, lam), cond.denoise(x, lam), rtol=0, atol=1e-12)
    # the exact answer of the guided flow (w = 5) against a fine fixed-step RK4 solve of the same ODE in λ
    g5 = kinds.GuidedMixture(base, cond, 5.0)
    lam0, lam1 = -2.5, 6.0
    truth = ground_truth(g5, lam0, lam1, batch=16, seed=5, cache=False)
    assert truth.x_start.shape == (16, 8)

    def rhs(lam, y):
        _, s = _vp(lam)
        return math.exp(lam) * g5.denoise(s * y, lam)

    _, s0 = _vp(lam0)
    y, n = truth.x_start / s0, 4000
    h = (lam1 - lam0) / n
    for i in range(n):
        lam = lam0 + i * h
        k1 = rhs(lam, y)
        k2 = rhs(lam + h / 2, y + h / 2 * k1)
        k3 = rhs(lam + h / 2, y + h / 2 * k2)
        k4 = rhs(lam + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    reference = _vp(lam1)[1] * y
    np.testing.assert_allclose(truth.x_end, reference, rtol=0, atol=1e-6)
    # and guidance moves the answer (w = 5 is not the conditional flow)
    plain, _ = solve_truth(cond, truth.x_start, lam0, lam1)
    assert np.abs(plain - truth.x_end).max() > 1e-3


def _vp(lam):
    from builder.select.mixtures import vp_alpha_sigma

    return vp_alpha_sigma(lam)


@pytest.mark.parametrize(
    ("host", "sampler", "order", "nfe"),
    [
        ("sd-unipc", "unipc", 2, 8),
        ("sd-dpmpp", "dpmpp", 2, 8),
        ("sd-dpmpp3", "dpmpp", 3, 8),
        ("sd-dpmpp3", "dpmpp", 3, 16),  # diffusers' DPM-Solver lowers no order but the last from 15 steps on
        ("flow-unipc", "unipc", 2, 8),
        ("flow-dpmpp", "dpmpp", 2, 8),
    ],
)
def test_diffusers_path_reproduces_the_reference_samplers(host, sampler, order, nfe):
    """bench_hosts' model behind diffusers' configured scheduler = optsteps_loader's sampler on the same model."""
    import torch

    import optsteps_loader
    from optsteps_loader import dpmpp, unipc

    bench = _bench()
    problem = kinds.kind_problems("latent-like")[0]
    flow = host.startswith("flow")
    x_start = initial_batch(problem.mixture, bench.FLOW_LAMBDA_START if flow else bench.SD_LAMBDA_START, 16, 1)
    runner = bench.Runner(bench.HOSTS[host], "sd3" if flow else "sdxl")
    model = (bench.FlowModel if flow else bench.SDModel)(problem.mixture)
    with torch.no_grad():
        ours = runner.run(model, x_start, nfe).numpy()
    assert model.calls == nfe
    steps = optsteps_loader.get("sd3" if flow else "sdxl", nfe, solver=sampler, order=order, ending="zero")
    reference_model = (bench.FlowModel if flow else bench.SDModel)(problem.mixture)
    x = torch.from_numpy(x_start)
    prediction = "flow" if flow else "epsilon"
    with torch.no_grad():
        if sampler == "unipc":
            ref = unipc.sample(reference_model, x, steps, prediction=prediction, order=order, variant="bh2")
        else:
            ref = dpmpp.sample(reference_model, x, steps, prediction=prediction, order=order)
    assert reference_model.calls == nfe
    scale = float(np.abs(ref.numpy()).max())
    np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=2e-6 * scale)


def test_kdiffusion_loops_reproduce_the_reference_samplers():
    """The benchmark's k-diffusion Euler / DPM++ 2M on get_sigmas = dpmpp.sample orders 1 / 2 on the entry."""
    import torch

    import optsteps_loader
    from optsteps_loader import dpmpp

    bench = _bench()
    problem = kinds.kind_problems("pixel-like")[0]
    x_start = initial_batch(problem.mixture, bench.SD_LAMBDA_START, 16, 1)
    for host, order in (("kd-euler", 1), ("kd-dpmpp_2m", 2)):
        model = bench.SDModel(problem.mixture)
        with torch.no_grad():
            ours = bench.Runner(bench.HOSTS[host], "sdxl").run(model, x_start, 6).numpy()
        assert model.calls == 6
        steps = optsteps_loader.get("sdxl", 6, solver="dpmpp", order=order, ending="zero")
        # k-diffusion evaluates D(x, σ) at the entry's σ; the entry's integer timesteps are its rounded time
        # inputs, so the reference model is told each node's own λ (timestep -> node)
        node_lambda = dict(zip(steps.timesteps, steps.lambdas, strict=False))

        def at_node(x, t, mixture=problem.mixture, node_lambda=node_lambda):
            lam = node_lambda[int(t[0])]
            return torch.from_numpy(mixture.denoise(x.numpy(), lam))

        with torch.no_grad():
            ref = dpmpp.sample(at_node, torch.from_numpy(x_start), steps, prediction="sample", order=order).numpy()
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def test_a_wrong_call_count_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTSTEPS_QUALITY_CACHE", str(tmp_path))
    bench = _bench()
    problem = kinds.kind_problems("lowdim")[:1]
    original = bench.Runner.run

    def one_call_more(self, model, x_start, nfe):
        out = original(self, model, x_start, nfe)
        model.calls += 1
        return out

    monkeypatch.setattr(bench.Runner, "run", one_call_more)
    with pytest.raises(RuntimeError, match="model calls"):
        bench.measure([bench.HOSTS["kd-euler"]], problem, (5,), log=lambda *_: None)
