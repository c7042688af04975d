"""The Ray executor: chunks as Ray tasks, on this machine or on a cluster (docs/CLUSTER.md).

One task per chunk, each granted one CPU and running one kernel thread (no
oversubscription). At most `workers` tasks are in flight, so a run uses
`workers` CPUs of a shared cluster, and no task is started more than
`LOOKAHEAD * workers` chunks past the oldest unfinished one, so the results
the driver holds back for in-order merging stay bounded even when a chunk
is slow or re-run. Results are taken with `ray.wait` as they finish.

A worker process that dies mid-task (OOM killer, pre-empted node) has its
task re-run by Ray (`max_retries`); a chunk's result is a pure function of
its episode range, so a re-run yields the same numbers and the driver
receives each chunk once. A Python exception inside a task is not retried:
it fails the run.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator

from engine.execution.aggregate import Aggregate
from engine.execution.executors import ChunkError, Job, run_chunk
from engine.execution.plan import Chunk
from engine.execution.plan import RunSettingsError
from engine.execution.cluster import RayUnreachableError
from engine.execution.signals import handle_signals

TASK_RETRIES = 5  # re-runs of a chunk whose worker process died
LOOKAHEAD = 4     # chunks in progress or held, per worker, past the oldest unfinished


class RayExecutor:
    """Chunks as Ray tasks; starts a local Ray sized to `workers` unless one is running or
    `address` (or RAY_ADDRESS) names a cluster. Without `workers`, a run uses every CPU
    of the cluster (of this machine for a local Ray)."""
    name = "ray"

    def __init__(self, workers: int | None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise RunSettingsError("--executor ray needs Ray, an optional extra: pip install "
                                   "'pivotal[ray]' (or -e '.[ray]' in a checkout)") from None

        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            if address:
                try:  # (plan_run checked that the address answers and takes our token)
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError, TimeoutError) as exc:  # not a Ray head there
                    raise RayUnreachableError(f"cannot attach to a Ray cluster at {address!r} "
                                              f"({str(exc).splitlines()[0]}); check --ray-address "
                                              "or RAY_ADDRESS") from None
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                _report_started_processes()
            handle_signals()  # Ray replaces the handlers of SIGTERM and SIGINT
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = min(workers or cpus, cpus)
        self._task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(run_chunk)

    def map(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, list[Aggregate]]]:
        import ray

        job_ref = ray.put(job)  # shipped once to the object store, not once per task
        window = LOOKAHEAD * self.workers
        done: set[int] = set()
        oldest = 0       # index of the oldest unfinished chunk
        next_chunk = 0   # index of the next chunk to submit
        pending = iter(chunks)
        upcoming = next(pending, None)  # the next chunk to submit
        in_flight: dict = {}
        try:
            while upcoming is not None or in_flight:
                while oldest in done:
                    done.remove(oldest)
                    oldest += 1
                while (upcoming is not None and len(in_flight) < self.workers
                       and next_chunk - oldest < window):
                    in_flight[self._task.remote(job_ref, upcoming)] = (upcoming, next_chunk)
                    next_chunk += 1
                    upcoming = next(pending, None)
                try:
                    ready, _ = ray.wait(list(in_flight), num_returns=1)
                except ray.exceptions.RayError as exc:  # the cluster itself failed (a node, the GCS)
                    raise ChunkError(min(in_flight.values(), key=lambda v: v[1])[0],
                                     f"the Ray cluster failed: {_cause(exc)}") from None
                chunk, index = in_flight.pop(ready[0])
                try:
                    aggregate = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    raise ChunkError(chunk, _cause(exc)) from None
                done.add(index)
                yield chunk, aggregate
        finally:
            for ref in in_flight:
                try:
                    ray.cancel(ref, force=True)
                except ray.exceptions.RayError:  # the cluster is gone: nothing left to cancel
                    pass


def _report_started_processes() -> None:
    """Tell the supervisor (engine/execution/supervisor.py) which processes the local Ray instance is made of,
    to stop them if Ray ends this driver: its agents would otherwise outlive it by a minute."""
    from engine.execution.supervisor import report, supervised

    if supervised():
        import psutil  # (installed with ray[default])

        for process in psutil.Process().children(recursive=True):
            try:
                report("ray", process.pid, process.create_time())
            except psutil.Error:
                continue


def _cause(exc) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"
