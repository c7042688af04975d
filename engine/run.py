"""The one entry point: run scenarios, merge chunks in order, build and publish tables."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
from tqdm import tqdm

from engine import __version__
from engine.aggregate import Aggregate
from engine.executors import ChunkError, Job, LocalExecutor, available_cores, kernels_cached
from engine.model_arrays import build_model_arrays, outcome_ranges
from engine.output import RunDirectory, run_directory
from engine.plan import MAX_CHUNK_EPISODES, default_chunk_size, plan_chunks
from engine.scenario import Scenario, load_scenario, validate_scenario
from engine.schema import SCHEMA_VERSION, finalize
from engine.tables import scenario_row, scenario_tables, scenarios_table
from kernels import SOURCE_DIGEST

DEFAULT_EPISODES = 100_000
DEFAULT_SEED = 1


class RunSettingsError(ValueError):
    """A run argument is out of range (reported like a scenario error: exit code 2)."""


class RunFailedError(RuntimeError):
    """A chunk failed: nothing was published, finished chunks are kept for --resume."""


@dataclass(frozen=True)
class Forecast:
    """A finished run: its id, its tables as Polars DataFrames, and where they were written;
    `seconds` of this call and the episodes it `computed` (fewer after a resume)."""
    run_id: str
    tables: dict[str, pl.DataFrame]
    out: Path | str | None  # a str for object storage (s3://...)
    seconds: float
    computed: int


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
             announce=None, extra_tables=None) -> Forecast:
    """Run one or more scenarios (paths or `Scenario`s) and return their forecast tables.

    Scenarios of one run share random numbers: episode e of each uses the same
    draws. With `out`, tables are published under `out` and every finished
    chunk is checkpointed there (so `resume=True` can finish a crashed run);
    without it nothing is written. `executor` is "local" (kernel threads in this
    process) or "ray"; by default Ray when `ray_address` or RAY_ADDRESS is set.
    `announce(run_id)` is called once the arguments are checked, before anything is claimed.
    `extra_tables(run_id, tables)`, if given, returns more arrow tables (e.g. the
    backtests) computed from the run's tables; they are published with them.
    """
    started = dt.datetime.now(dt.timezone.utc)
    items = [validate_scenario(s) if isinstance(s, Scenario) else load_scenario(s) for s in
             ([scenarios] if isinstance(scenarios, (str, Path, Scenario)) else scenarios)]
    _check(items, "no scenario given")
    ids = [s.id for s in items]
    _check(len(set(ids)) == len(ids), f"scenario ids must be unique in a run (got {ids})")
    cores = available_cores()
    _check(episodes >= 1, f"--episodes must be >= 1 (got {episodes})")
    _check(0 <= seed < 2**63, f"--seed must be in [0, 2**63) (got {seed})")
    _check(workers is None or workers >= 1, f"--workers must be >= 1 (got {workers})")
    _check(keep_episodes >= 0, f"--keep-episodes must be >= 0 (got {keep_episodes})")
    if chunk_size is None:
        chunk_size = default_chunk_size(max(len(s.candidates) for s in items))
    _check(1 <= chunk_size <= MAX_CHUNK_EPISODES,
           f"--chunk-size must be in [1, {MAX_CHUNK_EPISODES}] (got {chunk_size})")
    executor = _executor_name(executor, workers, cores, ray_address)
    run_id = run_id or new_run_id()
    _check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id),
           f"--run-id must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or "
           f"digit (got {run_id[:40]!r}{'...' if len(run_id) > 40 else ''})")
    plan = {"engine_version": __version__, "kernels": SOURCE_DIGEST, "seed": seed, "episodes": episodes,
            "chunk_size": chunk_size, "keep_episodes": keep_episodes,
            "scenarios": [[s.id, s.content_sha256()] for s in items]}
    config_sha256 = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    if announce is not None:
        announce(run_id)  # before Ray, whose workers may print
    runner = _executor(executor, workers, cores, ray_address)  # connects first: fails before the id is claimed
    store = None
    if out is not None:
        store = run_directory(out, run_id)
        store.prepare(plan, resume)

    job = Job(seed, keep_episodes, tuple(build_model_arrays(s) for s in items),
              tuple(outcome_ranges(s) for s in items))
    chunks = plan_chunks(len(items), episodes, chunk_size)
    if progress is not False and not kernels_cached():
        print("compiling kernels (first run only)...", file=sys.stderr, flush=True)
    try:
        merged, computed = _simulate(job, chunks, runner, store, len(items), progress)
    except ChunkError as exc:
        c = exc.chunk
        kept = f"; finished chunks are kept in {store.staging} for --resume" if store else ""
        raise RunFailedError(f"scenario {ids[c.scenario]!r}, chunk {c.index} (episodes {c.first}.."
                             f"{c.stop - 1}) failed: {exc}{kept}") from exc

    finished = dt.datetime.now(dt.timezone.utc)
    tables: dict[str, list[pa.Table]] = {}
    for s, agg in zip(items, merged):
        for name, table in scenario_tables(run_id, s, agg).items():
            tables.setdefault(name, []).append(table)
    arrow = {name: pa.concat_tables(parts) for name, parts in tables.items()}
    arrow["scenarios"] = scenarios_table([scenario_row(run_id, s) for s in items])
    arrow["runs"] = pa.Table.from_pylist([{
        "run_id": run_id, "status": "complete", "started_at": started, "finished_at": finished,
        "episodes": episodes, "scenarios": len(items), "seed": seed,
        "engine_version": __version__, "config_sha256": config_sha256,
        "executor": runner.name, "workers": runner.workers, "chunk_size": chunk_size,
        "keep_episodes": keep_episodes, "schema_version": SCHEMA_VERSION,
    }], schema=RUNS_SCHEMA)
    if extra_tables is not None:
        arrow.update(extra_tables(run_id, arrow))
    arrow = {name: finalize(table) for name, table in arrow.items()}
    if store is not None:
        store.publish(arrow)
    where = None if out is None else out if "://" in str(out) else Path(out)
    return Forecast(run_id, {k: pl.from_arrow(v) for k, v in arrow.items()}, where,
                    (finished - started).total_seconds(), computed)


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
        from engine.ray_executor import RayExecutor
        return RayExecutor(workers, ray_address)
    return LocalExecutor(workers or cores)


def _simulate(job: Job, chunks, runner, store: RunDirectory | None, n_scenarios: int,
              progress: bool | None) -> tuple[list[Aggregate], int]:
    """Run the chunks not yet checkpointed and merge all chunks in chunk order.

    Returns the merged aggregate of each scenario and the episodes computed now."""
    done = store.finished_chunks() if store else set()
    merged: list[Aggregate | None] = [None] * n_scenarios
    waiting: dict[int, Aggregate] = {}
    next_position = 0

    def merge_ready():
        nonlocal next_position
        while next_position < len(chunks):
            position = next_position
            if position in waiting:
                agg = waiting.pop(position)
            elif position in done:
                agg = store.load_chunk(position)
            else:
                return
            s = chunks[position].scenario
            merged[s] = agg if merged[s] is None else merged[s].merge(agg)
            next_position += 1

    todo = [c for c in chunks if c.position not in done]
    total = sum(c.episodes for c in chunks)
    bar = tqdm(total=total, initial=total - sum(c.episodes for c in todo), unit="episodes",
               unit_scale=True, delay=2.0, disable=progress is False, leave=False,
               desc="episodes")
    merge_ready()
    try:
        for chunk, agg in runner.map(job, todo):
            if store is not None:
                store.save_chunk(chunk.position, agg)
            waiting[chunk.position] = agg
            bar.update(chunk.episodes)
            merge_ready()
    finally:
        bar.close()
    assert next_position == len(chunks), "chunks missing after the run"
    return merged, sum(c.episodes for c in todo)

