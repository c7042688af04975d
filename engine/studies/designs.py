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

Samplers: sobol = SALib.sample.sobol.sample (Saltelli's scheme, scrambled)
run as R independent replicates (`replicates`, default 8, fewer when that
would leave a replicate under 2 base samples): replicate k is N/R base samples
scrambled with its own seed (from the study seed and k), its rows consecutive;
lhs = SALib.sample.latin.sample; random = numpy's Generator(seed).random;
grid = the midpoints (i + 1/2)/levels of each coordinate, every combination,
the first input varying slowest; morris = SALib.sample.morris.sample (N trajectories
of D + 1 points on a `levels`-level grid, seeded); fast = SALib.sample.fast_sampler.sample
(extended FAST, M = 4: N points per input, N > 4 M^2 = 64, seeded).

Sensitivity: sobol designs are analysed with SALib.analyze.sobol on all rows
(S1, ST, S2); their 95% half-widths come from the replicates, not from SALib's
bootstrap, which treats scrambled Sobol' points as independent (its intervals
were about 4x the spread of the indices across independent designs): a
leave-one-replicate-out jackknife standard error times Student's t with R - 1
degrees of freedom (null with one replicate). lhs, random and grid designs are
analysed with SALib.analyze.delta (its S1 and bootstrap S1_conf; ST is null);
morris designs with SALib.analyze.morris (mu, mu_star, its bootstrap mu_star_conf,
sigma: elementary effects per whole range of an input's unit coordinate; S1 and ST
null); fast designs with SALib.analyze.fast (S1, ST and their bootstrap half-widths).
An output that is the same in every row has no variance to share out: its
indices are null.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pyarrow as pa

SAMPLERS = ("sobol", "lhs", "random", "grid", "morris", "fast")
FAST_M = 4           # the extended FAST interference factor (SALib's default): N > 4 M^2
DISTRIBUTIONS = {"uniform": ("low", "high"), "normal": ("mean", "sd"),
                 "triangular": ("low", "mode", "high"), "choice": ("values",)}
_TINY = 2.0 ** -53  # unit coordinates are kept inside (0, 1): no infinite normal draws
REPLICATES = 8       # independent scrambles of a sobol design, by default

SENSITIVITY_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("output", pa.string()), ("input", pa.string()), ("method", pa.string()),
    ("S1", pa.float64()), ("S1_conf", pa.float64()), ("ST", pa.float64()), ("ST_conf", pa.float64()),
    ("mu", pa.float64()), ("mu_star", pa.float64()), ("mu_star_conf", pa.float64()), ("sigma", pa.float64()),
])
MORRIS = ("mu", "mu_star", "mu_star_conf", "sigma")
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
    if sampler == "morris":
        return samples * (n_inputs + 1)
    if sampler == "fast":
        return samples * n_inputs
    return samples


def design_rule(sampler: str, samples: int, levels: int) -> tuple[str, str] | None:
    """(key, rule) a design's size breaks, or None."""
    if levels < 1:
        return "design.levels", f"must be a positive integer (got {levels})"
    if sampler == "sobol" and samples & (samples - 1):
        return "design.samples", f"must be a power of 2 for sobol (got {samples})"
    if sampler == "fast" and samples <= 4 * FAST_M ** 2:
        return "design.samples", f"must be above {4 * FAST_M ** 2} for fast (4 M^2, M = {FAST_M}) (got {samples})"
    if sampler == "morris" and (levels < 2 or levels % 2):
        return "design.levels", f"must be an even number of at least 2 for morris (got {levels})"
    return None


def default_replicates(samples: int) -> int:
    """Independent scrambles of a sobol design of `samples` base samples: REPLICATES, or fewer
    so that each holds at least 2 base samples (1, and no interval, below 4 samples)."""
    return max(1, min(REPLICATES, samples // 2))


def replicate_seed(seed: int, k: int) -> int:
    """The scrambling seed of replicate k of a sobol design of study seed `seed`."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def unit_sample(sampler: str, names: list[str], samples: int, second_order: bool, levels: int,
                seed: int, replicates: int | None = None) -> np.ndarray:
    """(rows, inputs) points in (0, 1), in design order (sobol: `replicates` independent
    scrambles of samples / replicates base samples each, one after the other)."""
    d = len(names)
    if sampler == "sobol":
        from SALib.sample import sobol
        r = replicates or default_replicates(samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SALib warns about convergence properties
            u = np.vstack([sobol.sample(_problem(names), samples // r, calc_second_order=second_order,
                                        seed=replicate_seed(seed, k)) for k in range(r)])
    elif sampler == "lhs":
        from SALib.sample import latin
        u = latin.sample(_problem(names), samples, seed=seed)
    elif sampler == "random":
        u = np.random.default_rng(seed).random((samples, d))
    elif sampler == "morris":
        from SALib.sample import morris
        u = morris.sample(_problem(names), samples, num_levels=levels, seed=seed)
    elif sampler == "fast":
        from SALib.sample import fast_sampler
        u = fast_sampler.sample(_problem(names), samples, M=FAST_M, seed=seed)
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

    module = {"sobol": "SALib.analyze.sobol", "morris": "SALib.analyze.morris",
              "fast": "SALib.analyze.fast"}.get(sampler, "SALib.analyze.delta")
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


def _at(res: dict, key: str, where):
    """res[key][where] as a clean float, None when the analysis left it out."""
    return None if res.get(key) is None else _clean(res[key][where])


def _replicate_conf(y: np.ndarray, d: int, second_order: bool, replicates: int) -> dict:
    """95% half-widths of the sobol indices of a design of `replicates` independent blocks:
    t(0.975, R - 1) times the leave-one-replicate-out jackknife standard error (SALib's
    estimators on the other R - 1 blocks). {} with fewer than 2 replicates."""
    from scipy import stats
    from SALib.analyze.sobol import first_order, second_order as s2, separate_output_values, total_order

    n = len(y) // (2 * d + 2 if second_order else d + 2)
    if replicates < 2 or n % replicates:
        return {}
    y = (y - y.mean()) / y.std()  # as SALib does before its estimators
    a, b, ab, ba = separate_output_values(y, d, n, second_order)
    block = np.arange(n) // (n // replicates)
    pairs = list(itertools.combinations(range(d), 2)) if second_order else []
    held = []
    for k in range(replicates):
        m = block != k
        held.append([first_order(a[m], ab[m, j], b[m]) for j in range(d)]
                    + [total_order(a[m], ab[m, j], b[m]) for j in range(d)]
                    + [s2(a[m], ab[m, i], ab[m, j], ba[m, i], b[m]) for i, j in pairs])
    held = np.asarray(held, dtype=float)
    se = np.sqrt((replicates - 1) / replicates * ((held - held.mean(axis=0)) ** 2).sum(axis=0))
    half = stats.t.ppf(0.975, replicates - 1) * se
    s2_conf = np.full((d, d), np.nan)
    for (i, j), h in zip(pairs, half[2 * d:]):
        s2_conf[i, j] = h
    return {"S1_conf": half[:d], "ST_conf": half[d:2 * d], "S2_conf": s2_conf}


def sensitivity_tables(run_id: str, sampler: str, names: list[str], unit: np.ndarray,
                       outputs: dict[str, np.ndarray], second_order: bool, seed: int,
                       replicates: int | None = None, levels: int = 4):
    """The `sensitivity` table (output x input) and, for second-order sobol designs,
    `sensitivity_s2` (output x pair of inputs). A sobol design's `replicates` (default:
    `default_replicates` of its base samples) give its intervals; a morris design's
    `levels` its step. An output missing (NaN) in a row has null indices."""
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
                samples = len(y) // (2 * len(names) + 2 if second_order else len(names) + 2)
                r = replicates or default_replicates(samples)
                res = _analyse(lambda: sobol.analyze(problem, y, calc_second_order=second_order,
                                                     num_resamples=2, conf_level=0.95, seed=seed + 1))
                if res:  # SALib's bootstrap half-widths are replaced, never shown
                    res = {**res, "S1_conf": None, "ST_conf": None, "S2_conf": None,
                           **_analyse(lambda: _replicate_conf(y, len(names), second_order, r))}
            for i, name in enumerate(names):
                rows.append({"run_id": run_id, "output": output, "input": name, "method": "sobol",
                             **{k: _at(res, k, i) for k in ("S1", "S1_conf", "ST", "ST_conf")}})
            if second_order:
                for i, j in itertools.combinations(range(len(names)), 2):
                    rows2.append({"run_id": run_id, "output": output, "input_a": names[i],
                                  "input_b": names[j], "S2": _at(res, "S2", (i, j)),
                                  "S2_conf": _at(res, "S2_conf", (i, j))})
        elif sampler in ("morris", "fast"):
            rows += _screening_rows(run_id, sampler, problem, unit, y, output, constant, seed, levels)
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


def _screening_rows(run_id, sampler, problem, unit, y, output, constant, seed, levels) -> list[dict]:
    """The `sensitivity` rows of a morris (mu, mu_star, mu_star_conf, sigma) or fast (S1, ST
    and their half-widths) design, from SALib's own analysis."""
    res = {}
    if not constant and sampler == "morris":
        from SALib.analyze import morris
        res = _analyse(lambda: morris.analyze(problem, unit, y, num_resamples=100, conf_level=0.95,
                                              num_levels=levels, seed=seed + 1))
    elif not constant:
        from SALib.analyze import fast
        res = _analyse(lambda: fast.analyze(problem, y, M=FAST_M, num_resamples=100, conf_level=0.95,
                                            seed=seed + 1))
    keys = MORRIS if sampler == "morris" else ("S1", "S1_conf", "ST", "ST_conf")
    return [{"run_id": run_id, "output": output, "input": name, "method": sampler,
             **{k: _at(res, k, i) for k in keys}} for i, name in enumerate(problem["names"])]
