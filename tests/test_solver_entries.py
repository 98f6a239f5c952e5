"""Solver entries end to end on a tiny sweep (edm, NFE 3-4, UniPC-2 and DPM++ 2M, both endings; generic and
for the pixel profile its alias names): the refine stage, its cache, the data format, the loader's lookup,
aliases and profiles, and the reference samplers on both endings."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import optsteps_loader
from builder.registry import sweep
from builder.registry.sweep import chains as chains_mod
from builder.registry.sweep.spec import SweepError, load_spec
from builder.registry.validate import validate_registry
from builder.select import family
from builder.select.differentiable import TorchMixture
from builder.select.differentiable import sample as torch_sample
from builder.select.refine import bind, errors
from builder.select.robust import solver_spec
from optsteps_loader import dpmpp, unipc
from optsteps_loader.errors import EntryNotFoundError, RegistryIntegrityError
from tests.registry_factory import rewrite, tiny_solver_spec

SPEC = tiny_solver_spec()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("solver")
    files = sweep.build(root / "registry", spec=SPEC, cache_dir=root / "cache", workers=1, progress=False)
    return root, files


@pytest.fixture(scope="module")
def reg(built):
    return built[0] / "registry"


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_the_folder_validates_and_verifies(reg):
    report = validate_registry(reg)
    assert report.ok, report.problems
    assert (
        report.entries_checked == 2 + 2 * 2 * 2 * 2
    )  # 2 bound entries; generic, pixel x 2 solvers x 2 endings x 2 NFEs
    assert optsteps_loader.verify(reg)["entries"] == 18


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_get_returns_the_solver_entry_for_each_solver_and_ending(reg):
    for solver in ("unipc", "dpmpp"):
        eps = optsteps_loader.get("edm", 4, order=2, solver=solver, source=reg)
        zero = optsteps_loader.get("edm", 4, order=2, solver=solver, ending="zero", source=reg)
        assert eps.method in ("refined", "rule", "bound") and eps.p is None and eps.ending == "eps"
        assert len(eps.lambdas) == len(eps.timesteps) == len(eps.sigmas) == 5 and eps.sigmas[-1] > 0
        assert zero.ending == "zero" and len(zero.lambdas) == len(zero.timesteps) == 4
        assert len(zero.sigmas) == 5 and zero.sigmas_with_zero() == zero.sigmas and zero.sigmas[-1] == 0.0
        assert (zero.t[-1], zero.alpha_t[-1], zero.sigma_t[-1]) == (0.0, 1.0, 0.0)
        assert zero.lambdas[-1] <= eps.lambdas[-1]  # the last evaluated node: at most t_eps' λ (a host rule's last)
        assert eps.variant == ("bh2" if solver == "unipc" else None)
        q = eps.quality["validation"]
        assert q["problems"] == len(family.split("validation")) and "uniform-lambda" in q["baselines"]
        assert isinstance(eps.quality["loses_on_validation"], bool)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_p_selects_the_bound_entry_either_ending(reg):
    bound = optsteps_loader.get("edm", 4, order=2, p=1, source=reg)
    assert bound.method == "bound" and bound.p == 1.0 and bound.objective is not None
    zero = optsteps_loader.get("edm", 5, order=2, p=1, ending="zero", source=reg)  # asked by name: no warning
    assert zero.method == "bound+denoise" and zero.sigmas == (*bound.sigmas, 0.0) and zero.requested is None


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_zero_beyond_the_solver_entries_is_the_bound_entry_then_a_denoise(reg):
    with pytest.warns(optsteps_loader.FallbackWarning, match=r"nfe 3, 4.*get\(\.\.\., p=1, ending='zero'\)"):
        zero = optsteps_loader.get("edm", 5, order=2, ending="zero", source=reg)
    base = optsteps_loader.get("edm", 4, order=2, p=1, source=reg)
    assert zero.method == "bound+denoise" and zero.ending == "zero" and zero.nfe == 5 and zero.quality is None
    assert zero.sigmas == (*base.sigmas, 0.0) and zero.lambdas == base.lambdas and zero.timesteps == base.timesteps
    assert zero.step_orders == (1, 2, 2, 2, 1)
    calls = []
    unipc.sample(lambda x, s: calls.append(float(s[0])) or x * 0.5, torch.ones(2, 3, dtype=torch.float64), zero)
    assert calls == list(base.sigmas)  # 5 calls at the NFE-4 entry's 5 nodes, then the result is x̂_0


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_missing_zero_entry_says_what_exists(reg):
    with pytest.raises(EntryNotFoundError, match=r"ending='zero' entry for solver='unipc', order=3.*no nfe"):
        optsteps_loader.get("edm", 4, order=3, ending="zero", source=reg)
    with pytest.raises(EntryNotFoundError, match="order=2, nfe=9; for that solver and order: nfe 3, 4"):
        optsteps_loader.get("edm", 9, order=2, ending="zero", source=reg)
    with pytest.raises(ValueError, match="ending must be one of"):
        optsteps_loader.get("edm", 4, ending="sigma_min", source=reg)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_aliases(reg):
    generic = optsteps_loader.get("edm", 3, order=2, source=reg)
    assert optsteps_loader.get("karras", 3, order=2, source=reg, profile="generic") == generic
    assert optsteps_loader.aliases(reg) == {
        "karras": {"schedule": "edm", "profile": "pixel", "description": "EDM (Karras et al. 2022)"}
    }
    with pytest.raises(optsteps_loader.ScheduleNotFoundError, match="Did you mean 'karras'.*model aliases: karras"):
        optsteps_loader.get("karas", 3, source=reg)


@pytest.mark.parametrize("ending", ["eps", "zero"])
@pytest.mark.parametrize(("solver", "module"), [("unipc", unipc), ("dpmpp", dpmpp)])
@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_reference_samplers_match_the_refined_sampler(reg, solver, module, ending):
    """The loader's samplers on an entry = the autograd sampler the entry was refined with (float64, 1e-12),
    in N model calls, for the t_eps and the σ = 0 ending."""
    steps = optsteps_loader.get("edm", 4, order=2, solver=solver, ending=ending, source=reg)
    problem = family.split("validation")[4]
    mixture = TorchMixture(problem.mixture)
    x_vp = torch.randn(
        6, problem.mixture.means.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    want = torch_sample(
        mixture, x_vp, torch.tensor(steps.lambdas, dtype=torch.float64), ending=ending, **solver_spec(solver, 2)
    )
    calls = []

    def model(x, sigma):  # EDM: x = x_vp / α̂, predicts x̂_0
        calls.append(float(sigma[0]))
        lam = -math.log(float(sigma[0]))
        return mixture(x * (1 + math.exp(-2 * lam)) ** -0.5, torch.tensor(lam, dtype=torch.float64))

    a0 = (1 + math.exp(-2 * steps.lambdas[0])) ** -0.5
    got = module.sample(model, x_vp / a0, steps, prediction="sample", order=2)
    if ending == "eps":
        got = got * (1 + math.exp(-2 * steps.lambdas[-1])) ** -0.5  # back to VP coordinates
    assert len(calls) == 4 and calls == pytest.approx(list(steps.sigmas[:4]), rel=1e-15)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_recorded_figures_are_what_the_grid_measures(reg):
    steps = optsteps_loader.get("edm", 4, order=2, solver="dpmpp", ending="zero", source=reg)
    from builder.solve.schedules import get_schedule

    edm = get_schedule("edm")
    val = bind(family.split("validation"), edm.lambda_start, edm.lambda_end, "zero")
    errs = errors(steps.lambdas, val, **solver_spec("dpmpp", 2))
    mean = np.mean([e.mean() for e in errs])
    assert float(f"{mean:.4g}") == steps.quality["validation"]["mean_l2"]


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_a_rebuild_reuses_every_chain_and_a_changed_bound_grid_reruns_its_chain(built, tmp_path):
    root, files = built
    cache = root / "cache"
    again = sweep.build(tmp_path / "again", spec=SPEC, cache_dir=cache, workers=1, progress=False)
    assert again == files  # byte-identical from the cache
    spec_chains = [c for c in chains_mod.chains_of(SPEC) if not c.profile]
    doc = json.loads(files["v1/edm.json"])
    bound = {c: chains_mod.bound_grids(c, doc["entries"], 1) for c in spec_chains}
    assert chains_mod.run_chains(list(bound.items()), cache, workers=1, progress=False) == 0
    chain = spec_chains[0]
    moved = {n: [v + (1e-9 if 0 < i < len(g) - 1 else 0) for i, v in enumerate(g)] for n, g in bound[chain].items()}
    assert chains_mod.chain_key(chain, moved) != chains_mod.chain_key(chain, bound[chain])


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_an_alias_with_a_profile_returns_that_profile_s_entries(reg):
    for solver in ("unipc", "dpmpp"):
        for ending in ("eps", "zero"):
            key = {"order": 2, "solver": solver, "ending": ending, "source": reg}
            pixel = optsteps_loader.get("karras", 4, **key)
            assert pixel == optsteps_loader.get("edm", 4, profile="pixel", **key)
            generic = optsteps_loader.get("edm", 4, **key)
            assert pixel.profile == "pixel" and generic.profile is None and pixel.lambdas[0] == generic.lambdas[0]
            q = pixel.quality["validation"]
            assert q["problems"] == sum(p.profile == "pixel" for p in family.split("validation"))
            assert "generic" in q["baselines"] and "bound" not in q["baselines"]
            assert pixel.method in ("refined", "rule", "generic") and pixel.provenance["init"] != "bound"
    assert optsteps_loader.available(reg)["edm"][0]["solver_profiles"] == ["pixel"]
    # beyond the solver entries an alias falls back as a schedule key does (here: the bound's entry, then σ = 0)
    with pytest.warns(optsteps_loader.FallbackWarning, match="profile 'pixel'"):
        zero = optsteps_loader.get("karras", 5, order=2, ending="zero", source=reg)
    with pytest.warns(optsteps_loader.FallbackWarning):
        key_zero = optsteps_loader.get("edm", 5, order=2, ending="zero", source=reg)
    assert zero.method == key_zero.method == "bound+denoise" and zero.sigmas == key_zero.sigmas
    assert (zero.requested["profile"], key_zero.requested["profile"]) == ("pixel", None)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_a_profile_asked_for_by_name_must_exist(reg):
    with pytest.raises(EntryNotFoundError, match=r"no profile='latent' entry.*profiles: pixel.*builder refine"):
        optsteps_loader.get("edm", 3, order=2, profile="latent", source=reg)
    with pytest.raises(EntryNotFoundError, match="for that solver, order and ending: nfe 3, 4"):
        optsteps_loader.get("edm", 9, order=2, profile="pixel", source=reg)
    with pytest.raises(ValueError, match="profile must be None or one of 'latent', 'pixel', 'generic'"):
        optsteps_loader.get("edm", 3, profile="Latent", source=reg)
    with pytest.raises(TypeError, match="profile must be"):
        optsteps_loader.get("edm", 3, profile=1, source=reg)
    with pytest.raises(ValueError, match="drop profile= or p="):
        optsteps_loader.get("edm", 3, p=1, profile="pixel", source=reg)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_profile_entries_measure_what_they_record(reg):
    from builder.solve.schedules import get_schedule

    steps = optsteps_loader.get("karras", 4, order=2, solver="unipc", ending="zero", source=reg)
    edm = get_schedule("edm")
    val = bind(
        [p for p in family.split("validation") if p.profile == "pixel"], edm.lambda_start, edm.lambda_end, "zero"
    )
    generic = optsteps_loader.get("edm", 4, order=2, solver="unipc", ending="zero", source=reg)
    mine, theirs = (
        np.array([e.mean() for e in errors(s.lambdas, val, **solver_spec("unipc", 2))]) for s in (steps, generic)
    )
    q = steps.quality["validation"]
    assert float(f"{mine.mean():.4g}") == q["mean_l2"]
    assert float(f"{np.log(mine / theirs).mean():.4g}") == q["baselines"]["generic"]["log_ratio"]


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_the_report_tables_keep_generic_and_profile_entries_apart(reg):
    from builder.select.report import solver_entry_rows, solver_entry_table

    generic, pixel = (solver_entry_rows(reg, nfes=(3, 4), profile=p) for p in (None, "pixel"))
    assert len(generic) == len(pixel) == 4 and all(r["profile"] is None for r in generic)
    assert all(r["worst_rule"] not in ("bound", "generic") and math.isfinite(r["ratio_reference"]) for r in pixel)
    assert [r["cases"] for r in pixel] == [2 * sum(p.profile == "pixel" for p in family.split("validation"))] * 4
    assert "vs generic entry" in solver_entry_table(pixel)[0] and "vs bound entry" in solver_entry_table(generic)[0]


def test_a_schedules_objective_reaches_its_chains_and_their_keys(tmp_path):
    """A schedule's spec "objective" is its chains' (generic, profile, continued): in their cache keys, and the
    other schedules' chains keep the keys they had; a value the builder does not know is refused by name."""
    base = [c for c in chains_mod.chains_of(SPEC)]
    robust_spec = dataclasses.replace(SPEC, schedules=tuple({**s, "objective": "kinds"} for s in SPEC.schedules))
    robust = chains_mod.chains_of(robust_spec)
    assert [c.objective for c in base] == [None] * len(base) and {c.objective for c in robust} == {"kinds"}
    assert "objective" not in base[0].fields() and robust[0].fields()["objective"] == "kinds"
    assert [dataclasses.replace(c, objective=None) for c in robust] == base
    raw = json.loads(sweep.spec.SPEC_PATH.read_text())
    raw["schedules"][0]["objective"] = "median"
    bad = tmp_path / "spec.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(SweepError, match=r"schedules\[0\] \(vp-linear\) 'objective' must be one of \['kinds'\]"):
        load_spec(bad)
    assert not any("objective" in s for s in load_spec().schedules)  # measured, not used: docs/data-family.md


def test_profile_chains_follow_the_aliases_and_keep_the_generic_keys():
    from builder.select import profile

    spec_chains = chains_mod.chains_of(SPEC)
    assert [c.profile for c in spec_chains] == [None] * 4 + ["pixel"] * 4 and not any(c.after for c in spec_chains)
    assert "profile" not in spec_chains[0].fields() and spec_chains[4].fields()["profile"] == "pixel"
    assert spec_chains[4].generic() == spec_chains[0]
    assert "builder/select/profile.py" in chains_mod.refine_sources(roots=chains_mod.PROFILE_ROOT_MODULES)
    assert "builder/select/profile.py" not in chains_mod.refine_sources()
    no_alias = dataclasses.replace(SPEC, aliases={})
    assert all(c.profile is None for c in chains_mod.chains_of(no_alias))
    # one list of profiles: the builder's, the loader's, both schemas'
    from optsteps_loader.invariants import PROFILES

    schemas = sweep.spec.SPEC_PATH.parents[2] / "schemas"
    file_schema = json.loads((schemas / "registry-file.schema.json").read_text())
    index_schema = json.loads((schemas / "registry-index.schema.json").read_text())
    assert tuple(profile.PROFILES) == PROFILES
    assert tuple(file_schema["$defs"]["solver_entry"]["properties"]["profile"]["enum"]) == PROFILES
    alias = index_schema["properties"]["aliases"]["additionalProperties"]
    assert tuple(alias["properties"]["profile"]["enum"]) == PROFILES
    assert tuple(index_schema["$defs"]["file"]["properties"]["solver_profiles"]["items"]["enum"]) == PROFILES


def test_the_refine_key_covers_the_code_the_refinement_runs():
    files = set(chains_mod.refine_sources())
    for rel in (
        "builder/select/robust.py",
        "builder/select/refine.py",
        "builder/select/differentiable.py",
        "builder/select/family.py",
        "builder/select/mixtures.py",
        "builder/select/truth.py",
        "builder/solve/grids.py",
        "builder/solve/data/baselines.json",
        "optsteps_loader/coefficients.py",
    ):
        assert rel in files
    assert "builder/select/selection.py" not in files and "optsteps_loader/diffusers.py" not in files


def _tamper(reg, tmp_path, edit):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reg, copy)
    doc = json.loads((copy / "v1" / "edm.json").read_text())
    edit(doc)
    rewrite(copy, "v1/edm.json", doc)  # re-signed: only the data checks stand between it and a user
    optsteps_loader.clear_cache()
    return copy


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_a_zero_entry_without_its_sigma_zero_node_is_refused(reg, tmp_path):
    def edit(doc):
        e = next(e for e in doc["solver_entries"] if (e["solver"], e["ending"], e["nfe"]) == ("unipc", "zero", 3))
        e["sigmas"][-1] = 1e-3

    copy = _tamper(reg, tmp_path, edit)
    with pytest.raises(RegistryIntegrityError, match=r"ending 'zero': the last \(t, alpha_t, sigma_t, sigmas\)"):
        optsteps_loader.get("edm", 3, order=2, ending="zero", source=copy)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_a_profile_the_index_does_not_list_is_refused(reg, tmp_path):
    def edit(doc):
        next(e for e in doc["solver_entries"] if e.get("profile") == "pixel")["profile"] = "latent"

    copy = _tamper(reg, tmp_path, edit)
    with pytest.raises(RegistryIntegrityError, match=r"profiles \['latent', 'pixel'\]\) do not match the index"):
        optsteps_loader.get("edm", 3, order=2, source=copy)


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_unsorted_or_duplicate_solver_entries_are_refused(reg, tmp_path):
    def edit(doc):
        doc["solver_entries"].append(doc["solver_entries"][0])

    copy = _tamper(reg, tmp_path, edit)
    with pytest.raises(RegistryIntegrityError, match="solver_entries"):
        optsteps_loader.get("edm", 3, order=2, source=copy)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"nfe": [2], "solvers": [["unipc", 3]], "endings": ["eps"], "maxiter": 5}, "integers >= 3"),
        ({"nfe": [3], "solvers": [["dpmpp", 4]], "endings": ["eps"], "maxiter": 5}, "'solvers' must be"),
        ({"nfe": [3], "solvers": [["unipc", 3]], "endings": ["zero", "t0"], "maxiter": 5}, "'endings'"),
        ({"nfe": [3], "solvers": [["unipc", 3]], "endings": ["eps"]}, "'maxiter' and optionally 'continue'"),
    ],
)
def test_the_spec_checks_its_solver_entries_block(tmp_path, block, message):
    raw = json.loads(sweep.spec.SPEC_PATH.read_text())
    raw["solver_entries"] = block
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SweepError, match=message):
        load_spec(path)


def test_the_spec_checks_alias_profiles(tmp_path):
    raw = json.loads(sweep.spec.SPEC_PATH.read_text())
    raw["aliases"]["sdxl"]["profile"] = "space"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SweepError, match="alias 'sdxl': profile must be one of \\('latent', 'pixel'\\)"):
        load_spec(path)


# ---- the shipped registry ------------------------------------------------------------------------------------


def test_the_shipped_registry_has_every_solver_entry_of_its_spec():
    spec = load_spec()
    block = spec.solver_entries
    chains = chains_mod.chains_of(spec)
    for sched in spec.schedules:
        doc = json.loads((sweep.spec.SPEC_PATH.parents[2] / "registry" / sched["file"]).read_text())
        keys = {(e.get("profile"), e["solver"], e["order"], e["ending"], e["nfe"]) for e in doc["solver_entries"]}
        profiles = {c.profile for c in chains if c.file == sched["file"]}
        want = {
            (pr, s, o, end, n)
            for pr in profiles
            for s, o in block["solvers"]
            for end in block["endings"]
            for n in block["nfe"]
        } | {
            (None, s, o, end, n)
            for s, o in block["solvers"]
            for end in block["continue"]["endings"]
            for n in block["continue"]["nfe"]
        }
        assert keys == want, sched["file"]
    assert {(c.schedule, c.profile) for c in chains if c.profile} == {
        ("scaled-linear", "latent"),
        ("flow", "latent"),
        ("edm", "latent"),
        ("ddpm-linear", "pixel"),
        ("vp-linear", "pixel"),
        ("vp-cosine", "pixel"),
        ("edm", "pixel"),
    }


def test_model_aliases_of_the_shipped_registry():
    sdxl = optsteps_loader.get("sdxl", 8)
    assert sdxl.profile == "latent" and sdxl == optsteps_loader.get("scaled-linear", 8, profile="latent")
    assert optsteps_loader.get("sdxl", 8, profile="generic") == optsteps_loader.get("scaled-linear", 8)
    with pytest.warns(optsteps_loader.FallbackWarning, match="UniPC order 1 was not measured"):
        assert optsteps_loader.get("sdxl", 8, order=1).method == "bound"  # no UniPC-1 solver entries: the bound's
    sd3 = optsteps_loader.get("sd3", 8, ending="zero")
    assert sd3 == optsteps_loader.get("flow", 8, shift=3.0, ending="zero", profile="latent")
    assert optsteps_loader.get("score-sde-vp", 6).profile == "pixel"
    # one schedule, two profiles: EDM's pixel models and EDM2's latent ones get different steps
    edm_pixel, edm_latent = optsteps_loader.get("edm-cifar10", 6), optsteps_loader.get("edm2-img512", 6)
    assert (edm_pixel.profile, edm_latent.profile) == ("pixel", "latent") and edm_pixel != edm_latent
    assert edm_latent == optsteps_loader.get("edm", 6, profile="latent")
    assert optsteps_loader.get("iddpm", 6, solver="dpmpp", order=2) == optsteps_loader.get(
        "vp-cosine", 6, solver="dpmpp", order=2, profile="pixel"
    )
    assert optsteps_loader.get("sd3", 8, shift=3) == optsteps_loader.get("sd3", 8)
    with pytest.raises(ValueError, match="'sd3' is 'flow' with shift 3; shift=1 contradicts it"):
        optsteps_loader.get("sd3", 8, shift=1)
    with pytest.raises(optsteps_loader.ScheduleNotFoundError, match="Did you mean 'sdxl'"):
        optsteps_loader.get("sdxl1", 8)
    assert {"sd15", "sd2", "sdxl", "sd3", "flux", "ddpm-cifar10"} <= set(optsteps_loader.aliases())
    assert optsteps_loader.info("sdxl")["schedule"]["name"] == "scaled-linear"


@pytest.mark.parametrize(
    ("solver", "order", "ending", "nfe", "profile"),
    [("unipc", 3, "eps", 6, "generic"), ("dpmpp", 2, "zero", 6, "latent")],  # each ending, each tier
)
def test_a_shipped_entry_measures_what_it_records(solver, order, ending, nfe, profile):
    """Re-measure a shipped scaled-linear solver entry and uniform-λ on the validation split (a profile entry:
    that profile's validation problems): the recorded figures (4 significant digits) are what the grids give."""
    from builder.select.refine import rule_grid
    from builder.solve.schedules import get_schedule

    steps = optsteps_loader.get("scaled-linear", nfe, solver=solver, order=order, ending=ending, profile=profile)
    schedule = get_schedule("scaled-linear")
    problems = [p for p in family.split("validation") if profile == "generic" or p.profile == profile]
    val = bind(problems, schedule.lambda_start, schedule.lambda_end, ending)
    spec = solver_spec(solver, order)
    q = steps.quality["validation"]
    mine = np.array([e.mean() for e in errors(steps.lambdas, val, **spec)])
    ref = np.array([e.mean() for e in errors(rule_grid("uniform-lambda", schedule, nfe, ending), val, **spec)])
    assert float(f"{mine.mean():.4g}") == q["mean_l2"]
    assert float(f"{ref.mean():.4g}") == q["baselines"]["uniform-lambda"]["mean_l2"]
    assert float(f"{np.log(mine / ref).mean():.4g}") == q["baselines"]["uniform-lambda"]["log_ratio"]


def test_refine_profile_writes_a_registry_with_those_profile_entries_added(tmp_path):
    from click.testing import CliRunner

    from builder.cli import cli

    out = tmp_path / "latent"
    args = ["refine", "--schedule", "sd3", "--nfe", "3", "--profile", "latent", "--solver", "dpmpp", "--order", "2"]
    result = CliRunner().invoke(cli, [*args, "--ending", "zero", "--maxiter", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nfe 3: latent validation mean L2" in result.output and "the generic entry's" in result.output
    assert validate_registry(out).ok
    key = {"solver": "dpmpp", "order": 2, "ending": "zero"}
    mine = optsteps_loader.get("sd3", 3, source=out, profile="latent", **key)
    generic = optsteps_loader.get("sd3", 3, profile="generic", **key)
    q = mine.quality["validation"]
    assert mine.profile == "latent" and generic.profile is None
    assert q["problems"] == sum(p.profile == "latent" for p in family.split("validation"))
    assert "generic" in q["baselines"] and "bound" not in q["baselines"]
    # provenance by what it is: a kept generic grid is the shipped one (to rounding in t ↔ λ), a refined one moved
    moved = max(abs(a - b) for a, b in zip(mine.lambdas, generic.lambdas, strict=True))
    assert mine.method in ("refined", "generic") and (moved < 1e-9) == (mine.method == "generic"), (mine.method, moved)
    kept, shipped = (optsteps_loader.get("sd3", 5, source=s, profile="generic", **key) for s in (out, None))
    assert kept == dataclasses.replace(shipped, provenance=kept.provenance)  # other entries: the registry's
    bad = CliRunner().invoke(cli, ["refine", "--schedule", "sdxxl", "--nfe", "3", "--profile", "latent", "--out", "x"])
    assert bad.exit_code == 1 and "Did you mean 'sdxl'" in bad.output


def test_the_target_summary_counts_rows_by_their_share_of_cases_above_uniform_lambda():
    from builder.select.report import UL_SHARE, solver_entry_table

    def row(above: int, worst: float = 0.8) -> dict:
        return {
            "schedule": "s", "solver": "UniPC-3", "ending": "eps", "profile": None, "nfes": [5, 6, 8, 10],
            "worst_rule": "uniform-t", "ratio_worst_rule": worst, "ratio_best_rule": 0.9, "ratio_reference": 0.9,
            "above_uniform_lambda": above, "cases": 48, "loses": 0,
        }  # fmt: skip

    at_share = int(UL_SHARE * 48)  # 2 of 48 is within 5%, 3 of 48 is not
    rows = [row(0), row(at_share), row(at_share + 1), row(0, worst=0.9)]
    summary = solver_entry_table(rows)[-1]
    assert "3 of 4 (1 also with no problem above uniform-λ, 2 with at most 5% of their" in summary
    assert f"Cases above uniform-λ over all rows: {2 * at_share + 1} of 192" in summary


@pytest.mark.slow  # the module's tiny solver sweep (about two minutes on 2 cores)
def test_a_slice_refines_only_the_chains_that_start_from_its_entries(built, tmp_path, monkeypatch):
    import shutil

    from builder.registry.sweep import pipeline

    root, files = built
    shutil.copytree(root / "registry", tmp_path / "registry")
    ran = []

    def recording(chains, *args, **kwargs):
        ran.extend(c for c, _ in chains)
        return chains_mod.run_chains(chains, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_chains", recording)
    selection = {"nfe": {"4"}}  # the bound's NFE 4 starts the "eps" chains at N = 4; "zero" ones start from N − 1
    again = sweep.build(tmp_path / "registry", spec=SPEC, selection=selection, cache_dir=root / "cache", workers=1)
    assert again == files
    expected = sweep.chains_depending_on(SPEC, sweep.slice_of(SPEC, selection))
    assert set(ran) == expected and {c.ending for c in expected} == {"eps"} and len(expected) == 4
