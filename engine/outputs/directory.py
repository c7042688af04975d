"""The forecast directory: staging, chunk checkpoints, and publishing a run.

Layout (docs/OUTPUTS.md):

    DIR/<table>/run_id=<id>/part-0.parquet        published tables
    DIR/_staging/run_id=<id>/plan.json           what the run was asked to do
    DIR/_staging/run_id=<id>/chunks/NNNN.journal finished chunks' checkpoints (engine/execution/journal.py)
    DIR/_staging/run_id=<id>/tables/<table>/...  tables being written

Publishing moves each table's directory into place with one rename, and the
`runs` table last: a reader who sees a run's `runs` row (status complete)
sees all its tables, and never a half-written file. The `runs` file's
modification time is then set to the moment after its rename (its commit
time): the catalog counts a run only in queries that began after it.

On object storage (`ObjectRunDirectory`, `--out s3://bucket/prefix`) each table
is written straight to its final key (an object appears whole or not at all)
and the `runs` object is written last: it is the commit. The plan and chunk
checkpoints stay on local disk (engine/outputs/storage.py: checkpoint_root), or, with
PIVOTAL_CHECKPOINT_DIR=s3://..., go to object storage too (`SharedRunDirectory`,
engine/outputs/checkpoints.py), where a driver on another machine can resume the run.
"""
from __future__ import annotations

import atexit
import fcntl
import functools
import json
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from engine.execution.aggregate import Aggregate, decode_chunk, encode_chunk
from engine.execution.journal import Journal
from engine.outputs.checkpoints import LeaseError, RemoteCheckpoints
from engine.outputs.schema import finalize
from engine.outputs.storage import (PART, Location, StorageError, checkpoint_root, local_staging,
                                    locate)

RUN_TABLES = ("scenarios", "summary", "size_distribution", "capacity_distribution",
              "time_to_success", "candidates", "episodes", "runs")  # what every run writes
TABLES = RUN_TABLES + ("design", "row_outputs", "sensitivity", "sensitivity_s2", "comparisons",  # studies
                       "backtests", "backtest_states", "backtest_comparisons")  # backtests


# The `runs` file's modification time is the run's commit time, which the catalog's views read
# (engine/outputs/catalog.py): set ahead while it is renamed into place, then to the moment after.
COMMIT_AHEAD_NS = 60 * 10**9


def _same_plan(run_id: str, staged: dict, plan: dict, kept) -> None:
    """Refuse to resume a run whose arguments differ from those it was started with."""
    if staged != plan:
        changed = sorted(k for k in set(staged) | set(plan) if staged.get(k) != plan.get(k))
        raise RunExistsError(f"cannot resume run {run_id!r}: its arguments differ ({', '.join(changed)}); "
                             f"resume with the same arguments, or delete {kept} to start that run id afresh")


class RunExistsError(RuntimeError):
    """The run id is taken (finished, or staged without --resume) or cannot be resumed."""


def run_directory(out, run_id: str) -> RunDirectory:
    """The place of run `run_id` under `--out`: a local directory or object storage."""
    location = locate(out)
    if location.local:
        return RunDirectory(out if "://" not in str(out) else location.root, run_id)
    checkpoints = checkpoint_root(location)
    if isinstance(checkpoints, Location):
        return SharedRunDirectory(location, checkpoints, run_id)
    return ObjectRunDirectory(location, run_id)


def latest_interrupted_run(out) -> str:
    """The id of the most recently started run under `out` that was interrupted (staged, not
    published), for `--resume` without `--run-id`."""
    staged = run_directory(out, "latest").staged_runs()
    if not staged:
        raise RunExistsError(f"nothing to resume: no interrupted run in {out} (give --run-id)")
    return max(staged, key=lambda run: (run[1], run[0]))[0]


_LOCKS: dict[str, int] = {}  # run-id lock files this process holds, and their descriptors


def _same_file(fd: int, path: str) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        at_path, held = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


def _release(path: str, fd: int) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already, or a directory that became read-only: the lock is released anyway
        pass
    os.close(fd)


@atexit.register
def release_locks() -> None:
    """Let go of every run-id lock this process still holds (a run that failed or was
    interrupted; its staging stays for --resume), removing the lock files."""
    while _LOCKS:
        _release(*_LOCKS.popitem())


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunDirectory:
    """One run's place in a forecast directory."""

    def __init__(self, out, run_id: str):
        self.out = Path(out)
        self.where = str(out)  # named in messages
        self.run_id = run_id
        self.staging = self.out / "_staging" / f"run_id={run_id}"
        self.chunks = self.staging / "chunks"

    def published(self, table: str) -> Path:
        return self.out / table / f"run_id={self.run_id}"

    def is_complete(self) -> bool:
        return self.published("runs").exists()

    def is_staged(self) -> bool:
        """Whether an interrupted run of this id is staged (its plan written)."""
        return (self.staging / "plan.json").exists()

    def kept_at(self) -> str:
        """Where the run's plan and checkpoints are kept (named in messages)."""
        return str(self.staging)

    def staged_runs(self) -> list[tuple[str, float]]:
        """(run id, time its plan was written) of every staged run beside this one."""
        return [(p.parent.name.removeprefix("run_id="), p.stat().st_mtime)
                for p in self.staging.parent.glob("run_id=*/plan.json")]

    def discard(self) -> None:
        """Drop the staged run (plan, checkpoints, tables) to start the id afresh."""
        self._close_journal()
        shutil.rmtree(self.staging, ignore_errors=True)

    def any_published(self) -> bool:
        return any(self.published(t).exists() for t in TABLES)

    def lock(self) -> None:
        """Take this run id's lock for the rest of the run: an exclusive `flock` on a file beside
        its staging directory, which the OS releases when the process ends, even by SIGKILL. A
        second process writing the same id at the same time is refused. `unlock` removes the
        file, so a lock taken on a file that was removed meanwhile is let go and taken again on
        the file now at the path: two processes never hold the lock of one path at once."""
        path = self._lock_path()
        if path in _LOCKS:  # this process holds it (a notebook resuming after an error)
            return
        self.staging.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunExistsError(f"run id {self.run_id!r} is being written by another pivotal process "
                                     f"in {self.where}; wait for it to finish, or choose another --run-id") from None
            if _same_file(fd, path):
                break
            os.close(fd)  # its holder finished and removed it: lock the file now at the path
        _LOCKS[path] = fd

    def _lock_path(self) -> str:
        return str(self.staging.with_name(f"{self.staging.name}.lock"))

    def unlock(self) -> None:
        """Let go of the run id's lock and remove its file (while still holding it: whoever opened
        the old file meanwhile sees it is gone once it gets the lock, and tries again)."""
        self._close_journal()
        path = self._lock_path()
        fd = _LOCKS.pop(path, None)
        if fd is not None:
            _release(path, fd)

    def prepare(self, plan: dict, resume: bool) -> None:
        """Lock the run id, then claim it (fresh run) or check the staged plan matches (resume)."""
        self.lock()
        try:
            self._claim(plan, resume)
        except BaseException:
            self.unlock()
            raise

    def _claim(self, plan: dict, resume: bool) -> None:
        if self.is_complete():
            shutil.rmtree(self.staging, ignore_errors=True)  # left if a crash hit the last step
            raise RunExistsError(f"run id {self.run_id!r} is already complete in {self.where}; "
                                 "choose another --run-id")
        plan_file = self.staging / "plan.json"
        if resume:
            if not plan_file.exists():
                raise RunExistsError(f"nothing to resume: no staged run {self.run_id!r} in {self.where}")
            _same_plan(self.run_id, json.loads(plan_file.read_text()), plan, self.staging)
            return
        if self.staging.exists() or self.any_published():
            raise RunExistsError(f"run id {self.run_id!r} is already used in {self.where} "
                                 "(use --resume to finish an interrupted run, or another --run-id)")
        # build the staging directory under a temporary name: it appears complete or not at all
        building = self.staging.with_name(f".{self.staging.name}.{os.getpid()}")
        (building / "chunks").mkdir(parents=True)
        (building / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True))
        os.rename(building, self.staging)

    @functools.cached_property
    def journal(self) -> Journal:
        """The run's checkpoint journals, opened on first use (a subclass may move `chunks`)."""
        return Journal(self.chunks)

    def _close_journal(self) -> None:
        """Close this process's journal; the next use reads the journals afresh."""
        journal = self.__dict__.pop("journal", None)
        if journal is not None:
            journal.close()

    def finished_chunks(self) -> set[int]:
        """Positions of the chunks checkpointed so far (the journals' headers: no chunk is read)."""
        return self.journal.positions()

    def save_chunk(self, position: int, aggregates: list[Aggregate]) -> None:
        self.journal.append(position, encode_chunk(aggregates))

    def load_chunk(self, position: int) -> list[Aggregate] | None:
        """A checkpointed chunk's aggregates, or None if its record cannot be read (torn by a
        crash, or damaged on disk): the chunk must be computed again."""
        payload = self.journal.read(position)
        if payload is None:
            return None
        try:
            return decode_chunk(payload)
        except Exception:  # noqa: BLE001 - any damage means: compute the chunk again
            return None

    def clear_staged_tables(self) -> None:
        """Drop tables a crashed earlier attempt of this run left in staging."""
        shutil.rmtree(self.staging / "tables", ignore_errors=True)

    def staged_table(self, name: str) -> Path:
        return self.staging / "tables" / name / "part-0.parquet"

    def _stage(self, tables: dict[str, pa.Table], streamed) -> list[str]:
        """Write `tables` to staging beside the `streamed` ones already there, every file on disk
        (fsync) before anything is published; returns all names, `runs` last."""
        for name, table in tables.items():
            part = self.staged_table(name)
            try:
                part.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(finalize(table), part, compression="snappy")
            except OSError as exc:  # a full disk: say which file it was
                raise OSError(exc.errno, exc.strerror or str(exc), str(part)) from None
        names = sorted([*tables, *streamed], key=lambda t: t == "runs")
        for name in names:
            fsync_path(self.staged_table(name))  # a power loss leaves all or nothing
            fsync_path(self.staged_table(name).parent)
        return names

    def publish(self, tables: dict[str, pa.Table], streamed=()) -> None:
        """Write every table to staging (the `streamed` ones are there already), move them
        into place, `runs` last; drop staging."""
        staged = self.staging / "tables"
        names = self._stage(tables, streamed)
        for name in names:
            target = self.published(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # left by a crash during an earlier publish of this run
                shutil.rmtree(target)
            if name == "runs":  # not yet committed for the catalog's snapshot (below)
                ahead = time.time_ns() + COMMIT_AHEAD_NS
                os.utime(staged / name / PART, ns=(ahead, ahead))
            os.replace(staged / name, target)
            fsync_path(target.parent)  # the rename is durable before the next table (and `runs` last)
        if "runs" in names:  # (a table added to a finished run, such as `discovery`, has none)
            commit = time.time_ns()  # after the rename: every table is in place by this time
            os.utime(self.published("runs") / PART, ns=(commit, commit))
        shutil.rmtree(self.staging)
        self.unlock()


class ObjectRunDirectory(RunDirectory):
    """A run published to object storage; its staging (plan, checkpoints) on local disk."""

    def __init__(self, location: Location, run_id: str):
        super().__init__(checkpoint_root(location), run_id)
        self.location = location
        self.where = location.uri
        self.staging = self.out / f"run_id={run_id}"
        self.chunks = self.staging / "chunks"

    def is_complete(self) -> bool:
        return self.location.exists(self.location.part("runs", self.run_id))

    def any_published(self) -> bool:
        return any(self.location.exists(self.location.part(t, self.run_id)) for t in TABLES)

    def prepare(self, plan: dict, resume: bool) -> None:
        bucket = self.location.root.split("/", 1)[0]
        if self.location.fs.get_file_info(bucket).type == FileType.NotFound:
            raise StorageError(f"--out {self.location.uri}: {bucket!r} does not exist; create the bucket first")
        self.out.mkdir(parents=True, exist_ok=True)
        super().prepare(plan, resume)

    def publish(self, tables: dict[str, pa.Table], streamed=()) -> None:
        """Copy each staged table to its final key, `runs` last (the commit); drop local staging."""
        for name in self._stage(tables, streamed):
            self._upload(name)
        shutil.rmtree(self.staging)
        self.unlock()

    def _upload(self, name: str) -> None:
        """Copy a staged table to its final key (an object appears whole or not at all)."""
        with open(self.staged_table(name), "rb") as src, \
                self.location.fs.open_output_stream(self.location.part(name, self.run_id)) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


class SharedRunDirectory(ObjectRunDirectory):
    """A run published to object storage with its plan and chunk checkpoints there too
    ($PIVOTAL_CHECKPOINT_DIR=s3://...), so a driver on another machine can resume it. Only
    its tables are staged on this machine before upload, beside its local run-id lock; the
    lease (engine/outputs/checkpoints.py) keeps a second driver elsewhere out."""

    def __init__(self, location: Location, checkpoints: Location, run_id: str):
        RunDirectory.__init__(self, local_staging(location), run_id)
        self.location = location
        self.where = location.uri
        self.staging = self.out / f"run_id={run_id}"
        self.chunks = self.staging / "chunks"  # (never written: the chunks are in `remote`)
        self.remote = RemoteCheckpoints(checkpoints, run_id)

    def is_staged(self) -> bool:
        return self.remote.location.exists(self.remote.plan_key)

    def kept_at(self) -> str:
        return self.remote.uri

    def staged_runs(self) -> list[tuple[str, float]]:
        where = self.remote.location
        return [(run, where.fs.get_file_info(where.path(f"run_id={run}", "plan.json")).mtime.timestamp())
                for run in (d.removeprefix("run_id=") for d in where.children(where.root)
                            if d.startswith("run_id="))
                if where.exists(where.path(f"run_id={run}", "plan.json"))]

    def discard(self) -> None:
        self.remote.discard()
        shutil.rmtree(self.staging, ignore_errors=True)

    def prepare(self, plan: dict, resume: bool) -> None:
        where = self.remote.location
        bucket = where.root.split("/", 1)[0]
        try:
            missing = where.fs.get_file_info(bucket).type == FileType.NotFound
        except OSError as exc:
            raise StorageError(f"$PIVOTAL_CHECKPOINT_DIR: {where.uri} cannot be reached ({exc})") from None
        if missing:
            raise StorageError(f"$PIVOTAL_CHECKPOINT_DIR: {bucket!r} does not exist; create the bucket first")
        super().prepare(plan, resume)

    def _claim(self, plan: dict, resume: bool) -> None:
        if self.is_complete():
            self.discard()  # left if a crash hit the last step
            raise RunExistsError(f"run id {self.run_id!r} is already complete in {self.where}; "
                                 "choose another --run-id")
        try:
            self.remote.take_lease()
        except LeaseError as exc:
            raise RunExistsError(str(exc)) from None
        staged = self.remote.read_plan()
        if resume:
            if staged is None:
                raise RunExistsError(f"nothing to resume: no staged run {self.run_id!r} in {self.kept_at()}")
            _same_plan(self.run_id, staged, plan, self.kept_at())
            return
        if staged is not None or self.any_published():
            raise RunExistsError(f"run id {self.run_id!r} is already used in {self.where} "
                                 "(use --resume to finish an interrupted run, or another --run-id)")
        self.remote.write_plan(plan)

    def finished_chunks(self) -> set[int]:
        return self.remote.finished_chunks()

    def save_chunk(self, position: int, aggregates: list[Aggregate]) -> None:
        try:
            self.remote.check_lease()  # (before any work: a driver taken over stops at once)
            self.remote.save_chunk(position, encode_chunk(aggregates))
        except LeaseError as exc:
            raise RunExistsError(str(exc)) from None
        except OSError as exc:  # say which object it was
            raise OSError(exc.errno, exc.strerror or str(exc),
                          f"{self.kept_at()}/chunks/{position:08d}.chunk") from None

    def load_chunk(self, position: int) -> list[Aggregate] | None:
        """A checkpoint's aggregates, or None (the object deleted: compute the chunk again) if
        it cannot be read."""
        try:
            return decode_chunk(self.remote.load_chunk(position))
        except Exception:  # noqa: BLE001 - any damage means: compute the chunk again
            try:
                self.remote.drop_chunk(position)
            except OSError:
                pass
            return None

    def publish(self, tables: dict[str, pa.Table], streamed=()) -> None:
        """Upload the tables, `runs` last (the commit); drop the checkpoints, then local staging."""
        try:
            self.remote.check_lease()
        except LeaseError as exc:
            raise RunExistsError(str(exc)) from None
        for name in self._stage(tables, streamed):
            self._upload(name)
        self.remote.release_lease()  # (first: a renewal after the deletion would leave a lease behind)
        self.remote.discard()
        shutil.rmtree(self.staging, ignore_errors=True)
        self.unlock()

    def unlock(self) -> None:
        self.remote.release_lease()
        super().unlock()
