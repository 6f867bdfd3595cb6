"""The sha256 of a file, as index manifests and the pinned ONNX model record it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in chunks (index files can be large)."""
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()
