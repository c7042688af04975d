"""Step two of a run: execute a `RunPlan` on an executor, merging chunks in plan order.

`execute` runs the plan's chunks (skipping those already checkpointed), merges
each scenario's chunk aggregates in a fixed order, and hands every group of
scenarios to its `sink` as soon as the group's aggregates are final, so the
driver holds at most one group's aggregates (plus the paired group's, which
comparisons need at the end). With a `--target-se` plan, whole chunks are added
in rounds until the success probability's standard error is small enough in
every scenario. Publishing is step three (engine/outputs/publish.py).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from engine.execution.aggregate import Aggregate
from engine.execution.executors import ChunkError, Job, LocalExecutor, compile_kernels, kernels_cached
from engine.execution.plan import Chained, RunPlan, plan_chunks, target_rounds
from engine.execution.progress import progress_bar
from engine.execution.signals import raise_if_received, since_start
from engine.model.arrays import build_model_arrays, outcome_ranges


Z95 = 1.959963984540054


class RunFailedError(RuntimeError):
    """A chunk failed: nothing was published, finished chunks are kept for --resume."""


class Checkpoints(Protocol):
    """Where finished chunks are kept for --resume (engine/outputs/directory.py)."""
    def kept_at(self) -> str: ...
    def finished_chunks(self) -> set[int]: ...
    def save_chunk(self, position: int, aggregates: list[Aggregate]) -> None: ...
    def load_chunk(self, position: int) -> list[Aggregate] | None: ...


class Sink(Protocol):
    """What receives a run's results: its checkpoints (None: keep nothing) and each group of
    scenarios' final aggregates (engine/outputs/publish.py: Publisher)."""
    store: Checkpoints | None

    def add_group(self, first: int, aggregates: list[Aggregate]) -> None: ...
    def add_rows(self, first: int, figures) -> None: ...


@dataclass
class Execution:
    """What executing a plan produced: the episodes per scenario it ended with (more than
    planned with --target-se), the episodes `computed` now (fewer after a resume), the
    aggregates still held (those of the paired group; the others went to the sink), whether
    --target-se was `target` reached, and the seconds spent `starting` (kernels or Ray)
    and `simulating`."""
    executor: str
    workers: int
    episodes: int
    computed: int
    aggregates: list[Aggregate | None]
    target: str | None
    starting: float
    simulating: float


def open_executor(plan: RunPlan):
    """The plan's executor, connected (a Ray cluster is reached before the run id is claimed)."""
    if plan.executor == "ray":
        from engine.execution.ray_executor import RayExecutor
        return RayExecutor(plan.workers, plan.ray_address)
    return LocalExecutor(plan.workers or plan.cores)


def execute(plan: RunPlan, runner, sink: Sink, *, progress: bool | None = None,
            started: float | None = None) -> Execution:
    """Run `plan` on `runner` (an executor), checkpointing every chunk in `sink.store` and
    handing each group's final aggregates to `sink.add_group`. `started` (a perf_counter
    time) is when the executor began connecting, to report start-up time."""
    starting = time.perf_counter() if started is None else started
    items = plan.scenarios
    first_grid, exact = plan.grid_rows or (len(items), None)
    job = Job(plan.seed, plan.keep_episodes,
              tuple(build_model_arrays(s, exact if k >= first_grid else None) for k, s in enumerate(items)),
              tuple(outcome_ranges(s) for s in items), 0 if plan.paired > 1 else -1, plan.rows)
    merged: list[Aggregate | None] = [None] * len(items)
    keep = plan.paired if plan.paired > 1 else 0  # aggregates the paired comparisons need at the end

    def emit(first: int, count: int) -> None:
        sink.add_group(first, merged[first:first + count])
        for s in range(max(first, keep), first + count):
            merged[s] = None

    episodes, step = plan.episodes, plan.step
    # without a target, a group is final after its last chunk; with one, after the last round
    final = (lambda c: emit(c.scenario, c.count) if c.stop == episodes else None) \
        if plan.target_se is None else None
    if progress is not False and not kernels_cached():
        print("compiling kernels (first run only)...", file=sys.stderr, flush=True)
    if runner.name == "local":  # (Ray workers compile, or load the cache, on their own nodes)
        compile_kernels()
    starting = time.perf_counter() - starting
    simulating = time.perf_counter()
    computed, target, done_chunks = 0, None, 0
    rounds = [episodes] if plan.target_se is None else target_rounds(episodes, step, plan.max_episodes)
    for stop in rounds:
        chunks = plan_chunks(len(items), stop, step, plan.groups, first_index=done_chunks)
        if done_chunks == 0 and plan.rows is not None:  # the design rows, after the scenarios
            chunks = Chained(chunks, plan.row_chunks())
        done_chunks = -(-stop // step)
        try:
            computed += _simulate(job, chunks, runner, sink.store, merged, progress, final, sink)
        except ChunkError as exc:
            raise RunFailedError(_failure(plan, exc, sink.store)) from exc
        episodes = stop
        if plan.target_se is not None:
            worst = max(_success_se(a) for a in merged)
            rule = "worst scenario; se at least the 95% Wilson half-width / 1.96"
            if worst <= plan.target_se:
                target = f"reached: success se {worst:.4g} <= {plan.target_se:g} at {stop:,} episodes ({rule})"
                break
            target = (f"capped: success se {worst:.4g} > {plan.target_se:g} at --max-episodes {stop:,} "
                      f"({rule})")
    simulating = time.perf_counter() - simulating
    if plan.target_se is not None:
        for first, count in plan.groups:
            emit(first, count)
    return Execution(runner.name, runner.workers, episodes, computed, merged, target, starting,
                     simulating)


def _failure(plan: RunPlan, exc: ChunkError, store) -> str:
    c, ids = exc.chunk, [s.id for s in plan.scenarios]
    kept = f"; finished chunks are kept in {store.kept_at()} for --resume" if store else ""
    if c.scenario >= len(ids):
        r = c.scenario - len(ids)
        return f"design rows {r}..{r + c.count - 1} failed: {exc}{kept}"
    names = ids[c.scenario] if c.count == 1 else f"{ids[c.scenario]}..{ids[c.scenario + c.count - 1]}"
    return (f"scenario {names!r}, chunk {c.index} (episodes {c.first}..{c.stop - 1}) failed: "
            f"{exc}{kept}")


def _success_se(agg: Aggregate) -> float:
    """Standard error of the success probability for --target-se: the larger of the summary
    table's (sd / sqrt(n)) and the 95% Wilson interval's half-width / 1.96, so an estimate of 0
    or 1 (whose plain standard error is 0) is never trusted: at 0 successes in n episodes it is
    about 1.96 / (n + 3.84), the honest order of a rare outcome's uncertainty."""
    from scipy.stats import binomtest

    n, k = agg.episodes, agg.successes
    if n < 2:
        return math.inf
    p = k / n
    low, high = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return max(math.sqrt(p * (1 - p) / (n - 1)), (high - low) / (2 * Z95))


def _simulate(job: Job, chunks, runner, store: Checkpoints | None, merged: list,
              progress: bool | None, on_merged=None, sink=None) -> int:
    """Run the chunks not yet checkpointed and merge all chunks, in list order, into
    `merged` (one aggregate per scenario), calling `on_merged(chunk)` after each; a block of
    design rows goes to `sink.add_rows` (its rows' figures: nothing to merge).
    Returns the episodes computed now. Each checkpoint is read once, when its turn to be
    merged comes; one that cannot be read is computed again then."""
    done = store.finished_chunks() if store else set()
    waiting: dict[int, list[Aggregate]] = {}
    next_index = 0
    recomputed = 0

    def recompute(chunk):  # a damaged checkpoint (rare): this chunk alone, then the run goes on
        nonlocal recomputed
        for _, aggs in runner.map(job, [chunk]):
            store.save_chunk(chunk.position, aggs)
            recomputed += chunk.episodes * chunk.count
            return aggs

    def merge_ready():
        nonlocal next_index
        while next_index < len(chunks):
            chunk = chunks[next_index]
            if chunk.position in waiting:
                aggs = waiting.pop(chunk.position)
            elif chunk.position in done:
                aggs = store.load_chunk(chunk.position)
                if aggs is None:
                    aggs = recompute(chunk)
            else:
                return
            next_index += 1
            if chunk.scenario >= len(merged):
                sink.add_rows(chunk.scenario - len(merged), aggs)
                continue
            for s, agg in enumerate(aggs, start=chunk.scenario):
                merged[s] = agg if merged[s] is None else merged[s].merge(agg)
            if on_merged is not None:
                on_merged(chunk)

    todo = (c for c in chunks if c.position not in done)  # lazily: the plan is never a list
    total = sum(c.episodes * c.count for c in chunks)
    finished = sum(c.episodes * c.count for c in chunks if c.position in done)
    bar = progress_bar(total, finished, progress is False)
    merge_ready()
    signals = since_start()  # a signal lost since the command began counts, whenever it came
    try:
        for chunk, aggs in runner.map(job, todo):
            if store is not None:
                store.save_chunk(chunk.position, aggs)
            waiting[chunk.position] = aggs
            bar.update(chunk.episodes * chunk.count)
            merge_ready()
            raise_if_received(signals)  # a signal whose KeyboardInterrupt a library swallowed
    finally:
        bar.close()
    assert next_index == len(chunks), "chunks missing after the run"
    return total - finished + recomputed
