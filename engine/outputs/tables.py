"""Merged aggregates -> the output tables (docs/OUTPUTS.md), as pyarrow Tables."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from engine.execution.aggregate import Aggregate
from engine.model.arrays import VALUE_BINS, outcome_ranges
from engine.model.scenario import PARAMETERS, Scenario
from engine.outputs.schema import METRIC_UNITS
from kernels.chunk import GRID
from kernels.layout import N_OUTCOMES

QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)
# the summary's metrics: the per-episode outcomes, in kernels.layout order
METRICS = ("size", "capacity", "spent", "success", "time_to_success", "offers",
           "venue_joins", "withdrawals")
assert len(METRICS) == N_OUTCOMES
Z95 = 1.959963984540054


def wilson(successes, n, z=Z95):
    """95% Wilson score interval for a proportion (arrays allowed)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _discrete_stats(hist):
    """Statistics of an integer outcome from its exact histogram (values 0..len-1)."""
    hist = np.asarray(hist, dtype=np.int64)
    n = int(hist.sum())
    values = np.arange(len(hist), dtype=np.float64)
    mean = float((values * hist).sum() / n)
    var = float(((values - mean) ** 2 * hist).sum() / (n - 1)) if n > 1 else 0.0
    cdf = np.cumsum(hist) / n
    quantiles = [float(i) for i in np.searchsorted(cdf, np.array(QUANTILES) - 1e-12)]
    nonzero = np.flatnonzero(hist)
    return n, mean, var, quantiles, float(nonzero[0]), float(nonzero[-1])


def _continuous_stats(agg: Aggregate, m: int, top: float, n: int):
    """Statistics of a continuous outcome: exact mean/sd from the grid sums, quantiles
    interpolated in its histogram (error below one bin, 1/1024 of the range)."""
    if n == 0:
        return 0, math.nan, math.nan, [math.nan] * len(QUANTILES), math.nan, math.nan
    mean = int(agg.q_sum[m]) / GRID * top / n
    sumsq = int(agg.q_sumsq[m]) / GRID * top * top
    var = max(0.0, (sumsq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    hist = np.asarray(agg.value_hist[m], dtype=np.int64)
    edges = np.linspace(0.0, top, len(hist) + 1)
    cdf = np.concatenate([[0.0], np.cumsum(hist) / n])
    lo, hi = float(agg.lowest[m]), float(agg.highest[m])
    quantiles = [float(min(max(q, lo), hi)) for q in np.interp(QUANTILES, cdf, edges)]
    return n, mean, var, quantiles, lo, hi


def summary_rows(s: Scenario, agg: Aggregate):
    """One row per metric: n, mean, sd, se, p05..p95, min, max."""
    return summary_stats(outcome_ranges(s).top, agg)


def summary_stats(top, agg: Aggregate):
    """`summary_rows` of a scenario whose ranges' top is `top`."""
    n = agg.episodes
    stats = {
        "size": _discrete_stats(agg.size_hist),
        "capacity": _continuous_stats(agg, 0, top[0], n),
        "spent": _continuous_stats(agg, 1, top[1], n),
        "success": _discrete_stats([n - agg.successes, agg.successes]),
        "time_to_success": _continuous_stats(agg, 2, top[2], agg.reached),
        "offers": _discrete_stats(agg.offers_hist),
        "venue_joins": _discrete_stats(agg.venue_hist),
        "withdrawals": _discrete_stats(agg.withdrawal_hist),
    }
    rows = []
    for metric in METRICS:
        count, mean, var, qs, lo, hi = stats[metric]
        sd = math.sqrt(var) if count else math.nan
        rows.append({"metric": metric, "n": count, "mean": mean, "sd": sd,
                     "se": sd / math.sqrt(count) if count else math.nan,
                     **{f"p{round(q * 100):02d}": v for q, v in zip(QUANTILES, qs)},
                     "min": lo, "max": hi})
    return rows


def _columns(s: Scenario, agg: Aggregate) -> dict[str, dict]:
    """The per-scenario tables of `s` as columns (numpy arrays or lists), without the keys."""
    n = agg.episodes
    ranges = outcome_ranges(s)
    rows = summary_rows(s, agg)
    units = {**METRIC_UNITS, "capacity": s.capacity_unit, "spent": s.payment_unit}
    summary = {**{k: [r[k] for r in rows] for k in rows[0]}, "unit": [units[r["metric"]] for r in rows]}
    success_low, success_high = wilson(agg.successes, n)  # the interval the CLI prints, on its row
    summary["success_low"] = [float(success_low) if r["metric"] == "success" else None for r in rows]
    summary["success_high"] = [float(success_high) if r["metric"] == "success" else None for r in rows]

    size_counts = np.asarray(agg.size_hist, np.int64)
    size = {"size": np.arange(len(size_counts), dtype=np.int64), "episodes": size_counts,
            "probability": size_counts / n, "cdf": np.cumsum(size_counts) / n}

    cap_counts = np.asarray(agg.value_hist[0], np.int64)
    edges = np.linspace(0.0, ranges.top[0], VALUE_BINS + 1)
    capacity = {"bin_low": edges[:-1], "bin_high": edges[1:], "episodes": cap_counts,
                "probability": cap_counts / n, "cdf": np.cumsum(cap_counts) / n,
                "capacity_unit": [s.capacity_unit] * len(cap_counts)}

    by_day = np.cumsum(np.asarray(agg.day_hist, np.int64))
    time = {"day": np.arange(ranges.days + 1, dtype=np.int64),
            "episodes_succeeded_by_day": by_day, "p_success_by_day": by_day / n}

    member, ever, venue = (np.asarray(x, np.int64) for x in agg.cand_counts)
    low, high = wilson(member, n)
    pay = np.array([int(x) for x in agg.cand_pay], dtype=np.float64) / GRID * ranges.top[1] / n
    candidates = {
        "candidate_id": [c.id for c in s.candidates],
        "candidate_name": [c.name for c in s.candidates],
        "p_member": member / n, "p_member_low": low, "p_member_high": high,
        "p_ever_joined": ever / n, "p_venue_join": venue / n, "mean_payment": pay,
        "payment_unit": [s.payment_unit] * len(s.candidates)}

    kept = np.asarray(agg.kept)
    ids = np.array([c.id for c in s.candidates], dtype=object)
    episodes = {
        "episode": np.arange(len(kept), dtype=np.int64),
        **{name: (kept[:, j].astype(np.int64) if name in ("size", "offers", "venue_joins", "withdrawals")
                  else kept[:, j].astype(bool) if name == "success" else kept[:, j])
           for j, name in enumerate(METRICS)},
        "members": [list(ids[row.astype(bool)]) for row in agg.kept_members],
    }
    return {"summary": summary, "size_distribution": size, "capacity_distribution": capacity,
            "time_to_success": time, "candidates": candidates, "episodes": episodes}


def _concat(parts: list):
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [x for part in parts for x in part]


def group_tables(run_id: str, scenarios: list[Scenario], aggregates: list[Aggregate]) -> dict[str, pa.Table]:
    """The per-scenario tables (summary, distributions, candidates, kept episodes) of several
    scenarios, in their order, built at once (a study builds thousands)."""
    columns = [_columns(s, agg) for s, agg in zip(scenarios, aggregates)]
    tables = {}
    for name in columns[0]:
        parts = [c[name] for c in columns]
        lengths = [len(next(iter(p.values()))) for p in parts]
        data = {col: _concat([p[col] for p in parts]) for col in parts[0]}
        if name == "episodes":
            data["members"] = pa.array(data["members"], pa.list_(pa.string()))
        index = np.repeat(np.arange(len(scenarios), dtype=np.int32), lengths)
        ids = pa.DictionaryArray.from_arrays(index, pa.array([s.id for s in scenarios], pa.string()))
        run = pa.DictionaryArray.from_arrays(np.zeros(len(index), np.int32), pa.array([run_id], pa.string()))
        tables[name] = pa.table({"run_id": run.cast(pa.string()), "scenario_id": ids.cast(pa.string()),
                                 **data})
    return tables


def scenario_tables(run_id: str, s: Scenario, agg: Aggregate) -> dict[str, pa.Table]:
    """The per-scenario tables: summary, distributions, candidates, kept episodes."""
    return group_tables(run_id, [s], [agg])


def scenario_row(run_id: str, s: Scenario) -> dict:
    """The `scenarios` row: identity and every parameter of `s`."""
    return {
        "run_id": run_id, "scenario_id": s.id, "scenario_name": s.name, "pivot": s.pivot,
        "source_path": s.path, "source_sha256": s.sha256,
        "deadline_days": s.deadline_days, "requirement": s.requirement,
        "min_partners": s.min_partners, "budget": s.budget,
        "capacity_unit": s.capacity_unit, "payment_unit": s.payment_unit,
        **{name: s.parameters[name] for name in PARAMETERS},
        **{f"mechanism_{name}": on for name, on in s.mechanisms.items()},
        "candidates": len(s.candidates), "ties": len(s.ties), "institutions": len(s.institutions),
        "candidate_ids": [c.id for c in s.candidates],
        "institution_ids": [i.id for i in s.institutions],
    }


def scenarios_table(rows: list[dict]) -> pa.Table:
    """The `scenarios` table; id lists are list<string> even when every list is empty."""
    table = pa.Table.from_pylist(rows)
    ids = pa.list_(pa.string())
    return table.cast(pa.schema([pa.field(f.name, ids) if f.name.endswith("_ids") else f
                                 for f in table.schema]))


def output_means(s, agg: Aggregate) -> dict[str, float]:
    """The four study outputs of one scenario: the means of success, size, capacity and spent
    (as in its summary table)."""
    return means_of(outcome_ranges(s).top, agg)


def means_of(top, agg: Aggregate) -> dict[str, float]:
    """`output_means` of a scenario whose ranges' top is `top`."""
    n = agg.episodes
    sizes = np.asarray(agg.size_hist, dtype=np.int64)
    return {"success": agg.successes / n,
            "size": float((np.arange(len(sizes)) * sizes).sum() / n),
            "capacity": int(agg.q_sum[0]) / GRID * top[0] / n,
            "spent": int(agg.q_sum[1]) / GRID * top[1] / n}
