"""optsteps_loader.diffusers: a registry entry in a diffusers scheduler makes ``step()`` follow our grid."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import optsteps_loader
from optsteps_loader import dpmpp, unipc
from optsteps_loader.diffusers import configure_scheduler, release
from tests._sampler_fixtures import (
    GRID_TIMESTEPS,
    SD_BETAS,
    discrete_steps,
    flow_steps,
    make_steps,
    relative_error,
    run_diffusers,
    toy_model,
    vp_uniform_lambda,
)

diffusers = pytest.importorskip("diffusers")
REGISTRY = Path(__file__).resolve().parents[1] / "registry"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _x(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _sd_steps(order=3, **kwargs):
    return discrete_steps(
        diffusers.UniPCMultistepScheduler(**SD_BETAS).alphas_cumprod, GRID_TIMESTEPS, order=order, **kwargs
    )


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [2, 3])
def test_unipc_scheduler_follows_entry(variant, order):
    steps = _sd_steps(order, variant=variant)
    scheduler = diffusers.UniPCMultistepScheduler(**SD_BETAS, solver_order=order, solver_type=variant)
    scheduler.set_timesteps(25)  # whatever was there before is replaced
    assert configure_scheduler(scheduler, steps) is scheduler
    assert scheduler.timesteps.tolist() == GRID_TIMESTEPS[:-1]
    assert scheduler.sigmas.tolist() == list(steps.sigmas)  # N+1 values, no appended 0
    assert scheduler.num_inference_steps == steps.nfe
    x = _x(2, 4, 3, 3)
    ours = unipc.sample(toy_model, x, steps, order=order, variant=variant)
    assert relative_error(run_diffusers(scheduler, toy_model, x), ours) < 1e-6


@pytest.mark.parametrize("order", [2, 3])
def test_dpmpp_scheduler_follows_entry(order):
    steps = _sd_steps(order, solver="dpmpp")
    scheduler = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=order)
    configure_scheduler(scheduler, steps)
    x = _x(2, 4, 3, 3)
    ours = dpmpp.sample(toy_model, x, steps, order=order)
    assert relative_error(run_diffusers(scheduler, toy_model, x), ours) < 1e-6  # float32 cast inside diffusers


def test_pipeline_style_set_timesteps_reapplies_entry():
    """Pipelines call set_timesteps(num_inference_steps, device=...) themselves: the entry survives, and the
    multistep state is reset so a second run gives the same result."""
    steps = _sd_steps()
    scheduler = configure_scheduler(diffusers.UniPCMultistepScheduler(**SD_BETAS, solver_order=3), steps)
    x = _x(3, 5)
    first = run_diffusers(scheduler, toy_model, x)
    scheduler.set_timesteps(steps.nfe, device="cpu")
    assert scheduler.timesteps.tolist() == GRID_TIMESTEPS[:-1]
    assert torch.equal(run_diffusers(scheduler, toy_model, x), first)
    scheduler.set_timesteps(num_inference_steps=steps.nfe, mu=0.7)  # a dynamic-shift mu is ignored
    with pytest.raises(ValueError, match=f"num_inference_steps={steps.nfe}"):
        scheduler.set_timesteps(steps.nfe + 1)
    with pytest.raises(ValueError, match=r"pipe\(sigmas=...\)"):
        scheduler.set_timesteps(sigmas=[0.5, 0.1])
    clone = copy.deepcopy(scheduler)  # the patched method follows the copy, not the original
    clone.set_timesteps(steps.nfe)
    assert clone.set_timesteps.__self__ is clone
    release(scheduler)  # diffusers' own method again
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) == 4


def test_real_pipeline_with_tiny_unet():
    """DDPMPipeline + a tiny random UNet2DModel + DPMSolverMultistepScheduler configured with an entry: the
    pipeline's output equals our sampler's on the same noise (float32)."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()
    scheduler = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=2)
    steps = discrete_steps(scheduler.alphas_cumprod, [999, 800, 550, 300, 120, 30, 5], order=2, solver="dpmpp")
    configure_scheduler(scheduler, steps)
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        image = pipe(
            batch_size=2,
            generator=torch.Generator().manual_seed(5),
            num_inference_steps=steps.nfe,
            output_type="pt",
        ).images
        noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
        ours = dpmpp.sample(lambda x, t: unet(x, t).sample, noise, steps, order=2)
    assert relative_error(image, (ours / 2 + 0.5).clamp(0, 1)) < 1e-5


def test_timestep_collisions_follow_grid_order():
    """Nodes whose rounded timesteps coincide: diffusers looks the first timestep up and, when it occurs
    twice, starts at the *second* occurrence; begin_index = 0 keeps it on the grid."""
    sched = diffusers.UniPCMultistepScheduler(**SD_BETAS, solver_order=2, solver_type="bh1")
    ref = discrete_steps(sched.alphas_cumprod, [999, 998, 600, 300, 40], order=2)
    # node 1 keeps its own α, σ but gets the same integer timestep as node 0
    steps = make_steps(list(ref.alpha_t), list(ref.sigma_t), [999, 999, 600, 300, 40], order=2, variant="bh1")
    x = _x(2, 3)
    ours = unipc.sample(toy_model, x, steps, variant="bh1")
    configure_scheduler(sched, steps)
    assert relative_error(run_diffusers(sched, toy_model, x), ours) < 1e-6
    configure_scheduler(sched, steps)
    sched._begin_index = None  # what diffusers' own set_timesteps leaves: it starts at node 1 and
    try:  # runs off the end of the grid (diffusers 0.42 stops on an internal assert)
        off_grid = run_diffusers(sched, toy_model, x)
    except (AssertionError, IndexError):
        return
    assert relative_error(off_grid, ours) > 1e-3


def test_flow_entry_needs_flow_scheduler():
    steps = flow_steps([0.999, 0.9, 0.7, 0.45, 0.25, 0.1, 0.03], variant="bh1")
    scheduler = diffusers.UniPCMultistepScheduler(
        solver_order=3, solver_type="bh1", prediction_type="flow_prediction", use_flow_sigmas=True
    )
    configure_scheduler(scheduler, steps)
    assert scheduler.sigmas.tolist() == list(steps.sigma_t)  # the flow σ, not σ/α
    assert scheduler.timesteps.dtype == torch.float32
    x = _x(2, 6)
    ours = unipc.sample(toy_model, x, steps, prediction="flow", variant="bh1")
    assert relative_error(run_diffusers(scheduler, toy_model, x), ours) < 1e-6
    with pytest.raises(ValueError, match="use_flow_sigmas=True"):
        configure_scheduler(diffusers.UniPCMultistepScheduler(solver_order=3), steps)
    with pytest.raises(ValueError, match="not a rectified-flow schedule"):
        configure_scheduler(scheduler, vp_uniform_lambda(5))


def test_flow_entry_at_a_served_shift_in_unipc():
    """A served flow entry (shift 5, from the shift-3 variant) configures UniPC with use_flow_sigmas=True and
    flow_shift=5.0: the scheduler runs the entry's flow σ's, and its samples are the reference sampler's."""
    steps = optsteps_loader.get("flow", 8, shift=5.0)
    assert steps.served_from["shift"] == 3.0 and steps.ending == "eps"
    scheduler = diffusers.UniPCMultistepScheduler(
        solver_order=3, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    assert configure_scheduler(scheduler, steps) is scheduler
    assert scheduler.sigmas.tolist() == list(steps.sigma_t)
    x = _x(2, 6)
    ours = unipc.sample(toy_model, x, steps, prediction="flow")
    assert relative_error(run_diffusers(scheduler, toy_model, x), ours) < 1e-6


def test_rejections():
    steps = _sd_steps(order=2)
    with pytest.raises(ValueError, match="scheduler must be one of"):
        configure_scheduler(diffusers.EulerDiscreteScheduler(), steps)
    edm = make_steps([1.0] * 4, [80.0, 10.0, 1.0, 0.002], [80.0, 10.0, 1.0, 0.002], order=2)
    with pytest.raises(ValueError, match="EDM"):
        configure_scheduler(diffusers.UniPCMultistepScheduler(), edm)
    linear_betas = diffusers.UniPCMultistepScheduler()  # ddpm-linear betas: not Stable Diffusion's
    with pytest.raises(ValueError, match="does not match this scheduler's noise schedule.*'ddpm-linear'"):
        configure_scheduler(linear_betas, steps)
    configure_scheduler(linear_betas, steps, check_schedule=False)
    with pytest.raises(ValueError, match="solver_p"):
        configure_scheduler(diffusers.UniPCMultistepScheduler(solver_p=diffusers.DPMSolverMultistepScheduler()), steps)


# ---- EDMEulerScheduler: the entry's σ's through its Karras map ------------------------------------------------


def test_edm_euler_runs_the_entry_exactly():
    """EDMEulerScheduler given pipeline_kwargs runs the entry's N σ's, then σ = 0, in N calls, and its samples
    match a float64 Euler (DDIM) loop on the same σ's with an exact denoiser (data N(0, 0.25 I))."""
    from optsteps_loader.diffusers import pipeline_kwargs

    steps = optsteps_loader.get("edm2-img512", 6, solver="dpmpp", order=1, ending="zero")
    scheduler = diffusers.EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0)
    kwargs = pipeline_kwargs(scheduler, steps)
    scheduler.set_timesteps(device="cpu", **kwargs)  # as diffusers' retrieve_timesteps calls it
    want = torch.tensor(steps.sigmas[:6], dtype=torch.float64)
    assert scheduler.sigmas.shape == (7,) and scheduler.sigmas[-1] == 0.0 and len(scheduler.timesteps) == 6
    assert torch.allclose(scheduler.sigmas[:-1].double(), want, rtol=2e-7, atol=0)  # float32 inside diffusers

    def denoise(x, sigma):
        return x * 0.25 / (0.25 + sigma * sigma)

    x0 = _x(2, 3, 4, 4).double() * float(want[0])
    x = x0.float()
    for t in scheduler.timesteps:
        sigma = float(scheduler.sigmas[scheduler.step_index or 0])
        x = scheduler.step(torch.zeros_like(x), t, x, pred_original_sample=denoise(x, sigma)).prev_sample
    ref, grid = x0, [*want.tolist(), 0.0]
    for s, s_next in zip(grid[:-1], grid[1:], strict=True):
        ref = (s_next / s) * ref + (1.0 - s_next / s) * denoise(ref, s)
    assert torch.allclose(x.double(), ref, rtol=1e-5, atol=1e-5)


def test_edm_euler_refuses_what_it_would_run_wrongly():
    from optsteps_loader.diffusers import EndingUnavailableError, pipeline_kwargs

    euler = diffusers.EDMEulerScheduler()
    zero = optsteps_loader.get("edm", 6, solver="dpmpp", order=1, ending="zero")
    with pytest.raises(ValueError, match="not an EDM schedule"):
        pipeline_kwargs(euler, optsteps_loader.get("vp-linear", 6, solver="dpmpp", order=1, ending="zero"))
    with pytest.raises(ValueError, match="optimized for order 2"):
        pipeline_kwargs(euler, optsteps_loader.get("edm", 6, solver="dpmpp", order=2, ending="zero"))
    with pytest.raises(EndingUnavailableError, match="ending='zero'"):
        pipeline_kwargs(euler, optsteps_loader.get("edm", 6, solver="dpmpp", order=1))
    with pytest.raises(ValueError, match="build it with 'karras'"):
        pipeline_kwargs(diffusers.EDMEulerScheduler(sigma_schedule="exponential"), zero)
    with pytest.raises(ValueError, match="final_sigmas_type='zero'"):
        pipeline_kwargs(diffusers.EDMEulerScheduler(final_sigmas_type="sigma_min"), zero)


# ---- EDMDPMSolverMultistepScheduler: configured like DPM-Solver, the model takes c_noise ---------------------


def _edm_network_and_model(sigma_data: float = 0.5):
    """(raw network F(c_in x, c_noise) as an EDM pipeline's UNet sees it, the same network as an x̂_0 model
    of (x, σ) for dpmpp.sample): x̂_0 = c_skip x + c_out F, with c_noise rounded to float32 as diffusers does."""

    def network(x_in, c_noise):
        return toy_model(x_in, c_noise)

    def x0_model(x, sigma):
        s = sigma.reshape(sigma.shape + (1,) * (x.dim() - 1))
        c_noise = (0.25 * torch.log(sigma.float())).to(x.dtype)
        var = s * s + sigma_data**2
        return sigma_data**2 / var * x + s * sigma_data / var.sqrt() * network(x / var.sqrt(), c_noise)

    return network, x0_model


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("ending", ["zero", "eps"])
def test_edm_dpmpp_scheduler_follows_entry(order, ending):
    """A configured EDMDPMSolverMultistepScheduler, run as a pipeline runs it (scale_model_input, the network on
    c_noise, step), gives dpmpp.sample's result on the same entry to 1e-10; the key form loads the entry of the
    scheduler's order and final_sigmas_type for each num_inference_steps."""
    steps = optsteps_loader.get("edm2-img512", 6, solver="dpmpp", order=order, ending=ending)
    final = "zero" if ending == "zero" else "sigma_min"
    scheduler = diffusers.EDMDPMSolverMultistepScheduler(solver_order=order, final_sigmas_type=final)
    configure_scheduler(scheduler, "edm2-img512")
    scheduler.set_timesteps(6, device="cpu")
    assert scheduler.sigmas.tolist() == [*steps.sigmas[:6], 0.0 if ending == "zero" else steps.sigmas[6]]
    network, x0_model = _edm_network_and_model()
    x0 = _x(2, 3, 4, 4) * steps.sigmas[0]
    x = x0.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(network(scheduler.scale_model_input(x, t), t.expand(2)), t, x).prev_sample
    ours = dpmpp.sample(x0_model, x0, steps, prediction="sample", order=order)
    assert relative_error(x, ours) < 1e-10


def test_edm_dpmpp_scheduler_refusals():
    edm = optsteps_loader.get("edm", 6, solver="dpmpp", order=2, ending="zero")
    with pytest.raises(ValueError, match="not an EDM schedule"):
        configure_scheduler(diffusers.EDMDPMSolverMultistepScheduler(), _sd_steps(order=2))
    with pytest.raises(ValueError, match="sigma_max=120.*starts at sigma = 80"):
        configure_scheduler(diffusers.EDMDPMSolverMultistepScheduler(sigma_max=120.0), edm)
    with pytest.raises(ValueError, match="EDMDPMSolverMultistepScheduler with configure_scheduler"):
        configure_scheduler(diffusers.DPMSolverMultistepScheduler(), edm)
    with pytest.raises(ValueError, match="sigma_max=120"):
        from optsteps_loader.diffusers import pipeline_kwargs

        pipeline_kwargs(
            diffusers.EDMEulerScheduler(sigma_max=120.0),
            optsteps_loader.get("edm", 6, solver="dpmpp", order=1, ending="zero"),
        )


# ---- which solver step() runs: run_step_orders and SolverMismatchWarning -------------------------------------

_UPDATES = (
    "dpm_solver_first_order_update",
    "multistep_dpm_solver_second_order_update",
    "multistep_dpm_solver_third_order_update",
)


def _orders_diffusers_runs(scheduler, n):
    """The order of each step diffusers' own step() takes over n steps of its own schedule, read off the
    scheduler (UniPC's this_order) or off which update method it calls (DPM-Solver)."""
    orders = []

    def recorded(update, order=None):
        def run(*args, **kwargs):
            orders.append(order or kwargs["order"])
            try:
                return update(*args, **kwargs)
            except RuntimeError:  # UniPC of order > 1 into sigma = 0 (lower_order_final=False): singular
                return kwargs["sample"]

        return run

    if isinstance(scheduler, diffusers.UniPCMultistepScheduler):
        scheduler.multistep_uni_p_bh_update = recorded(scheduler.multistep_uni_p_bh_update)
    else:
        for k, name in enumerate(_UPDATES, start=1):
            setattr(scheduler, name, recorded(getattr(scheduler, name), k))
    scheduler.set_timesteps(n)
    x = _x(2, 3) * float(scheduler.init_noise_sigma)
    for t in scheduler.timesteps:
        x = scheduler.step(toy_model(scheduler.scale_model_input(x, t), t.reshape(1)), t, x).prev_sample
    return tuple(orders)


def test_run_step_orders_is_what_diffusers_runs():
    """run_step_orders models diffusers' order rules (warm-up, lower_order_final below 15 steps for DPM-Solver
    and at every n for UniPC, euler_at_final, the σ = 0 final step): checked against the orders diffusers'
    step() takes, for every class, solver order, flag and ending, at 4, 8, 14 and 15 steps."""
    from optsteps_loader._scheduler_fit import run_step_orders

    classes = {
        diffusers.UniPCMultistepScheduler: SD_BETAS,
        diffusers.DPMSolverMultistepScheduler: SD_BETAS,
        diffusers.EDMDPMSolverMultistepScheduler: {},
    }
    checked = 0
    for cls, base in classes.items():
        for order in (1, 2, 3):
            for lower in (True, False):
                for euler in (False, True) if cls is not diffusers.UniPCMultistepScheduler else (False,):
                    for final in ("zero", "sigma_min"):
                        kwargs = {"solver_order": order, "lower_order_final": lower, "final_sigmas_type": final}
                        kwargs |= {"euler_at_final": True} if euler else {}
                        for n in (4, 8, 14, 15):  # 14, 15: either side of diffusers' 15
                            scheduler = cls(**base, **kwargs)
                            assert run_step_orders(scheduler, n) == _orders_diffusers_runs(scheduler, n), (
                                cls,
                                kwargs,
                                n,
                            )
                            checked += 1
    assert checked == 3 * 2 * 2 * 4 + 2 * 3 * 2 * 2 * 2 * 4  # UniPC has no euler_at_final


def test_entries_are_measured_with_the_orders_diffusers_runs_by_default():
    """At every NFE 1–40, the step orders an entry of each solver is measured with
    (`coefficients.solver_step_orders`) are those diffusers' scheduler of that solver runs with its default
    settings and the entry's ending (the σ = 0 ending: ``final_sigmas_type="zero"``): DPM-Solver++ stops lowering
    its last orders at 15 steps, so its entries from 15 on are measured that way, and no setting is needed."""
    from optsteps_loader._scheduler_fit import run_step_orders
    from optsteps_loader.coefficients import solver_step_orders

    classes = {"unipc": diffusers.UniPCMultistepScheduler, "dpmpp": diffusers.DPMSolverMultistepScheduler}
    for solver, cls in classes.items():
        for order in (1, 2, 3):
            for ending, final in (("zero", "zero"), ("eps", "sigma_min")):
                scheduler = cls(**SD_BETAS, solver_order=order, final_sigmas_type=final)
                for n in range(1, 41):
                    assert solver_step_orders(solver, n, order, ending) == run_step_orders(scheduler, n), (
                        solver,
                        order,
                        ending,
                        n,
                    )
    assert solver_step_orders("dpmpp", 15, 3, "zero")[-3:] == (3, 3, 1)  # not 3, 2, 1 as below 15


def test_every_shipped_solver_entry_records_the_orders_its_solver_runs():
    from optsteps_loader.coefficients import solver_step_orders

    checked = 0
    for record in json.loads((REGISTRY / "index.json").read_text())["files"]:
        for e in json.loads((REGISTRY / record["path"]).read_text()).get("solver_entries", []):
            want = solver_step_orders(e["solver"], e["nfe"], e["order"], e["ending"])
            assert tuple(e["step_orders"]) == want, (record["path"], e["solver"], e["order"], e["ending"], e["nfe"])
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("cls", "config", "solver", "expected"),
    [
        ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, "dpmpp", "a stochastic sampler"),
        ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver"}, "dpmpp", "noise-prediction DPM-Solver"),
        ("DPMSolverMultistepScheduler", {"solver_type": "heun"}, "dpmpp", "solver_type='heun'"),
        (
            "DPMSolverMultistepScheduler",
            {"lower_order_final": False},
            "dpmpp",
            r"step orders 1,2,3,3,3,3,3,1 \(measured: 1,2,3,3,3,3,2,1\)",
        ),
        ("DPMSolverMultistepScheduler", {}, "unipc", r"ask for get\(\.\.\., solver='dpmpp'\)"),
        ("UniPCMultistepScheduler", {"solver_type": "bh1"}, "unipc", r"solver_type='bh1' \(measured: 'bh2'\)"),
        ("UniPCMultistepScheduler", {"predict_x0": False}, "unipc", "predict_x0=False"),
        ("UniPCMultistepScheduler", {"disable_corrector": [1]}, "unipc", r"disable_corrector=\[1\]"),
        ("UniPCMultistepScheduler", {"lower_order_final": False}, "unipc", "step orders 1,2,3,3,3,3,3,3"),
        ("UniPCMultistepScheduler", {}, "dpmpp", r"ask for get\(\.\.\., solver='unipc'\)"),
    ],
)
def test_solver_mismatch_warns_and_names_the_fix(cls, config, solver, expected):
    """A configured scheduler that will run the entry with another solver warns on every entry it loads
    (given one, or by key at set_timesteps), naming the setting and its fix; the scheduler built without that
    setting, given the entry of its own solver, runs without a warning (pyproject turns an unexpected
    SolverMismatchWarning into a test failure)."""
    from optsteps_loader.errors import SolverMismatchWarning

    final = "sigma_min" if config.get("algorithm_type") == "dpmsolver" else "zero"  # diffusers refuses zero there
    ending = "zero" if final == "zero" else "eps"
    own = "unipc" if cls.startswith("UniPC") else "dpmpp"
    build = getattr(diffusers, cls)
    with pytest.warns(SolverMismatchWarning, match=expected) as record:
        configure_scheduler(
            build(**SD_BETAS, solver_order=3, final_sigmas_type=final, **config),
            optsteps_loader.get("scaled-linear", 8, solver=solver, order=3, ending=ending),
        )
    assert [w.filename for w in record if w.category is SolverMismatchWarning] == [__file__]  # the caller's line
    configure_scheduler(
        build(**SD_BETAS, solver_order=3, final_sigmas_type=final),
        optsteps_loader.get("scaled-linear", 8, solver=own, order=3, ending=ending),
    )
    if solver == own:  # a key loads the entry of the scheduler's own solver, at each set_timesteps
        keyed = configure_scheduler(
            build(**SD_BETAS, solver_order=3, final_sigmas_type=final, **config), "scaled-linear"
        )
        with pytest.warns(SolverMismatchWarning, match=expected) as record:
            keyed.set_timesteps(8)
        assert [w.filename for w in record if w.category is SolverMismatchWarning] == [__file__]


def test_solver_mismatch_in_the_standard_path_and_edm():
    from optsteps_loader.diffusers import pipeline_kwargs
    from optsteps_loader.errors import SolverMismatchWarning

    # UniPC-1 has a corrector, Euler not (UniPC-1 has no solver entries: the bound's entry, by its p)
    unipc_1 = optsteps_loader.get("scaled-linear", 8, order=1, ending="zero", p=1)
    with pytest.warns(
        SolverMismatchWarning, match=r"EulerDiscreteScheduler runs DPM-Solver\+\+ \(Euler = DDIM\) updates"
    ) as record:
        pipeline_kwargs(diffusers.EulerDiscreteScheduler(**SD_BETAS), unipc_1)
    assert [w.filename for w in record] == [__file__]
    pipeline_kwargs(
        diffusers.EulerDiscreteScheduler(**SD_BETAS),
        optsteps_loader.get("scaled-linear", 8, order=1, ending="zero", solver="dpmpp"),
    )
    with pytest.warns(SolverMismatchWarning, match="algorithm_type='sde-dpmsolver\\+\\+'"):
        configure_scheduler(
            diffusers.EDMDPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++"),
            optsteps_loader.get("edm", 6, solver="dpmpp", order=2, ending="zero"),
        )
    bound = optsteps_loader.get("scaled-linear", 16, order=3, p=1, solver="dpmpp")  # diffusers lowers only below 15
    scheduler = diffusers.DPMSolverMultistepScheduler(**SD_BETAS, solver_order=3, final_sigmas_type="sigma_min")
    with pytest.warns(SolverMismatchWarning, match="no setting matches"):
        configure_scheduler(scheduler, bound)


def test_matching_schedule_counts_subclasses():
    """A pipeline's own subclass of a diffusers scheduler is matched as the class it extends."""
    from optsteps_loader.diffusers import matching_schedule

    class MyFlow(diffusers.FlowMatchEulerDiscreteScheduler):
        pass

    class MyEdm(diffusers.EDMEulerScheduler):
        pass

    class MySolver(diffusers.DPMSolverMultistepScheduler):
        pass

    assert matching_schedule(MyFlow()) == "flow"
    assert matching_schedule(MyEdm()) == "edm"
    assert matching_schedule(MySolver(**SD_BETAS)) == "scaled-linear"
    assert matching_schedule(MySolver()) == "ddpm-linear"
