"""The rounding of the measured figures the builder records: 4 significant digits.

Every error, log ratio and standard error the registry stores (a solver entry's fit / validation figures, a
bound entry's selection figures, the held-out choice's figures, a calibrated entry's record) is rounded by
:func:`significant`; decisions are made on the unrounded values. Four digits keep a figure's noise out of
the registry's bytes (a figure's standard error is far above its fifth digit) and keep the files diffable.
Four digits are relative, so they cannot do that for a log ratio between two grids that are one grid up to
their last bits (~1e-15, all noise): the registry's writer floors those at 0
(:func:`builder.registry.files.without_noise`).
"""

from __future__ import annotations

__all__ = ["significant"]


def significant(x: float) -> float:
    """``x`` to 4 significant digits (``float(f"{x:.4g}")``)."""
    return float(f"{x:.4g}")
