"""`get()` tells the user when it returns another entry than the one asked for (a FallbackWarning naming what
was asked, what came back and how to ask for that by name), the record says both, and the messages for a bad
NFE or solver name say what exists. The shipped registry (one file copied and edited for the profile case)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

import optsteps_loader
from optsteps_loader import FallbackWarning
from tests.registry_factory import canonical_bytes, read_json, rewrite, write_bytes

REGISTRY = Path(__file__).resolve().parents[1] / "registry"


@pytest.fixture(autouse=True)
def _shipped(fresh_loader_cache):
    """The bundled registry, whatever OPTSTEPS_REGISTRY_DIR says."""


def quiet(*args, **kwargs):
    """``get`` where any warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return optsteps_loader.get(*args, **kwargs)


def test_exact_requests_do_not_warn():
    for kwargs in ({}, {"solver": "dpmpp", "order": 1, "ending": "zero"}, {"order": 2, "profile": "generic"}):
        steps = quiet("sdxl", 8, **kwargs)
        assert steps.requested is None and steps.method in ("refined", "rule", "generic")
    assert quiet("scaled-linear", 11, p=1).requested is None  # the bound's entry, asked for by name


def test_unipc_order_1_is_the_bound_entry_and_says_so():
    message = r"no solver entry.*UniPC order 1 was not measured.*solver='dpmpp', order=1"
    with pytest.warns(FallbackWarning, match=message):
        steps = optsteps_loader.get("sdxl", 8, order=1)
    assert steps.method == "bound" and steps.profile is None
    assert steps.requested == {"solver": "unipc", "order": 1, "ending": "eps", "profile": "latent", "p": None}
    named = quiet("sdxl", 8, order=1, p=steps.p)  # what the warning says asks for it without one
    assert named.requested is None and named.lambdas == steps.lambdas


@pytest.mark.parametrize(("nfe", "ending", "method"), [(35, "eps", "bound"), (31, "zero", "bound+denoise")])
def test_beyond_the_solver_entries_the_alias_profile_and_the_solver_entry_are_dropped_loudly(nfe, ending, method):
    shipped = "nfe 3-30"
    with pytest.warns(FallbackWarning, match=rf"get\('sdxl', {nfe}.*profile 'latent'.*{shipped}.*p=1") as caught:
        steps = optsteps_loader.get("sdxl", nfe, ending=ending)
    assert caught[0].filename == __file__  # the caller's line
    assert (steps.method, steps.ending, steps.profile, steps.nfe) == (method, ending, None, nfe)
    assert steps.requested["profile"] == "latent" and steps.requested["p"] is None
    named = quiet("sdxl", nfe, p=1, ending=ending)
    assert named.sigmas == steps.sigmas and named.method == method and named.requested is None


def test_above_the_profile_s_nfes_an_alias_returns_the_generic_solver_entry_quietly():
    for solver, order, ending in (
        ("dpmpp", 2, "zero"),
        ("unipc", 3, "zero"),
        ("dpmpp", 1, "zero"),
        ("unipc", 3, "eps"),
    ):
        steps = quiet("sdxl", 20, solver=solver, order=order, ending=ending)
        generic = quiet("scaled-linear", 20, solver=solver, order=order, ending=ending)
        assert steps == generic and steps.profile is None and steps.method in ("refined", "rule")
        assert steps.requested is None and steps.quality["validation"]["problems"] > 0


def test_an_alias_profile_without_that_entry_falls_back_to_generic_loudly(tmp_path):
    root = tmp_path / "registry"
    (root / "v1").mkdir(parents=True)
    shutil.copy(REGISTRY / "index.json", root / "index.json")
    shutil.copy(REGISTRY / "v1" / "scaled-linear.json", root / "v1" / "scaled-linear.json")
    doc = read_json(root, "v1/scaled-linear.json")
    gone = {"profile": "latent", "solver": "unipc", "order": 3, "ending": "eps", "nfe": 8}
    doc["solver_entries"] = [e for e in doc["solver_entries"] if {k: e.get(k) for k in gone} != gone]
    index = read_json(root, "index.json")
    next(r for r in index["files"] if r["path"] == "v1/scaled-linear.json")["solver_entries"] -= 1
    write_bytes(root / "index.json", canonical_bytes(index))
    rewrite(root, "v1/scaled-linear.json", doc)
    with pytest.warns(FallbackWarning, match=r"no 'latent' entry.*returned the generic entry.*profile='generic'"):
        steps = optsteps_loader.get("sdxl", 8, source=root)
    assert steps.profile is None and steps.method in ("refined", "rule")
    assert steps.requested["profile"] == "latent"
    assert quiet("sdxl", 8, source=root, profile="generic").lambdas == steps.lambdas


def test_a_configured_scheduler_above_the_solver_entries_warns_at_the_pipelines_call():
    diffusers = pytest.importorskip("diffusers")
    from optsteps_loader.diffusers import configure_scheduler
    from tests._sampler_fixtures import SD_BETAS

    for cls in (diffusers.UniPCMultistepScheduler, diffusers.DPMSolverMultistepScheduler):
        scheduler = configure_scheduler(cls(**SD_BETAS, solver_order=2), "sdxl")
        scheduler.set_timesteps(20)  # a solver entry: no warning
        with pytest.warns(FallbackWarning, match="nfe 3-30") as caught:
            scheduler.set_timesteps(31)
        assert caught[0].filename == __file__


def test_nfe_out_of_range_names_the_nfes_shipped():
    for nfe in (0, -3, 10**30):
        with pytest.raises(
            ValueError,
            match=r"nfe is the number of model calls.*solver entries for nfe 3-30 and "
            r"bound entries for nfe 3-30, 35, 40, 45, 50",
        ):
            optsteps_loader.get("sdxl", nfe)


@pytest.mark.parametrize(
    "solver, hint",
    [("euler", "solver='dpmpp', order=1"), ("DDIM", "solver='dpmpp', order=1"), ("dpmpp_2m", "order=2")],
)
def test_a_solver_name_from_another_library_points_to_ours(solver, hint):
    with pytest.raises(ValueError, match=f"solver must be one of.*{hint}"):
        optsteps_loader.get("sdxl", 8, solver=solver)


def test_the_builder_command_in_a_message_names_its_extra():
    with pytest.raises(optsteps_loader.EntryNotFoundError, match=r"optsteps\[builder\]'\): python -m builder solve"):
        optsteps_loader.get("sdxl", 33)


def test_python_dash_m_builder_without_its_extra_names_it():
    import subprocess
    import sys

    # a plain `pip install optsteps`: no click (a None entry in sys.modules makes its import fail)
    code = "import sys, runpy; sys.modules['click'] = None; runpy.run_module('builder', run_name='__main__')"
    out = subprocess.run([sys.executable, "-c", code, "solve"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr == "python -m builder needs click: pip install 'optsteps[builder]'\n"
