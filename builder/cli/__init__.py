"""``python -m builder``: the click layer — the only package that defines commands; each command calls
library functions.

- :mod:`._common`: the group, default paths, option helpers;
- :mod:`.build`: ``solve``, ``sweep``, ``validate``, ``publish``, ``demo``;
- :mod:`.quality`: ``quality``, ``measure-defaults``, ``report``, ``learned-check``;
- :mod:`.calibrate`: ``calibrate``.
"""

from . import build, calibrate, quality  # noqa: F401 - importing registers the commands
from ._common import DEFAULT_REGISTRY, REPO_ROOT, SPEC_PATH, cli

__all__ = ["DEFAULT_REGISTRY", "REPO_ROOT", "SPEC_PATH", "cli", "main"]


def main() -> None:
    cli(prog_name=f"python -m {__package__.split('.')[0]}")  # builder in a checkout, optsteps_builder installed
