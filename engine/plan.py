"""Splitting a run into chunks of episodes.

A chunk is a contiguous range of episode indices of one scenario. Episode
`e` of every scenario uses the same random numbers (keyed by the run's seed
and `e`), so how a run is chunked never changes its numbers; chunk size only
trades scheduling overhead against progress granularity and memory.
"""
from __future__ import annotations

from typing import NamedTuple

MAX_CHUNK_EPISODES = 1 << 30          # keeps a chunk's quantised sums inside int64
CANDIDATE_EPISODES_PER_CHUNK = 4_000_000  # about 1-2 s of one core's work


class Chunk(NamedTuple):
    position: int   # place in the run's merge order (scenario-major)
    scenario: int   # index of the scenario in the run
    index: int      # index of the chunk within its scenario
    first: int      # first episode
    stop: int       # one past the last episode

    @property
    def episodes(self) -> int:
        return self.stop - self.first


def default_chunk_size(n_candidates: int) -> int:
    """About 1-2 s of work per chunk on one core, whatever the scenario's size."""
    return int(min(1 << 20, max(4096, CANDIDATE_EPISODES_PER_CHUNK // max(n_candidates, 1))))


def plan_chunks(n_scenarios: int, episodes: int, chunk_size: int) -> list[Chunk]:
    """Chunks of every scenario, in merge order."""
    chunks = []
    for s in range(n_scenarios):
        for index, first in enumerate(range(0, episodes, chunk_size)):
            chunks.append(Chunk(len(chunks), s, index, first, min(first + chunk_size, episodes)))
    return chunks
