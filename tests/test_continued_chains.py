"""Continued chains (the spec's ``solver_entries.continue`` block): solver entries above a chain's last NFE,
warm-started from its grid there, cached apart from it, honoured by slices; and what `get()` returns there."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

import optsteps_loader
from builder.registry import sweep
from builder.registry.sweep import chains as chains_mod
from builder.registry.sweep.pipeline import chains_depending_on
from builder.registry.sweep.spec import SweepError, Task, load_spec
from tests.registry_factory import tiny_spec

CONTINUE = {"nfe": [5], "endings": ["zero"], "maxiter": 2}


def continued_spec(**more):
    """edm, bound entries at NFE 3-4 (order 2), DPM++ 2M σ = 0 solver entries at NFE 3-4 and continued at 5."""
    return dataclasses.replace(
        tiny_spec(),
        nfe=(3, 4),
        orders=(2,),
        schedules=({"name": "edm", "file": "v1/edm.json", "defaults": {"order": 2, "p": 1}},),
        solver_entries={
            "nfe": [3, 4],
            "solvers": [("dpmpp", 2)],
            "endings": ["eps", "zero"],
            "maxiter": 2,
            "continue": CONTINUE | more,
        },
    )


def test_the_spec_lists_continued_chains_after_the_others_and_keeps_the_other_keys():
    spec = load_spec()
    every = chains_mod.chains_of(spec)
    continued = [c for c in every if c.after]
    block = spec.solver_entries
    assert continued and every[-len(continued) :] == continued
    assert {c.ending for c in continued} == set(block["continue"]["endings"])
    for c in continued:
        base = c.continues(every)
        assert (c.after, c.nfes, c.maxiter) == (
            base.nfes[-1],
            tuple(block["continue"]["nfe"]),
            block["continue"]["maxiter"],
        )
        assert c.same_entries(base) and base.after is None and base.profile is None
        assert c.fields()["after"] == c.after and "after" not in base.fields() and "profile" not in base.fields()
    # the base chains' keys do not depend on whether the spec continues them
    plain = dataclasses.replace(spec, solver_entries={k: v for k, v in block.items() if k != "continue"})
    assert [c for c in every if not c.after] == chains_mod.chains_of(plain)


def test_a_continued_chain_depends_on_its_own_bound_tasks_and_on_its_base_chain():
    spec = continued_spec()
    every = chains_mod.chains_of(spec)
    base, continued = (next(c for c in every if c.ending == "zero" and bool(c.after) is a) for a in (False, True))
    task = {n: Task("edm", (), "v1/edm.json", n, 2, 1.0, 0, "best") for n in (3, 4)}
    # σ = 0 at NFE N starts from the bound's NFE N − 1: NFE 4's entry starts the continued chain (NFE 5) alone,
    # NFE 3's the base chain (NFE 4) and so its continuation
    assert continued in chains_depending_on(spec, [task[4]]) and base not in chains_depending_on(spec, [task[4]])
    assert {base, continued} <= chains_depending_on(spec, [task[3]])
    missing = dataclasses.replace(continued, after=7)
    with pytest.raises(SweepError, match="no chain ending at NFE 7"):
        missing.continues(every)


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"nfe": [4]}, "integers > 4"),
        ({"endings": ["t0"]}, "'continue' 'endings'"),
        ({"maxiter": 0}, "'continue' 'maxiter'"),
        ({"extra": 1}, "exactly 'nfe', 'endings', 'maxiter'"),
    ],
)
def test_the_spec_checks_its_continue_block(tmp_path, more, message):
    raw = json.loads(sweep.spec.SPEC_PATH.read_text())
    raw["solver_entries"]["continue"] = {"nfe": [11, 12], "endings": ["zero"], "maxiter": 3} | more
    raw["solver_entries"]["nfe"] = [3, 4]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SweepError, match=message):
        load_spec(path)


@pytest.mark.slow  # a tiny sweep with a continued chain: the family's exact answers cold (about a minute)
def test_a_continued_chain_writes_measured_entries_above_its_base_and_reuses_the_base(tmp_path, monkeypatch):
    spec = continued_spec()
    files = sweep.build(tmp_path / "registry", spec=spec, cache_dir=tmp_path / "cache", workers=1, progress=False)
    doc = json.loads(files["v1/edm.json"])
    keys = sorted((e["ending"], e["nfe"]) for e in doc["solver_entries"])
    assert keys == [("eps", 3), ("eps", 4), ("zero", 3), ("zero", 4), ("zero", 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = optsteps_loader.get("edm", 5, solver="dpmpp", order=2, ending="zero", source=tmp_path / "registry")
    assert steps.method in ("refined", "rule", "bound") and steps.requested is None and steps.profile is None
    assert steps.quality["validation"]["problems"] > 0 and steps.nfe == 5 and steps.sigmas[-1] == 0.0
    # a longer continuation reuses the base chains from the cache: only the new continued chain runs
    longer = continued_spec(nfe=[5, 6])
    every = chains_mod.chains_of(longer)
    records = {
        c: chains_mod.load_chain(c, chains_mod.bound_grids(c, doc["entries"], 1), tmp_path / "cache")
        for c in every
        if not c.after
    }
    assert len(records) == 2
    # a slice of the bound stage keeps the continued entries it does not touch: its base chains are refined
    # again (a cold cache) and come out as the files have them, so the continued chain is not refined again
    from builder.registry.sweep import pipeline

    ran, original = [], pipeline.run_chains
    monkeypatch.setattr(
        pipeline, "run_chains", lambda chains, *a, **k: ran.extend(c for c, _ in chains) or original(chains, *a, **k)
    )
    again = sweep.build(
        tmp_path / "registry",
        spec=spec,
        workers=1,
        progress=False,
        selection={"nfe": {"3"}},
        cache_dir=tmp_path / "cold",
    )
    assert again == files and ran and not any(c.after for c in ran)


def test_a_dependent_chain_keeps_its_entries_only_when_its_starts_are_those_it_was_built_from():
    """In a slice, a continued (or profile) chain that is there only through its generic chain keeps its
    entries when the generic chain's fresh grids and the bound entries are what the kept files hold; any
    change to either, or a missing entry, and it is refined again."""
    from builder.registry.entry import solver_nodes
    from builder.registry.sweep.pipeline import _settled, _solver_entries

    spec = continued_spec()
    every = chains_mod.chains_of(spec)
    cont = next(c for c in every if c.after)
    base = cont.continues(every)
    rel = cont.file
    bound = [{"nfe": n, "order": 2, "p": 1, "lambda": [-3.0, 0.1 * n, 2.0]} for n in (3, 4)]
    grids = {3: [-3.0, -1.0, 0.5], 4: [-3.0, -1.5, 0.0, 1.0]}

    def solver_entry(chain, n, lam):
        written = solver_nodes(chain.make_schedule(), chain.ending, lam)["lambda"]  # λ(t(λ)), as an entry has it
        return {"solver": chain.solver, "order": chain.order, "ending": chain.ending, "nfe": n, "lambda": written}

    kept = {
        rel: {
            "entries": bound,
            "solver_entries": [solver_entry(base, n, g) for n, g in grids.items()]
            + [solver_entry(cont, 5, [-3.0, -1.6, -0.2, 0.5, 1.2])],
        }
    }
    fresh = {base: [{"nfe": n, "lambda": list(g)} for n, g in grids.items()]}
    args = (every, fresh, {rel: bound}, {rel: 1})
    assert _settled([cont], *args, kept, _solver_entries(kept)) == {cont}
    moved = {base: [fresh[base][0], {"nfe": 4, "lambda": [-3.0, -1.5, 0.1, 1.0]}]}
    assert _settled([cont], every, moved, {rel: bound}, {rel: 1}, kept, _solver_entries(kept)) == set()
    other_bound = [bound[0], {**bound[1], "lambda": [-3.0, 0.5, 2.0]}]
    assert _settled([cont], every, fresh, {rel: other_bound}, {rel: 1}, kept, _solver_entries(kept)) == set()
    missing = {rel: {**kept[rel], "solver_entries": kept[rel]["solver_entries"][:2]}}
    assert _settled([cont], *args, missing, _solver_entries(missing)) == set()
