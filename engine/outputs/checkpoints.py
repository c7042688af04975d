"""A run's plan and chunk checkpoints in object storage, so another machine can resume it.

With `--out s3://...` and `PIVOTAL_CHECKPOINT_DIR=s3://bucket/prefix` (docs/OUTPUTS.md,
docs/CLUSTER.md) a run keeps, under `<prefix>/<out uri>/run_id=<id>/`:

    plan.json          what the run was asked to do (compared on --resume)
    chunks/<pos>.chunk one checkpoint per finished chunk (aggregate.py: encode_chunk)
    lease.json         which driver is writing the run, renewed while it runs

Every object is written whole with one write into a fresh stream (engine/outputs/storage.py:
put_object): object storage shows it complete or not at all, never half-written. A checkpoint
that cannot be read anyway (damaged by hand, or by a store that broke that promise) is
deleted and its chunk computed again, as on local disk.

The lease stands in for the local run-id lock, which cannot reach across machines: a driver
refuses a run whose lease another driver renewed within LEASE_SECONDS, and takes over one
that is older (its driver died). Object storage here has no atomic create-if-absent through
pyarrow, so two drivers starting the same run within the same second can both take it: the
lease catches the common mistake, not every race. Both would compute the same numbers (the
chunks are deterministic), so the worst case is work done twice, never a wrong table.
"""
from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import threading
import time

import pyarrow.fs as pafs

from engine.outputs.storage import Location, get_object, put_object

LEASE_ENV = "PIVOTAL_LEASE_SECONDS"
LEASE_SECONDS = 60.0  # a lease not renewed for this long belongs to a driver that is gone


def lease_seconds() -> float:
    try:
        return max(float(os.environ.get(LEASE_ENV, LEASE_SECONDS)), 0.5)
    except ValueError:
        return LEASE_SECONDS


class LeaseError(RuntimeError):
    """Another driver holds the run's lease (reported as a refused run id)."""


class RemoteCheckpoints:
    """The plan, checkpoints and lease of run `run_id` under `root` (a Location in object storage)."""

    def __init__(self, root: Location, run_id: str):
        self.location = root
        self.run_id = run_id
        self.prefix = root.path(f"run_id={run_id}")
        self.uri = f"{root.uri.rstrip('/')}/run_id={run_id}"
        self.lease: Lease | None = None

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    @property
    def plan_key(self) -> str:
        return self._key("plan.json")

    def read_plan(self) -> dict | None:
        """The staged plan, or None when there is none."""
        if not self.location.exists(self._key("plan.json")):
            return None
        return json.loads(get_object(self.location, self._key("plan.json")))

    def write_plan(self, plan: dict) -> None:
        put_object(self.location, self._key("plan.json"),
                   json.dumps(plan, indent=1, sort_keys=True).encode())

    def chunk_key(self, position: int) -> str:
        return self._key("chunks", f"{position:08d}.chunk")

    def finished_chunks(self) -> set[int]:
        """Positions of the chunks checkpointed so far (from the object names: nothing is read)."""
        selector = pafs.FileSelector(self._key("chunks"), allow_not_found=True, recursive=False)
        names = (info.base_name for info in self.location.fs.get_file_info(selector)
                 if info.type == pafs.FileType.File)
        return {int(n[:-6]) for n in names if n.endswith(".chunk") and n[:-6].isdigit()}

    def save_chunk(self, position: int, data: bytes) -> None:
        put_object(self.location, self.chunk_key(position), data)

    def load_chunk(self, position: int) -> bytes:
        return get_object(self.location, self.chunk_key(position))

    def drop_chunk(self, position: int) -> None:
        try:
            self.location.fs.delete_file(self.chunk_key(position))
        except FileNotFoundError:
            pass

    def discard(self) -> None:
        """Delete the run's plan and checkpoints (after publishing, or to start the id afresh)."""
        self.location.fs.delete_dir_contents(self.prefix, missing_dir_ok=True)
        try:
            self.location.fs.delete_dir(self.prefix)
        except (FileNotFoundError, OSError):  # S3 has no directories left to delete
            pass

    def take_lease(self) -> None:
        """Become the run's writer (LeaseError if a live driver is)."""
        if self.lease is None:
            self.lease = _LEASES.get(self._key("lease.json")) or Lease(self.location, self._key("lease.json"),
                                                                      self.uri)
        self.lease.take()

    def check_lease(self) -> None:
        """LeaseError if another driver took the run over from this one."""
        if self.lease is not None:
            self.lease.check()

    def release_lease(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None


_LEASES: dict[str, Lease] = {}  # leases this process holds, by key


class Lease:
    """A lease object naming its holder, renewed every LEASE_SECONDS / 4 by a daemon thread."""

    def __init__(self, location: Location, key: str, run_uri: str):
        self.location, self.key, self.run_uri = location, key, run_uri
        self.holder = f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> tuple[dict, float] | None:
        """The lease's content and its age in seconds (by the store's clock on writing), or None."""
        info = self.location.fs.get_file_info(self.key)
        if info.type == pafs.FileType.NotFound:
            return None
        try:
            content = json.loads(get_object(self.location, self.key))
        except (ValueError, FileNotFoundError):
            return None
        return content, time.time() - info.mtime.timestamp()

    def _write(self) -> None:
        put_object(self.location, self.key, json.dumps({"holder": self.holder}).encode())

    def take(self) -> None:
        if self._thread is not None:  # this process holds it already (a notebook resuming)
            return
        ttl = lease_seconds()
        current = self._read()
        if current and current[0].get("holder") != self.holder and current[1] < ttl:
            raise LeaseError(self._refusal(current, ttl))
        self._write()
        current = self._read()
        if not current or current[0].get("holder") != self.holder:  # another driver wrote just now
            raise LeaseError(self._refusal(current or ({}, 0.0), ttl))
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, args=(ttl / 4,), daemon=True,
                                        name="pivotal-lease")
        self._thread.start()
        _LEASES[self.key] = self

    def _refusal(self, current, ttl: float) -> str:
        holder, age = current[0].get("holder", "another driver"), max(current[1], 0.0)
        return (f"run {self.run_uri} is being written by another driver ({holder}; its lease was "
                f"renewed {age:.0f} s ago): wait for it to finish, or, if that driver is gone, resume "
                f"once its lease is {ttl:g} s old (${LEASE_ENV}), in {max(ttl - age, 0):.0f} s")

    def _renew(self, every: float) -> None:
        while not self._stop.wait(every) and not self.lost:
            try:
                self._renew_once()
            except OSError:  # a passing network failure: try again at the next renewal
                pass

    def _renew_once(self) -> None:
        current = self._read()
        if current and current[0].get("holder") != self.holder:
            self.lost = current[0].get("holder", "another driver")
        else:
            self._write()

    def check(self) -> None:
        """Raise LeaseError if another driver took the run over (this one stalled past the lease)."""
        if self.lost:
            raise LeaseError(f"run {self.run_uri} was taken over by another driver ({self.lost}) "
                             f"after this one did not renew its lease for {lease_seconds():g} s; "
                             "this driver stops")

    def release(self) -> None:
        """Stop renewing and delete the lease object, if it is still this driver's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _LEASES.pop(self.key, None)
        try:
            current = self._read()
            if current and current[0].get("holder") == self.holder:
                self.location.fs.delete_file(self.key)
        except OSError:  # unreachable now: the lease expires by itself
            pass


@atexit.register
def release_leases() -> None:
    """Let go of the leases of runs that failed or were interrupted (their checkpoints stay)."""
    for lease in list(_LEASES.values()):
        lease.release()
