"""Where a registry lives: a `Source` (its index file and how to find each listed file), for a local
folder (``source=PATH``, ``$OPTSTEPS_REGISTRY_DIR`` or the bundled registry). ``hub`` builds Hub sources
on this module; `reader` picks between the two. Imports `format` (for `format.short`) and `errors`."""

from __future__ import annotations

import os

from .errors import RegistryUnavailableError
from .format import short

ENV_DIR = "OPTSTEPS_REGISTRY_DIR"
MAX_LABEL = 200  # characters of a source's label in messages (and provenance); a longer path is cut
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_sources: dict[str, Source] = {}  # the source argument -> its Source, for this process


class OfflineMiss(RegistryUnavailableError):
    """``source="hub"`` under ``HF_HUB_OFFLINE`` and the file is not in the HF cache (the API falls back)."""


class Source:
    """Where a registry lives: its index file, and how to find each listed file on disk.

    ``root`` is the folder every file must stay inside once symlinks are resolved (None for the Hub, whose
    cache links snapshots to blobs elsewhere); ``discard`` is called with the path of a file that failed its
    checks (the Hub source deletes it from the HF cache)."""

    def __init__(self, label: str, index_path: str, locate=None, discard=None, root: str | None = None) -> None:
        folder = os.path.dirname(index_path)
        self.label = short(label, MAX_LABEL)  # for messages: a folder, or "hub:<repo>@<revision>"
        self.index_path = index_path
        self.locate = locate or (lambda rel: os.path.join(folder, *rel.split("/")))
        self.discard = discard
        self.root = root


def bundled_dir() -> str:
    """The registry shipped with the package: ``optsteps_loader/registry`` in a wheel (hatch force-include),
    else ``<repo>/registry`` (source checkout, editable install)."""
    inside = os.path.join(_PACKAGE, "registry")
    if os.path.isfile(os.path.join(inside, "index.json")):
        return inside
    return os.path.join(os.path.dirname(_PACKAGE), "registry")


def local(source: object = None) -> Source:
    """``None``: ``$OPTSTEPS_REGISTRY_DIR`` or the bundled folder; a path: that folder (cached)."""
    if source is None:
        root = os.environ.get(ENV_DIR) or bundled_dir()
    elif isinstance(source, (str, os.PathLike)) and isinstance(os.fspath(source), str):
        root = os.fspath(source)
    else:
        raise TypeError(f"source must be None, 'hub' or a folder path, not {type(source).__name__}")
    src = _sources.get(root)
    if src is None:
        if root == "" or "\0" in root:
            where = f"${ENV_DIR}" if source is None else "source"
            raise ValueError(f"{where} must name a registry folder, got {short(root)!r}")
        folder = os.path.abspath(root)
        src = _sources[root] = Source(folder, os.path.join(folder, "index.json"), root=folder)
    return src


def clear_cache() -> None:
    """Forget the resolved local sources."""
    _sources.clear()
