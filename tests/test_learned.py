"""The learned-model check (builder/select/learned.py): the committed digits denoiser, its own
exact flow, the sampler against it, and the ``learned-check`` command. Small batches; nothing cached on disk."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from builder.cli import cli  # noqa: E402
from builder.select import learned  # noqa: E402
from builder.select.mixtures import digits_mixture, vp_alpha_sigma  # noqa: E402
from builder.select.selection import Measurement  # noqa: E402
from builder.solve.grids import baseline_grids, baseline_lambdas  # noqa: E402
from builder.solve.optimize import solve  # noqa: E402
from builder.solve.schedules import get_schedule  # noqa: E402
from tests import registry_factory as factory  # noqa: E402

VP = get_schedule("vp-linear")
TRUTH_AGREEMENT = 1e-6  # max per-sample L2 between the truths at rtol 1e-9 and 1e-11 (sampler errors are ≥ 1e-3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _no_registry_env(monkeypatch):
    monkeypatch.delenv("OPTSTEPS_REGISTRY_DIR", raising=False)


@pytest.fixture(scope="module")
def model():
    return learned.load_denoiser()


@pytest.fixture(scope="module")
def vp_truth(model):
    return learned.model_truth(model, VP.lambda_start, VP.lambda_end, batch=32, seed=0)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return factory.make_registry(tmp_path_factory.mktemp("registry"), schedules=("vp-linear", "flow"), nfes=(4, 5))


def test_weights_are_small_plain_float32_with_hyperparameters():
    assert learned.WEIGHTS_PATH.stat().st_size < 1_000_000
    with np.load(learned.WEIGHTS_PATH, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    params = {k: v for k, v in arrays.items() if k.startswith("param.")}
    assert params and all(v.dtype == np.float32 for v in params.values())
    lo, hi = arrays["lambda_range"]
    for name in ("vp-linear", "vp-cosine", "ddpm-linear", "scaled-linear", "edm", "flow"):
        sched = get_schedule(name)
        assert lo <= sched.lambda_start and sched.lambda_end <= hi, name  # trained over every schedule's range
    rebuilt = learned.network_to_arrays(learned.network_from_arrays(arrays, dtype=torch.float32))
    assert rebuilt.keys() == arrays.keys()
    for key, value in arrays.items():
        np.testing.assert_array_equal(rebuilt[key], value, err_msg=key)


def test_missing_or_unknown_weights_are_refused():
    with np.load(learned.WEIGHTS_PATH, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    with pytest.raises(ValueError, match="hyperparameters"):
        learned.network_from_arrays({k: v for k, v in arrays.items() if k != "sigma_data"})
    with pytest.raises(ValueError, match="unknown parameters"):
        learned.network_from_arrays({**arrays, "param.extra.weight": np.zeros(3, np.float32)})


def test_module_is_deterministic_float64(model):
    x = np.random.default_rng(0).standard_normal((16, 64))
    first = model.denoise(x, 0.5)
    again = learned.load_denoiser().denoise(x, 0.5)
    assert first.dtype == np.float64 and first.shape == (16, 64)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, model.denoise(x, 0.5))
    assert not np.array_equal(first, model.denoise(x, 0.6))  # λ enters


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_model_denoises_digits(model, lam):
    """x̂₀ error far below both trivial estimators, the noisy x̃ = x/α̂ (RMSE s = e^{−λ}) and the mean (σ_d), and
    close to the Bayes-optimal one. The digits are drawn from the mixture fitted to the same scaled data (no
    sklearn needed), whose closed-form E[x₀ | x] is the optimal denoiser for them."""
    rng = np.random.default_rng(1)
    mixture = digits_mixture()
    x0 = mixture.sample(256, rng)
    alpha, sigma = vp_alpha_sigma(lam)
    x = alpha * x0 + sigma * rng.standard_normal(x0.shape)
    rmse = math.sqrt(float(np.mean((model.denoise(x, lam) - x0) ** 2)))
    optimal = math.sqrt(float(np.mean((mixture.denoise(x, lam) - x0) ** 2)))
    assert rmse < 0.7 * min(math.exp(-lam), model.network.sigma_data)
    assert rmse < 1.25 * optimal


def test_truth_is_converged(model, vp_truth):
    tighter = learned.model_truth(model, VP.lambda_start, VP.lambda_end, batch=32, seed=0, rtol=1e-11, atol=1e-13)
    np.testing.assert_array_equal(tighter.x_start, vp_truth.x_start)
    assert tighter.nfev > vp_truth.nfev
    assert np.linalg.norm(tighter.x_end - vp_truth.x_end, axis=1).max() < TRUTH_AGREEMENT
    assert np.linalg.norm(vp_truth.x_end - vp_truth.x_start, axis=1).min() > 1.0  # the flow moved the samples


def test_sampler_error_shrinks_with_nfe(model, vp_truth):
    errors = [
        learned.measure_grid(model, vp_truth, baseline_lambdas("uniform-lambda", VP, n)).mean_l2 for n in (4, 8, 16, 32)
    ]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.01 * errors[0], errors
    assert errors[-1] > 100 * TRUTH_AGREEMENT  # the truth is far tighter than the finest grid


def test_measure_grid_refuses_other_endpoints(model, vp_truth):
    with pytest.raises(ValueError, match="endpoints"):
        learned.measure_grid(model, vp_truth, np.linspace(VP.lambda_start, VP.lambda_end - 0.1, 6))


def test_summarise_formulas():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 1.5, 50)
    measured = {
        "optsteps": Measurement({"p": base * 0.5}),
        "uniform-lambda": Measurement({"p": base}),
        "other": Measurement({"p": base * rng.uniform(0.6, 0.8, 50)}),
    }
    out = learned.summarise(measured)
    assert out["grids"]["optsteps"]["log_ratio"] == pytest.approx(math.log(0.5))
    assert out["grids"]["optsteps"]["ratio"] == pytest.approx(0.5)
    assert out["grids"]["uniform-lambda"]["ratio"] == 1.0
    assert out["best_baseline"] == "other"
    d = np.log(0.5 * base) - np.log(measured["other"].errors["p"])
    assert out["log_ratio_best_baseline"] == pytest.approx(d.mean())
    assert out["log_ratio_best_baseline_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(50))


def test_check_grids_on_a_solved_grid(model):
    sched = get_schedule("scaled-linear")
    result = solve(sched, 6, order=3, p=1.0, tau=0)
    grid = learned.SubjectGrid(sched, np.asarray(result.lambdas), 3, 1.0, "solved")
    truth = learned.model_truth(model, sched.lambda_start, sched.lambda_end, batch=16)
    out = learned.check_grids(grid, model=model, truth=truth)
    assert set(out["grids"]) == {"optsteps", *baseline_grids(sched, 6)}
    assert out["best_baseline"] != "optsteps" and out["nfe"] == 6 and out["batch"] == 16
    direct = learned.measure_grid(model, truth, result.lambdas, order=3)
    assert out["grids"]["optsteps"]["mean_l2"] == pytest.approx(direct.mean_l2, rel=1e-12)
    assert all(np.isfinite(row["log_ratio"]) for row in out["grids"].values())


def test_registry_grid_follows_the_loader(registry):
    grid = learned.registry_grid("vp-linear", 5, source=str(registry))
    assert grid.schedule.name == "vp-linear" and grid.nfe == 5 and grid.source == "registry"
    assert grid.order == factory.DEFAULTS["order"] and grid.p == factory.DEFAULTS["p"]
    flow = learned.registry_grid("flow", 4, source=str(registry), shift=3)
    assert flow.schedule.lambda_start == pytest.approx(get_schedule("flow", shift=3.0).lambda_start)


def test_cli_runs_on_a_small_case(registry):
    runner = CliRunner()
    args = [
        "learned-check",
        "--schedule",
        "vp-linear",
        "--nfe",
        "4",
        "--nfe",
        "5",
        "--batch",
        "8",
        "--source",
        str(registry),
    ]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("vp-linear: registry grid (order 3, p 1)")
    assert "uniform-lambda" in lines[1] and "best baseline" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["4", "5"]
    bad = runner.invoke(cli, ["learned-check", "--schedule", "vp-lnear", "--source", str(registry), "--batch", "4"])
    assert bad.exit_code != 0 and "vp-linear" in bad.output


def test_cli_live_solves_the_sweep_problem():
    from builder.cli.quality import sweep_problem

    p, tau = sweep_problem("scaled-linear")
    res = CliRunner().invoke(
        cli, ["learned-check", "--schedule", "scaled-linear", "--nfe", "4", "--batch", "4", "--live"]
    )
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"scaled-linear: solved grid (order 3, p {p:g})")
    assert "ays-sd1" in res.output.splitlines()[1]  # scaled-linear's published baselines are in the table
