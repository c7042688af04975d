"""Executors run chunks and yield their aggregates as they finish (in any order).

An executor has one method, `map(job, chunks)`, and a `name`. The driver
(engine/run.py) merges what it yields in chunk order, so an executor never
changes the numbers. `local` runs chunks one after another in this process,
each split over `workers` threads (the kernels release the GIL).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, NamedTuple

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


def run_chunk(job: Job, chunk: Chunk, pool: ThreadPoolExecutor | None = None, threads: int = 1) -> Aggregate:
    """Run one chunk, split into one contiguous slice per thread (`threads` of `pool`;
    the kernel releases the GIL), and combine the slices into an Aggregate."""
    from kernels.chunk import simulate_chunk  # compiled (or loaded from cache) on first use

    r = job.ranges[chunk.scenario]
    model = job.models[chunk.scenario]
    bounds = [chunk.first + chunk.episodes * k // threads for k in range(threads + 1)]

    def run(first, stop):
        return simulate_chunk(job.seed, first, stop, job.keep_episodes, VALUE_BINS, r.top, r.days,
                              r.max_offers, *model)

    slices = (pool.map if threads > 1 else map)(run, bounds[:-1], bounds[1:])
    return Aggregate.from_slices(chunk.episodes, list(slices))


def kernels_cached() -> bool:
    """Whether the chunk kernel is in this machine's Numba cache (else the first chunk compiles
    it, which takes 10-30 s). Reads Numba's cache index path; True when that cannot be told."""
    from kernels.chunk import simulate_chunk

    try:
        return os.path.exists(simulate_chunk._cache._cache_file._index_path)
    except AttributeError:  # another Numba version: say nothing rather than something wrong
        return True


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalExecutor:
    """Chunks in order, in this process, each split over `workers` threads."""
    name = "local"

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, job: Job, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Aggregate]]:
        with ThreadPoolExecutor(self.workers) as pool:
            for chunk in chunks:
                try:
                    aggregate = run_chunk(job, chunk, pool, self.workers)
                except Exception as exc:
                    raise ChunkError(chunk, f"{type(exc).__name__}: {exc}") from exc
                yield chunk, aggregate
