"""Fixtures shared across test modules."""

from __future__ import annotations

import pytest


@pytest.fixture
def fresh_loader_cache(monkeypatch):
    """No OPTSTEPS_REGISTRY_DIR from the environment, and the loader's in-process cache empty before and after."""
    from optsteps_loader import clear_cache

    monkeypatch.delenv("OPTSTEPS_REGISTRY_DIR", raising=False)
    clear_cache()
    yield
    clear_cache()
