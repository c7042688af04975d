"""The Ray executor: chunks as Ray tasks, on this machine or on a cluster (docs/CLUSTER.md).

One task per chunk, each granted `threads_per_task` CPUs and running that many
kernel threads (no oversubscription). At most `workers` tasks are in flight,
so a run uses `workers` CPUs of a shared cluster; results are taken with `ray.wait` as they finish (the driver merges
them in chunk order). A worker process that dies mid-task (OOM killer,
pre-empted node) has its task re-run by Ray (`max_retries`); a chunk's result
is a pure function of its episode range, so a re-run yields the same numbers
and the driver receives each chunk once. A Python exception inside a task is
not retried: it fails the run.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from engine.aggregate import Aggregate
from engine.executors import ChunkError, Job, run_chunk
from engine.plan import Chunk

TASK_RETRIES = 5  # re-runs of a chunk whose worker process died


def _chunk_task(job: Job, chunk: Chunk, threads: int) -> Aggregate:
    if threads == 1:
        return run_chunk(job, chunk)
    with ThreadPoolExecutor(threads) as pool:
        return run_chunk(job, chunk, pool)


class RayExecutor:
    """Chunks as Ray tasks; starts a local Ray sized to `workers` unless one is running or
    `address` (or RAY_ADDRESS) names a cluster. Without `workers`, a run uses every CPU
    of the cluster (of this machine for a local Ray)."""
    name = "ray"

    def __init__(self, workers: int | None, address: str | None = None, threads_per_task: int = 1):
        import ray

        self.threads = threads_per_task
        started = time.perf_counter()
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        self.startup_seconds = time.perf_counter() - started
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self._task = ray.remote(num_cpus=threads_per_task, max_retries=TASK_RETRIES,
                                retry_exceptions=False)(_chunk_task)

    def map(self, job: Job, chunks: list[Chunk]) -> Iterator[tuple[Chunk, Aggregate]]:
        import ray

        job_ref = ray.put(job)  # shipped once to the object store, not once per task
        pending = list(reversed(chunks))
        in_flight: dict = {}
        limit = max(1, self.workers // self.threads)
        try:
            while pending or in_flight:
                while pending and len(in_flight) < limit:
                    chunk = pending.pop()
                    in_flight[self._task.remote(job_ref, chunk, self.threads)] = chunk
                done, _ = ray.wait(list(in_flight), num_returns=1)
                chunk = in_flight.pop(done[0])
                try:
                    aggregate = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    raise ChunkError(chunk, _cause(exc)) from None
                yield chunk, aggregate
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)


def _cause(exc) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
