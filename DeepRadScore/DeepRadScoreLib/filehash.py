"""Content hashes of files: bundle integrity, weight-file provenance and extraction cache keys."""
from __future__ import annotations

import hashlib
from pathlib import Path


BLOCK = 1 << 20  # read in 1 MiB blocks: CT volumes and weight files do not fit comfortably at once


def update_with_file(digest, path: Path) -> None:
    """Feed the bytes of ``path`` into ``digest`` (a hashlib object)."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()
