"""Step three of a run: turn merged aggregates into tables and publish them.

A `Publisher` claims the run's place under `--out` (engine/outputs/directory.py),
receives each group of scenarios' final aggregates while the plan executes
(writing their tables to staging at once, so memory stays flat in scenarios), and
at the end publishes every table, the `runs` row last. Studies and backtests
add their own tables (design, sensitivity, comparisons, backtests) to `publish`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from engine import __version__
from engine.execution.aggregate import Aggregate
from engine.execution.execute import Execution
from engine.execution.plan import RunPlan
from engine.outputs.directory import run_directory
from engine.outputs.sink import TableSink
from engine.outputs.schema import SCHEMA_VERSION, finalize
from engine.outputs.figures import MEANS, figure_values
from engine.outputs.tables import group_tables, scenario_row, scenarios_table

READ_BACK = ("summary", "candidates")  # the per-scenario tables every result carries


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
    row_figures: np.ndarray | None = None  # a study's compact design rows: (rows, outputs) figures

    def __repr__(self) -> str:
        """A short summary (the run, its tables, each scenario's success with its interval), not
        every table: in a terminal or a notebook's text output."""
        from engine.outputs.text import brief_text
        return brief_text(self.tables)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        """The short summary as an HTML table, for Jupyter."""
        from engine.outputs.text import brief_html
        return brief_html(self.tables)


RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("status", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
    ("episodes", pa.int64()), ("scenarios", pa.int64()), ("seed", pa.int64()),
    ("engine_version", pa.string()), ("config_sha256", pa.string()), ("executor", pa.string()),
    ("workers", pa.int64()), ("chunk_size", pa.int64()), ("keep_episodes", pa.int64()),
    ("schema_version", pa.int64()),
    ("kind", pa.string()), ("name", pa.string()),
])
KINDS = ("run", "study", "ablate", "backtest")  # runs.kind: what wrote the run


class Publisher:
    """One run's tables, from its claim on `out` (None: nothing is written) to publishing.
    `kind` (KINDS) and `name` (the study's name, the ablated scenario, the backtest's cases;
    None for a plain run) go into the `runs` row: with the scenario id they key the catalog's
    latest views. `values[s]` holds scenario s's `figures` (engine/outputs/figures.py; a
    study's outputs, by default the four means) once its group has arrived: one float each,
    NaN until then; `row_values[r]` those of design row r of a plan with `rows`."""

    def __init__(self, plan: RunPlan, out=None, resume: bool = False, kind: str = "run",
                 name: str | None = None, figures=MEANS, row_tables=None):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        self.plan, self.out, self.kind, self.name = plan, out, kind, name
        self.store = None
        if out is not None:
            self.store = run_directory(out, plan.run_id)
            self.store.prepare(plan.document, resume)
        self.sink = TableSink(self.store)
        self.figures = tuple(figures)
        self.values = np.full((len(plan.scenarios), len(self.figures)), np.nan)
        self.row_tables = row_tables
        self.row_values = np.full((plan.rows.rows if plan.rows is not None else 0, len(self.figures)), np.nan)
        self._staged: dict[str, pa.Table] | None = None

    def add_group(self, first: int, aggregates: list[Aggregate]) -> None:
        """A group of scenarios is final: write its tables and keep its output means."""
        scenarios = self.plan.scenarios[first:first + len(aggregates)]
        self.sink.add(group_tables(self.plan.run_id, list(scenarios), list(aggregates)))
        for s, (scenario, agg) in enumerate(zip(scenarios, aggregates), start=first):
            self.values[s] = figure_values(self.figures, scenario, agg)

    def add_rows(self, first: int, figures: np.ndarray) -> None:
        """A block of design rows is done: keep its rows' figures (`row_values`) and stream its
        tables (`row_tables(first, figures)`: a study's design and row_outputs; no run tables)."""
        self.row_values[first:first + len(figures)] = figures
        if self.row_tables is not None:
            self.sink.add(self.row_tables(first, figures))

    def staged(self, read_back: bool = True) -> dict[str, pa.Table]:
        """The per-scenario tables written so far, read back from staging (all of them, or
        only `summary` and `candidates`: a study of many rows stays small), and `scenarios`.
        Call once every group has arrived."""
        if self._staged is None:
            arrow = self.sink.close()
            arrow |= {name: self.sink.read(name) for name in self.sink.names
                      if read_back or name in READ_BACK}
            arrow["scenarios"] = scenarios_table([scenario_row(self.plan.run_id, s)
                                                  for s in self.plan.scenarios])
            self._staged = arrow
        return self._staged

    def publish(self, execution: Execution, extra: dict[str, pa.Table] | None = None,
                read_back: bool = True) -> Forecast:
        """Publish the run's tables and `extra` ones, the `runs` row last; return them."""
        plan = self.plan
        finished = dt.datetime.now(dt.timezone.utc)
        staged = self.staged(read_back)
        arrow = {name: table for name, table in staged.items() if name not in self.sink.names}
        arrow |= extra or {}
        arrow["runs"] = pa.Table.from_pylist([{
            "run_id": plan.run_id, "status": "complete", "started_at": plan.started,
            "finished_at": finished, "episodes": execution.episodes, "scenarios": len(plan.scenarios),
            "seed": plan.seed, "engine_version": __version__, "config_sha256": plan.config_sha256,
            "executor": execution.executor, "workers": execution.workers,
            "chunk_size": plan.chunk_size, "keep_episodes": plan.keep_episodes,
            "schema_version": SCHEMA_VERSION, "kind": self.kind, "name": self.name,
        }], schema=RUNS_SCHEMA)
        arrow = {name: finalize(table) for name, table in arrow.items()}
        streamed = {name: staged[name] for name in self.sink.names if name in staged}
        frames = {k: pl.from_arrow(v) for k, v in {**streamed, **arrow}.items()}
        if self.store is not None:
            self.store.publish(arrow, streamed=self.sink.names)
        out = self.out
        where = None if out is None else out if "://" in str(out) else Path(out)
        return Forecast(plan.run_id, frames, where, (finished - plan.started).total_seconds(),
                        execution.computed, execution.target, execution.simulating,
                        execution.starting, self.row_values if plan.rows is not None else None)
