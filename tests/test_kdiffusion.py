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


# k-diffusion 0.1.1's samplers (k_diffusion/sampling.py, crowsonkb/k-diffusion tag v0.1.1)
K_DIFFUSION_SAMPLERS = {
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_dpm_2",
    "sample_dpm_2_ancestral",
    "sample_lms",
    "sample_dpm_fast",
    "sample_dpm_adaptive",
    "sample_dpmpp_2s_ancestral",
    "sample_dpmpp_sde",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m_sde",
}


def test_sampler_names_are_k_diffusions_own():
    """What the README and the glue call k-diffusion's samplers exist in k-diffusion; the README does not list
    our sampler keys as k-diffusion's (it has no dpmpp_3m or unipc)."""
    import re
    from pathlib import Path

    from optsteps_loader.kdiffusion import RUN_WITH, UNMEASURED

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### k-diffusion and ComfyUI", 1)[1].split("\n## ", 1)[0]
    for text in (section, *RUN_WITH.values()):
        assert set(re.findall(r"sample_\w+", text)) <= K_DIFFUSION_SAMPLERS, text
    for listed in re.findall(r"k-diffusion's samplers \(([^)]*)\)", section):
        assert {f"sample_{n}" for n in re.findall(r"`(\w+)`", listed)} <= K_DIFFUSION_SAMPLERS, listed
    assert {f"sample_{name}" for name in UNMEASURED} <= K_DIFFUSION_SAMPLERS


@pytest.mark.parametrize(
    "sampler, closest",
    [("dpmpp_2m_sde", "dpmpp_2m"), ("sample_dpmpp_3m_sde", "dpmpp_3m"), ("euler_ancestral", "euler")],
)
def test_unmeasured_samplers_are_refused_naming_the_closest_entry(sampler, closest):
    from optsteps_loader.kdiffusion import SAMPLERS, get_sigmas

    solver, order = SAMPLERS[closest]
    with pytest.raises(
        ValueError,
        match=rf"not measured.*get_sigmas\(schedule, nfe, sampler='{closest}'\).*"
        rf"solver='{solver}', order={order}, ending='zero'",
    ):
        get_sigmas("sdxl", 8, sampler=sampler)
    with pytest.raises(ValueError, match="calls the model twice per step"):
        get_sigmas("sdxl", 8, sampler="heun")
    assert get_sigmas("sdxl", 8, sampler="sample_dpmpp_2m").tolist() == get_sigmas("sdxl", 8).tolist()
