"""The forecast directory: staging, chunk checkpoints, and publishing a run.

Layout (docs/OUTPUTS.md):

    DIR/<table>/run_id=<id>/part-0.parquet        published tables
    DIR/_staging/run_id=<id>/plan.json           what the run was asked to do
    DIR/_staging/run_id=<id>/chunks/<pos>.npz    one checkpoint per finished chunk
    DIR/_staging/run_id=<id>/tables/<table>/...  tables being written

Publishing moves each table's directory into place with one rename, and the
`runs` table last: a reader who sees a run's `runs` row (status complete)
sees all its tables, and never a half-written file.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.aggregate import Aggregate, load_chunk, save_chunk

TABLES = ("scenarios", "summary", "size_distribution", "capacity_distribution",
          "time_to_success", "candidates", "episodes", "design", "sensitivity", "sensitivity_s2",
          "comparisons", "runs")


class RunExistsError(RuntimeError):
    """The run id is taken (finished, or staged without --resume) or cannot be resumed."""


class RunDirectory:
    """One run's place in a forecast directory."""

    def __init__(self, out, run_id: str):
        self.out = Path(out)
        self.run_id = run_id
        self.staging = self.out / "_staging" / f"run_id={run_id}"
        self.chunks = self.staging / "chunks"

    def published(self, table: str) -> Path:
        return self.out / table / f"run_id={self.run_id}"

    def prepare(self, plan: dict, resume: bool) -> None:
        """Claim the run id (fresh run) or check the staged plan matches (resume)."""
        if self.published("runs").exists():
            shutil.rmtree(self.staging, ignore_errors=True)  # left if a crash hit the last step
            raise RunExistsError(f"run id {self.run_id!r} is already complete in {self.out}; "
                                 "choose another --run-id")
        plan_file = self.staging / "plan.json"
        if resume:
            if not plan_file.exists():
                raise RunExistsError(f"nothing to resume: no staged run {self.run_id!r} in {self.out}")
            staged = json.loads(plan_file.read_text())
            if staged != plan:
                changed = sorted(k for k in set(staged) | set(plan) if staged.get(k) != plan.get(k))
                raise RunExistsError(f"cannot resume run {self.run_id!r}: its arguments differ "
                                     f"({', '.join(changed)}); resume with the same arguments")
            return
        if self.staging.exists() or any(self.published(t).exists() for t in TABLES):
            raise RunExistsError(f"run id {self.run_id!r} is already used in {self.out} "
                                 "(use --resume to finish an interrupted run, or another --run-id)")
        # build the staging directory under a temporary name: it appears complete or not at all
        building = self.staging.with_name(f".{self.staging.name}.{os.getpid()}")
        (building / "chunks").mkdir(parents=True)
        (building / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True))
        os.rename(building, self.staging)

    def checkpoint_path(self, position: int) -> Path:
        return self.chunks / f"{position:08d}.npz"

    def finished_chunks(self) -> set[int]:
        return {int(p.stem) for p in self.chunks.glob("*.npz")} if self.chunks.exists() else set()

    def save_chunk(self, position: int, aggregates: list[Aggregate]) -> None:
        save_chunk(self.checkpoint_path(position), aggregates)

    def load_chunk(self, position: int) -> list[Aggregate]:
        return load_chunk(self.checkpoint_path(position))

    def clear_staged_tables(self) -> None:
        """Drop tables a crashed earlier attempt of this run left in staging."""
        shutil.rmtree(self.staging / "tables", ignore_errors=True)

    def staged_table(self, name: str) -> Path:
        return self.staging / "tables" / name / "part-0.parquet"

    def publish(self, tables: dict[str, pa.Table], streamed=()) -> None:
        """Write every table to staging (the `streamed` ones are there already), move them
        into place, `runs` last; drop staging."""
        staged = self.staging / "tables"
        for name, table in tables.items():
            part = self.staged_table(name)
            part.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, part, compression="snappy")
        for name in sorted([*tables, *streamed], key=lambda t: t == "runs"):
            target = self.published(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # left by a crash during an earlier publish of this run
                shutil.rmtree(target)
            os.replace(staged / name, target)
        shutil.rmtree(self.staging)


class TableSink:
    """Per-scenario tables arriving one group of scenarios at a time: appended to the run's
    staged Parquet files as they come (driver memory stays flat however many scenarios a
    study has), or kept in memory when nothing is written."""

    def __init__(self, store: RunDirectory | None):
        self.store = store
        self.parts: dict[str, list[pa.Table]] = {}
        self.writers: dict[str, pq.ParquetWriter] = {}
        if store is not None:
            store.clear_staged_tables()

    def add(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            if self.store is None:
                self.parts.setdefault(name, []).append(table)
                continue
            writer = self.writers.get(name)
            if writer is None:
                path = self.store.staged_table(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = self.writers[name] = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table.cast(writer.schema))

    def close(self) -> dict[str, pa.Table]:
        """Finish the files; returns the tables kept in memory (none with a run directory)."""
        for writer in self.writers.values():
            writer.close()
        return {name: pa.concat_tables(parts) for name, parts in self.parts.items()}

    @property
    def names(self) -> list[str]:
        return list(self.writers)
