"""Cross sums of a paired group: each scenario's outcomes times its base's, episode by episode.

A study's variants run in one group with their base over the same episodes
(engine/execution/executors.py: paired_slice); these sums make the variance of
each paired difference exact (engine/studies/comparisons.py).
"""
from __future__ import annotations

import numpy as np

from kernels.chunk import GRID
from kernels.layout import CAPACITY, SIZE, SPENT, SUCCESS

PAIR_BLOCK = 4096   # episodes whose per-episode outcomes are held at once per scenario


def cross_sums(base: np.ndarray, base_top: np.ndarray, other: np.ndarray, other_top: np.ndarray,
               base_members: np.ndarray | None = None, other_members: np.ndarray | None = None) -> np.ndarray:
    """Sum over episodes of base x other outcomes (rows: episodes in kernels.layout order):
    success and size exactly, capacity and spent on the kernel's grid (as its sums of squares);
    then, given both (episodes, N) membership arrays at T, each candidate's episodes in which
    it is a member in both."""
    extra = 0 if base_members is None else base_members.shape[1]
    out = np.zeros(4 + extra, np.int64)
    if extra:
        out[4:] = (base_members.astype(np.int64) * other_members.astype(np.int64)).sum(axis=0)
    out[0] = int(np.sum(base[:, SUCCESS].astype(np.int64) * other[:, SUCCESS].astype(np.int64)))
    out[1] = int(np.sum(base[:, SIZE].astype(np.int64) * other[:, SIZE].astype(np.int64)))
    for k, (column, m) in enumerate(((CAPACITY, 0), (SPENT, 1)), start=2):
        qb = np.maximum(base[:, column], 0.0) * (GRID / base_top[m])
        qo = np.maximum(other[:, column], 0.0) * (GRID / other_top[m])
        out[k] = int(np.sum((qb * qo / GRID + 0.5).astype(np.int64)))
    return out
