"""Per-scenario tables of a run, written to its staging as groups of scenarios arrive."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from engine.outputs.schema import finalize


class TableSink:
    """Per-scenario tables arriving one group of scenarios at a time: appended to the run's
    staged Parquet files as they come (driver memory stays flat however many scenarios a
    study has), or kept in memory when nothing is written."""

    def __init__(self, store):  # a RunDirectory (engine/outputs/directory.py), or None
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
            table = finalize(table)
            path = self.store.staged_table(name)
            try:
                writer = self.writers.get(name)
                if writer is None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writer = self.writers[name] = pq.ParquetWriter(path, table.schema, compression="snappy")
                writer.write_table(table.cast(writer.schema))
            except OSError as exc:  # a full disk: drop the writers now, and say which file it was
                self.abort()
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None

    def abort(self) -> None:
        """Let go of the staged files after a failure (a resume writes them again)."""
        for writer in self.writers.values():
            try:
                writer.close()
            except OSError:
                pass
        self.writers.clear()

    def close(self) -> dict[str, pa.Table]:
        """Finish the files; returns the tables kept in memory (none with a run directory)."""
        for writer in self.writers.values():
            writer.close()
        return {name: pa.concat_tables(parts) for name, parts in self.parts.items()}

    def read(self, name: str) -> pa.Table:
        """A streamed table, read back from its staged file (after `close`)."""
        return pq.read_table(self.store.staged_table(name))

    @property
    def names(self) -> list[str]:
        return list(self.writers)
