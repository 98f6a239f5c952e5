"""optsteps_loader.kdiffusion: σ tensors for k-diffusion / ComfyUI."""

from __future__ import annotations

import pytest
import torch

from optsteps_loader.kdiffusion import sigmas
from tests._sampler_fixtures import flow_steps, vp_uniform_lambda


def test_vp_entry_gives_sigma_over_alpha_with_trailing_zero():
    steps = vp_uniform_lambda(6)
    out = sigmas(steps)
    assert out.dtype == torch.float32 and out.shape == (steps.nfe + 2,)
    assert out[-1] == 0.0
    torch.testing.assert_close(out[:-1], torch.tensor(steps.sigmas, dtype=torch.float32))
    assert torch.all(out[:-1] > out[1:])  # descending, as k-diffusion expects
    out64 = sigmas(steps, dtype=torch.float64, device="cpu")
    assert out64.tolist() == [*steps.sigmas, 0.0]


def test_flow_entry_gives_flow_sigma():
    steps = flow_steps([0.99, 0.7, 0.4, 0.1, 0.02])
    assert sigmas(steps, dtype=torch.float64).tolist() == [*steps.sigma_t, 0.0]
    assert sigmas(steps, kind="ratio", dtype=torch.float64).tolist() == [*steps.sigmas, 0.0]


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        sigmas(vp_uniform_lambda(3), kind="karras")
