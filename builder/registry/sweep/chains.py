"""The sweep's third stage: solver entries, one refine chain per (schedule variant, solver, order, ending),
generic or for one data profile.

    chain-<key>.json   the records of :func:`builder.select.robust.refine_chain` (generic) or
                       :func:`builder.select.profile.profile_chain` (profile) for every NFE of the chain
                       key: the chain + its start grids + every source file the refinement imports

**Generic chains** (``profile`` None) are refined on the whole fit split, starting from the bound's entries.
**Profile chains** are refined on one profile's problems, starting from the generic chain's grids, so they run
after the generic ones; the sweep makes one for every (schedule variant, profile) that a model alias of the
spec names (``"sdxl": {"schedule": "scaled-linear", "profile": "latent"}``), for every solver, order and ending.
**Continued chains** (``after`` = N₀, the spec's ``solver_entries.continue`` block) carry a generic chain on
over higher NFEs: their first NFE is warm-started from the generic chain's grid at N₀, so they run after it
and are cached apart from it (a longer range does not re-refine NFE 3–N₀).

A chain walks up its NFEs (each warm-starts the next), so it is the unit of work and of caching; chains run
in worker processes, longest first. The key's code part is found by following ``import`` statements from
the chain's root modules through ``builder`` and the loader (package ``__init__`` files aside), plus the
data folders those modules read, so a change to the bound's finalize stage or to the loader's glue does not
re-refine, and a change to anything the refinement runs does (the compute function of this module included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import (
    SOURCE_ROOT,
    _source_of,
    code_fingerprint,
    import_closure,
    prepare_cache,
    read_cached,
    write_cached,
)
from .spec import Spec, SweepError, alias_names
from ...solve.schedules import Schedule, get_schedule

__all__ = [
    "Chain",
    "bound_grids",
    "chain_key",
    "chains_of",
    "continued_starts",
    "generic_grids",
    "load_chain",
    "refine_sources",
    "run_chains",
]

ROOT_MODULES = ("builder.select.robust", "builder.select.family")
PROFILE_ROOT_MODULES = (*ROOT_MODULES, "builder.select.profile")


@dataclass(frozen=True)
class Chain:
    """One refine chain: a schedule variant's solver entries for one solver, order and ending."""

    schedule: str
    params: tuple[tuple[str, Any], ...]
    file: str
    solver: str
    order: int
    ending: str
    nfes: tuple[int, ...]
    maxiter: int
    profile: str | None = None  # None: the generic chain
    after: int | None = None  # a continued chain: the NFE of the generic chain's grid it starts from
    objective: str | None = None  # the schedule's spec "objective": None (mean vs uniform λ) or "kinds" (robust)

    def make_schedule(self) -> Schedule:
        return get_schedule(self.schedule, **dict(self.params))

    def generic(self) -> Chain:
        """The generic chain whose grids this profile chain starts from."""
        return dataclasses.replace(self, profile=None)

    def continues(self, chains: list[Chain]) -> Chain:
        """The chain of ``chains`` that this continued chain starts from (same variant, solver, order and
        ending, generic, its last NFE = ``after``)."""
        for c in chains:
            if c.after is None and c.profile is None and c.nfes[-1] == self.after and c.same_entries(self):
                return c
        raise SweepError(f"the continued chain {self.label()} has no chain ending at NFE {self.after} to start from")

    def same_entries(self, other: Chain) -> bool:
        """Whether both chains write solver entries of one (file, solver, order, ending, profile)."""
        return (self.file, self.solver, self.order, self.ending, self.profile) == (
            other.file,
            other.solver,
            other.order,
            other.ending,
            other.profile,
        )

    def fields(self) -> dict[str, Any]:
        """The chain's fields for its cache key (``profile``, ``after`` and ``objective`` only where set, so a
        chain without them keeps the key it had before they existed)."""
        fields = self.__dict__ | {"params": list(self.params), "nfes": list(self.nfes)}
        return {k: v for k, v in fields.items() if k not in ("profile", "after", "objective") or v is not None}

    def label(self) -> str:
        params = "".join(f" {k}={v}" for k, v in self.params)
        profile = f" profile={self.profile}" if self.profile else ""
        after = f" NFE {self.nfes[0]}-{self.nfes[-1]}" if self.after else ""
        return f"{self.schedule}{params} {self.solver}-{self.order} ending={self.ending}{profile}{after}"


def chains_of(spec: Spec) -> list[Chain]:
    """Every chain of the spec's ``solver_entries`` block (none if the spec has none): the generic chains of
    every schedule variant, then the profile chains of every (variant, profile) an alias names, then the
    continued chains of the generic chains whose ending the ``continue`` block lists."""
    block = spec.solver_entries
    if not block:
        return []
    more = block.get("continue")
    generic, profiled, continued = [], [], []
    for sched in spec.schedules:
        params = tuple(sorted((sched.get("params") or {}).items()))
        shift = (sched.get("params") or {}).get("shift")
        profiles = sorted(
            {a["profile"] for a in spec.aliases.values() if "profile" in a and alias_names(a, sched["name"], shift)}
        )
        for solver, order in block["solvers"]:
            for ending in block["endings"]:
                chain = Chain(
                    sched["name"],
                    params,
                    sched["file"],
                    solver,
                    order,
                    ending,
                    tuple(block["nfe"]),
                    block["maxiter"],
                    objective=sched.get("objective"),
                )
                generic.append(chain)
                profiled += [dataclasses.replace(chain, profile=p) for p in profiles]
                if more and ending in more["endings"]:
                    continued.append(
                        dataclasses.replace(
                            chain, nfes=tuple(more["nfe"]), maxiter=more["maxiter"], after=chain.nfes[-1]
                        )
                    )
    return generic + profiled + continued


def bound_grids(chain: Chain, entries: list[dict[str, Any]], p: float) -> dict[int, list[float]]:
    """{N: λ of the bound's entry for an N-call grid}: the entry of the chain's order and the schedule's default
    p at NFE N (``"eps"``) or N − 1 (``"zero"``: its N nodes, then σ = 0)."""
    by_nfe = {e["nfe"]: e["lambda"] for e in entries if e["order"] == chain.order and float(e["p"]) == float(p)}
    shift = 0 if chain.ending == "eps" else 1
    return {n: by_nfe[n - shift] for n in chain.nfes if n - shift in by_nfe}


def generic_grids(records: list[dict[str, Any]]) -> dict[int, list[float]]:
    """{N: λ} of a generic chain's records: the starts of its profile chains."""
    return {int(r["nfe"]): r["lambda"] for r in records}


def continued_starts(
    chain: Chain, entries: list[dict[str, Any]], p: float, base: list[dict[str, Any]]
) -> dict[int, list[float]]:
    """The start grids of a continued chain: :func:`bound_grids` at its NFEs, and at N₀ = ``chain.after`` the
    grid that the generic chain's records ``base`` chose there (the continued chain's warm start)."""
    return bound_grids(chain, entries, p) | {chain.after: generic_grids(base)[chain.after]}


def refine_sources(root: Path = SOURCE_ROOT, roots: tuple[str, ...] = ROOT_MODULES) -> tuple[str, ...]:
    """The code a chain's refinement runs: :func:`~builder.registry.sweep.cache.import_closure` of ``roots``."""
    return import_closure(root, roots)


def chain_key(chain: Chain, bound: dict[int, list[float]], root: Path = SOURCE_ROOT) -> str:
    """The cache key of a chain and its start grids ``bound`` (the bound's, or for a profile chain the generic
    chain's): the chain's fields, the grids, and the code its compute function runs."""
    if chain.profile:
        code = code_fingerprint(root, refine_sources(root, PROFILE_ROOT_MODULES), _source_of(_compute_profile))
    else:
        code = code_fingerprint(root, refine_sources(root), _source_of(_compute))
    payload = json.dumps([chain.fields(), {str(k): v for k, v in sorted(bound.items())}, code, "chain"])
    return f"chain-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"


def _compute(chain: Chain, starts: dict[int, list[float]], cache_dir: str, key: str) -> str:
    """Refine a generic chain from its start grids (the bound's at each NFE; a continued chain's also holds
    its warm start at N₀ = ``chain.after``) and cache its records under ``key``."""
    from ...select import family
    from ...select.refine import bind
    from ...select.robust import refine_chain

    schedule = chain.make_schedule()
    ends = (schedule.lambda_start, schedule.lambda_end, chain.ending)
    fit = family.split("fit")
    grids = {int(k): v for k, v in starts.items()}
    after = grids.pop(chain.after) if chain.after else None
    records = refine_chain(
        schedule,
        solver=chain.solver,
        order=chain.order,
        ending=chain.ending,
        nfes=chain.nfes,
        fit=bind(fit, *ends),
        validation=bind(family.split("validation"), *ends),
        bound_grids=grids,
        maxiter=chain.maxiter,
        after=after,
        kinds=[p.profile for p in fit] if chain.objective == "kinds" else None,
    )
    family_digest = {"fit": family.digest(fit), "validation": family.digest(family.split("validation"))}
    write_cached(Path(cache_dir), key, {"chain": chain.label(), "family": family_digest, "records": records})
    return chain.label()


def _compute_profile(chain: Chain, generic: dict[int, list[float]], cache_dir: str, key: str) -> str:
    from ...select import family
    from ...select.profile import problems, profile_chain

    records = profile_chain(
        chain.make_schedule(),
        profile=chain.profile,
        solver=chain.solver,
        order=chain.order,
        ending=chain.ending,
        nfes=chain.nfes,
        generic={int(k): v for k, v in generic.items()},
        maxiter=chain.maxiter,
        robust=chain.objective == "kinds",
    )
    family_digest = {s: family.digest(problems(s, chain.profile)) for s in ("fit", "validation")}
    write_cached(Path(cache_dir), key, {"chain": chain.label(), "family": family_digest, "records": records})
    return chain.label()


def _compute_any(chain: Chain, starts: dict[int, list[float]], cache_dir: str, key: str) -> str:
    compute = _compute_profile if chain.profile else _compute
    return compute(chain, starts, cache_dir, key)


def run_chains(
    chains: list[tuple[Chain, dict[int, list[float]]]],
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> int:
    """Refine every chain not cached yet (in worker processes); returns how many ran."""
    from .run import _progress_bar, map_in_workers

    prepare_cache(cache_dir)
    todo = [(c, b, chain_key(c, b)) for c, b in chains]
    todo = [item for item in todo if read_cached(cache_dir, item[2]) is None]
    # slow ones first: UniPC, high orders, generic (the whole fit split) before profile chains
    todo.sort(key=lambda item: (item[0].solver != "unipc", -item[0].order, bool(item[0].profile), item[0].label()))
    if not todo:
        return 0
    bar = _progress_bar(len(todo), len(chains), progress)
    try:
        cols = list(zip(*todo, strict=True))
        for label in map_in_workers(_compute_any, *cols[:2], [str(cache_dir)] * len(todo), cols[2], workers=workers):
            bar(label)
    finally:
        bar(None)
    return len(todo)


def load_chain(chain: Chain, bound: dict[int, list[float]], cache_dir: Path) -> dict[str, Any]:
    """The cached payload of a refined chain (``records``, ``family``); :func:`run_chains` computed it."""
    payload = read_cached(cache_dir, chain_key(chain, bound))
    if payload is None:
        raise SweepError(f"the chain {chain.label()} vanished from the cache folder {cache_dir}: run again")
    return payload
