"""Where a suite run lives under `--out` (docs/NIGHTLY.md, "Layout"), and its `suite_runs` table.

    DIR/_suite/staging/suite_run_id=<id>/suite.json         the suite run, while unfinished
    DIR/_suite/staging/suite_run_id=<id>/items/<item>.json  one record per finished item
    DIR/_suite/suite_drift/suite_run_id=<id>/part-0.parquet every figure compared (drift)
    DIR/_suite/suite_runs/suite_run_id=<id>/part-0.parquet  one row per item: published last
    DIR/_suite/<suite>/<id>.html, DIR/_suite/<suite>/index.html   the night's index page

Every record is written under a temporary name, flushed and renamed: a suite killed at any
moment (SIGKILL included) leaves whole records or none. The staging directory goes once the
tables, the catalog and the index page are written; until then the same command finishes it.
The items' runs are ordinary runs under DIR (engine/outputs/directory.py).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engine.outputs.directory import fsync_path
from engine.outputs.schema import finalize

SUITE_RUNS_SCHEMA = pa.schema([
    ("suite_run_id", pa.string()), ("suite", pa.string()), ("item", pa.string()), ("position", pa.int64()),
    ("kind", pa.string()), ("status", pa.string()), ("run_id", pa.string()),
    ("reused_from", pa.string()), ("seconds", pa.float64()), ("error", pa.string()),
    ("cause", pa.string()), ("drift_flags", pa.list_(pa.string())), ("inputs_sha256", pa.string()),
    ("inputs", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")), ("suite_started_at", pa.timestamp("us", tz="UTC")),
    ("suite_finished_at", pa.timestamp("us", tz="UTC"))])
SUITE_TABLES = ("suite_drift", "suite_runs")   # published in this order: suite_runs is the commit


class SuiteBusyError(RuntimeError):
    """Another process is running this suite run (exit code 2)."""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


class SuiteStore:
    """The suite runs of one forecast directory (local disk)."""

    def __init__(self, out):
        self.out = Path(out)
        self.root = self.out / "_suite"
        self._lock_fd: int | None = None

    def staging(self, suite_run_id: str) -> Path:
        return self.root / "staging" / f"suite_run_id={suite_run_id}"

    def published(self, table: str, suite_run_id: str) -> Path:
        return self.root / table / f"suite_run_id={suite_run_id}" / "part-0.parquet"

    def page(self, suite: str, suite_run_id: str | None = None) -> Path:
        return self.root / suite / f"{suite_run_id or 'index'}.html"

    # ------------------------------------------------------------ unfinished suite runs

    def unfinished(self, suite: str) -> list[tuple[str, dict]]:
        """(id, meta) of this suite's unfinished suite runs, oldest first."""
        found = []
        for meta_file in sorted((self.root / "staging").glob("suite_run_id=*/suite.json")):
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                continue
            if meta.get("suite") == suite:
                found.append((meta_file.parent.name.removeprefix("suite_run_id="), meta))
        return sorted(found, key=lambda x: x[1].get("started_at", ""))

    def start(self, suite_run_id: str, meta: dict) -> None:
        """Create the staging directory of a new suite run, whole or not at all."""
        target = self.staging(suite_run_id)
        building = target.with_name(f".{target.name}.{os.getpid()}")
        (building / "items").mkdir(parents=True)
        _write_atomic(building / "suite.json", json.dumps(meta, indent=1, sort_keys=True).encode())
        os.rename(building, target)
        fsync_path(target.parent)

    def lock(self, suite_run_id: str) -> None:
        """An exclusive flock beside the staging directory for the rest of this process (the OS
        lets go when it ends, SIGKILL included): two processes never run one suite run."""
        path = self.staging(suite_run_id).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SuiteBusyError(f"suite run {suite_run_id} is being run by another pivotal process in "
                                 f"{self.out}; wait for it to finish") from None
        self._lock_fd = fd

    def unlock(self, suite_run_id: str) -> None:
        if self._lock_fd is not None:
            self.staging(suite_run_id).with_suffix(".lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def record(self, suite_run_id: str, row: dict) -> None:
        """Keep one finished item's record (a JSON file)."""
        path = self.staging(suite_run_id) / "items" / f"{row['item']}.json"
        _write_atomic(path, json.dumps(row, sort_keys=True, default=str).encode())

    def records(self, suite_run_id: str) -> dict[str, dict]:
        out = {}
        for f in sorted((self.staging(suite_run_id) / "items").glob("*.json")):
            row = json.loads(f.read_text())
            out[row["item"]] = row
        return out

    # ------------------------------------------------------------ published suite runs

    def history(self) -> pl.DataFrame:
        """Every published `suite_runs` row, oldest suite run first (an empty frame if none)."""
        files = sorted((self.root / "suite_runs").glob("suite_run_id=*/part-0.parquet"))
        if not files:
            return pl.from_arrow(SUITE_RUNS_SCHEMA.empty_table())
        frames = [pl.from_arrow(pq.read_table(f).cast(SUITE_RUNS_SCHEMA)) for f in files]
        return pl.concat(frames).sort(["suite_finished_at", "suite_run_id", "position"])

    def is_published(self, suite_run_id: str) -> bool:
        return self.published("suite_runs", suite_run_id).exists()

    def publish(self, suite_run_id: str, tables: dict[str, pa.Table]) -> None:
        """Write `suite_drift`, then `suite_runs` (the commit), each whole (temporary name,
        flush, rename); a suite run already published is never written again."""
        if self.is_published(suite_run_id):
            return
        for name in SUITE_TABLES:
            target = self.published(name, suite_run_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".part-0.{os.getpid()}.tmp")
            pq.write_table(finalize(tables[name]), tmp, compression="snappy")
            fsync_path(tmp)
            os.replace(tmp, target)
            fsync_path(target.parent)

    def read(self, table: str, suite_run_id: str) -> pl.DataFrame | None:
        path = self.published(table, suite_run_id)
        return pl.read_parquet(path) if path.exists() else None

    def write_page(self, suite: str, suite_run_id: str, html: str) -> Path:
        """The night's index page, and a copy as the suite's latest (index.html)."""
        page = self.page(suite, suite_run_id)
        page.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(page, html.encode())
        _write_atomic(self.page(suite), html.encode())
        return page

    def finish(self, suite_run_id: str) -> None:
        """Drop the staging directory: the suite run is finished."""
        shutil.rmtree(self.staging(suite_run_id), ignore_errors=True)
        self.unlock(suite_run_id)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def run_table(out, table: str, run_id: str) -> pl.DataFrame | None:
    """One published table of one run (None when absent)."""
    path = Path(out) / table / f"run_id={run_id}" / "part-0.parquet"
    return pl.read_parquet(path) if path.exists() else None
