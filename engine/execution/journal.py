"""A run's chunk checkpoints on local disk: append-only journals (docs/OUTPUTS.md).

    chunks/NNNN.journal    the chunks one process checkpointed, in the order they finished

A record is a header (`PVCK`, the chunk's position, the payload's length, and a CRC-32 of
those three and the payload) and the payload: the chunk's aggregates
(engine/execution/aggregate.py: encode_chunk). The CRC covers the position too, so a flipped
bit there cannot pass one chunk's numbers off as another's.
Appending a record is one write to a file the process keeps open, where a file per chunk
cost a create and a rename each (about 500 chunks a second here, against the 1,000 a driver
of a few hundred workers must merge). Records are not fsynced: a process killed mid-write
or a power loss leaves at most a torn tail, which ends the scan of its journal, or a record
whose CRC fails when it is read; either way those chunks are computed again.

Each process that writes a run's checkpoints appends to a journal of its own (the run id's
lock keeps a second process out), so a resumed run never writes behind a torn tail. A later
record of a position replaces an earlier one (a damaged chunk computed again).
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

HEADER = struct.Struct("<4sQQI")  # magic, chunk position, payload length, CRC-32 (below)
MAGIC = b"PVCK"
SUFFIX = ".journal"


def _crc(position: int, payload: bytes) -> int:
    """The record's CRC-32: of its magic, position and length, then of its payload."""
    return zlib.crc32(payload, zlib.crc32(HEADER.pack(MAGIC, position, len(payload), 0)[:-4]))


class Journal:
    """The journals of one run's `chunks` directory: which positions they hold, a position's
    payload, and appending to this process's own journal."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self._index: dict[int, tuple[Path, int, int, int]] | None = None  # position -> record
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0

    def positions(self) -> set[int]:
        """Positions of the chunks whose records are whole (headers read, payloads skipped)."""
        return set(self._records())

    def _records(self) -> dict[int, tuple[Path, int, int, int]]:
        if self._index is None:
            self._index = {}
            for _, path in _journals(self.directory):  # oldest first: a later record replaces
                self._index.update(_scan(path))
        return self._index

    def read(self, position: int) -> bytes | None:
        """The payload of `position`'s latest record, or None if it is damaged (its CRC fails),
        gone, or was never written: the chunk must be computed again."""
        record = self._records().get(position)
        if record is None:
            return None
        path, start, length, crc = record
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                payload = fh.read(length)
        except OSError:
            payload = b""
        if len(payload) != length or _crc(position, payload) != crc:
            del self._index[position]
            return None
        return payload

    def append(self, position: int, payload: bytes) -> None:
        """Append `position`'s record to this process's journal (opened on first use). On an
        error (a full disk) the partial record is cut off and OSError names the journal."""
        records = self._records()
        if self._fd is None:
            self._open()
        crc = _crc(position, payload)
        record = HEADER.pack(MAGIC, position, len(payload), crc) + payload
        try:
            written = 0
            while written < len(record):
                written += os.write(self._fd, record[written:])
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass  # the torn tail then ends this journal's scan
            raise OSError(exc.errno, exc.strerror or str(exc), str(self._path)) from None
        records[position] = (self._path, self._size + HEADER.size, len(payload), crc)
        self._size += len(record)

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        number = max((n for n, _ in _journals(self.directory)), default=-1) + 1
        while True:
            self._path = self.directory / f"{number:04d}{SUFFIX}"
            try:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
                break
            except FileExistsError:
                number += 1
        self._size = 0

    def close(self) -> None:
        """Close this process's journal (appending again opens a new one)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):  # a run abandoned in a notebook does not keep its journal open
        try:
            self.close()
        except (OSError, TypeError):  # (at interpreter exit `os` may be gone: the OS closes it)
            pass


def _journals(directory: Path) -> list[tuple[int, Path]]:
    """(number, path) of the journals in `directory`, by number (other files are not ours)."""
    return sorted((int(p.stem), p) for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit())


def _scan(path: Path) -> dict[int, tuple[Path, int, int, int]]:
    """The whole records of one journal, up to its first torn or foreign bytes."""
    records = {}
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            offset = 0
            while offset + HEADER.size <= size:
                fh.seek(offset)
                magic, position, length, crc = HEADER.unpack(fh.read(HEADER.size))
                start = offset + HEADER.size
                if magic != MAGIC or start + length > size:
                    break
                records[position] = (path, start, length, crc)
                offset = start + length
    except OSError:
        pass  # an unreadable journal: its chunks are computed again
    return records


def count(directory) -> int:
    """How many chunks the journals in `directory` hold (for a process that does not run them)."""
    return len(Journal(directory).positions())
