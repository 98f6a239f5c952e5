"""builder.calibrate on the shipped learned digits network: better than the generic entry on held-out noises,
both endings, a folder the loader reads and verifies, merged into a vendored registry (and a tampered one
refused), clear errors for bad models (and no folder left), the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import optsteps_loader
from builder.calibrate import (
    ModelOutputError,
    PredictionTypeError,
    TeacherNotConvergedError,
    calibrate,
)
from builder.calibrate.examples import DigitsModel
from builder.calibrate.write import calibrated_files
from builder.cli import cli
from builder.registry.merge import MergeError, write_folder
from builder.registry.validate import validate_registry
from builder.solve.schedules import get_schedule
from optsteps_loader._sources import bundled_dir

FAST = {"noises": 24, "teacher_steps": 120, "maxiter": 25, "progress": False}


@pytest.fixture(scope="module")
def digits_model():
    torch.set_num_threads(1)
    return DigitsModel()


@pytest.fixture(scope="module")
def calibrated(digits_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate")
    out = root / "cal"
    result = calibrate(digits_model, schedule="vp-linear", nfe=[5, 6], out=out, cache=root / "cache", **FAST)
    return result, out, root


def test_beats_the_generic_entry_on_held_out_noises(calibrated):
    result, _, _ = calibrated
    fig = result.figures[5]
    assert fig["calibrated"] < fig["registry"]
    assert fig["calibrated"] < min(v for k, v in fig.items() if k not in ("calibrated", "registry"))
    assert result.fits[5].method == "gradient"  # vp-linear: continuous time input, a differentiable network
    assert result.fits[5].method_reason


def test_folder_loads_verifies_and_validates(calibrated):
    result, out, _ = calibrated
    assert validate_registry(out).ok
    assert optsteps_loader.verify(source=out) is not None
    for nfe in (5, 6):
        steps = optsteps_loader.get("vp-linear", nfe, source=out)
        entry = next(e for e in result.entries if e["nfe"] == nfe)
        assert steps.method == "calibrated" and list(steps.lambdas) == entry["lambda"]
        assert steps.quality["benchmark"] == "calibration" and steps.calibration["model"]
        generic = optsteps_loader.get("vp-linear", nfe, source=out, profile="generic")
        assert generic == dataclasses.replace(optsteps_loader.get("vp-linear", nfe), provenance=generic.provenance)
    doc = json.loads((out / "v1" / "vp-linear.json").read_text())
    record = next(e for e in doc["solver_entries"] if e["method"] == "calibrated")
    assert record["calibration"]["teacher"]["steps"] == FAST["teacher_steps"]
    assert "registry" in record["quality"]["baselines"] and record["optimizer"]["method"] == "L-BFGS-B"
    assert optsteps_loader.get("score-sde-vp", 5, source=out).method == "calibrated"  # the alias comes along


@pytest.mark.slow  # re-checks a copy of the whole shipped registry (about 20 s)
def test_merged_into_a_vendored_registry(calibrated, tmp_path):
    result, _, _ = calibrated
    vendored = tmp_path / "vendored"
    shutil.copytree(bundled_dir(), vendored)
    before = {p.relative_to(vendored): p.read_bytes() for p in vendored.rglob("*.json")}
    schedule = get_schedule("vp-linear")
    write_folder(vendored, calibrated_files(vendored, schedule, result.entries))
    after = {p.relative_to(vendored): p.read_bytes() for p in vendored.rglob("*.json")}
    changed = {rel for rel in before if before[rel] != after[rel]}
    assert changed == {Path("index.json"), Path("v1/vp-linear.json")} and set(after) == set(before)
    assert validate_registry(vendored).ok
    steps = optsteps_loader.get("vp-linear", 5, source=vendored)
    assert steps.method == "calibrated" and list(steps.lambdas) == result.entries[0]["lambda"]
    kept = optsteps_loader.get("vp-linear", 5, source=vendored, profile="generic")
    assert kept == dataclasses.replace(optsteps_loader.get("vp-linear", 5), provenance=kept.provenance)
    assert optsteps_loader.get("edm", 6, source=vendored).lambdas == optsteps_loader.get("edm", 6).lambdas
    # again: the calibrated entries are replaced, not doubled
    write_folder(vendored, calibrated_files(vendored, schedule, result.entries))
    doc = json.loads((vendored / "v1" / "vp-linear.json").read_text())
    assert sum(e["method"] == "calibrated" for e in doc["solver_entries"]) == len(result.entries)


def test_a_tampered_vendored_registry_is_refused_and_left_alone(calibrated, tmp_path):
    result, _, _ = calibrated
    vendored = tmp_path / "vendored"
    shutil.copytree(bundled_dir(), vendored)
    edm = vendored / "v1" / "edm.json"
    edm.write_bytes(edm.read_bytes().replace(b'"nfe": 6', b'"nfe": 7', 1))
    snapshot = {p: p.read_bytes() for p in vendored.rglob("*.json")}
    with pytest.raises(MergeError, match=r"edm.json does not match the sha256 .*restore it"):
        calibrated_files(vendored, get_schedule("vp-linear"), result.entries)
    assert {p: p.read_bytes() for p in vendored.rglob("*.json")} == snapshot


def test_teacher_is_cached(digits_model, calibrated):
    _, _, root = calibrated
    again = calibrate(digits_model, schedule="vp-linear", nfe=5, cache=root / "cache", **FAST)
    assert again.teacher.cached
    assert torch.equal(again.teacher.x_end, calibrated[0].teacher.x_end)


class _Bad:
    shape = (64,)

    def __init__(self, kind: str, prediction: str = "sample") -> None:
        self.kind, self.prediction = kind, prediction
        self.good = DigitsModel()

    def __call__(self, x, t):
        if self.kind == "shape":
            return x[:, :10]
        if self.kind == "nan":
            return torch.full_like(x, float("nan"))
        if self.kind == "rough":  # a jump in x̂₀ oscillating in t faster than any step: no smooth flow
            return self.good(x, t) + 0.2 * torch.sign(torch.sin(4000.0 * t))[:, None]
        return self.good(x, t)


@pytest.mark.parametrize(
    ("kind", "prediction", "error", "words"),
    [
        ("shape", "sample", ModelOutputError, "shape"),
        ("nan", "sample", ModelOutputError, "NaN"),
        ("rough", "sample", TeacherNotConvergedError, "did not converge"),
        ("good", "epsilon", PredictionTypeError, "prediction type"),
    ],
)
def test_bad_models_raise_and_leave_no_folder(tmp_path, kind, prediction, error, words):
    out = tmp_path / "out"
    with pytest.raises(error, match=words):
        calibrate(_Bad(kind, prediction), schedule="vp-linear", nfe=5, out=out, cache=tmp_path / "cache", **FAST)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


def test_ending_zero_calibrates_the_sigma_zero_entry(digits_model, calibrated, tmp_path):
    _, _, root = calibrated
    out = tmp_path / "zero"
    result = calibrate(
        digits_model,
        schedule="vp-linear",
        nfe=5,
        ending="zero",
        solver="dpmpp",
        order=2,
        out=out,
        cache=root / "cache",
        **FAST,
    )
    assert result.teacher.cached  # the σ = 0 teacher is the model's x̂₀ at the cached teacher's answers
    assert result.entries[0]["calibration"]["restarts"] == 0
    fig, fit = result.figures[5], result.fits[5]
    assert fig["calibrated"] <= fig[fit.start] * (1 + 1e-9)  # never worse on held-out noises than its start
    steps = optsteps_loader.get("vp-linear", 5, solver="dpmpp", order=2, ending="zero", source=out)
    assert steps.method == "calibrated" and steps.ending == "zero" and len(steps.lambdas) == 5
    assert steps.sigmas[-1] == 0.0 and steps.calibration["teacher"]["answer"].startswith("the model's x0")
    assert optsteps_loader.get("vp-linear", 5, solver="dpmpp", order=2, source=out).method != "calibrated"
    from optsteps_loader import kdiffusion  # the glue reads it like the shipped registry

    sigmas = kdiffusion.get_sigmas("vp-linear", 5, sampler="dpmpp_2m", source=out, dtype=torch.float64)
    assert sigmas.tolist() == list(steps.sigmas)


def test_cli(tmp_path, monkeypatch):
    (tmp_path / "mymodel.py").write_text(
        "from builder.calibrate.examples import DigitsModel\n\n\ndef load():\n    return DigitsModel()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTSTEPS_CALIBRATE_CACHE", str(tmp_path / "cache"))
    args = ["calibrate", "--model", "mymodel:load", "--schedule", "vp-linear", "--nfe", "5", "--noises", "16"]
    args += ["--teacher-steps", "120", "--maxiter", "10", "--no-progress", "--out", "cal"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "NFE 5: held-out mean L2" in result.output
    assert optsteps_loader.get("vp-linear", 5, source=tmp_path / "cal").nfe == 5
    bad = CliRunner().invoke(cli, [*args[:2], "mymodel:nothing", *args[3:]])
    assert bad.exit_code == 1 and "has no attribute 'nothing'" in bad.output


def test_a_closure_around_a_half_precision_network_runs_in_half_precision():
    from builder.calibrate.model import probe_dtype

    half = torch.nn.Linear(4, 4).to(torch.float16)
    double = torch.nn.Linear(4, 4).double()
    assert probe_dtype(lambda x, t: half(x), (4,), "cpu") == torch.float16  # no parameters() to read
    assert probe_dtype(lambda x, t: double(x), (4,), "cpu") == torch.float64

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4).to(torch.bfloat16)

        def forward(self, x, t):
            return self.linear(x)

    assert probe_dtype(Net(), (4,), "cpu") == torch.bfloat16  # its parameters' dtype, tried after float64


def test_folders_of_the_earlier_format_still_load(calibrated, tmp_path):
    """Earlier versions wrote calibrated grids as bound-format entries (p, tau, objective): still schema-valid and
    returned by get(..., p=P)."""
    from tests.registry_factory import cut_copy, rewrite

    result, _, _ = calibrated
    old = cut_copy(bundled_dir(), tmp_path / "old", ("v1/vp-linear.json",), nfe=(5,))
    doc = json.loads((old / "v1" / "vp-linear.json").read_text())
    entry = next(e for e in doc["entries"] if (e["nfe"], e["order"], e["p"]) == (5, 3, 1))
    entry["method"] = "calibrated"
    entry["calibration"] = {k: v for k, v in result.entries[0]["calibration"].items() if k not in ("stopped", "starts")}
    rewrite(old, "v1/vp-linear.json", doc)
    assert validate_registry(old).ok
    assert optsteps_loader.get("vp-linear", 5, p=1, source=old).method == "calibrated"


def test_restarts_keep_the_best_held_out_grid(digits_model, calibrated):
    _, _, root = calibrated
    kw = {**FAST, "maxiter": 8}
    one = calibrate(digits_model, schedule="vp-linear", nfe=5, cache=root / "cache", **kw)
    more = calibrate(digits_model, schedule="vp-linear", nfe=5, cache=root / "cache", restarts=2, **kw)
    assert more.fits[5].held_out <= one.fits[5].held_out * (1 + 1e-12) and more.fits[5].restart in (0, 1, 2)
    assert more.fits[5].nit > one.fits[5].nit
    assert more.entries[0]["calibration"]["restart"] == more.fits[5].restart


def test_runs_with_the_threads_it_is_given_and_restores_them(tmp_path):
    """torch's intra-op threads and the BLAS pools are the run's ``threads`` while the model is called (not
    one per core: on a busy machine that made a run 10x slower), and torch's count is restored after."""
    from threadpoolctl import threadpool_info

    class Recording(DigitsModel):
        seen: set = set()

        def __call__(self, x, t):
            if len(self.seen) < 3:  # threadpool_info scans the loaded libraries: look a few times only
                blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
                self.seen.add((torch.get_num_threads(), max(blas, default=1)))
            return super().__call__(x, t)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        calibrate(Recording(), schedule="vp-linear", nfe=4, cache=tmp_path, threads=1, **{**FAST, "maxiter": 2})
        assert Recording.seen == {(1, 1)}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
