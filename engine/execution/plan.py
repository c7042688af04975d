"""Step one of a run: a validated `RunPlan`, and splitting a run into chunks of episodes.

A chunk is a contiguous range of episode indices of a *group* of scenarios
(one scenario in a plain run; a study batches many design rows into one
group so the kernel runs them back to back, and the base and its variants
form one group so their episodes can be paired). Episode `e` of every
scenario uses the same random numbers (keyed by the run's seed and `e`), so
how a run is chunked or grouped never changes its numbers; chunk size only
trades scheduling overhead against progress granularity and memory.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from engine import __version__
from engine.execution.errors import RunSettingsError  # noqa: F401 - where its users import it
from engine.model.scenario import Scenario, load_scenario, validate_scenario
from kernels import SOURCE_DIGEST

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


ROW_POSITIONS = 1 << 40  # checkpoint ids of design-row blocks (after every scenario chunk's)


class RowChunks(Sequence):
    """The blocks of a study's design rows (a `RowDesign`, engine/studies/rows.py), each a chunk
    of `per_block` rows x every episode, numbered after the run's `first` scenarios."""

    def __init__(self, first: int, rows: int, per_block: int, episodes: int):
        self.first, self.rows, self.per_block, self.episodes = first, rows, per_block, episodes

    def __len__(self) -> int:
        return -(-self.rows // self.per_block)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        r = i * self.per_block
        return Chunk(ROW_POSITIONS + i, self.first + r, 0, 0, self.episodes, min(self.per_block, self.rows - r))


class Chained(Sequence):
    """Two chunk sequences, one after the other."""

    def __init__(self, a: Sequence, b: Sequence):
        self.a, self.b = a, b

    def __len__(self) -> int:
        return len(self.a) + len(self.b)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = i + len(self) if i < 0 else i
        return self.a[i] if i < len(self.a) else self.b[i - len(self.a)]


def row_block_size(rows_design, chunk_size: int) -> int:
    """Design rows per block: about a chunk's work (`chunk_size` episodes), at least one row."""
    return max(1, min(MAX_ROW_BLOCK, chunk_size // max(rows_design.episodes, 1)))


MAX_ROW_BLOCK = 4096  # rows per block: bounds a block's stacked aggregates

DEFAULT_EPISODES = 100_000
DEFAULT_SEED = 1
MAX_KEPT = 1_000_000   # --keep-episodes: kept records are held in memory until published


@dataclass(frozen=True)
class RunPlan:
    """Step one of a run: everything a run will do, validated once (`plan_run`).

    `document` is what the run was asked to do, written to staging and compared on --resume;
    `config_sha256` hashes it. `step` is the episodes per chunk (a run shorter than a chunk is
    one chunk); `groups` the (first scenario, count) of each group of scenarios run together,
    the first `paired` scenarios (a base and its variants, when > 1) forming one."""
    scenarios: tuple[Scenario, ...]
    run_id: str
    seed: int
    episodes: int
    chunk_size: int
    step: int
    keep_episodes: int
    executor: str
    workers: int | None
    cores: int
    ray_address: str | None
    target_se: float | None
    max_episodes: int | None
    paired: int
    groups: tuple[tuple[int, int], ...]
    document: dict
    config_sha256: str
    started: dt.datetime
    grid_rows: tuple | None = None   # (first scenario, TieShapes): scenarios from the first on draw
                                     # ties of other shapes from the shape grid (a study's design rows)
    rows: object = None              # a study's design rows run in blocks after the scenarios
                                     # (engine/studies/rows.py: RowDesign), or None
    row_block: int = 0               # design rows per block

    def row_chunks(self) -> Sequence:
        """The design-row blocks (none without `rows`)."""
        if self.rows is None:
            return ()
        return RowChunks(len(self.scenarios), self.rows.rows, self.row_block, self.rows.episodes)


def new_run_id() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check(condition, message):
    if not condition:
        raise RunSettingsError(message)


def plan_run(scenarios, *, episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED,
             run_id: str | None = None, workers: int | None = None, chunk_size: int | None = None,
             executor: str | None = None, ray_address: str | None = None, keep_episodes: int = 0,
             target_se: float | None = None, max_episodes: int | None = None,
             paired: int = 0, grid_rows: tuple | None = None, rows=None) -> RunPlan:
    """Check a run's scenarios (paths or `Scenario`s) and settings and fix its chunks, groups
    and config hash (arguments as `pivotal.forecast`'s; `paired` > 1 runs the first `paired`
    scenarios, a base and its variants, over the same chunks: engine/studies/comparisons.py)."""
    started = dt.datetime.now(dt.timezone.utc)
    items = tuple(validate_scenario(s) if isinstance(s, Scenario) else load_scenario(s) for s in
                  ([scenarios] if isinstance(scenarios, (str, Path, Scenario)) else scenarios))
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
    if executor == "ray" and (ray_address or os.environ.get("RAY_ADDRESS")):
        from engine.execution.cluster import check_cluster
        check_cluster(ray_address or os.environ["RAY_ADDRESS"])  # before the run id is announced
    run_id = run_id or new_run_id()
    _check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id),
           f"--run-id must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or "
           f"digit (got {run_id[:40]!r}{'...' if len(run_id) > 40 else ''})")
    groups = plan_groups(len(items), group_size_for(n_candidates, step), paired)
    document = {"engine_version": __version__, "kernels": SOURCE_DIGEST, "seed": seed,
                "episodes": episodes, "chunk_size": chunk_size, "keep_episodes": keep_episodes,
                "scenarios": [[s.id, s.content_sha256()] for s in items]}
    if len(groups) != len(items) or paired > 1 or target_se is not None:
        document |= {"groups": [list(g) for g in groups], "paired": paired, "target_se": target_se,
                     "max_episodes": max_episodes}
    if grid_rows is not None:
        document["tie_grid_from"] = grid_rows[0]
    row_block = 0
    if rows is not None:
        _check(target_se is None, "--target-se does not apply to a study's design rows")
        row_block = row_block_size(rows, chunk_size)
        document["rows"] = {"count": rows.rows, "sha256": rows.digest(), "block": row_block}
    config_sha256 = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    return RunPlan(items, run_id, seed, episodes, chunk_size, step, keep_episodes, executor, workers,
                   cores, ray_address, target_se, max_episodes, paired, tuple(groups), document,
                   config_sha256, started, grid_rows, rows, row_block)


def target_rounds(episodes: int, step: int, max_episodes: int) -> list[int]:
    """Episode counts tried with --target-se: whole chunks of `step`, from `episodes`
    (rounded up), doubling, up to `max_episodes`."""
    rounds, n = [], -(-episodes // step)
    while not rounds or rounds[-1] < max_episodes:
        rounds.append(min(n * step, max_episodes))
        n *= 2
    return rounds


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _executor_name(name: str | None, workers: int | None, cores: int, ray_address: str | None) -> str:
    """Which executor runs the chunks (checked before anything starts)."""
    if name is None:  # Ray when a cluster is named, else this process
        name = "ray" if (ray_address or os.environ.get("RAY_ADDRESS")) else "local"
    _check(name in ("local", "ray"), f"--executor must be 'local' or 'ray' (got {name!r})")
    if name == "local" or not (ray_address or os.environ.get("RAY_ADDRESS")):
        _check((workers or cores) <= 4 * cores, f"--workers must be <= {4 * cores} with the {name} "
               f"executor on this machine ({cores} cores)")
    return name
