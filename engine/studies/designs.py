"""Sampling designs and sensitivity indices of a study (STUDY_FORMAT.md), from SALib.

Every sampler draws points in the unit cube; each input's distribution maps
its coordinate to a value with scipy's inverse CDF (`ppf`), so SALib never
sees the distributions and the same rule serves every sampler:

    uniform(low, high)            low + u (high - low)
    normal(mean, sd)              scipy.stats.norm.ppf(u, mean, sd)
    triangular(low, mode, high)   scipy.stats.triang.ppf(u, (mode-low)/(high-low), low, high-low)
    choice(values)                values[floor(u k)]  (k values, equally likely)

An input that sets an integer (bandwidth, max_rounds, min_partners) takes
whole values: uniform(low, high) gives lo + floor(u (hi - lo + 1)) with lo =
ceil(low), hi = floor(high), so every integer in range is equally likely;
normal and triangular values are rounded half up (floor(x + 1/2)).

Samplers: sobol = SALib.sample.sobol.sample (Saltelli's scheme, scrambled,
seeded by the study seed); lhs = SALib.sample.latin.sample; random = numpy's
Generator(seed).random; grid = the midpoints (i + 1/2)/levels of each
coordinate, every combination, the first input varying slowest.

Sensitivity: sobol designs are analysed with SALib.analyze.sobol (S1, ST,
S2, with bootstrap 95% intervals, the bootstrap seeded from the study seed);
lhs, random and grid designs with SALib.analyze.delta (its S1 and S1_conf;
ST is null). An output that is the same in every row has no variance to
share out: its indices are null.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pyarrow as pa

SAMPLERS = ("sobol", "lhs", "random", "grid")
DISTRIBUTIONS = {"uniform": ("low", "high"), "normal": ("mean", "sd"),
                 "triangular": ("low", "mode", "high"), "choice": ("values",)}
_TINY = 2.0 ** -53  # unit coordinates are kept inside (0, 1): no infinite normal draws

SENSITIVITY_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("output", pa.string()), ("input", pa.string()), ("method", pa.string()),
    ("S1", pa.float64()), ("S1_conf", pa.float64()), ("ST", pa.float64()), ("ST_conf", pa.float64()),
])
SENSITIVITY_S2_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("output", pa.string()), ("input_a", pa.string()),
    ("input_b", pa.string()), ("S2", pa.float64()), ("S2_conf", pa.float64()),
])


def design_rows(sampler: str, n_inputs: int, samples: int, second_order: bool, levels: int) -> int:
    """Number of rows a design has (checked before anything is sampled)."""
    if sampler == "sobol":
        return samples * ((2 * n_inputs + 2) if second_order else (n_inputs + 2))
    if sampler == "grid":
        return levels ** n_inputs
    return samples


def unit_sample(sampler: str, names: list[str], samples: int, second_order: bool, levels: int,
                seed: int) -> np.ndarray:
    """(rows, inputs) points in (0, 1), in design order."""
    d = len(names)
    if sampler == "sobol":
        from SALib.sample import sobol
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SALib warns about convergence properties
            u = sobol.sample(_problem(names), samples, calc_second_order=second_order, seed=seed)
    elif sampler == "lhs":
        from SALib.sample import latin
        u = latin.sample(_problem(names), samples, seed=seed)
    elif sampler == "random":
        u = np.random.default_rng(seed).random((samples, d))
    elif sampler == "grid":
        axis = (np.arange(levels) + 0.5) / levels
        u = np.array(list(itertools.product(axis, repeat=d)), dtype=float).reshape(-1, d)
    else:
        raise ValueError(f"unknown sampler {sampler!r}")
    return np.clip(np.asarray(u, dtype=float), _TINY, 1 - _TINY)


def to_values(distribution: str, params: dict, u: np.ndarray, integer: bool = False) -> list:
    """Map unit coordinates to an input's values (booleans stay booleans; `integer`: whole
    numbers, every integer of a uniform's range equally likely)."""
    if integer and distribution == "uniform":
        lo, hi = math.ceil(params["low"]), math.floor(params["high"])
        return [int(lo + min(math.floor(x * (hi - lo + 1)), hi - lo)) for x in u]
    if integer and distribution in ("normal", "triangular"):
        return [int(math.floor(x + 0.5)) for x in to_values(distribution, params, u)]
    if distribution == "uniform":
        return [float(x) for x in params["low"] + u * (params["high"] - params["low"])]
    if distribution == "normal":
        from scipy import stats
        if params["sd"] == 0:
            return [float(params["mean"])] * len(u)
        return [float(x) for x in stats.norm.ppf(u, loc=params["mean"], scale=params["sd"])]
    if distribution == "triangular":
        low, mode, high = params["low"], params["mode"], params["high"]
        if high == low:
            return [float(low)] * len(u)
        from scipy import stats
        return [float(x) for x in stats.triang.ppf(u, (mode - low) / (high - low), loc=low, scale=high - low)]
    if distribution == "choice":
        values = params["values"]
        k = len(values)
        return [values[min(int(math.floor(x * k)), k - 1)] for x in u]
    raise ValueError(f"unknown distribution {distribution!r}")


def preload_analysis(sampler: str):
    """Import the SALib analysis of `sampler` (with scipy, most of a second) on a background
    thread, so the import overlaps the run's chunks instead of following them."""
    import importlib
    import threading

    module = "SALib.analyze.sobol" if sampler == "sobol" else "SALib.analyze.delta"
    thread = threading.Thread(target=importlib.import_module, args=(module,), daemon=True)
    thread.start()
    return thread


def _problem(names):
    return {"num_vars": len(names), "names": list(names), "bounds": [[0.0, 1.0]] * len(names)}


def _analyse(run) -> dict:
    """SALib's result, or {} (null indices) when a design too small for the estimator makes
    it fail: the run's other tables are still published."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return run()
        except (ValueError, ZeroDivisionError, FloatingPointError, IndexError, np.linalg.LinAlgError):
            return {}


def _clean(x):
    x = float(x)
    return x if math.isfinite(x) else None


def sensitivity_tables(run_id: str, sampler: str, names: list[str], unit: np.ndarray,
                       outputs: dict[str, np.ndarray], second_order: bool, seed: int):
    """The `sensitivity` table (output x input) and, for second-order sobol designs,
    `sensitivity_s2` (output x pair of inputs)."""
    rows, rows2 = [], []
    problem = _problem(names)
    for output, y in outputs.items():
        y = np.asarray(y, dtype=float)
        constant = not (np.ptp(y) > 0)
        if sampler == "sobol":
            if constant:
                res = {}
            else:
                from SALib.analyze import sobol
                res = _analyse(lambda: sobol.analyze(problem, y, calc_second_order=second_order,
                                                     num_resamples=100, conf_level=0.95, seed=seed + 1))
            for i, name in enumerate(names):
                rows.append({"run_id": run_id, "output": output, "input": name, "method": "sobol",
                             **{k: (_clean(res[k][i]) if res else None)
                                for k in ("S1", "S1_conf", "ST", "ST_conf")}})
            if second_order:
                for i, j in itertools.combinations(range(len(names)), 2):
                    rows2.append({"run_id": run_id, "output": output, "input_a": names[i],
                                  "input_b": names[j],
                                  "S2": _clean(res["S2"][i, j]) if res else None,
                                  "S2_conf": _clean(res["S2_conf"][i, j]) if res else None})
        else:
            if constant:
                res = {}
            else:
                from SALib.analyze import delta
                res = _analyse(lambda: delta.analyze(problem, unit, y, num_resamples=100, conf_level=0.95,
                                                     seed=seed + 1, method="sobol"))
            for i, name in enumerate(names):
                rows.append({"run_id": run_id, "output": output, "input": name, "method": "delta",
                             "S1": _clean(res["S1"][i]) if res else None,
                             "S1_conf": _clean(res["S1_conf"][i]) if res else None,
                             "ST": None, "ST_conf": None})
    tables = {"sensitivity": pa.Table.from_pylist(rows, schema=SENSITIVITY_SCHEMA)}
    if sampler == "sobol" and second_order:
        tables["sensitivity_s2"] = pa.Table.from_pylist(rows2, schema=SENSITIVITY_S2_SCHEMA)
    return tables
