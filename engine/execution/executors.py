"""Executors run chunks and yield their aggregates as they finish (in any order).

An executor has one method, `map(job, chunks)`, and a `name`. The driver
(engine/execution/execute.py) merges what it yields in chunk order, so an executor never
changes the numbers. `local` runs chunks one after another in this process,
each split over `workers` threads (the kernels release the GIL).
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from engine.execution.aggregate import Aggregate
from engine.model.arrays import VALUE_BINS, ModelArrays, Ranges
from engine.execution.plan import Chunk


class Job(NamedTuple):
    """Everything a chunk needs besides its episode range (cheap to ship to a worker)."""
    seed: int
    keep_episodes: int
    models: tuple[ModelArrays, ...]   # per scenario
    ranges: tuple[Ranges, ...]        # per scenario
    paired: int = -1                  # first scenario of the paired group (base + variants), or -1
    rows: object = None               # a study's design rows (engine/studies/rows.py: RowDesign), or None


class ChunkError(RuntimeError):
    """A chunk failed; carries the chunk so the driver can name it."""

    def __init__(self, chunk: Chunk, cause: str):
        super().__init__(cause)
        self.chunk = chunk


def run_chunk(job: Job, chunk: Chunk, pool: ThreadPoolExecutor | None = None,
              threads: int = 1) -> list[Aggregate]:
    """Run one chunk: every scenario of its group over the chunk's episodes, split into one
    contiguous slice per thread (`threads` of `pool`; the kernel releases the GIL).
    Returns one Aggregate per scenario of the group; in the paired group each also
    carries its cross sums with the group's first scenario (engine/studies/comparisons.py).
    A chunk past the run's scenarios is a block of `job.rows` (rows scenario - len(models)
    on, `count` of them, every episode): its rows' figures, a (count, figures) array, split
    over the threads by rows."""
    if job.rows is not None and chunk.scenario >= len(job.models):  # a block of design rows
        first = chunk.scenario - len(job.models)
        bounds = sorted({first + chunk.count * k // threads for k in range(threads + 1)})
        parts = (pool.map if len(bounds) > 2 else map)(
            lambda a, b: job.rows.run(job.seed, a, b), bounds[:-1], bounds[1:])
        return np.concatenate(list(parts))
    bounds = [chunk.first + chunk.episodes * k // threads for k in range(threads + 1)]
    scenarios = range(chunk.scenario, chunk.scenario + chunk.count)
    paired = chunk.scenario == job.paired

    def run(first, stop):
        if paired:
            return paired_slice(job, scenarios, first, stop)
        return [[_run_kernel(job, s, first, stop, job.keep_episodes)] for s in scenarios]

    slices = list((pool.map if threads > 1 else map)(run, bounds[:-1], bounds[1:]))
    return [Aggregate.from_slices(chunk.episodes, [part for sl in slices for part in sl[k]])
            for k in range(len(scenarios))]


def _run_kernel(job: Job, s: int, first: int, stop: int, keep: int):
    from kernels.chunk import simulate_chunk  # compiled (or loaded from cache) on first use

    r = job.ranges[s]
    return simulate_chunk(job.seed, first, stop, keep, VALUE_BINS, r.top, r.days, r.max_offers,
                          *job.models[s].kernel_args())


def paired_slice(job: Job, scenarios: range, first: int, stop: int) -> list[list[tuple]]:
    """Episodes [first, stop) of the paired group, in blocks whose per-episode outcomes are
    kept just long enough to add each scenario's cross sums with the group's first.
    Returns, per scenario, the kernel results of its blocks with the cross sums appended."""
    from engine.execution.pairs import PAIR_BLOCK, cross_sums

    parts: list[list[tuple]] = [[] for _ in scenarios]
    for lo in range(first, max(stop, first + 1), PAIR_BLOCK):
        hi = min(lo + PAIR_BLOCK, stop)
        results = [_run_kernel(job, s, lo, hi, hi) for s in scenarios]
        base, base_members = results[0][14], results[0][15]
        n_keep = max(0, min(hi, job.keep_episodes) - lo)
        for k, s in enumerate(scenarios):
            res = list(results[k])
            same = res[15].shape == base_members.shape  # the same candidates: membership cross sums
            cross = cross_sums(base, job.ranges[scenarios[0]].top, res[14], job.ranges[s].top,
                               *((base_members, res[15]) if same else ()))
            res[14], res[15] = res[14][:n_keep], res[15][:n_keep]
            parts[k].append((*res, cross))
    return parts


def compile_kernels() -> float:
    """Compile the chunk kernel, or load it from Numba's cache, by running one episode of a
    one-candidate scenario (the same types as every run); returns the seconds it took."""
    from engine.model.arrays import build_model_arrays, outcome_ranges
    from engine.model.scenario import parse_scenario

    start = time.perf_counter()
    s = parse_scenario({"name": "warm-up", "pivot": "P", "deadline_days": 1.0, "candidates": [
        {"id": "C", "capacity": {"low": 1.0, "mode": 1.0, "high": 1.0},
         "preference": {"mean": 0.0, "sd": 1.0}, "tie": {"mean": 0.5, "concentration": 2.0}}]},
        "<warm-up>")
    run_chunk(Job(0, 0, (build_model_arrays(s),), (outcome_ranges(s),)), Chunk(0, 0, 0, 0, 1))
    return time.perf_counter() - start


def kernels_cached() -> bool:
    """Whether the chunk kernel is in this machine's Numba cache (else the first chunk compiles
    it, which takes 10-30 s). Reads Numba's cache index path; True when that cannot be told."""
    from kernels.chunk import simulate_chunk

    try:
        return os.path.exists(simulate_chunk._cache._cache_file._index_path)
    except AttributeError:  # another Numba version: say nothing rather than something wrong
        return True


class LocalExecutor:
    """Chunks in order, in this process, each split over `workers` threads. The next chunk
    runs while the driver checkpoints, merges and writes the previous one (the kernels
    release the GIL), so the driver's work per chunk does not idle the cores."""
    name = "local"

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, list[Aggregate]]]:
        with ThreadPoolExecutor(self.workers) as pool:
            ahead = ThreadPoolExecutor(1)  # one chunk at a time, started before the last is handed over
            pending, started = iter(chunks), deque()

            def start_next():
                chunk = next(pending, None)
                if chunk is not None:
                    started.append((chunk, ahead.submit(run_chunk, job, chunk, pool, self.workers)))
            try:
                start_next()
                while started:
                    start_next()  # the next chunk runs while this one is handed over
                    chunk, future = started.popleft()
                    try:
                        aggregates = future.result()
                    except Exception as exc:
                        raise ChunkError(chunk, f"{type(exc).__name__}: {exc}") from exc
                    yield chunk, aggregates
            finally:
                ahead.shutdown(wait=True, cancel_futures=True)
