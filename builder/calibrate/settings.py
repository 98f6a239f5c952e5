""":func:`builder.calibrate.calibrate`'s arguments, checked and completed from the model: one frozen record the
steps read.

:func:`resolve` checks them in the order the errors are reported (prediction and shape, ending, solver and
order, NFE, held-out noises, the schedule), fills in what the model says (``prediction``, ``shape``, the dtype
it runs in, an identifier from its type) and builds the schedule. The defaults are ``calibrate``'s own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from optsteps_loader.vocabulary import ENDINGS, ORDERS, SOLVERS

from ..solve.schedules import Schedule, get_schedule
from .model import CalibrationError, probe_dtype

__all__ = ["Settings", "resolve"]


@dataclass(frozen=True)
class Settings:
    """One calibration's settings (:func:`builder.calibrate.calibrate`'s arguments, resolved)."""

    # what is calibrated: the schedule, the NFEs (sorted, distinct), the sampler and where it starts from
    schedule: Schedule
    nfes: tuple[int, ...]
    solver: str
    order: int
    ending: str
    start: tuple[str, ...] | None  # None: the registry entry and every rule
    profile: str | None
    registry: Any  # the loader's ``source`` of the registry start and of a new folder
    # the model
    prediction: str
    shape: tuple[int, ...]
    device: str
    dtype: torch.dtype
    model_id: str
    weights_hash: str | None
    # the noises and the teacher
    noises: int
    held_out: int
    seed: int
    teacher_steps: int
    teacher_rtol: float
    batch: int
    cache: bool | str | Path
    # the optimisation
    method: str
    maxiter: int
    patience: int
    restarts: int
    progress: bool
    # the output folder (None: nothing written)
    out: str | Path | None

    @property
    def sampler(self) -> dict[str, Any]:
        """The sampler's arguments (:func:`builder.select.differentiable.sample`), UniPC's variant bh2."""
        spec = {"solver": self.solver, "order": self.order, "ending": self.ending}
        return spec | ({"variant": "bh2"} if self.solver == "unipc" else {})

    @property
    def fit_noises(self) -> int:
        """How many of the noises are fitted (the first ones; the rest are held out)."""
        return self.noises - self.held_out


def resolve(model: Callable[..., Any], arguments: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from ``calibrate``'s keyword ``arguments`` (all but ``model`` and ``threads``);
    raises :class:`CalibrationError` naming the first argument that is wrong."""
    a = dict(arguments)
    prediction = a.pop("prediction") or getattr(model, "prediction", None)
    shape = a.pop("shape")
    shape = shape if shape is not None else getattr(model, "shape", None)
    if prediction is None or shape is None:
        raise CalibrationError("give prediction= and shape= (or a model with .prediction and .shape attributes)")
    if a["ending"] not in ENDINGS:
        raise CalibrationError(f"ending must be one of {ENDINGS}, got {a['ending']!r}")
    if a["solver"] not in SOLVERS or a["order"] not in ORDERS:
        raise CalibrationError(f"solver must be 'unipc' or 'dpmpp' with order 1-3, got {a['solver']!r} {a['order']}")
    nfe = a.pop("nfe")
    nfes = sorted({int(n) for n in ([nfe] if isinstance(nfe, int) else nfe)})
    if not nfes or nfes[0] < 2:
        raise CalibrationError(f"nfe must be at least 2, got {nfes}")
    held_out = a["noises"] // 2 if a["held_out"] is None else int(a["held_out"])
    if not 1 <= held_out < a["noises"]:
        raise CalibrationError(f"need 1 <= held_out < noises, got held_out={held_out}, noises={a['noises']}")
    shift = a.pop("shift")
    schedule = get_schedule(a["schedule"], **({} if shift is None else {"shift": float(shift)}))
    shape = tuple(int(s) for s in shape)
    start = a["start"]
    return Settings(
        **a
        | {
            "schedule": schedule,
            "nfes": tuple(nfes),
            "prediction": prediction,
            "shape": shape,
            "held_out": held_out,
            "start": None if start is None else ((start,) if isinstance(start, str) else tuple(start)),
            "dtype": a["dtype"] or probe_dtype(model, shape, a["device"]),
            "model_id": a["model_id"] or f"{type(model).__module__}.{type(model).__qualname__}",
        }
    )
