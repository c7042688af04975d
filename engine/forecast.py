"""The one entry point: run scenarios, merge chunks in order, build and publish tables."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from engine import __version__
from engine.execution.aggregate import Aggregate
from engine.execution.executors import (ChunkError, Job, LocalExecutor, available_cores, compile_kernels,
                              kernels_cached)
from engine.model.arrays import build_model_arrays, outcome_ranges
from engine.studies.comparisons import output_means
from engine.outputs.directory import RunDirectory, TableSink, run_directory
from engine.execution.plan import (MAX_CHUNK_EPISODES, MAX_CHUNKS, MAX_EPISODES, default_chunk_size, group_size_for,
                         plan_chunks, plan_groups)
from engine.execution.progress import progress_bar
from engine.model.scenario import Scenario, load_scenario, validate_scenario
from engine.outputs.schema import SCHEMA_VERSION, finalize
from engine.execution.signals import raise_if_received, received
from engine.outputs.tables import group_tables, scenario_row, scenarios_table
from kernels import SOURCE_DIGEST

DEFAULT_EPISODES = 100_000
DEFAULT_SEED = 1
MAX_KEPT = 1_000_000   # --keep-episodes: kept records are held in memory until published


class RunSettingsError(ValueError):
    """A run argument is out of range (reported like a scenario error: exit code 2)."""


class RunFailedError(RuntimeError):
    """A chunk failed: nothing was published, finished chunks are kept for --resume."""


@dataclass(frozen=True)
class Forecast:
    """A finished run: its id, its tables as Polars DataFrames, and where they were written;
    `seconds` of this call and the episodes it `computed` (fewer after a resume), of which
    `simulating` ran chunks and `starting` compiled kernels or started Ray."""
    run_id: str
    tables: dict[str, pl.DataFrame]
    out: Path | str | None   # a directory, or an object-storage URI
    seconds: float
    computed: int
    target: str | None = None   # with --target-se: whether it was reached or capped, and where
    simulating: float = 0.0     # seconds of `seconds` spent running chunks (the rate's base)
    starting: float = 0.0       # seconds spent compiling kernels (local) or starting Ray


def new_run_id() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check(condition, message):
    if not condition:
        raise RunSettingsError(message)


def forecast(scenarios, *, episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED,
             out=None, run_id: str | None = None, workers: int | None = None,
             chunk_size: int | None = None, executor: str | None = None, ray_address: str | None = None,
             keep_episodes: int = 0, resume: bool = False, progress: bool | None = None,
             target_se: float | None = None, max_episodes: int | None = None,
             paired: int = 0, derived=None, return_tables: bool = True, announce=None) -> Forecast:
    """Run one or more scenarios (paths or `Scenario`s) and return their forecast tables.

    Scenarios of one run share random numbers: episode e of each uses the same
    draws. With `out`, tables are published under `out` and every finished
    chunk is checkpointed there (so `resume=True` can finish a crashed run);
    without it nothing is written. `executor` is "local" (kernel threads in this
    process) or "ray"; by default Ray when `ray_address` or RAY_ADDRESS is set.

    With `target_se`, whole chunks are added (the episode count doubles, in whole
    chunks, from `episodes`) until the standard error of the success probability is
    at most `target_se` in every scenario or `max_episodes` (default 100 x
    `episodes`) is reached; the tables are those of a run of the final episode
    count. `paired` > 1 runs the first `paired` scenarios (a base and its variants)
    over the same chunks and keeps their cross sums (engine/studies/comparisons.py);
    `derived(run_id, scenarios, aggregates, means, tables)` returns further tables to
    publish (`aggregates` holds those of the paired group only; `means` the four study
    outputs of every scenario, engine/studies/comparisons.py; `tables` the run's `summary` and
    `candidates`). Per-scenario tables are written to Parquet one group at a time; with
    `return_tables=False` only `summary`, `candidates` and the small tables are read back
    into the result (the CLI's choice: a study of many rows stays small).
    `announce(run_id)` is called once the arguments are checked, before anything starts.
    """
    started = dt.datetime.now(dt.timezone.utc)
    items = [validate_scenario(s) if isinstance(s, Scenario) else load_scenario(s) for s in
             ([scenarios] if isinstance(scenarios, (str, Path, Scenario)) else scenarios)]
    _check(items, "no scenario given")
    ids = [s.id for s in items]
    _check(len(set(ids)) == len(ids), f"scenario ids must be unique in a run (got {ids})")
    cores = available_cores()
    _check(1 <= episodes <= MAX_EPISODES, f"--episodes must be in [1, {MAX_EPISODES:.0e}] (got {episodes:,})")
    _check(0 <= seed < 2**63, f"--seed must be in [0, 2**63) (got {seed})")
    _check(workers is None or workers >= 1, f"--workers must be >= 1 (got {workers})")
    _check(0 <= keep_episodes <= MAX_KEPT, f"--keep-episodes must be in [0, {MAX_KEPT:,}] (got {keep_episodes:,})")
    _check(target_se is None or (math.isfinite(target_se) and target_se > 0),
           f"--target-se must be a number > 0 (got {target_se})")
    _check(max_episodes is None or target_se is not None, "--max-episodes needs --target-se")
    if target_se is not None:
        max_episodes = max_episodes if max_episodes is not None else min(100 * episodes, MAX_EPISODES)
        _check(episodes <= max_episodes <= MAX_EPISODES, f"--max-episodes must be in [--episodes, "
               f"{MAX_EPISODES:.0e}] (got {max_episodes:,})")
    n_candidates = max(len(s.candidates) for s in items)
    most = max_episodes if target_se is not None else episodes
    if chunk_size is None:
        chunk_size = default_chunk_size(n_candidates, most)
    _check(1 <= chunk_size <= MAX_CHUNK_EPISODES,
           f"--chunk-size must be in [1, {MAX_CHUNK_EPISODES}] (got {chunk_size})")
    _check(-(-most // chunk_size) <= MAX_CHUNKS, f"--chunk-size {chunk_size:,} makes "
           f"{-(-most // chunk_size):,} chunks of {most:,} episodes; at most {MAX_CHUNKS:,} are "
           f"planned: give a chunk size of at least {-(-most // MAX_CHUNKS):,}")
    step = min(chunk_size, episodes)  # episodes per chunk (a run shorter than a chunk is one chunk)
    executor = _executor_name(executor, workers, cores, ray_address)
    run_id = run_id or new_run_id()
    _check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id),
           f"--run-id must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or "
           f"digit (got {run_id[:40]!r}{'...' if len(run_id) > 40 else ''})")
    groups = plan_groups(len(items), group_size_for(n_candidates, step), paired)
    plan = {"engine_version": __version__, "kernels": SOURCE_DIGEST, "seed": seed, "episodes": episodes,
            "chunk_size": chunk_size, "keep_episodes": keep_episodes,
            "scenarios": [[s.id, s.content_sha256()] for s in items]}
    if len(groups) != len(items) or paired > 1 or target_se is not None:
        plan |= {"groups": [list(g) for g in groups], "paired": paired, "target_se": target_se,
                 "max_episodes": max_episodes}
    config_sha256 = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    if announce is not None:
        announce(run_id)  # before Ray, whose workers may print
    starting = time.perf_counter()
    runner = _executor(executor, workers, cores, ray_address)  # connects first: fails before the id is claimed
    store = None
    if out is not None:
        store = run_directory(out, run_id)
        store.prepare(plan, resume)

    job = Job(seed, keep_episodes, tuple(build_model_arrays(s) for s in items),
              tuple(outcome_ranges(s) for s in items), 0 if paired > 1 else -1)
    merged: list[Aggregate | None] = [None] * len(items)
    computed, target = 0, None
    rounds = [episodes] if target_se is None else _rounds(episodes, step, max_episodes)
    sink = TableSink(store)
    means: list[dict | None] = [None] * len(items)  # the four study outputs of each scenario
    keep = paired if paired > 1 else 0  # aggregates the paired comparisons need at the end

    def emit(first: int, count: int) -> None:
        """A group's aggregates are final: write its tables, keep only what derived tables need."""
        group = range(first, first + count)
        sink.add(group_tables(run_id, [items[s] for s in group], [merged[s] for s in group]))
        for s in group:
            means[s] = output_means(items[s], merged[s])
            if s >= keep:
                merged[s] = None

    # without a target, a group is final after its last chunk; with one, after the last round
    final = (lambda c: emit(c.scenario, c.count) if c.stop == episodes else None) \
        if target_se is None else None
    if progress is not False and not kernels_cached():
        print("compiling kernels (first run only)...", file=sys.stderr, flush=True)
    if runner.name == "local":  # (Ray workers compile, or load the cache, on their own nodes)
        compile_kernels()
    starting = time.perf_counter() - starting
    simulating = time.perf_counter()
    done_chunks = 0
    for stop in rounds:
        chunks = plan_chunks(len(items), stop, step, groups, first_index=done_chunks)
        done_chunks = -(-stop // step)
        try:
            computed += _simulate(job, chunks, runner, store, merged, progress, final)
        except ChunkError as exc:
            c = exc.chunk
            kept = f"; finished chunks are kept in {store.staging} for --resume" if store else ""
            names = ids[c.scenario] if c.count == 1 else f"{ids[c.scenario]}..{ids[c.scenario + c.count - 1]}"
            raise RunFailedError(f"scenario {names!r}, chunk {c.index} (episodes {c.first}.."
                                 f"{c.stop - 1}) failed: {exc}{kept}") from exc
        episodes = stop
        if target_se is not None:
            worst = max(_success_se(a) for a in merged)
            if worst <= target_se:
                target = f"reached: success se {worst:.4g} <= {target_se:g} at {stop:,} episodes"
                break
            target = f"capped: success se {worst:.4g} > {target_se:g} at --max-episodes {stop:,}"

    simulating = time.perf_counter() - simulating
    if target_se is not None:
        for first, count in groups:
            emit(first, count)
    finished = dt.datetime.now(dt.timezone.utc)
    arrow = sink.close()
    streamed = {name: sink.read(name) for name in sink.names  # back from the staged files
                if return_tables or name in ("summary", "candidates")}
    arrow["scenarios"] = scenarios_table([scenario_row(run_id, s) for s in items])
    if derived is not None:
        arrow |= derived(run_id, items, merged, means, {**streamed, **arrow})
    arrow["runs"] = pa.Table.from_pylist([{
        "run_id": run_id, "status": "complete", "started_at": started, "finished_at": finished,
        "episodes": episodes, "scenarios": len(items), "seed": seed,
        "engine_version": __version__, "config_sha256": config_sha256,
        "executor": runner.name, "workers": runner.workers, "chunk_size": chunk_size,
        "keep_episodes": keep_episodes, "schema_version": SCHEMA_VERSION,
    }], schema=RUNS_SCHEMA)
    arrow = {name: finalize(table) for name, table in arrow.items()}
    frames = {k: pl.from_arrow(v) for k, v in {**streamed, **arrow}.items()}
    if store is not None:
        store.publish(arrow, streamed=sink.names)
    where = None if out is None else out if "://" in str(out) else Path(out)
    return Forecast(run_id, frames, where, (finished - started).total_seconds(), computed, target,
                    simulating, starting)


def _rounds(episodes: int, step: int, max_episodes: int) -> list[int]:
    """Episode counts tried with --target-se: whole chunks of `step`, from `episodes`
    (rounded up), doubling, up to `max_episodes`."""
    rounds, n = [], -(-episodes // step)
    while not rounds or rounds[-1] < max_episodes:
        rounds.append(min(n * step, max_episodes))
        n *= 2
    return rounds


def _success_se(agg: Aggregate) -> float:
    """Standard error of the success probability, as in the summary table (sd / sqrt(n))."""
    n, p = agg.episodes, agg.successes / agg.episodes
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else math.inf


RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("status", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
    ("episodes", pa.int64()), ("scenarios", pa.int64()), ("seed", pa.int64()),
    ("engine_version", pa.string()), ("config_sha256", pa.string()), ("executor", pa.string()),
    ("workers", pa.int64()), ("chunk_size", pa.int64()), ("keep_episodes", pa.int64()),
    ("schema_version", pa.int64()),
])


def _executor_name(name: str | None, workers: int | None, cores: int, ray_address: str | None) -> str:
    """Which executor runs the chunks (checked before anything starts)."""
    if name is None:  # Ray when a cluster is named, else this process
        name = "ray" if (ray_address or os.environ.get("RAY_ADDRESS")) else "local"
    _check(name in ("local", "ray"), f"--executor must be 'local' or 'ray' (got {name!r})")
    if name == "local" or not (ray_address or os.environ.get("RAY_ADDRESS")):
        _check((workers or cores) <= 4 * cores, f"--workers must be <= {4 * cores} with the {name} "
               f"executor on this machine ({cores} cores)")
    return name


def _executor(name: str, workers: int | None, cores: int, ray_address: str | None):
    if name == "ray":
        from engine.execution.ray_executor import RayExecutor
        return RayExecutor(workers, ray_address)
    return LocalExecutor(workers or cores)


def _simulate(job: Job, chunks, runner, store: RunDirectory | None, merged: list,
              progress: bool | None, on_merged=None) -> int:
    """Run the chunks not yet checkpointed and merge all chunks, in list order, into
    `merged` (one aggregate per scenario), calling `on_merged(chunk)` after each.
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
            for s, agg in enumerate(aggs, start=chunk.scenario):
                merged[s] = agg if merged[s] is None else merged[s].merge(agg)
            next_index += 1
            if on_merged is not None:
                on_merged(chunk)

    todo = (c for c in chunks if c.position not in done)  # lazily: the plan is never a list
    total = sum(c.episodes * c.count for c in chunks)
    finished = sum(c.episodes * c.count for c in chunks if c.position in done)
    bar = progress_bar(total, finished, progress is False)
    merge_ready()
    signals = len(received)
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
