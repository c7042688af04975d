"""Scenario discovery: the input ranges of a study where an outcome falls below (above) a threshold.

A study's design rows (the `design` table, one scenario per row) are joined to each row's mean of
one output (`summary`); a row is a *case* when that mean is strictly below (above) the threshold.
PRIM, as maintained in EMA Workbench (`ema_workbench.analysis.prim`, BSD-3-Clause; the optional
extra `pivotal[discover]`), then finds boxes, one after another: each box is the point of its
peeling trajectory with the highest coverage among those with density >= `min_density`, and the
restrictions no quasi-p value (Bryant & Lempert 2010) supports at `max_qp` are dropped.
docs/STUDIES.md explains the method, docs/OUTPUTS.md the `discovery` table.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engine.outputs.directory import fsync_path
from engine.outputs.schema import finalize

OUTPUTS = ("success", "size", "capacity", "spent")
DEFAULT_MIN_DENSITY = 0.8
DEFAULT_MASS_MIN = 0.05
DEFAULT_ALPHA = 0.05  # peel and paste
DEFAULT_MAX_QP = 0.05
DEFAULT_BOXES = 3
INSTALL_HINT = ("scenario discovery needs EMA Workbench, the extra pivotal[discover]: "
                "pip install -e '.[discover]' in the pivotal checkout (make install includes it)")

SCHEMA = pa.schema([
    ("run_id", pa.string()), ("output", pa.string()), ("direction", pa.string()),
    ("threshold", pa.float64()), ("box", pa.int64()), ("input", pa.string()),
    ("low", pa.float64()), ("high", pa.float64()),
    ("low_restricted", pa.bool_()), ("high_restricted", pa.bool_()),
    ("qp_low", pa.float64()), ("qp_high", pa.float64()),
    ("input_min", pa.float64()), ("input_max", pa.float64()),
    ("coverage", pa.float64()), ("density", pa.float64()), ("mass", pa.float64()),
    ("n_rows", pa.int64()), ("n_cases", pa.int64()),
    ("total_rows", pa.int64()), ("total_cases", pa.int64()),
    ("min_density", pa.float64()), ("mass_min", pa.float64()), ("peel_alpha", pa.float64()),
    ("paste_alpha", pa.float64()), ("max_qp", pa.float64()), ("prim_version", pa.string()),
    ("discovered_at", pa.timestamp("us", tz="UTC")),
])


class DiscoveryError(ValueError):
    """A discovery that cannot be made (bad arguments, no such run, nothing to discover)."""


@dataclass(frozen=True)
class Restriction:
    """One input a box restricts: its limits, which sides are restricted, their quasi-p values."""
    input: str
    low: float
    high: float
    low_restricted: bool
    high_restricted: bool
    qp_low: float | None
    qp_high: float | None


@dataclass(frozen=True)
class Box:
    """A box found by PRIM. `coverage`: share of all cases inside it; `density`: share of its rows
    that are cases; `mass`: share of all design rows inside it. Rows of earlier boxes are not
    counted in later ones."""
    number: int
    coverage: float
    density: float
    mass: float
    n_rows: int
    n_cases: int
    restrictions: tuple[Restriction, ...]


@dataclass(frozen=True)
class Discovery:
    """The boxes of one discovery and what was asked."""
    run_id: str
    output: str
    direction: str  # below | above
    threshold: float
    total_rows: int
    total_cases: int
    outcome_range: tuple[float, float]
    input_ranges: dict[str, tuple[float, float]]  # design order
    boxes: tuple[Box, ...]
    settings: dict[str, float]  # min_density, mass_min, peel_alpha, paste_alpha, max_qp
    prim_version: str
    discovered_at: dt.datetime

    def table(self) -> pa.Table:
        """The `discovery` table: one row per box and restricted input (one row with null
        input for a box that restricts nothing); 0 rows when no box was found."""
        rows = []
        for box in self.boxes:
            for r in box.restrictions or (None,):
                rows.append({
                    "run_id": self.run_id, "output": self.output, "direction": self.direction,
                    "threshold": self.threshold, "box": box.number,
                    "input": r and r.input, "low": r and r.low, "high": r and r.high,
                    "low_restricted": r and r.low_restricted,
                    "high_restricted": r and r.high_restricted,
                    "qp_low": r and r.qp_low, "qp_high": r and r.qp_high,
                    "input_min": r and self.input_ranges[r.input][0],
                    "input_max": r and self.input_ranges[r.input][1],
                    "coverage": box.coverage, "density": box.density, "mass": box.mass,
                    "n_rows": box.n_rows, "n_cases": box.n_cases,
                    "total_rows": self.total_rows, "total_cases": self.total_cases,
                    **self.settings, "prim_version": self.prim_version,
                    "discovered_at": self.discovered_at,
                })
        return pa.Table.from_pylist(rows, schema=SCHEMA)

    def text(self) -> str:
        """The boxes as printed by `pivotal discover`."""
        share = self.total_cases / self.total_rows
        lines = [f"run {self.run_id}: {self.output} {self.direction} {_num(self.threshold)} in "
                 f"{self.total_cases:,} of {self.total_rows:,} design rows ({share:.1%}); "
                 f"means range {_num(self.outcome_range[0])} .. {_num(self.outcome_range[1])}",
                 "PRIM (EMA Workbench {}): density >= {min_density:g}, mass >= {mass_min:g}, "
                 "peel {peel_alpha:g}, paste {paste_alpha:g}, quasi-p <= {max_qp:g}"
                 .format(self.prim_version, **self.settings)]
        if not self.boxes:
            lines.append(f"no box reaches density {self.settings['min_density']:g}: the rows "
                         f"{self.direction} the threshold do not gather in input ranges "
                         "(try a lower --density)")
        width = max([len(name) for name in self.input_ranges] + [5])
        for box in self.boxes:
            lines.append(f"box {box.number}: coverage {box.coverage:.1%}, "
                         f"density {box.density:.1%}, mass {box.mass:.1%} "
                         f"({box.n_cases:,} of {box.n_rows:,} rows {self.direction})")
            if not box.restrictions:
                lines.append("  (no input restricted: the whole remaining design)")
            for r in box.restrictions:
                lo, hi = self.input_ranges[r.input]
                if r.low_restricted and r.high_restricted:
                    span = f"{_num(r.low)} .. {_num(r.high)}"
                elif r.low_restricted:
                    span = f">= {_num(r.low)}"
                else:
                    span = f"<= {_num(r.high)}"
                qps = [q for q in (r.qp_low, r.qp_high) if q is not None]
                lines.append(f"  {r.input:<{width}}  {span:<24} (design {_num(lo)} .. {_num(hi)}"
                             + (f"; quasi-p {max(qps):.1g})" if qps else ")"))
        covered = sum(b.n_cases for b in self.boxes)
        if self.boxes and covered < self.total_cases:
            lines.append(f"not in any box: {self.total_cases - covered:,} of the "
                         f"{self.total_cases:,} rows {self.direction} the threshold")
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def discover(out, run_id: str, output: str = "success", *, below: float | None = None,
             above: float | None = None, min_density: float = DEFAULT_MIN_DENSITY,
             mass_min: float = DEFAULT_MASS_MIN, peel_alpha: float = DEFAULT_ALPHA,
             paste_alpha: float = DEFAULT_ALPHA, max_qp: float = DEFAULT_MAX_QP,
             max_boxes: int = DEFAULT_BOXES) -> Discovery:
    """Find the input ranges of study run `run_id` in forecast directory `out` where the design
    rows' mean of `output` is below `below` (or above `above`). Nothing is written (see
    `publish_discovery`). Raises DiscoveryError for anything that cannot be discovered."""
    _check(output in OUTPUTS, f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    _check((below is None) != (above is None), "give exactly one of --below or --above")
    direction, threshold = ("below", below) if below is not None else ("above", above)
    _check(math.isfinite(threshold), f"--{direction} must be a finite number (got {threshold})")
    _check(0 < min_density <= 1, f"--density must be in (0, 1] (got {min_density})")
    _check(0 < mass_min < 1, f"--mass-min must be in (0, 1) (got {mass_min})")
    _check(0 < peel_alpha < 0.5, f"--peel-alpha must be in (0, 0.5) (got {peel_alpha})")
    _check(0 < paste_alpha < 0.5, f"--paste-alpha must be in (0, 0.5) (got {paste_alpha})")
    _check(0 < max_qp <= 1, f"--max-qp must be in (0, 1] (got {max_qp})")
    _check(max_boxes >= 1, f"--boxes must be at least 1 (got {max_boxes})")
    prim, version = _import_prim()  # before reading: a missing extra is said first

    inputs, outcome = load_design(out, run_id, output)
    cases = outcome < threshold if direction == "below" else outcome > threshold
    if not cases.any():
        raise DiscoveryError(
            f"no design row of run {run_id!r} has {output} {direction} {threshold:g} (the rows' "
            f"means range from {outcome.min():g} to {outcome.max():g}): nothing to discover")
    names = inputs.columns
    ranges = {n: (float(inputs[n].min()), float(inputs[n].max())) for n in names}
    settings = {"min_density": min_density, "mass_min": mass_min, "peel_alpha": peel_alpha,
                "paste_alpha": paste_alpha, "max_qp": max_qp}
    if cases.all():  # one box, no restriction (PRIM itself needs both kinds of rows)
        boxes = [Box(1, 1.0, 1.0, 1.0, len(cases), len(cases), ())]
    else:
        boxes = _find_boxes(prim, inputs, cases, max_boxes, **settings)
    return Discovery(run_id, output, direction, float(threshold), len(cases), int(cases.sum()),
                     (float(outcome.min()), float(outcome.max())), ranges, tuple(boxes), settings,
                     version, dt.datetime.now(dt.timezone.utc))


def _check(condition, message):
    if not condition:
        raise DiscoveryError(message)


def _import_prim():
    """EMA Workbench's prim module and version, imported quietly (it warns about optional
    packages it does not need here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ema_workbench
            from ema_workbench.analysis import prim
    except ImportError:
        raise DiscoveryError(INSTALL_HINT) from None
    return prim, ema_workbench.__version__


@contextlib.contextmanager
def _quiet():
    """No warnings and no log records below ERROR from EMA Workbench while PRIM runs."""
    logger = logging.getLogger("EMA")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _run_dir(out, table: str, run_id: str) -> Path:
    return Path(out) / table / f"run_id={run_id}"


def _read(out, table: str, run_id: str) -> pl.DataFrame | None:
    """The run's rows of a published table (the run_id column decides), or None if absent."""
    files = sorted(_run_dir(out, table, run_id).glob("*.parquet"))
    if not files:
        return None
    frame = pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="vertical")
    return frame.filter(pl.col("run_id") == run_id)


def load_design(out, run_id: str, output: str) -> tuple[pl.DataFrame, np.ndarray]:
    """The design rows (row >= 0) of a complete study run, in design order: the inputs as one
    column each (named by path, in design order) and each row's mean of `output`."""
    _check(bool(run_id) and "/" not in run_id and run_id not in (".", ".."),
           f"--run-id must be a plain name (got {run_id!r})")
    runs = _read(out, "runs", run_id)
    if runs is None or runs.filter(pl.col("status") == "complete").height == 0:
        staged = (Path(out) / "_staging" / f"run_id={run_id}").exists()
        raise DiscoveryError(f"no complete run {run_id!r} in {out}"
                             + (" (it is unfinished: finish it with --resume)" if staged else ""))
    design = _read(out, "design", run_id)
    if design is None:
        raise DiscoveryError(f"run {run_id!r} has no design table: it is not a study with a "
                             "[design] (pivotal study writes one)")
    design = design.filter(pl.col("row") >= 0)
    if design.height == 0:
        raise DiscoveryError(f"run {run_id!r} has no design rows (a study with only [[variants]]): "
                             "nothing to discover")
    order = design.select("input").unique(maintain_order=True)["input"].to_list()
    try:
        wide = design.pivot(on="input", index=["row", "scenario_id"], values="value",
                            aggregate_function=None).sort("row")
    except pl.exceptions.ComputeError:
        raise DiscoveryError(f"the design table of run {run_id!r} gives an input twice for "
                             "one row") from None
    holes = pl.any_horizontal(pl.col(order).is_null() | pl.col(order).is_nan())
    if wide.select(holes).to_series().any():
        raise DiscoveryError(f"the design table of run {run_id!r} lacks a value for some "
                             "row and input")
    summary, compact = _read(out, "summary", run_id), _read(out, "row_outputs", run_id)
    if compact is not None:  # compact rows: their figures are in row_outputs
        means = (compact.filter(pl.col("output").is_in([output, f"{output}.mean"]))
                 .select("scenario_id", pl.col("value").alias("mean")).unique("scenario_id", keep="first"))
    elif summary is not None:
        means = summary.filter(pl.col("metric") == output).select("scenario_id", "mean")
    else:
        means = pl.DataFrame(schema={"scenario_id": pl.String, "mean": pl.Float64})
    joined = wide.join(means, on="scenario_id", how="left", maintain_order="left")
    missing = joined.filter(pl.col("mean").is_null() | pl.col("mean").is_nan())
    if missing.height:
        raise DiscoveryError(f"the {'summary' if compact is None else 'row_outputs'} table of run {run_id!r} "
                             f"has no {output} mean for "
                             f"{missing.height} design row(s), first {missing['scenario_id'][0]}")
    return joined.select(order), joined["mean"].to_numpy()


def _find_boxes(prim, inputs: pl.DataFrame, cases: np.ndarray, max_boxes: int, *,
                min_density: float, mass_min: float, peel_alpha: float, paste_alpha: float,
                max_qp: float) -> list[Box]:
    names = inputs.columns
    # PRIM sees plain column names; paths (with dots and `*`) are mapped back afterwards
    x = inputs.rename({n: f"x{j}" for j, n in enumerate(names)}).to_pandas()
    boxes = []
    with _quiet():
        # EMA Workbench 3 dropped Prim's `threshold` (the dense box is chosen below either way)
        options = {"threshold": min_density} if "threshold" in inspect.signature(prim.Prim).parameters else {}
        algorithm = prim.Prim(x, cases, peel_alpha=peel_alpha, paste_alpha=paste_alpha, mass_min=mass_min,
                              **options)
        box_init = algorithm.box_init
        while len(boxes) < max_boxes:
            found = algorithm.find_box()
            if found is None:  # every row is in an earlier box
                break
            trajectory = found.peeling_trajectory
            dense = trajectory[trajectory["density"] >= min_density]
            if dense.empty:  # PRIM's "dump box": nothing dense enough is left
                break
            current = int(dense.sort_values(["coverage", "density"], kind="stable").index[-1])
            found.select(current)
            while True:  # drop restrictions no quasi-p value supports, weakest first
                _, limits = found.inspect(current, style="data")[0]
                qp = limits.iloc[:, 2:4].fillna(np.inf).min(axis=1)
                weak = qp[qp > max_qp]
                if weak.empty:
                    break
                found.drop_restriction(weak.idxmax())
                current = len(found.peeling_trajectory) - 1
            stats = found.peeling_trajectory.iloc[current]
            lim = found.box_lims[current]
            restrictions = []
            for j, name in enumerate(names):
                col = f"x{j}"
                if col not in limits.index:
                    continue
                lo, hi = float(lim.loc[0, col]), float(lim.loc[1, col])
                qp_lo, qp_hi = (float(v) for v in limits.loc[col].iloc[2:4])
                restrictions.append(Restriction(
                    name, lo, hi, lo != box_init.loc[0, col], hi != box_init.loc[1, col],
                    None if math.isnan(qp_lo) else qp_lo, None if math.isnan(qp_hi) else qp_hi))
            boxes.append(Box(len(boxes) + 1, float(stats["coverage"]), float(stats["density"]),
                             float(stats["mass"]), int(stats["n"]), int(stats["k"]),
                             tuple(restrictions)))
    return boxes


def publish_discovery(out, discovery: Discovery) -> Path:
    """Write the `discovery` table to DIR/discovery/run_id=<id>/part-0.parquet atomically
    (temporary file, fsync, rename), replacing an earlier discovery of the same run."""
    folder = _run_dir(out, "discovery", discovery.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "part-0.parquet"
    temporary = folder / f".part-0.parquet.{os.getpid()}.tmp"  # not matched by *.parquet
    try:
        with open(temporary, "wb") as f:
            pq.write_table(finalize(discovery.table()), f, compression="snappy")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_path(folder)
    return target
