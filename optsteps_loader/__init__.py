"""optsteps: optimized time steps for few-step diffusion samplers (Xue et al., CVPR 2024), as data.

>>> import optsteps_loader
>>> steps = optsteps_loader.get("vp-linear", 6)  # doctest: +SKIP

Importing this package loads nothing beyond the standard library; `Steps` is a lazy re-export (its
``dataclasses`` import costs more than the rest of the package and is only paid on first use).
"""

from ._api import aliases, available, get, info
from ._registry import clear_cache
from ._verify import verify
from .errors import (
    EntryNotFoundError,
    FallbackWarning,
    OptstepsError,
    RegistryIntegrityError,
    RegistryUnavailableError,
    ScheduleNotFoundError,
    SolverMismatchWarning,
)

__version__ = "0.1.0"

__all__ = [
    "EntryNotFoundError",
    "FallbackWarning",
    "OptstepsError",
    "RegistryIntegrityError",
    "RegistryUnavailableError",
    "ScheduleNotFoundError",
    "SolverMismatchWarning",
    "Steps",
    "__version__",
    "aliases",
    "available",
    "clear_cache",
    "get",
    "info",
    "verify",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .steps import Steps


def __getattr__(name: str) -> object:
    if name == "Steps":
        from .steps import Steps

        return Steps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
