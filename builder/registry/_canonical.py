"""Canonical bytes, content hashes and atomic writes for the builder: the registry format's own functions
(`optsteps_loader.format`, shared with the loader), under the names the builder uses.

The registry's byte representation of every JSON file is::

    json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False) + "\\n"
"""

from __future__ import annotations

from optsteps_loader.format import PUBLISHED_MODE, atomic_write_bytes, canonical_bytes
from optsteps_loader.format import sha256_id as sha256_of

__all__ = ["PUBLISHED_MODE", "atomic_write_bytes", "canonical_bytes", "sha256_of"]
