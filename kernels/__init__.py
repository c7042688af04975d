"""Numba kernels of pivotal: arrays in, arrays out; no data I/O, no Ray, no pyarrow.

Compiled kernels are cached on disk. Numba invalidates a cached function only
when its own source file changes, not when a kernel it calls (in another
file) does; so the cache lives in a directory named after a hash of all
kernel sources: `$PIVOTAL_CACHE_DIR` (default `~/.cache/pivotal`) /
`numba-<hash>`. Any change to any kernel starts a fresh cache, and every
node of a cluster keeps its own.
"""
import hashlib
import os
from pathlib import Path

import numba


def _source_digest() -> str:
    sources = sorted(Path(__file__).parent.glob("*.py"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]


SOURCE_DIGEST = _source_digest()  # identifies the kernels' code (cache, resumable checkpoints)


def _configure_cache() -> None:
    base = os.environ.get("PIVOTAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pivotal")
    target = os.path.join(base, f"numba-{SOURCE_DIGEST}-py{numba.__version__}")
    try:
        os.makedirs(target, exist_ok=True)
    except OSError:
        return  # unwritable: Numba falls back to its own locations
    numba.config.CACHE_DIR = target


_configure_cache()
