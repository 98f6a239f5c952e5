"""The loader's exceptions: one domain error per way a lookup can fail.

``ScheduleNotFoundError`` and ``EntryNotFoundError`` subclass ``KeyError`` (as zoneinfo's
``ZoneInfoNotFoundError`` does): callers who think "lookup failed" can catch the builtin, callers who want
precision catch ours. Bad argument *types* and *values* are plain ``TypeError`` / ``ValueError`` naming the
argument. Everything else about the data is a ``RegistryIntegrityError``; a registry that cannot be reached at
all (missing folder, Hub down, offline with nothing cached) is a ``RegistryUnavailableError``.

Two warnings. ``FallbackWarning``: `get()` (and the glue, which calls it) returns another entry than the one
asked for, because the registry has none for that request (no solver entry for the solver, order, ending or
NFE, or none for the model alias's data profile); the record's ``requested`` says what was asked.
``SolverMismatchWarning``: a host (a diffusers scheduler) will run an entry with another solver than the one
it was optimized and measured with. Either way the steps still run; what was measured about them does not
describe what runs.
"""

from __future__ import annotations


class OptstepsError(Exception):
    """Base class of every error the loader raises on purpose."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it as written
        return str(self.args[0]) if self.args else ""


class ScheduleNotFoundError(OptstepsError, KeyError):
    """No schedule of that name in the registry (the message lists close matches and all schedules)."""


class EntryNotFoundError(OptstepsError, KeyError):
    """The schedule exists but not with this NFE / order / p / shift.

    The message lists the grid that exists and the builder command that computes the missing entry.
    """


class RegistryIntegrityError(OptstepsError):
    """A registry file is not what the index promises: hash mismatch, invalid or truncated JSON, a missing
    key, sequences of the wrong length, non-monotone λ, non-finite numbers, an unsafe path, a listed file
    that is absent. The message names the file and the problem. No partly read result is ever returned."""


class RegistryUnavailableError(OptstepsError, OSError):
    """The registry cannot be reached: no folder/index at the given place, or a Hub download that failed
    (404, 5xx, truncated transfer, ``huggingface_hub`` not installed). The message names the source."""


class SolverMismatchWarning(UserWarning):
    """A scheduler runs the entry with another solver, solver setting or step-order pattern than the entry
    was optimized and measured with (the message lists each difference and the setting that removes it).
    Silence it with ``warnings.filterwarnings("ignore", category=SolverMismatchWarning)``."""


class FallbackWarning(UserWarning):
    """`get()` returned another entry than the one asked for: the paper's bound entry where no solver entry
    exists for the solver, order, ending and NFE, or the generic entry where a model alias's data profile has
    none. The message says what was asked, what was returned and how to ask for it explicitly (which does not
    warn); the record's ``requested`` holds the request. Silence it with
    ``warnings.filterwarnings("ignore", category=FallbackWarning)``."""
