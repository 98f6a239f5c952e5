"""Rule grids and published tables (builder/solve/grids.py): the baselines and the optimiser's starts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from builder.solve.grids import (
    FORMULA_BASELINES,
    STARTS,
    TABLES_PATH,
    applicable_baselines,
    baseline_grids,
    baseline_lambdas,
    karras,
    loglinear_interp,
    published_sources,
    start_grid,
)
from builder.solve.schedules import get_schedule

SCHEDULES = [
    ("vp-linear", {}),
    ("vp-cosine", {}),
    ("ddpm-linear", {}),
    ("scaled-linear", {}),
    ("edm", {}),
    ("flow", {"shift": 1.0}),
    ("flow", {"shift": 3.0}),
]


@pytest.mark.parametrize(("name", "params"), SCHEDULES)
@pytest.mark.parametrize("nfe", [1, 2, 3, 5, 8, 10, 20, 25, 50])
def test_grids_have_endpoints_and_are_increasing(name, params, nfe):
    schedule = get_schedule(name, **params)
    grids = baseline_grids(schedule, nfe)
    assert set(FORMULA_BASELINES) <= set(grids)
    for base, lam in grids.items():
        assert lam.shape == (nfe + 1,), base
        assert lam[0] == schedule.lambda_start and lam[-1] == schedule.lambda_end, base
        assert np.all(np.diff(lam) > 0), base


def test_formula_grids():
    s = get_schedule("vp-linear")
    n = 6
    i = np.arange(n + 1) / n
    np.testing.assert_allclose(
        baseline_lambdas("uniform-lambda", s, n), s.lambda_start + i * (s.lambda_end - s.lambda_start)
    )
    np.testing.assert_allclose(baseline_lambdas("uniform-t", s, n), s.marginal_lambda(1.0 + i * (1e-3 - 1.0)))
    t_quad = (1.0 + i * (math.sqrt(1e-3) - 1.0)) ** 2
    np.testing.assert_allclose(baseline_lambdas("uniform-sqrt-t", s, n), s.marginal_lambda(t_quad))
    smax, smin = math.exp(-s.lambda_start), math.exp(-s.lambda_end)
    sig = (smax ** (1 / 7) + i * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    np.testing.assert_allclose(baseline_lambdas("karras-rho7", s, n), -np.log(sig), rtol=1e-12)


def test_published_tables_and_applicability():
    sd = get_schedule("scaled-linear")
    assert {"ays-sd1", "ays-sdxl", "gits"} <= set(applicable_baselines(sd))
    assert "ays-sd1" not in applicable_baselines(get_schedule("vp-linear"))
    assert {"oss-flux", "oss-wan"} <= set(applicable_baselines(get_schedule("flow", shift=3.0)))
    tables = json.loads(TABLES_PATH.read_text())
    ays = np.array(tables["ays"]["comfyui_sigmas_10step"]["SD1"])
    lam = baseline_lambdas("ays-sd1", sd, 10)
    np.testing.assert_allclose(lam[1:-1], -np.log(ays[1:-1]))
    assert abs(-math.log(ays[0]) - sd.lambda_start) < 1e-8  # AYS-SD1 spans SD's own endpoints
    gits = np.array(tables["gits"]["tables"]["1.20"]["7"])
    np.testing.assert_allclose(baseline_lambdas("gits", sd, 7)[1:-1], -np.log(gits[1:-1]))
    oss = np.array(tables["oss"]["sigmas"]["FLUX"])
    flow = get_schedule("flow", shift=3.0)
    np.testing.assert_allclose(baseline_lambdas("oss-flux", flow, 10)[1:-1], np.log((1 - oss[1:-1]) / oss[1:-1]))
    for key in ("ays", "gits", "oss"):
        assert published_sources()[key]
    with pytest.raises(KeyError):
        baseline_lambdas("nope", sd, 5)


def test_loglinear_interp_matches_comfyui_definition():
    sig = np.array([14.6, 6.4, 3.8, 1.0, 0.03])
    np.testing.assert_allclose(loglinear_interp(sig, 5), sig)
    out = loglinear_interp(sig, 9)
    assert out[0] == pytest.approx(14.6) and out[-1] == pytest.approx(0.03)
    np.testing.assert_allclose(out[::2], sig)  # doubling the resolution keeps the old nodes
    assert out[1] == pytest.approx(math.sqrt(14.6 * 6.4))  # midpoint in log σ


@pytest.mark.parametrize(("name", "kw"), SCHEDULES)
def test_starts_are_the_rule_baselines(name, kw):
    """Each named start is its rule's grid; the Karras start (powers of s) and the Karras baseline
    (logarithms) are one formula evaluated two ways, equal up to rounding."""
    s = get_schedule(name, **kw)
    for nfe in (3, 8, 25):
        for init, rule in STARTS.items():
            np.testing.assert_allclose(start_grid(s, nfe, init), baseline_lambdas(rule, s, nfe), rtol=0, atol=1e-14)
        np.testing.assert_array_equal(start_grid(s, nfe, "edm"), karras(s, nfe, 7.0))
        coarse = karras(s, nfe, 3.0)
        assert coarse[0] == s.lambda_start and coarse[-1] == s.lambda_end and np.all(np.diff(coarse) > 0)
    with pytest.raises(ValueError, match="unknown start"):
        start_grid(s, 5, "karras")
