"""Drift: did a scenario's headline figures move since the previous night, beyond Monte Carlo error?

For each scenario the figures are the success probability, the mean size, the mean capacity and
every candidate's probability of membership. Two runs are two independent estimates (different
seeds; with the same seed they share random numbers, which only makes the test conservative),
so for each figure

    z = (current - previous) / sqrt(se_current^2 + se_previous^2)

A figure is flagged when |z| exceeds the two-sided critical value of a Bonferroni correction
over the scenario's K figures, z > Phi^-1(1 - alpha / (2 K)), *and* its change is larger than a
stated minimum. So a rerun that changed only the seed flags a scenario with probability at most
`alpha` (docs/NIGHTLY.md states the defaults; tests/suite/test_drift.py checks it over seeds).

Probabilities use the Agresti-Coull standard error, sqrt(p~(1 - p~) / (n + 4)) with
p~ = (n p + 2) / (n + 4): a run that never (or always) saw an event still has an error.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import polars as pl
import pyarrow as pa

DRIFT_SCHEMA = pa.schema([
    ("suite_run_id", pa.string()), ("suite", pa.string()), ("item", pa.string()),
    ("scenario_id", pa.string()), ("figure", pa.string()),
    ("previous_run_id", pa.string()), ("run_id", pa.string()),
    ("previous", pa.float64()), ("current", pa.float64()), ("difference", pa.float64()),
    ("se", pa.float64()), ("z", pa.float64()), ("z_critical", pa.float64()),
    ("minimum", pa.float64()), ("significant", pa.bool_()), ("flagged", pa.bool_()),
    ("cause", pa.string())])


def proportion_se(p: float, n: int) -> float:
    """Agresti-Coull standard error of a proportion estimated from n episodes."""
    tilde = (p * n + 2.0) / (n + 4.0)
    return math.sqrt(tilde * (1.0 - tilde) / (n + 4.0))


def figures(summary: pl.DataFrame, candidates: pl.DataFrame, scenario_id: str) -> dict:
    """A scenario's headline figures: name -> (value, standard error), from a run's `summary`
    and `candidates` tables."""
    rows = {r["metric"]: r for r in summary.filter(pl.col("scenario_id") == scenario_id).iter_rows(named=True)}
    out = {}
    if "success" in rows:
        n = int(rows["success"]["n"])
        p = rows["success"]["mean"]
        out["success"] = (p, proportion_se(p, n))
    for metric in ("size", "capacity"):
        if metric in rows and rows[metric]["mean"] is not None:
            out[metric] = (rows[metric]["mean"], rows[metric]["se"] or 0.0)
    n = int(rows["success"]["n"]) if "success" in rows else 0
    for c in candidates.filter(pl.col("scenario_id") == scenario_id).iter_rows(named=True):
        if c["p_member"] is not None and n:
            out[f"member:{c['candidate_id']}"] = (c["p_member"], proportion_se(c["p_member"], n))
    return out


def minimum(figure: str, previous: float, settings: dict) -> float:
    """The smallest change worth a flag: absolute for probabilities and size, relative to the
    previous value for capacity."""
    if figure == "success":
        return settings["min_success"]
    if figure.startswith("member:"):
        return settings["min_membership"]
    if figure == "size":
        return settings["min_size"]
    return settings["min_capacity"] * abs(previous)


def compare(previous: dict, current: dict, settings: dict, correct: bool = True) -> list[dict]:
    """One row per figure present in both runs: difference, z, the critical value, whether it is
    significant and whether it is flagged (significant and larger than its minimum).
    `correct=False` drops the multiple-comparison correction (for tests that show it matters)."""
    names = [f for f in current if f in previous]
    if not names:
        return []
    k = len(names) if correct else 1
    z_critical = NormalDist().inv_cdf(1.0 - settings["alpha"] / (2.0 * k))
    rows = []
    for f in names:
        (before, se_before), (now, se_now) = previous[f], current[f]
        diff = now - before
        se = math.sqrt(se_before ** 2 + se_now ** 2)
        z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
        least = minimum(f, before, settings)
        significant = abs(z) > z_critical
        rows.append({"figure": f, "previous": before, "current": now, "difference": diff, "se": se,
                     "z": z if math.isfinite(z) else None, "z_critical": z_critical, "minimum": least,
                     "significant": significant, "flagged": significant and abs(diff) > least})
    return rows


def flag_text(row: dict) -> str:
    """One line for a flagged figure: 'syria success 27.0% -> 35.2% (z +6.1; input changed: x.toml)'."""
    def fmt(v):
        if row["figure"] == "success" or row["figure"].startswith("member:"):
            return f"{v:.1%}"
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    z = "inf" if row["z"] is None else f"{row['z']:+.1f}"
    return (f"{row['scenario_id']} {row['figure']} {fmt(row['previous'])} -> {fmt(row['current'])} "
            f"(z {z}; {row['cause']})")


def drift_cause(changes: list[str]) -> str:
    """What the flags of a rerun item name as the cause of a move."""
    if not changes:
        return "cause unknown (the inputs are the same)"
    if changes == ["settings changed: seed"]:
        return "seed changed only (expected: noise)"
    return "; ".join(changes)
