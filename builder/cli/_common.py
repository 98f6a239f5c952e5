"""What every ``python -m builder`` command shares: the click group, the repository's default paths, and
option helpers."""

from __future__ import annotations

from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REGISTRY = REPO_ROOT / "registry"
SPEC_PATH = REPO_ROOT / "builder" / "registry" / "spec.json"
# ``--init karras`` names the start that registry entries store as ``init`` "edm" (still accepted).
INIT_NAMES = {"karras": "edm"}


def registry_option(help_text: str, *, exists: bool = False):  # noqa: ANN202 - a click decorator
    """``--registry FOLDER`` (default: the repository's registry/)."""
    return click.option(
        "--registry",
        type=click.Path(file_okay=False, exists=exists, path_type=Path),
        default=DEFAULT_REGISTRY,
        show_default=True,
        help=help_text,
    )


def spec_option(help_text: str = "Grid spec (default: builder/registry/spec.json)."):  # noqa: ANN201 - a click decorator
    """``--spec FILE`` (default None: builder/registry/spec.json), as ``spec_path``."""
    kind = click.Path(dir_okay=False, exists=True, path_type=Path)
    return click.option("--spec", "spec_path", type=kind, default=None, help=help_text)


def parse_tau(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        tau = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither 'auto' nor an integer") from None
    if tau < 0:
        raise click.BadParameter(f"tau must be ≥ 0, got {tau}")
    return tau


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """optsteps builder: optimise diffusion-sampler time steps and write the registry."""
