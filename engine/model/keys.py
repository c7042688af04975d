"""Random-number keys: a candidate's draws are keyed by its id, a tie's by its pair of ids.

The key is the slot word of the generator's counter (kernels/rng.py), so the
draws of a candidate do not depend on where it stands in the file, nor on
which other candidates the scenario has: adding, removing or reordering
candidates leaves everyone else's draws unchanged (MODEL.md, "Randomness").
"""
import hashlib
from functools import lru_cache


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


@lru_cache(maxsize=65536)  # a study validates every row: the same ids thousands of times
def candidate_key(candidate_id: str) -> int:
    """32-bit key of a candidate: the first 4 bytes of SHA-256("candidate:" + id)."""
    return _key("candidate:" + candidate_id)


@lru_cache(maxsize=65536)
def tie_key(a: str, b: str) -> int:
    """32-bit key of the undirected tie a-b: SHA-256("tie:" + lower id + NUL + higher id)."""
    low, high = sorted((a, b))
    return _key(f"tie:{low}\x00{high}")
