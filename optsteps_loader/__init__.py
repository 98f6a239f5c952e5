"""optsteps: optimized time steps for few-step diffusion samplers (Xue et al., CVPR 2024), as data.

>>> import optsteps_loader
>>> steps = optsteps_loader.get("vp-linear", 6)  # doctest: +SKIP

Importing this package loads nothing beyond the standard library; `Steps` and `verify` are lazy re-exports
(``dataclasses``, and the whole-registry check, cost more than the rest of the package and are only paid on
first use).
"""

from ._api import aliases, available, get, info
from ._version import __version__
from .errors import (
    EntryNotFoundError,
    FallbackWarning,
    OptstepsError,
    RegistryIntegrityError,
    RegistryUnavailableError,
    ScheduleNotFoundError,
    SolverMismatchWarning,
)
from .reader import clear_cache

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
    from ._verify import verify
    from .steps import Steps


def __getattr__(name: str) -> object:
    if name == "Steps":
        from .steps import Steps

        return Steps
    if name == "verify":
        from ._verify import verify

        return verify
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
