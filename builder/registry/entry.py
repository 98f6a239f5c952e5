"""Turn one optimisation result into a registry entry (docs/registry-format.md, "Entry").

Pure: a dict of plain Python values, no I/O. The node arrays are computed from t (float64), so the
entry's t, λ, α, σ and σ/α are mutually consistent to rounding; the endpoints are the schedule's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

from optsteps_loader import format as fmt
from optsteps_loader.schedules import timestep_collisions

from ..solve.schedules import Schedule, node_arrays


def problem_key(schedule: Schedule, nfe: int, order: int, p: float, tau: int | str) -> dict[str, Any]:
    """The inputs that determine an entry's problem (hashed into ``input_hash``)."""
    return {
        "schedule": schedule.name,
        "params": schedule.params,
        "t_start": schedule.t_start,
        "t_end": schedule.t_end,
        "nfe": int(nfe),
        "order": int(order),
        "p": float(p),
        "tau": tau,
    }


def input_hash(key: dict[str, Any]) -> str:
    """``sha256:`` of the problem key's compact sorted JSON (`optsteps_loader.format.input_hash`, the one
    definition: the loader's checks rebuild the key from the entry and compare)."""
    return fmt.input_hash(key)


def make_entry(schedule: Schedule, result: OptimizeResult, tau_spec: int | str) -> dict[str, Any]:
    """The registry entry for ``result`` (an OptimizeResult from ``builder.solve.optimize.solve``)."""
    nodes = node_arrays(schedule, result.t)
    key = problem_key(schedule, result.nfe, result.order, result.p, tau_spec)
    return {
        "nfe": int(result.nfe),
        "order": int(result.order),
        "p": _number(result.p),
        "tau": int(result.tau),
        "solver": "unipc",
        "init": str(result.init),
        "step_orders": [int(k) for k in result.step_orders],
        **nodes,
        "timestep_collisions": timestep_collisions(nodes["timesteps"]),
        "objective": float(result.fun),
        "objective_uniform_lambda": float(result.objective_uniform_lambda),
        "objective_uniform_t": float(result.objective_uniform_t),
        "optimizer": {
            "success": bool(result.success),
            "status": int(result.status),
            "message": str(result.message),
            "nit": int(result.nit),
            "nfev": int(result.nfev),
            "starts": int(result.starts),
        },
        "input_hash": input_hash(key),
        "quality": None,
    }


def _number(value: float) -> int | float:
    """Whole numbers as ints (p = 2 rather than 2.0) so keys read naturally in JSON."""
    value = float(value)
    return int(value) if value.is_integer() else value


def solver_nodes(schedule: Schedule, ending: str, lambdas: Sequence[float]) -> dict[str, list]:
    """A solver entry's node arrays (:func:`node_arrays`) of a refined grid: t = t(λ) with the schedule's own
    endpoints (t_end only for ``"eps"``), and for ``"zero"`` the σ = 0 node appended to t, α, σ and sigmas."""
    t = schedule.inverse_lambda(np.asarray(lambdas, dtype=np.float64))
    t[0] = schedule.t_start
    if ending == "eps":
        t[-1] = schedule.t_end
    nodes = node_arrays(schedule, t)
    if ending == "zero":
        for key, last in (("t", 0.0), ("alpha_t", 1.0), ("sigma_t", 0.0), ("sigmas", 0.0)):
            nodes[key].append(last)
    return nodes


def solver_entry(
    schedule: Schedule, chain: Any, record: dict[str, Any], calibration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The registry's solver entry for one NFE of a refined chain (:mod:`builder.registry.sweep.chains`).

    ``"eps"``: N + 1 nodes from the chain's λ, endpoints the schedule's own. ``"zero"``: the N evaluated
    nodes, then the σ = 0 node in ``t``, ``alpha_t``, ``sigma_t``, ``sigmas`` (t = 0, α = 1, σ = 0, σ/α = 0);
    ``lambda`` and ``timesteps`` hold the N evaluated nodes only (λ = +∞ has no JSON number, and the model is
    never called at σ = 0). ``step_orders``: the N steps' orders (the σ = 0 step is first order).
    ``profile``: only on a profile chain's entries (refined on that data profile's problems). ``calibration``:
    only on a calibrated entry (``builder.calibrate``); its ``identity`` joins the input hash's key.
    """
    from optsteps_loader.coefficients import solver_step_orders

    nfe = int(record["nfe"])
    nodes = solver_nodes(schedule, chain.ending, record["lambda"])
    profile = {"profile": chain.profile} if getattr(chain, "profile", None) else {}
    key = {
        **{k: v for k, v in problem_key(schedule, nfe, chain.order, 0.0, 0).items() if k not in ("p", "tau")},
        "solver": chain.solver,
        "ending": chain.ending,
        **profile,
        **({"calibration": calibration["identity"]} if calibration else {}),
    }
    return {
        "nfe": nfe,
        "order": int(chain.order),
        "solver": chain.solver,
        **({"variant": "bh2"} if chain.solver == "unipc" else {}),
        "ending": chain.ending,
        **profile,
        "method": record["method"],
        "init": record["init"],
        "step_orders": [int(k) for k in solver_step_orders(chain.solver, nfe, chain.order, chain.ending)],
        **nodes,
        "timestep_collisions": timestep_collisions(nodes["timesteps"]),
        "optimizer": record["optimizer"],
        "input_hash": input_hash(key),
        "quality": record["quality"],
        **({"calibration": calibration} if calibration else {}),
    }
