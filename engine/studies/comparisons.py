"""Paired comparisons of variants with their base scenario (STUDY_FORMAT.md `comparisons`).

The base and its variants run in one group over the same episodes, so
episode e of each uses the same random numbers. Besides its own sums, each
scenario then carries exact cross sums with the base (engine/execution/pairs.py), sum over episodes of
b_e * v_e for success, size, capacity and spent (capacity and spent on the
same 2**-32 grid of their range as the kernel's sums), from which the
variance of the paired difference follows exactly:

    var(v - b) = var(v) + var(b) - 2 cov(b, v)

`independent_se` is the standard error the difference would have had with
independent draws, sqrt(var_b/n + var_v/n); `variance_reduction` is
independent_se^2 / difference_se^2 (null when the paired difference is 0 in
every episode).
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from engine.execution.aggregate import Aggregate
from engine.outputs.figures import PAIRED, parse_figure
from kernels.chunk import GRID

OUTPUTS = ("success", "size", "capacity", "spent")   # STUDY_FORMAT's four outputs
Z95 = 1.959963984540054

COMPARISONS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("variant", pa.string()), ("scenario_id", pa.string()),
    ("output", pa.string()), ("episodes", pa.int64()), ("base_mean", pa.float64()),
    ("variant_mean", pa.float64()), ("difference", pa.float64()), ("difference_se", pa.float64()),
    ("difference_low", pa.float64()), ("difference_high", pa.float64()),
    ("independent_se", pa.float64()), ("variance_reduction", pa.float64()),
])


def _moments(agg: Aggregate, top: np.ndarray):
    """Per output: (sum, sum of squares, unit) with sum*unit the plain sum and
    sumsq*unit**2 the plain sum of squares; sums are exact integers."""
    k = np.arange(len(agg.size_hist), dtype=object)
    hist = np.asarray(agg.size_hist).astype(object)
    return {
        "success": (agg.successes, agg.successes, 1.0),
        "size": (int((k * hist).sum()), int((k * k * hist).sum()), 1.0),
        "capacity": (int(agg.q_sum[0]), int(agg.q_sumsq[0]) * int(GRID), float(top[0]) / GRID),
        "spent": (int(agg.q_sum[1]), int(agg.q_sumsq[1]) * int(GRID), float(top[1]) / GRID),
    }


def _paired(n, b, v, cross) -> dict:
    """Paired difference of two sets of n episodes: b and v are (sum, sum of squares, unit) as
    `_moments` gives them, `cross` the sum of their products (in the units' grid)."""
    (sb, ssb, ub), (sv, ssv, uv) = b, v
    # n(n-1) var and n(n-1) cov in squared units, as exact integers
    vb, vv, cv = n * ssb - sb * sb, n * ssv - sv * sv, n * cross - sb * sv
    mean_b, mean_v = sb * ub / n, sv * uv / n
    if ub == uv:
        vd = (vb + vv - 2 * cv) * ub * ub
    else:
        vd = vb * ub * ub + vv * uv * uv - 2 * cv * ub * uv
    scale = n * (n - 1) * n if n > 1 else math.inf  # var/n = X / (n (n-1) n)
    var_b, var_v = vb * ub * ub / scale, vv * uv * uv / scale
    d_se = math.sqrt(max(vd, 0.0) / scale)
    ind_se = math.sqrt(max(var_b, 0.0) + max(var_v, 0.0))
    diff = mean_v - mean_b
    return {"episodes": n, "base_mean": mean_b, "variant_mean": mean_v,
            "difference": diff, "difference_se": d_se,
            "difference_low": diff - Z95 * d_se, "difference_high": diff + Z95 * d_se,
            "independent_se": ind_se,
            "variance_reduction": ind_se ** 2 / d_se ** 2 if d_se > 0 else None}


def compare(base: Aggregate, base_top, variant: Aggregate, variant_top) -> dict[str, dict]:
    """Paired comparison of `variant` with `base` (same episodes) for each output."""
    n = base.episodes
    assert variant.episodes == n
    mb, mv = _moments(base, base_top), _moments(variant, variant_top)
    return {name: _paired(n, mb[name], mv[name],
                          int(variant.paired[j]) * (int(GRID) if name in ("capacity", "spent") else 1))
            for j, name in enumerate(OUTPUTS)}


def compare_figure(path: str, base: Aggregate, variant: Aggregate, base_value: float,
                   variant_value: float, candidates: list[str]) -> dict:
    """Comparison of one figure (engine/outputs/figures.py) of a variant with the base's: paired
    as `compare` for a mean of the four outputs and for a candidate's membership (exact cross sums
    of the paired episodes); else the two values and their difference, the standard errors null."""
    kind, a, b = parse_figure(path)
    n = base.episodes
    if kind == "candidate" and b == "p_member" and len(variant.paired) == 4 + len(candidates):
        j = candidates.index(a)
        mb, mv = int(base.cand_counts[0][j]), int(variant.cand_counts[0][j])
        return _paired(n, (mb, mb, 1.0), (mv, mv, 1.0), int(variant.paired[4 + j]))
    nan = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
    diff = nan(variant_value - base_value)
    return {"episodes": n, "base_mean": nan(base_value), "variant_mean": nan(variant_value),
            "difference": diff, "difference_se": None, "difference_low": None, "difference_high": None,
            "independent_se": None, "variance_reduction": None}


def comparisons_table(run_id: str, base, variants, outputs=OUTPUTS, values=None) -> pa.Table:
    """`variants`: (name, scenario id, Aggregate, top) each; `base`: (Aggregate, top). With
    `outputs` (figure paths) and `values` ({scenario id: their values}), one row per figure; the
    base's candidates are `base[2]`."""
    rows = []
    for name, scenario_id, agg, top in variants:
        paired = compare(base[0], base[1], agg, top)
        for k, output in enumerate(outputs):
            r = paired[OUTPUTS[PAIRED[output]]] if output in PAIRED else compare_figure(
                output, base[0], agg, values["base"][k], values[scenario_id][k], base[2])
            rows.append({"run_id": run_id, "variant": name, "scenario_id": scenario_id,
                         "output": output, **r})
    return pa.Table.from_pylist(rows, schema=COMPARISONS_SCHEMA)
