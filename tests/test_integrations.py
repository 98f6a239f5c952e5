"""Every integration path makes exactly N model calls at the entry's nodes and ends as the entry ends.

A counting model records the timesteps it is called with, on diffusers' real scheduler classes, the
k-diffusion-style loop, the ComfyUI node and the printed `optsteps show --format diffusers` snippets, with
the shipped registry's t_ε and σ = 0-ending entries; the hosts that end at σ = 0 refuse a t_ε entry.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import types
import warnings

import pytest
import torch

import optsteps_loader
from optsteps_loader import dpmpp, unipc
from optsteps_loader._endings import EndingUnavailableError
from optsteps_loader.diffusers import configure_scheduler, pipeline_kwargs, release
from optsteps_loader.errors import FallbackWarning, SolverMismatchWarning
from tests._sampler_fixtures import SD_BETAS, flow_steps, toy_model, vp_uniform_lambda

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class Counting:
    """A model that records the timesteps it is called with."""

    def __init__(self):
        self.timesteps: list[float] = []

    def __call__(self, x, t):
        self.timesteps.append(float(t.reshape(-1)[0]))
        return toy_model(x, t)


def retrieve_timesteps(scheduler, num_inference_steps=None, device=None, timesteps=None, sigmas=None, **kwargs):
    """diffusers' pipeline helper of that name (its pipelines module needs transformers), same checks: a
    custom list reaches ``set_timesteps`` only if its signature names the argument."""
    for name, value in (("timesteps", timesteps), ("sigmas", sigmas)):
        if value is not None:
            if name not in inspect.signature(scheduler.set_timesteps).parameters:
                raise ValueError(f"{type(scheduler)}'s `set_timesteps` does not support custom {name} schedules")
            scheduler.set_timesteps(device=device, **{name: value}, **kwargs)
            return scheduler.timesteps, len(scheduler.timesteps)
    scheduler.set_timesteps(num_inference_steps, device=device, **kwargs)
    return scheduler.timesteps, num_inference_steps


def run_pipeline_loop(scheduler, model, x, **kwargs):
    """What a pipeline does: ``retrieve_timesteps``, then model + ``step`` per timestep."""
    timesteps, _ = retrieve_timesteps(scheduler, device="cpu", **kwargs)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers have neither
    for t in timesteps:
        x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x
        x = scheduler.step(model(x_in, t.expand(x.shape[:1])), t, x).prev_sample
    return x


def _x(seed=0):
    return torch.randn(2, 4, 3, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(seed))


def sd(nfe, order, solver="unipc"):
    return optsteps_loader.get("scaled-linear", nfe, order=order, solver=solver)


def sd_zero(nfe, order, solver="unipc"):
    """The σ = 0-ending entry of ``solver`` and ``order`` (DPM-Solver++ 1 for Euler)."""
    return optsteps_loader.get("sd15", nfe, order=order, solver=solver, ending="zero")


# ---- 1. the samplers take diffusers outputs and check shapes ----------------------------------------------


@pytest.mark.parametrize("module", [unipc, dpmpp])
def test_samplers_take_diffusers_outputs_and_check_shapes(module):
    steps = vp_uniform_lambda(5, order=2)
    x = torch.randn(2, 3, dtype=torch.float64)
    from diffusers.models.unets.unet_2d import UNet2DOutput

    plain = module.sample(toy_model, x, steps, order=2)
    unet_like = module.sample(lambda x, t: UNet2DOutput(toy_model(x, t)), x, steps, order=2)
    as_tuple = module.sample(lambda x, t: (toy_model(x, t),), x, steps, order=2)
    assert torch.equal(unet_like, plain) and torch.equal(as_tuple, plain)
    with pytest.raises(ValueError, match=r"shape \(4, 3\) for an input of shape \(2, 3\)"):
        module.sample(lambda x, t: toy_model(torch.cat([x, x]), torch.cat([t, t])), x, steps, order=2)
    with pytest.raises(ValueError, match="must return a tensor"):
        module.sample(lambda x, t: {"sample": x}, x, steps, order=2)


def test_unipc_default_variant_is_the_measured_one():
    assert inspect.signature(unipc.sample).parameters["variant"].default == "bh2"
    assert "bh2" in unipc.sample.__doc__ and "measured" in unipc.sample.__doc__


@pytest.mark.parametrize(("module", "solver", "order"), [(unipc, "unipc", 3), (dpmpp, "dpmpp", 2)])
def test_samplers_end_a_zero_entry_with_the_last_prediction(module, solver, order):
    steps = sd_zero(8, order, solver)
    assert steps.ending == "zero" and steps.method in ("refined", "rule", "bound")
    model, seen = Counting(), []
    out = module.sample(model, _x().double(), steps, order=order, callback=seen.append)
    assert model.timesteps == list(steps.timesteps) and len(model.timesteps) == 8
    assert torch.equal(out, seen[-1]["denoised"])  # x̂_0 at the last evaluated node: the step to σ = 0


# ---- 2. configure_scheduler --------------------------------------------------------------------------------


def test_configure_takes_the_order_from_the_entry_or_refuses():
    scheduler = diffusers.UniPCMultistepScheduler(**SD_BETAS)  # solver_order=2
    with pytest.raises(ValueError, match=r"solver_order=2 but the entry was optimized for order 3.*order=2"):
        configure_scheduler(scheduler, sd(8, 3))
    configure_scheduler(scheduler, sd(8, 3), set_order=True)
    assert scheduler.config.solver_order == 3


@pytest.mark.parametrize(
    ("scheduler_kwargs", "key", "message"),
    [
        (SD_BETAS, "vp-linear", r"continuous-time.*'scaled-linear'"),
        ({}, "vp-cosine", r"continuous-time.*'ddpm-linear'"),
        (SD_BETAS, "edm", "EDM"),
        (SD_BETAS, "flow", "use_flow_sigmas=True"),
        ({"use_flow_sigmas": True, "prediction_type": "flow_prediction"}, "scaled-linear", "'flow' entry"),
    ],
)
def test_configure_refuses_another_time_convention(scheduler_kwargs, key, message):
    scheduler = diffusers.DPMSolverMultistepScheduler(**scheduler_kwargs, solver_order=3)
    with pytest.raises(ValueError, match=message):
        configure_scheduler(scheduler, optsteps_loader.get(key, 8))


def test_configure_with_a_key_follows_any_num_inference_steps():
    """Given a key, the entry for the scheduler's solver, order and final_sigmas_type ("zero" by default)."""
    scheduler = configure_scheduler(diffusers.UniPCMultistepScheduler(**SD_BETAS, solver_order=2), "sd15")
    for n in (8, 20, 31, 8):  # 31: beyond the solver entries, the bound's NFE-30 entry then the step to σ = 0
        model = Counting()
        with pytest.warns(FallbackWarning, match=r"bound\+denoise") if n > 30 else contextlib.nullcontext():
            run_pipeline_loop(scheduler, model, _x(), num_inference_steps=n)
        want = optsteps_loader.get("sd15", n, order=2, ending="zero", **({"p": 1} if n > 30 else {}))
        assert model.timesteps == list(want.timesteps) and float(scheduler.sigmas[-1]) == 0.0
    dpm = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=3, final_sigmas_type="sigma_min")
    model = Counting()
    run_pipeline_loop(configure_scheduler(dpm, "sdxl"), model, _x(), num_inference_steps=6)
    want = optsteps_loader.get("sdxl", 6, solver="dpmpp", order=3)  # the alias's latent-profile entry
    assert want.profile == "latent" and model.timesteps == list(want.timesteps[:6])
    model = Counting()
    chosen = configure_scheduler(scheduler, lambda n: optsteps_loader.get("scaled-linear", n, order=2, p=2))
    run_pipeline_loop(chosen, model, _x(), num_inference_steps=10)
    assert model.timesteps == list(optsteps_loader.get("scaled-linear", 10, order=2, p=2).timesteps[:10])


def test_configured_scheduler_refuses_pipe_timesteps_clearly():
    scheduler = configure_scheduler(diffusers.UniPCMultistepScheduler(**SD_BETAS), sd(8, 2))
    parameters = inspect.signature(scheduler.set_timesteps).parameters
    assert {"num_inference_steps", "device", "timesteps", "sigmas"} <= set(parameters)
    with pytest.raises(ValueError, match=r"follows optsteps entries.*pipe\(timesteps=...\).*num_inference_steps"):
        retrieve_timesteps(scheduler, timesteps=[999, 500, 10])
    with pytest.raises(ValueError, match=r"configure it with a schedule key"):
        retrieve_timesteps(scheduler, num_inference_steps=20)


def test_a_configured_config_fails_loudly_when_rebuilt(tmp_path):
    scheduler = configure_scheduler(diffusers.UniPCMultistepScheduler(**SD_BETAS), sd(8, 2))
    for rebuilt in (
        diffusers.UniPCMultistepScheduler.from_config(scheduler.config),
        diffusers.DPMSolverMultistepScheduler.from_config(scheduler.config),
    ):
        with pytest.raises(ValueError, match="configure_scheduler"):
            rebuilt.set_timesteps(8)  # never silently the default timesteps
    scheduler.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="configure_scheduler"):
        diffusers.UniPCMultistepScheduler.from_pretrained(tmp_path).set_timesteps(8)
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), num_inference_steps=8)  # the configured one still works
    assert len(model.timesteps) == 8
    release(scheduler)
    diffusers.UniPCMultistepScheduler.from_config(scheduler.config).set_timesteps(8)


@pytest.mark.parametrize(
    ("cls", "solver", "module"),
    [("UniPCMultistepScheduler", "unipc", unipc), ("DPMSolverMultistepScheduler", "dpmpp", dpmpp)],
)
@pytest.mark.parametrize("ending", ["zero", "eps"])
def test_configured_scheduler_matches_the_reference_sampler(cls, solver, module, ending):
    """N calls at the entry's nodes, and the same result as the reference sampler to 1e-5 in float64 (diffusers
    builds its σ table from float32 betas; the latent DPM++ 2M σ = 0 entry's shortest step, at the refine
    stage's floor of 1/50 of the uniform step, amplifies that rounding to about 1.3e-6)."""
    steps = optsteps_loader.get("sd15", 8, order=2, solver=solver, ending=ending)
    scheduler = configure_scheduler(getattr(diffusers, cls)(**SD_BETAS, solver_order=2), steps)
    assert len(scheduler.sigmas) == 9 and (float(scheduler.sigmas[-1]) == 0.0) == (ending == "zero")
    model = Counting()
    out = run_pipeline_loop(scheduler, model, _x().double(), num_inference_steps=8)
    assert model.timesteps == list(steps.timesteps[:8])
    ours = module.sample(toy_model, _x().double(), steps, order=2)
    assert float((out - ours).norm() / ours.norm()) < 1e-5


# ---- 3. the standard path: pipeline_kwargs --------------------------------------------------------------


@pytest.mark.parametrize("cls", ["DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler"])
@pytest.mark.parametrize("order", [2, 3])
def test_dpm_solver_timesteps_path(cls, order):
    steps = sd(8, order, "dpmpp")
    scheduler = getattr(diffusers, cls)(**SD_BETAS, solver_order=order, final_sigmas_type="sigma_min")
    if cls == "DPMSolverSinglestepScheduler":  # runs, but single-step orders 2 and 3 are other solvers
        with pytest.warns(SolverMismatchWarning, match=f"single-step DPM-Solver of order {order}"):
            kwargs = pipeline_kwargs(scheduler, steps)
    else:
        kwargs = pipeline_kwargs(scheduler, steps)
    assert kwargs == {"timesteps": list(steps.timesteps[:8])}
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **kwargs)
    assert model.timesteps == list(steps.timesteps[:8])  # N calls at the entry's nodes
    assert float(scheduler.sigmas[-1]) == pytest.approx(steps.sigmas[-1], rel=1e-4)  # ends at t_eps (float32)


def test_dpm_solver_2m_matches_the_reference_sampler():
    steps = sd(8, 2, "dpmpp")
    scheduler = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=2, final_sigmas_type="sigma_min")
    x = _x().double()
    scheduler.set_timesteps(**pipeline_kwargs(scheduler, steps))
    for t in scheduler.timesteps:
        x_next = scheduler.step(toy_model(x, t.expand(2)), t, x).prev_sample
        x = x_next
    ours = dpmpp.sample(toy_model, _x().double(), steps, order=2)
    # diffusers takes σ at the integer timesteps from its own betas; the entry's come from continuous t
    assert float((x - ours).norm() / ours.norm()) < 5e-3


def test_dpm_solver_ending_at_zero_refuses_a_t_eps_entry():
    scheduler = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=2)  # final_sigmas_type="zero"
    with pytest.raises(EndingUnavailableError, match=r"N \+ 1 model calls.*ending='zero'"):
        pipeline_kwargs(scheduler, sd(8, 2))
    zero = sd_zero(8, 2, "dpmpp")
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **pipeline_kwargs(scheduler, zero))
    assert model.timesteps == list(zero.timesteps[:8]) and scheduler.sigmas[-1] == 0.0


def test_euler_sigmas_path():
    steps = sd(8, 1, "dpmpp")
    scheduler = diffusers.EulerDiscreteScheduler(**SD_BETAS)
    kwargs = pipeline_kwargs(scheduler, steps)
    assert kwargs == {"sigmas": list(steps.sigmas)}  # N + 1 values: Euler runs to the entry's last node
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **kwargs)
    assert len(model.timesteps) == 8
    assert model.timesteps == pytest.approx(list(steps.timesteps[:8]), abs=1.0)  # fractional, same nodes
    with pytest.raises(ValueError, match=r"order=1"):
        pipeline_kwargs(scheduler, sd(8, 2))
    zero = sd_zero(8, 1, "dpmpp")  # Euler is DPM-Solver++'s first order
    assert pipeline_kwargs(scheduler, zero)["sigmas"] == list(zero.sigmas) and zero.sigmas[-1] == 0.0
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **pipeline_kwargs(scheduler, zero))
    assert model.timesteps == pytest.approx(list(zero.timesteps), abs=1.0)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_match_euler_shifts_once(shift):
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    with pytest.raises(EndingUnavailableError, match="ends with a step to sigma = 0"):
        pipeline_kwargs(scheduler, optsteps_loader.get("flow", 8, order=1, solver="dpmpp", shift=3.0))
    steps = zero = optsteps_loader.get("sd3", 8, order=1, solver="dpmpp", ending="zero")
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **pipeline_kwargs(scheduler, zero))
    assert len(model.timesteps) == 8
    assert scheduler.sigmas[:8].tolist() == pytest.approx(list(steps.sigma_t[:8]), rel=1e-5)  # not shifted twice
    assert model.timesteps == pytest.approx(list(steps.timesteps[:8]), rel=1e-5)
    assert scheduler.sigmas[-1] == 0.0


def test_flow_match_euler_at_a_served_shift():
    """A flow entry at a shift no file holds (Wan's 5: served from the shift-3 variant) runs in diffusers'
    FlowMatchEuler built with that shift: its N σ's exactly, shifted once, then σ = 0, in N calls."""
    zero = optsteps_loader.get("flow", 8, shift=5, order=1, solver="dpmpp", ending="zero")
    assert zero.served_from["shift"] == 3.0 and zero.params["shift"] == 5.0
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=5.0)
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **pipeline_kwargs(scheduler, zero))
    assert len(model.timesteps) == 8
    assert scheduler.sigmas[:8].tolist() == pytest.approx(list(zero.sigma_t[:8]), rel=1e-5)
    assert model.timesteps == pytest.approx(list(zero.timesteps), rel=1e-5)
    assert scheduler.sigmas[-1] == 0.0


def test_flow_match_euler_dynamic_shift_needs_mu():
    zero = optsteps_loader.get("flux", 8, order=1, solver="dpmpp", ending="zero")
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)  # FLUX
    with pytest.raises(ValueError, match="pass the mu"):
        pipeline_kwargs(scheduler, zero)
    kwargs = pipeline_kwargs(scheduler, zero, mu=1.15)
    scheduler.set_timesteps(mu=1.15, **kwargs)
    assert scheduler.sigmas[:8].tolist() == pytest.approx(list(zero.sigma_t[:8]), rel=1e-5)


def test_pipeline_kwargs_refusals():
    with pytest.raises(ValueError, match="twice per step"):
        pipeline_kwargs(diffusers.HeunDiscreteScheduler(**SD_BETAS), sd(8, 2))
    with pytest.raises(ValueError, match="use configure_scheduler"):
        pipeline_kwargs(diffusers.UniPCMultistepScheduler(**SD_BETAS), sd(8, 2))
    dpm = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=3, final_sigmas_type="sigma_min")
    with pytest.raises(ValueError, match=r"continuous-time.*'scaled-linear'"):
        pipeline_kwargs(dpm, optsteps_loader.get("vp-linear", 8))
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        pipeline_kwargs(diffusers.EulerDiscreteScheduler(**SD_BETAS, use_karras_sigmas=True), sd(8, 1, "dpmpp"))
    with pytest.raises(ValueError, match="FlowMatchEulerDiscreteScheduler"):
        pipeline_kwargs(diffusers.EulerDiscreteScheduler(**SD_BETAS), flow_steps([0.99, 0.5, 0.1], order=1))


def test_pipeline_kwargs_order_errors_name_the_fix_for_each_scheduler():
    """pipeline_kwargs leaves the scheduler as it is, so its advice never names configure_scheduler's
    set_order; Euler-type schedulers are told to take the DPM-Solver++ order-1 entry."""
    euler = r"takes first-order \(Euler\) steps.*optimized for order 2: ask for .*solver='dpmpp', order=1\)$"
    cases = [
        (diffusers.EulerDiscreteScheduler(**SD_BETAS), sd_zero(8, 2, "dpmpp"), euler),
        (
            diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
            optsteps_loader.get("sd3", 8, solver="dpmpp", order=2, ending="zero"),
            euler,
        ),
        (
            diffusers.EDMEulerScheduler(),
            optsteps_loader.get("edm2-img512", 8, solver="dpmpp", order=2, ending="zero"),
            euler,
        ),
        (
            diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=2),
            sd_zero(8, 3, "dpmpp"),
            r"solver_order=2 but .* order 3: ask for .*solver='dpmpp', order=2\), or build the scheduler with "
            r"solver_order=3$",
        ),
    ]
    for scheduler, steps, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            pipeline_kwargs(scheduler, steps)
        assert "set_order" not in str(err.value), type(scheduler).__name__


# ---- k-diffusion and ComfyUI --------------------------------------------------------------------------------


def sample_dpmpp_2m(model, x, sigmas):
    """k-diffusion's ``sample_dpmpp_2m`` (one model call per interval; ``model(x, sigma)`` returns x̂_0)."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised
        else:
            r = (t - (-sigmas[i - 1].log())) / h
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * ((1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old)
        old = denoised
    return x


def test_k_diffusion_sigmas_make_n_calls():
    from optsteps_loader.kdiffusion import get_sigmas, sigmas

    steps = sd(8, 2)
    grid = sigmas(steps, dtype=torch.float64)
    assert grid.tolist() == list(steps.sigmas)  # t_eps entry: its nodes, no trailing 0
    calls = []
    sample_dpmpp_2m(lambda x, s: calls.append(float(s)) or x * 0.5, torch.ones(3, dtype=torch.float64), grid)
    assert calls == list(steps.sigmas[:8])
    with pytest.raises(EndingUnavailableError, match="ends with a step to sigma = 0"):
        sigmas(steps, ending="zero")
    zero = sd_zero(8, 2, "dpmpp")
    grid = get_sigmas("sdxl", 8, dtype=torch.float64)  # dpmpp_2m: the DPM++ 2M σ = 0 entry
    assert grid.tolist() == list(zero.sigmas) and grid[-1] == 0.0
    calls = []
    sample_dpmpp_2m(lambda x, s: calls.append(float(s)) or x * 0.5, torch.ones(3, dtype=torch.float64), grid)
    assert calls == list(zero.sigmas[:8])


def test_k_diffusion_dpmpp_2m_is_the_sampler_the_entry_was_refined_for():
    """k-diffusion's DPM++ 2M on the σ = 0 entry = optsteps_loader.dpmpp on it (float64), same denoiser."""
    from optsteps_loader.kdiffusion import get_sigmas

    zero = sd_zero(8, 2, "dpmpp")
    ratio = dict(zip(zero.timesteps, zero.sigmas, strict=False))

    def denoised(x_edm, s):  # x̂_0 for x = x_0 + s ε, x_0 ~ N(0, 0.25 I): a smooth, exact posterior mean
        return x_edm * 0.25 / (0.25 + s * s)

    x_t = _x().double() * zero.sigmas[0]
    ours = dpmpp.sample(
        lambda x, t: denoised(x * math.sqrt(1 + ratio[int(t[0])] ** 2), ratio[int(t[0])]),
        x_t / math.sqrt(1 + zero.sigmas[0] ** 2),
        zero,
        prediction="sample",
        order=2,
    )
    theirs = sample_dpmpp_2m(lambda x, s: denoised(x, float(s)), x_t, get_sigmas("sdxl", 8, dtype=torch.float64))
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_comfyui_node():
    from optsteps_loader import comfyui
    from optsteps_loader.kdiffusion import get_sigmas

    node_cls = comfyui.NODE_CLASS_MAPPINGS["OptstepsScheduler"]
    assert set(comfyui.NODE_DISPLAY_NAME_MAPPINGS) == set(comfyui.NODE_CLASS_MAPPINGS)
    required = node_cls.INPUT_TYPES()["required"]
    assert {"model_type", "steps", "denoise", "sampler", "ending"} <= set(required)
    assert node_cls.RETURN_TYPES == ("SIGMAS",)
    node = node_cls()
    (out,) = getattr(node, node_cls.FUNCTION)("SDXL", 8, 1.0, "dpmpp_2m", "zero")
    assert out.dtype == torch.float32 and out.shape == (9,) and out[-1] == 0.0
    assert out.tolist() == torch.tensor(sd_zero(8, 2, "dpmpp").sigmas, dtype=torch.float32).tolist()
    calls = []
    sample_dpmpp_2m(lambda x, s: calls.append(float(s)) or x * 0.5, torch.ones(3), out)
    assert len(calls) == 8  # steps model calls, never steps + 1
    (half,) = node.get_sigmas("SDXL", 8, 0.5, "dpmpp_2m", "zero")
    assert half.tolist() == out[-5:].tolist()  # the last round(8 * 0.5) + 1 values, as ComfyUI's AYS node
    (none,) = node.get_sigmas("SDXL", 8, 0.0, "dpmpp_2m", "zero")
    assert none.numel() == 0
    (euler,) = node.get_sigmas("SD1", 6, 1.0, "euler", "zero")
    assert euler.tolist() == torch.tensor(sd_zero(6, 1, "dpmpp").sigmas, dtype=torch.float32).tolist()
    (flow,) = node.get_sigmas("SD3", 10, 1.0, "unipc", "eps+denoise")
    bound = optsteps_loader.get("flow", 9, shift=3.0, p=optsteps_loader.info("flow", shift=3.0)["defaults"]["p"])
    assert flow[:10].tolist() == torch.tensor(bound.sigma_t).tolist() and flow[-1] == 0.0
    with pytest.raises(ValueError, match="sampler must be one of"):
        node.get_sigmas("SD1", 8, 1.0, "heun", "zero")
    (edm_latent,) = node.get_sigmas("EDM (latent, e.g. EDM2)", 8, 1.0, "dpmpp_2m", "zero")
    assert edm_latent.tolist() == get_sigmas("edm2-img512", 8, sampler="dpmpp_2m", dtype=torch.float32).tolist()
    assert edm_latent.tolist() != node.get_sigmas("EDM", 8, 1.0, "dpmpp_2m", "zero")[0].tolist()  # generic


# ---- `optsteps show --format diffusers`: every printed block works as printed ------------------------------


def _blocks(text: str) -> list[str]:
    return [b for b in text.split("\n\n") if b.startswith("# --- ") and "\nkwargs = " in b]


# The pipeline scheduler each alias's model ships with: what a printed block's from_config starts from.
FLUX_DEV = {"shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15}
STAND_IN_SCHEDULERS = {
    "sd15": lambda: diffusers.PNDMScheduler(**SD_BETAS, skip_prk_steps=True),
    "sd2": lambda: diffusers.DDIMScheduler(**SD_BETAS, prediction_type="v_prediction"),
    "sdxl": lambda: diffusers.EulerDiscreteScheduler(**SD_BETAS, timestep_spacing="leading", steps_offset=1),
    "ddpm-cifar10": lambda: diffusers.DDPMScheduler(),
    "sd3": lambda: diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
    "flux": lambda: diffusers.FlowMatchEulerDiscreteScheduler(**FLUX_DEV),
    "flux-schnell": lambda: diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0),
    "edm2-img512": lambda: diffusers.EDMDPMSolverMultistepScheduler(),
    "edm-cifar10": lambda: diffusers.EDMDPMSolverMultistepScheduler(),
    "score-sde-vp": None,  # continuous time: no diffusers scheduler runs it
    "iddpm": None,
}
SHOW_REQUESTS = [
    (solver, order, ending) for solver in ("unipc", "dpmpp") for order in (1, 2, 3) for ending in ("eps", "zero")
]
_ran: dict[tuple[str, str], None] = {}  # (alias, block) already executed: aliases and requests share blocks


def _run_block(alias: str, block: str) -> None:
    """Execute a printed block on the alias's stand-in pipeline, then the pipeline's loop with a counting
    model: N calls at the entry's nodes (σ-preconditioned for EDM, 1000 σ for flow, integer timesteps). Above
    8 steps only the timesteps the loop would call the model at (``retrieve_timesteps``), to stay fast."""
    if (alias, block) in _ran:
        return
    pipe = types.SimpleNamespace(scheduler=STAND_IN_SCHEDULERS[alias]())
    namespace = {"pipe": pipe}
    with warnings.catch_warnings(record=True) as caught:  # only what the block's comment announces
        warnings.simplefilter("always")
        exec(compile(block, "optsteps show", "exec"), namespace)  # noqa: S102 - the printed snippet
    mismatches = [str(w.message) for w in caught if w.category is SolverMismatchWarning]
    assert [str(w.message) for w in caught if w.category is not SolverMismatchWarning] == [], block
    if mismatches:  # only diffusers' own order rule at 15+ steps, announced in the block's comment
        assert "SolverMismatchWarning" in block and len(mismatches) == 1, block
        assert "no setting matches" in mismatches[0] and "\n- step orders" in mismatches[0], mismatches
    steps, model, name = namespace["steps"], Counting(), re.match(r"# --- (\w+)", block).group(1)
    assert type(pipe.scheduler).__name__ == name
    mu = namespace.get("mu")  # FLUX's pipeline passes the mu of its image size along with the sigmas
    kwargs = {**namespace["kwargs"], **({"mu": mu} if mu else {})}
    n = steps.nfe
    if n <= 8:
        run_pipeline_loop(pipe.scheduler, model, _x()[:1, :1], **kwargs)
    else:
        model.timesteps = [float(t) for t in retrieve_timesteps(pipe.scheduler, device="cpu", **kwargs)[0]]
    if name.startswith("EDM"):
        assert model.timesteps == pytest.approx([0.25 * math.log(s) for s in steps.sigmas[:n]], abs=1e-5), block
    elif steps.time_input == "1000*sigma":
        assert model.timesteps == pytest.approx(list(steps.timesteps[:n]), rel=1e-5), block
    else:
        assert model.timesteps == pytest.approx(list(steps.timesteps[:n]), abs=1.0), block
    _ran[alias, block] = None


@pytest.mark.parametrize("nfe", [3, 8, 10, 20])
@pytest.mark.parametrize("alias", list(STAND_IN_SCHEDULERS))
def test_every_block_show_prints_runs_as_printed(alias, nfe):
    """`optsteps show ALIAS --nfe N --solver S --order K --ending E --format diffusers`, for every request it
    accepts: each printed block runs on the alias's pipeline scheduler with N model calls at its entry's nodes,
    with no warning (a block that falls back names the bound's p); a family no entry fits gets a comment."""
    from click.testing import CliRunner

    from optsteps_loader.cli import build_cli

    cli, schedule = build_cli(), optsteps_loader.aliases()[alias]["schedule"]
    families = {"edm": 2, "flow": 3}.get(schedule, 5)  # the scheduler families `show` prints for, Heun aside
    for solver, order, ending in SHOW_REQUESTS:
        args = ["show", alias, "--nfe", str(nfe), "--solver", solver, "--order", str(order), "--ending", ending]
        result = CliRunner().invoke(cli, [*args, "--format", "diffusers"])
        if result.exit_code:  # the request itself has no entry (e.g. sigma = 0 at NFE 3 from the bound's NFE 2)
            assert result.exit_code == 1 and result.output.startswith("Error: ") and "no " in result.output, args
            continue
        if STAND_IN_SCHEDULERS[alias] is None:
            assert not _blocks(result.output) and "do not run it" in result.output
            continue
        blocks = [b for b in result.output.split("\n\n") if b.startswith("# --- ")]
        assert len(blocks) == families, args
        for block in blocks:
            if "\nkwargs = " in block:
                _run_block(alias, block)
            else:
                assert "not printed" in block and "No entry to load" in block, block


def test_show_diffusers_flow_and_continuous():
    from click.testing import CliRunner

    from optsteps_loader.cli import build_cli

    out = CliRunner().invoke(build_cli(), ["show", "flow", "--nfe", "8", "--shift", "3", "--format", "diffusers"])
    blocks = _blocks(out.output)
    assert len(blocks) == 3  # UniPC and DPM-Solver++ configured (flow sigmas), FlowMatchEuler (sigmas=)
    for block in blocks:
        pipe = types.SimpleNamespace(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0))
        namespace = {"pipe": pipe}
        exec(compile(block, "optsteps show", "exec"), namespace)  # noqa: S102 - the printed snippet
        model = Counting()
        run_pipeline_loop(pipe.scheduler, model, _x(), **namespace["kwargs"])
        assert model.timesteps == pytest.approx(list(namespace["steps"].timesteps[:8]), rel=1e-6)
    out = CliRunner().invoke(build_cli(), ["show", "vp-linear", "--nfe", "8", "--format", "diffusers"]).output
    assert not _blocks(out) and "do not run it" in out
    # EDM: EDMDPMSolverMultistepScheduler configured (the entry's order), then EDMEulerScheduler, each built
    # from an EDM pipeline's EDMDPMSolverMultistepScheduler config
    out = CliRunner().invoke(build_cli(), ["show", "edm2-img512", "--nfe", "8", "--format", "diffusers"]).output
    blocks = _blocks(out)
    assert len(blocks) == 2
    for block, want in zip(blocks, [("latent", "dpmpp", 3, "eps"), ("latent", "dpmpp", 1, "zero")], strict=True):
        pipe = types.SimpleNamespace(scheduler=diffusers.EDMDPMSolverMultistepScheduler())
        namespace = {"pipe": pipe}
        exec(compile(block, "optsteps show", "exec"), namespace)  # noqa: S102 - the printed snippet
        model = Counting()
        run_pipeline_loop(pipe.scheduler, model, _x(), **namespace["kwargs"])
        steps = namespace["steps"]
        assert (steps.profile, steps.solver, steps.order, steps.ending) == want
        assert model.timesteps == pytest.approx([0.25 * math.log(s) for s in steps.sigmas[:8]], abs=1e-6)


def test_pyproject_declares_the_comfyui_node():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert {"PublisherId", "DisplayName", "Icon"} <= set(data["tool"]["comfy"])
    assert "diffusers" in data["project"]["optional-dependencies"]
