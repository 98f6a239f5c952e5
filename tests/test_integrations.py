"""Every integration path makes exactly N model calls at the entry's nodes and ends as the entry ends.

A counting model records the timesteps it is called with, on diffusers' real scheduler classes, the
k-diffusion-style loop, the ComfyUI node and the printed `optsteps show --format diffusers` snippets.
σ = 0-ending entries are not in this registry version: those paths are tested with a hand-made record that
carries ``ending == "zero"`` (its (N+1)-th values are NaN, so a path that reads them fails), and the
refusals of today's t_ε entries are tested against the shipped registry.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types

import pytest
import torch

import optsteps_loader
from optsteps_loader import dpmpp, unipc
from optsteps_loader._endings import EndingUnavailableError
from optsteps_loader.diffusers import configure_scheduler, pipeline_kwargs, release
from optsteps_loader.steps import Steps
from tests._sampler_fixtures import SD_BETAS, flow_steps, toy_model, vp_uniform_lambda

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@dataclasses.dataclass(frozen=True)
class ZeroSteps(Steps):
    """What a σ = 0-ending entry is assumed to look like (optsteps_loader._endings)."""

    ending: str = "zero"


def as_zero(steps: Steps) -> ZeroSteps:
    """``steps``' first N nodes as a σ = 0-ending record; every (N+1)-th value is NaN (never to be read)."""
    fields = {f.name: getattr(steps, f.name) for f in dataclasses.fields(Steps)}
    for name in ("t", "lambdas", "alpha_t", "sigma_t", "sigmas", "timesteps"):
        fields[name] = (*fields[name][:-1], math.nan)
    return ZeroSteps(**fields)


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


def sd(nfe, order):
    return optsteps_loader.get("scaled-linear", nfe, order=order)


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


def test_samplers_refuse_an_ending_they_do_not_run():
    with pytest.raises(ValueError, match="ending 'zero'"):
        unipc.sample(toy_model, torch.zeros(2, 3), as_zero(vp_uniform_lambda(4)))


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
    scheduler = configure_scheduler(diffusers.UniPCMultistepScheduler(**SD_BETAS, solver_order=2), "scaled-linear")
    for n in (8, 12, 8):
        model = Counting()
        run_pipeline_loop(scheduler, model, _x(), num_inference_steps=n)
        assert model.timesteps == list(sd(n, 2).timesteps[:n])
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


def test_configure_runs_a_zero_ending_entry_with_n_calls():
    steps = as_zero(sd(8, 2))
    scheduler = configure_scheduler(diffusers.UniPCMultistepScheduler(**SD_BETAS), steps)
    assert scheduler.sigmas[-1] == 0.0 and len(scheduler.sigmas) == 9
    model = Counting()
    out = run_pipeline_loop(scheduler, model, _x(), num_inference_steps=8)
    assert model.timesteps == list(steps.timesteps[:8]) and torch.isfinite(out).all()


# ---- 3. the standard path: pipeline_kwargs --------------------------------------------------------------


@pytest.mark.parametrize("cls", ["DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler"])
@pytest.mark.parametrize("order", [2, 3])
def test_dpm_solver_timesteps_path(cls, order):
    steps = sd(8, order)
    scheduler = getattr(diffusers, cls)(**SD_BETAS, solver_order=order, final_sigmas_type="sigma_min")
    kwargs = pipeline_kwargs(scheduler, steps)
    assert kwargs == {"timesteps": list(steps.timesteps[:8])}
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **kwargs)
    assert model.timesteps == list(steps.timesteps[:8])  # N calls at the entry's nodes
    assert float(scheduler.sigmas[-1]) == pytest.approx(steps.sigmas[-1], rel=1e-4)  # ends at t_eps (float32)


def test_dpm_solver_2m_matches_the_reference_sampler():
    steps = sd(8, 2)
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
    with pytest.raises(EndingUnavailableError, match="not in this registry version.*N \\+ 1 model calls"):
        pipeline_kwargs(scheduler, sd(8, 2))
    zero = as_zero(sd(8, 2))
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **pipeline_kwargs(scheduler, zero))
    assert model.timesteps == list(zero.timesteps[:8]) and scheduler.sigmas[-1] == 0.0


def test_euler_sigmas_path():
    steps = sd(8, 1)
    scheduler = diffusers.EulerDiscreteScheduler(**SD_BETAS)
    kwargs = pipeline_kwargs(scheduler, steps)
    assert kwargs == {"sigmas": list(steps.sigmas)}  # N + 1 values: Euler runs to the entry's last node
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **kwargs)
    assert len(model.timesteps) == 8
    assert model.timesteps == pytest.approx(list(steps.timesteps[:8]), abs=1.0)  # fractional, same nodes
    with pytest.raises(ValueError, match=r"order=1"):
        pipeline_kwargs(scheduler, sd(8, 2))
    zero = as_zero(steps)
    assert pipeline_kwargs(scheduler, zero)["sigmas"] == [*steps.sigmas[:8], 0.0]


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_match_euler_shifts_once(shift):
    steps = optsteps_loader.get("flow", 8, order=1, shift=3.0)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    with pytest.raises(EndingUnavailableError, match="not in this registry version"):
        pipeline_kwargs(scheduler, steps)
    zero = as_zero(steps)
    model = Counting()
    run_pipeline_loop(scheduler, model, _x(), **pipeline_kwargs(scheduler, zero))
    assert len(model.timesteps) == 8
    assert scheduler.sigmas[:8].tolist() == pytest.approx(list(steps.sigma_t[:8]), rel=1e-5)  # not shifted twice
    assert model.timesteps == pytest.approx(list(steps.timesteps[:8]), rel=1e-5)
    assert scheduler.sigmas[-1] == 0.0


def test_flow_match_euler_dynamic_shift_needs_mu():
    zero = as_zero(optsteps_loader.get("flow", 8, order=1, shift=3.0))
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
        pipeline_kwargs(diffusers.EulerDiscreteScheduler(**SD_BETAS, use_karras_sigmas=True), sd(8, 1))
    with pytest.raises(ValueError, match="FlowMatchEulerDiscreteScheduler"):
        pipeline_kwargs(diffusers.EulerDiscreteScheduler(**SD_BETAS), flow_steps([0.99, 0.5, 0.1], order=1))


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
    from optsteps_loader.kdiffusion import sigmas

    steps = sd(8, 2)
    grid = sigmas(steps, dtype=torch.float64)
    assert grid.tolist() == list(steps.sigmas)  # t_eps entry: its nodes, no trailing 0
    calls = []
    sample_dpmpp_2m(lambda x, s: calls.append(float(s)) or x * 0.5, torch.ones(3, dtype=torch.float64), grid)
    assert calls == list(steps.sigmas[:8])
    with pytest.raises(EndingUnavailableError, match="not in this registry version"):
        sigmas(steps, ending="zero")
    zero = sigmas(as_zero(steps), dtype=torch.float64)
    assert zero.tolist() == [*steps.sigmas[:8], 0.0]


def test_comfyui_node():
    from optsteps_loader import comfyui

    node_cls = comfyui.NODE_CLASS_MAPPINGS["OptstepsScheduler"]
    assert set(comfyui.NODE_DISPLAY_NAME_MAPPINGS) == set(comfyui.NODE_CLASS_MAPPINGS)
    required = node_cls.INPUT_TYPES()["required"]
    assert {"model_type", "steps", "denoise"} <= set(required) and node_cls.RETURN_TYPES == ("SIGMAS",)
    node = node_cls()
    (out,) = getattr(node, node_cls.FUNCTION)("SDXL", 8, 1.0, 2, "auto")
    assert out.dtype == torch.float32 and out.shape == (9,) and out[-1] == 0.0
    entry = optsteps_loader.get("scaled-linear", 7, order=2)  # today: the NFE-7 t_eps entry, then a denoise
    assert out[:8].tolist() == torch.tensor(entry.sigmas, dtype=torch.float32).tolist()
    calls = []
    sample_dpmpp_2m(lambda x, s: calls.append(float(s)) or x * 0.5, torch.ones(3), out)
    assert len(calls) == 8  # steps model calls, never steps + 1
    (half,) = node.get_sigmas("SDXL", 8, 0.5, 2, "auto")
    assert half.tolist() == out[-5:].tolist()  # the last round(8 * 0.5) + 1 values, as ComfyUI's AYS node
    (none,) = node.get_sigmas("SDXL", 8, 0.0, 2, "auto")
    assert none.numel() == 0
    (flow,) = node.get_sigmas("SD3 (flow, shift 3)", 10, 1.0, 3, "eps+denoise")
    assert flow[:10].tolist() == torch.tensor(optsteps_loader.get("flow", 9, shift=3.0).sigma_t).tolist()
    with pytest.raises(EndingUnavailableError, match="not in this registry version"):
        node.get_sigmas("SD1", 8, 1.0, 2, "zero")


def test_comfyui_node_uses_zero_entries_once_the_loader_has_them(monkeypatch):
    from optsteps_loader import _endings, comfyui

    seen, real_get = {}, optsteps_loader.get

    def get(schedule, nfe, *, ending="eps", **kwargs):
        seen.update(ending=ending, nfe=nfe)
        return as_zero(real_get(schedule, nfe, **kwargs))

    monkeypatch.setattr(optsteps_loader, "get", get)
    (out,) = comfyui.OptimizedStepsScheduler().get_sigmas("SD1", 8, 1.0, 2, "auto")
    assert seen == {"ending": "zero", "nfe": 8} and out.shape == (9,) and out[-1] == 0.0
    assert _endings.supports_ending_argument()


# ---- `optsteps show --format diffusers`: every printed block works as printed ------------------------------


def _blocks(text: str) -> list[str]:
    return [b for b in text.split("\n\n") if b.startswith("# --- ") and "\nkwargs = " in b]


@pytest.mark.parametrize("order", [1, 2, 3])
def test_show_diffusers_snippets_run_as_printed(order):
    from click.testing import CliRunner

    from optsteps_loader.cli import build_cli

    result = CliRunner().invoke(
        build_cli(),
        ["show", "scaled-linear", "--nfe", "8", "--order", str(order)]
        + [
            "--format",
            "diffusers",
        ],
    )
    assert result.exit_code == 0, result.output
    blocks = _blocks(result.output)
    assert len(blocks) == (5 if order == 1 else 4)
    steps = sd(8, order)
    for block in blocks:
        pipe = types.SimpleNamespace(scheduler=diffusers.PNDMScheduler(**SD_BETAS))  # an SD pipeline's default
        namespace = {"pipe": pipe}
        exec(compile(block, "optsteps show", "exec"), namespace)  # noqa: S102 - the printed snippet
        model = Counting()
        run_pipeline_loop(pipe.scheduler, model, _x(), **namespace["kwargs"])
        name = re.match(r"# --- (\w+)", block).group(1)
        assert type(pipe.scheduler).__name__ == name
        assert model.timesteps == pytest.approx(list(steps.timesteps[:8]), abs=1.0), name


def test_show_diffusers_flow_and_continuous():
    from click.testing import CliRunner

    from optsteps_loader.cli import build_cli

    out = CliRunner().invoke(build_cli(), ["show", "flow", "--nfe", "8", "--shift", "3", "--format", "diffusers"])
    blocks = _blocks(out.output)
    assert len(blocks) == 2 and "not have yet" in out.output
    steps = optsteps_loader.get("flow", 8, shift=3.0)
    for block in blocks:
        pipe = types.SimpleNamespace(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0))
        namespace = {"pipe": pipe}
        exec(compile(block, "optsteps show", "exec"), namespace)  # noqa: S102 - the printed snippet
        model = Counting()
        run_pipeline_loop(pipe.scheduler, model, _x(), **namespace["kwargs"])
        assert model.timesteps == pytest.approx(list(steps.timesteps[:8]), rel=1e-6)
    out = CliRunner().invoke(build_cli(), ["show", "vp-linear", "--nfe", "8", "--format", "diffusers"]).output
    assert not _blocks(out) and "do not run it" in out


def test_pyproject_declares_the_comfyui_node():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert {"PublisherId", "DisplayName", "Icon"} <= set(data["tool"]["comfy"])
    assert "diffusers" in data["project"]["optional-dependencies"]
