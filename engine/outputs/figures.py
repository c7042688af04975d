"""Forecast figures by path: any number a forecast reports, named so a study can take it as an
output and EMA Workbench as an outcome (docs/STUDIES.md, "Outputs").

The grammar (`figure_paths(scenario)` lists every path of a scenario):

    success | size | capacity | spent           the scenario's mean (STUDY_FORMAT's four outputs)
    <metric>                                    the mean of any summary metric
    <metric>.<stat>                             a column of its `summary` row
    candidates.<ID>.<field>                     a column of the candidate's `candidates` row
    success_by_day.<day>                        `time_to_success.p_success_by_day` on that day

with <metric> one of METRICS (summary's metrics), <stat> one of STATS and <field> one of
CANDIDATE_FIELDS. Every figure is read from the same numbers the tables hold: `figure_values`
(from a scenario's merged aggregate, while a run is published) and `table_values` (from the
published tables) give the same floats. A figure that is missing (the time to success when no
episode reached success) is NaN here and null in a table.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.execution.aggregate import Aggregate
from engine.outputs.tables import METRICS, QUANTILES, means_of, summary_stats
from kernels.chunk import GRID

MEANS = ("success", "size", "capacity", "spent")
STATS = ("mean", "sd", "se", *(f"p{round(q * 100):02d}" for q in QUANTILES), "min", "max")
CANDIDATE_FIELDS = {"member": "p_member", "ever_joined": "p_ever_joined",
                    "venue_join": "p_venue_join", "payment": "mean_payment"}
PAIRED = {**{m: k for k, m in enumerate(MEANS)}, **{f"{m}.mean": k for k, m in enumerate(MEANS)}}


class FigureError(ValueError):
    """A path that names no figure (of a scenario), with the rule it broke."""


@lru_cache(maxsize=4096)
def parse_figure(path: str) -> tuple:
    """(kind, a, b) of a figure path: ("summary", metric, stat), ("candidate", id, column) or
    ("by_day", day, None); raises FigureError naming the rule."""
    if not isinstance(path, str) or not path:
        raise FigureError("an output must be a non-empty string")
    parts = path.split(".")
    if parts[0] in METRICS and len(parts) <= 2:
        stat = parts[1] if len(parts) == 2 else "mean"
        if stat not in STATS:
            raise FigureError(f"{path!r}: {parts[0]} has no statistic {stat!r} (known: {', '.join(STATS)})")
        return ("summary", parts[0], stat)
    if parts[0] == "candidates" and len(parts) == 3:
        if parts[2] not in CANDIDATE_FIELDS:
            raise FigureError(f"{path!r}: a candidate has no figure {parts[2]!r} "
                              f"(known: {', '.join(CANDIDATE_FIELDS)})")
        return ("candidate", parts[1], CANDIDATE_FIELDS[parts[2]])
    if parts[0] == "success_by_day" and len(parts) == 2:
        if not parts[1].isdigit():
            raise FigureError(f"{path!r}: the day must be a whole number of days from 0")
        return ("by_day", int(parts[1]), None)
    raise FigureError(f"{path!r} names no figure (outputs: {', '.join(METRICS)}, <metric>.<stat> "
                      f"with stat {'|'.join(STATS)}, candidates.<ID>.<{'|'.join(CANDIDATE_FIELDS)}>, "
                      "success_by_day.<day>)")


def check_figure(path: str, scenario) -> tuple:
    """`parse_figure` plus the scenario's own rules: the candidate exists, the day is within
    the deadline. Raises FigureError."""
    kind, a, b = parse_figure(path)
    if kind == "candidate" and a not in [c.id for c in scenario.candidates]:
        raise FigureError(f"{path!r}: the scenario has no candidate {a!r}")
    if kind == "by_day" and a > int(np.ceil(scenario.deadline_days)):
        raise FigureError(f"{path!r}: day {a} is after the deadline ({scenario.deadline_days:g} days)")
    return kind, a, b


def figure_paths(scenario) -> list[str]:
    """Every figure path of a scenario (each `success_by_day.<d>` is left out but one: d runs
    from 0 to the deadline)."""
    out = [f"{m}.{s}" for m in METRICS for s in STATS]
    out += [f"candidates.{c.id}.{f}" for c in scenario.candidates for f in CANDIDATE_FIELDS]
    return [*MEANS, *out, f"success_by_day.{int(np.ceil(scenario.deadline_days))}"]


def figure_values(paths, scenario, agg: Aggregate) -> np.ndarray:
    """The figures `paths` of one scenario from its merged aggregate (NaN where missing)."""
    from engine.model.arrays import outcome_ranges

    return figures_of(paths, [c.id for c in scenario.candidates], outcome_ranges(scenario).top, agg)


def figures_of(paths, ids, top, agg: Aggregate) -> np.ndarray:
    """The figures `paths` from a merged aggregate, given its scenario's candidate `ids` and
    ranges' `top` (NaN where missing)."""
    out = np.empty(len(paths))
    summary = None
    for k, path in enumerate(paths):
        kind, a, b = parse_figure(path)
        if path in MEANS:
            out[k] = means_of(top, agg)[path]
        elif kind == "summary":
            summary = summary or {r["metric"]: r for r in summary_stats(top, agg)}
            out[k] = summary[a][b]
        elif kind == "candidate":
            j = list(ids).index(a)
            n = agg.episodes
            if b == "mean_payment":
                out[k] = int(agg.cand_pay[j]) / GRID * top[1] / n
            else:
                row = {"p_member": 0, "p_ever_joined": 1, "p_venue_join": 2}[b]
                out[k] = np.asarray(agg.cand_counts[row][j], np.int64) / n
        else:
            out[k] = np.cumsum(np.asarray(agg.day_hist, np.int64))[a] / agg.episodes
    return out


def table_values(paths, tables: dict, scenario_ids) -> np.ndarray:
    """(scenarios, paths) figures read from a run's published tables (Polars DataFrames:
    `summary`, `candidates`, `time_to_success` as needed), in `scenario_ids` order; NaN where
    the table holds null. Raises FigureError for a figure the tables do not hold."""
    import polars as pl

    ids = pl.DataFrame({"scenario_id": list(scenario_ids)}).with_row_index("_k")
    out = np.full((len(ids), len(paths)), np.nan)
    for k, path in enumerate(paths):
        kind, a, b = parse_figure(path)
        if kind == "summary":
            frame = tables["summary"].filter(pl.col("metric") == a).select("scenario_id", pl.col(b).alias("v"))
        elif kind == "candidate":
            frame = tables["candidates"].filter(pl.col("candidate_id") == a).select(
                "scenario_id", pl.col(b).alias("v"))
        else:
            frame = tables["time_to_success"].filter(pl.col("day") == a).select(
                "scenario_id", pl.col("p_success_by_day").alias("v"))
        joined = ids.join(frame, on="scenario_id", how="left").sort("_k")
        if joined.height != len(ids):
            raise FigureError(f"{path!r}: a scenario has more than one value")
        if frame.height == 0:
            raise FigureError(f"{path!r}: the run's tables hold no such figure")
        out[:, k] = joined["v"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return out


def check_outputs(value, scenario, fail) -> tuple[str, ...]:
    """A study's `outputs` key: a non-empty list of distinct figure paths of its base scenario;
    `fail(key, rule)` raises the study's error."""
    if not isinstance(value, (list, tuple)) or not value:
        fail("outputs", "must be a non-empty list of figure paths (docs/STUDIES.md, Outputs)")
    for k, path in enumerate(value):
        try:
            check_figure(path, scenario)
        except FigureError as exc:
            fail(f"outputs[{k}]", str(exc))
        if path in value[:k]:
            fail(f"outputs[{k}]", f"{path!r} is given twice")
    return tuple(value)
