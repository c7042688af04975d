"""Executors run chunks and yield their aggregates as they finish (in any order).

An executor has one method, `map(job, chunks)`, and a `name`. The driver
(engine/run.py) merges what it yields in chunk order, so an executor never
changes the numbers. `local` runs chunks one after another in this process,
each spread over `workers` Numba threads.
"""
from __future__ import annotations

import os
from typing import Iterator, NamedTuple

import numba

from engine.aggregate import Aggregate
from engine.model_arrays import VALUE_BINS, ModelArrays, Ranges
from engine.plan import Chunk


class Job(NamedTuple):
    """Everything a chunk needs besides its episode range (cheap to ship to a worker)."""
    seed: int
    keep_episodes: int
    models: tuple[ModelArrays, ...]   # per scenario
    ranges: tuple[Ranges, ...]        # per scenario


class ChunkError(RuntimeError):
    """A chunk failed; carries the chunk so the driver can name it."""

    def __init__(self, chunk: Chunk, cause: str):
        super().__init__(cause)
        self.chunk = chunk


def run_chunk(job: Job, chunk: Chunk, threads: int) -> Aggregate:
    """Run one chunk with `threads` Numba threads and reduce it to an Aggregate."""
    from kernels.chunk import simulate_chunk  # compiled (or loaded from cache) on first use

    r = job.ranges[chunk.scenario]
    arrays = simulate_chunk(job.seed, chunk.first, chunk.stop, threads, job.keep_episodes,
                            VALUE_BINS, r.top, r.days, r.max_offers, *job.models[chunk.scenario])
    return Aggregate.from_kernel(chunk.episodes, arrays)


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalExecutor:
    """Chunks in order, in this process, over `workers` threads."""
    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        numba.set_num_threads(workers)

    def map(self, job: Job, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Aggregate]]:
        for chunk in chunks:
            try:
                aggregate = run_chunk(job, chunk, self.workers)
            except Exception as exc:
                raise ChunkError(chunk, f"{type(exc).__name__}: {exc}") from exc
            yield chunk, aggregate
