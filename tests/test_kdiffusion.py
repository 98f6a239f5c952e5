"""optsteps_loader.kdiffusion: σ tensors for k-diffusion (N + 1 values, N model calls)."""

from __future__ import annotations

import pytest
import torch

from optsteps_loader.kdiffusion import sigmas
from tests._sampler_fixtures import flow_steps, vp_uniform_lambda


def test_vp_entry_gives_sigma_over_alpha_ending_at_its_last_node():
    steps = vp_uniform_lambda(6)
    out = sigmas(steps)
    assert out.dtype == torch.float32 and out.shape == (steps.nfe + 1,)  # no trailing 0: N intervals, N calls
    torch.testing.assert_close(out, torch.tensor(steps.sigmas, dtype=torch.float32))
    assert torch.all(out[:-1] > out[1:])  # descending, as k-diffusion expects
    assert sigmas(steps, dtype=torch.float64, device="cpu").tolist() == list(steps.sigmas)


def test_flow_entry_gives_flow_sigma():
    steps = flow_steps([0.99, 0.7, 0.4, 0.1, 0.02])
    assert sigmas(steps, dtype=torch.float64).tolist() == list(steps.sigma_t)
    assert sigmas(steps, kind="ratio", dtype=torch.float64).tolist() == list(steps.sigmas)


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        sigmas(vp_uniform_lambda(3), kind="karras")
