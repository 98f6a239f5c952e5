"""The data family's splits (builder/select/family.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from builder.select import family


def _key(p: family.FamilyProblem) -> tuple:
    """(profile, seed-bearing spec, dims, spectrum): what the two splits must never share."""
    return p.spec


def test_splits_are_disjoint():
    fit, val = family.split("fit"), family.split("validation")
    digits = [p for p in fit + val if p.profile == "digits"]
    assert len(digits) == 2 and digits[0].seed != digits[1].seed  # one data set, different noises
    fit_keys = {_key(p) for p in fit if p.profile != "digits"}
    val_keys = {_key(p) for p in val if p.profile != "digits"}
    assert not fit_keys & val_keys
    assert not {p.mixture.digest for p in fit if p.profile != "digits"} & {
        p.mixture.digest for p in val if p.profile != "digits"
    }
    assert not {p.seed for p in fit} & {p.seed for p in val}


def test_fit_ranges_bracket_validation():
    """Every parameter of every validation profile lies within the fit split's range for that profile."""
    for profile in ("pixel", "latent", "lowdim"):
        fit = np.array([args for prof, args in family.FIT_SPECS if prof == profile], dtype=float)[:, :-1]
        val = np.array([args for prof, args in family.VALIDATION_SPECS if prof == profile], dtype=float)[:, :-1]
        assert np.all(val >= fit.min(0)) and np.all(val <= fit.max(0)), profile


@pytest.mark.parametrize("profile", ["pixel", "latent", "lowdim"])
def test_profiles_have_their_scale(profile):
    target = {"pixel": 0.5, "latent": 1.0, "lowdim": 0.55}[profile]
    for p in family.split("validation", profiles=[profile]):
        assert abs(family.stats(p, n=2048)["per_dim_std"] - target) < 0.12, p.name


def test_digest_changes_with_any_problem():
    fit = family.split("fit")
    d = family.digest(fit)
    assert d == family.digest(family.split("fit"))  # deterministic
    changed = list(fit)
    changed[3] = dataclasses.replace(changed[3], seed=changed[3].seed + 1)
    assert family.digest(changed) != d
    changed = list(fit)
    other = family.pixel_mixture(96, 3, 1.5, 0.66, 4)  # one parameter moved
    changed[3] = dataclasses.replace(changed[3], mixture=other)
    assert family.digest(changed) != d
    assert family.digest(fit[:-1]) != d


def test_split_rejects_unknown_names():
    with pytest.raises(ValueError, match="split must be"):
        family.split("test")
