"""Fixtures shared across test modules."""

from __future__ import annotations

import os
from pathlib import Path

from builder.kernels import pin_environment

pin_environment()  # before numpy, OpenBLAS and torch load: the tests build registry bytes as `python -m builder` does

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _caches_under_tmp(tmp_path_factory):
    """Ground truths and calibration teachers are cached in the session's temporary folder, never in the user's
    ~/.cache (every test writes only under tmp). The folder is the run's, shared by its xdist workers: a truth one
    worker solved is the others' too (each file is keyed by its problem and written atomically)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with pytest.MonkeyPatch.context() as mp:
        for name in ("OPTSTEPS_QUALITY_CACHE", "OPTSTEPS_CALIBRATE_CACHE"):
            folder = shared / name.lower()
            folder.mkdir(exist_ok=True)
            mp.setenv(name, str(folder))
        yield


@pytest.fixture
def fresh_loader_cache(monkeypatch):
    """No OPTSTEPS_REGISTRY_DIR from the environment, and the loader's in-process cache empty before and after."""
    from optsteps_loader import clear_cache

    monkeypatch.delenv("OPTSTEPS_REGISTRY_DIR", raising=False)
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def reg(request, tmp_path_factory) -> Path:
    """A read-only fixture registry shared by the tests of a module: `registry_factory.make_registry` with the
    module's ``REGISTRY_GRID`` (keyword arguments; the default grid without one)."""
    from tests import registry_factory

    grid = getattr(request.module, "REGISTRY_GRID", {})
    return registry_factory.make_registry(tmp_path_factory.mktemp("registry"), **grid)
