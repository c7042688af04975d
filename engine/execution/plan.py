"""Splitting a run into chunks of episodes.

A chunk is a contiguous range of episode indices of a *group* of scenarios
(one scenario in a plain run; a study batches many design rows into one
group so the kernel runs them back to back, and the base and its variants
form one group so their episodes can be paired). Episode `e` of every
scenario uses the same random numbers (keyed by the run's seed and `e`), so
how a run is chunked or grouped never changes its numbers; chunk size only
trades scheduling overhead against progress granularity and memory.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

MAX_EPISODES = 10**13  # per scenario: about 10 years of 30,000 cores at 30,000 episodes/s each
MAX_CHUNK_EPISODES = 1 << 30          # keeps a chunk's quantised sums inside int64
CANDIDATE_EPISODES_PER_CHUNK = 4_000_000  # about 1-2 s of one core's work
MAX_CHUNKS = 100_000  # chunks per scenario group: the plan and the checkpoint list stay small
MAX_GROUP = 128  # scenarios per group: bounds the aggregates and tables a chunk holds at once


class Chunk(NamedTuple):
    position: int   # the chunk's checkpoint id (stable when more episodes are added)
    scenario: int   # index of the group's first scenario in the run
    index: int      # index of the chunk within its group (episodes index*size ..)
    first: int      # first episode
    stop: int       # one past the last episode
    count: int = 1  # scenarios in the group: scenario .. scenario + count - 1

    @property
    def episodes(self) -> int:
        return self.stop - self.first


def default_chunk_size(n_candidates: int, episodes: int = 0) -> int:
    """About 1-2 s of work per chunk on one core, whatever the scenario's size; longer for runs
    so long that the plan would pass MAX_CHUNKS chunks."""
    work = int(min(1 << 20, max(4096, CANDIDATE_EPISODES_PER_CHUNK // max(n_candidates, 1))))
    return min(max(work, -(-episodes // MAX_CHUNKS)), MAX_CHUNK_EPISODES)


def plan_groups(n_scenarios: int, group_size: int, paired: int = 0) -> list[tuple[int, int]]:
    """(first scenario, count) of each group: the leading `paired` scenarios (a base and its
    variants) form one group, the others groups of `group_size` in run order."""
    groups = [(0, paired)] if paired > 1 else []
    start = paired if paired > 1 else 0
    groups += [(s, min(group_size, n_scenarios - s)) for s in range(start, n_scenarios, group_size)]
    return groups


def group_size_for(n_candidates: int, episodes_per_chunk: int) -> int:
    """Scenarios per group so that a chunk of `episodes_per_chunk` episodes of each is about
    1-2 s of work (1 when a chunk of one scenario already is)."""
    return max(1, min(MAX_GROUP, default_chunk_size(n_candidates) // max(episodes_per_chunk, 1)))


def plan_chunks(n_scenarios: int, episodes: int, chunk_size: int, groups=None,
                first_index: int = 0) -> ChunkPlan:
    """Chunks of every group (default: one group per scenario) covering chunk indices
    `first_index`.. up to `episodes`, in merge order (group-major, then episodes)."""
    return ChunkPlan(tuple(groups or [(s, 1) for s in range(n_scenarios)]), episodes, chunk_size,
                     first_index)


class ChunkPlan(Sequence):
    """The chunks of a run, each computed from its index when asked for: the plan takes the
    same memory for 10 chunks as for 10^5 (a list of them would take about 240 bytes each)."""

    def __init__(self, groups: tuple, episodes: int, chunk_size: int, first_index: int = 0):
        self.groups, self.episodes, self.chunk_size = groups, episodes, chunk_size
        self.first_index = first_index
        self.per_group = max(0, -(-episodes // chunk_size) - first_index)

    def __len__(self) -> int:
        return len(self.groups) * self.per_group

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        g, k = divmod(i % len(self), self.per_group)
        scenario, count = self.groups[g]
        index = self.first_index + k
        first = index * self.chunk_size
        return Chunk(index * len(self.groups) + g, scenario, index, first,
                     min(first + self.chunk_size, self.episodes), count)
