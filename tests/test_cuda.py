"""The reference samplers on CUDA: same answer as on the CPU, the model's dtype and device kept, N model calls,
and no host–device synchronisation inside the loop. Skipped where no GPU is present (CI has none)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import optsteps_loader  # noqa: E402
from optsteps_loader import dpmpp, unipc  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CASES = [
    ("unipc", "scaled-linear", "epsilon", {"order": 3, "variant": "bh2"}),
    ("unipc", "edm", "sample", {"order": 2, "variant": "bh1"}),
    ("dpmpp", "vp-linear", "v", {"order": 2}),
    ("dpmpp", "flow", "flow", {"order": 3}),
]


def _sampler(name):
    return unipc.sample if name == "unipc" else dpmpp.sample


class CountingLinearModel:
    """A fixed linear map of x plus a timestep-dependent bias, in torch only (no host sync of its own)."""

    def __init__(self, dim: int, device, dtype):
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(dim, dim, generator=generator, dtype=torch.float64) / dim**0.5
        self.weight = weight.to(device, dtype)
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        flat = x.reshape(x.shape[0], -1)
        out = 0.1 * flat @ self.weight + 1e-4 * t.to(x.dtype).reshape(-1, 1)
        return out.reshape(x.shape)


@pytest.mark.parametrize(("sampler", "schedule", "prediction", "options"), CASES)
def test_cuda_float64_matches_cpu(sampler, schedule, prediction, options):
    steps = optsteps_loader.get(schedule, nfe=8)
    x = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = x * unipc.initial_noise_scale(steps)
    cpu_model = CountingLinearModel(32, "cpu", torch.float64)
    gpu_model = CountingLinearModel(32, "cuda", torch.float64)
    on_cpu = _sampler(sampler)(cpu_model, x, steps, prediction=prediction, **options)
    on_gpu = _sampler(sampler)(gpu_model, x.cuda(), steps, prediction=prediction, **options)
    assert gpu_model.calls == cpu_model.calls == steps.nfe
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float64
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("sampler", "schedule", "prediction", "options"), CASES)
def test_cuda_low_precision_keeps_dtype_and_never_syncs(sampler, schedule, prediction, options, dtype):
    steps = optsteps_loader.get(schedule, nfe=8)
    x = torch.randn(4, 2, 4, 4, device="cuda", dtype=dtype) * unipc.initial_noise_scale(steps)
    model = CountingLinearModel(32, "cuda", dtype)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any implicit device→host copy in the loop raises
    try:
        out = _sampler(sampler)(model, x, steps, prediction=prediction, **options)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert model.calls == steps.nfe
    assert out.dtype == dtype and out.device.type == "cuda"
    assert bool(torch.isfinite(out).all())
