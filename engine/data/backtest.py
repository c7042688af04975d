"""Historical backtests (shared/design/BACKTEST_FORMAT.md): case files, scoring, baselines, fit.

A case names a historical coalition: how to build its scenario from the
COW/ATOP data and who actually joined. `run_backtests` forecasts every case's
built scenario, the same scenario with every way a tie acts switched off
(`no_ties`) and with its ties to the pivot shuffled among the candidates
(`shuffled_ties`), in one run (common random numbers); scores them and three
data-only baselines (engine/data/baselines.py), and returns the `backtests`,
`backtest_states` and `backtest_comparisons` tables. Case files are read by
engine/data/cases.py; `pivotal backtest --fit` calibrates the builder with
engine/data/fit.py (docs/BACKTESTS.md).
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa

from engine.data import baselines, builder
from engine.data.cases import (THRESHOLD, Case, CaseError, Prepared, check_distinct, load_case,  # noqa: F401
                               notes, observed_set, participants, prepare)
from engine.model.scenario import parse_scenario

DEFAULT_EPISODES = 20_000      # per case and model in `pivotal backtest`
SEEDS = 2                      # seeds of the paired differences between models
# every way a tie acts: the four tie mechanisms and the peer effect (MODEL.md, revision 2026-12-04)
TIES_OFF = {"information": False, "linkage": False, "credibility": False, "brokers": False,
            "peers": False}
MODELS = ("pivotal", "no_ties", "shuffled_ties", "capacity", "base_rate", "logit")
SIMULATED = ("pivotal", "no_ties", "shuffled_ties")
BACKTESTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("case", pa.string()), ("model", pa.string()), ("scored", pa.int64()),
    ("participants", pa.int64()), ("auc", pa.float64()), ("brier", pa.float64()),
    ("log_loss", pa.float64()), ("episodes", pa.int64()), ("observed_set", pa.string()),
    ("size_observed", pa.int64()), ("size_percentile", pa.float64()), ("size_log_score", pa.float64()),
    ("size_mean", pa.float64()), ("size_p05", pa.int64()), ("size_p95", pa.int64()),
    ("auc_low", pa.float64()), ("auc_high", pa.float64()), ("brier_low", pa.float64()),
    ("brier_high", pa.float64()), ("log_loss_low", pa.float64()), ("log_loss_high", pa.float64())])
STATES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("case", pa.string()), ("state", pa.string()), ("ccode", pa.int64()),
    ("participated", pa.bool_()), ("p_member", pa.float64()), ("p_member_no_ties", pa.float64()),
    ("milper", pa.float64()), ("capacity_rank", pa.int64()), ("p_member_shuffled_ties", pa.float64()),
    ("p_member_logit", pa.float64())])


def scenario(p: Prepared, prm: builder.BuilderParams, ties: bool = True, shuffle: int | None = None,
             seed: int = 1, tag: str | None = None):
    """The case's scenario (validated by the project's loader); every tie off for `no_ties`, or
    its ties to the pivot in the `shuffle`-th permutation of the seed for `shuffled_ties`. A
    `tag` is appended to the scenario id (`<case>__<tag>`: the folds of a fit)."""
    c = p.case
    doc = builder.compose(p.inputs, prm, requirement=c.requirement, deadline_days=c.deadline_days,
                          budget=c.budget, name=c.name)
    scenario_id = c.slug
    if not ties:
        doc["mechanisms"] = dict(TIES_OFF)
        scenario_id = f"{c.slug}__no_ties"
    if shuffle is not None:
        permutation = baselines.tie_permutation(c.slug, seed, shuffle, len(doc["candidates"]))
        doc = baselines.shuffle_ties(doc, permutation)
        scenario_id = f"{c.slug}__shuffled_{shuffle}"
    if tag is not None:
        scenario_id = f"{scenario_id}__{tag}"
    return parse_scenario(doc, str(c.path), scenario_id=scenario_id)


# ------------------------------------------------------------------ scoring

def auc(score, y) -> float | None:
    """Area under the ROC curve = Mann-Whitney U / (n1 n0), mid-ranks for ties; None without both classes."""
    score, y = np.asarray(score, float), np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    from scipy import stats  # here, not at the top: every command imports this module for its help
    return float((stats.rankdata(score)[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_interval(a: float | None, n1: int, n0: int, z: float = 1.959963984540054) -> tuple:
    """95% interval of an AUC from n1 participants and n0 others: Newcombe's score interval
    (Stat Med 2006, 25:559, method 5), the t solving (a - t)^2 = z^2 V(t) on each side of a,
    V(t) = t (1 - t) / (n1 n0) [(2N - 1) - (3N - 3) / ((2 - t)(1 + t))], N = (n1 + n0) / 2: the
    Hanley-McNeil variance at the hypothesised t (so an AUC of 1 still gets a width, as the
    Wilson interval does at 0 successes). (None, None) without an AUC."""
    if a is None:
        return None, None
    from scipy.optimize import brentq

    big_n = (n1 + n0) / 2

    def gap(t):
        v = t * (1 - t) / (n1 * n0) * ((2 * big_n - 1) - (3 * big_n - 3) / ((2 - t) * (1 + t)))
        return (a - t) ** 2 - z * z * v

    inside = min(max(a, 1e-9), 1 - 1e-9)  # gap < 0 here, >= 0 at t = 0 and t = 1
    low = 0.0 if a <= 0 else brentq(gap, 0.0, inside, xtol=1e-14)
    high = 1.0 if a >= 1 else brentq(gap, inside, 1.0, xtol=1e-14)
    return float(low), float(high)


def mean_interval(losses) -> tuple:
    """95% interval of a mean score over states: mean +- t(0.975, n - 1) sd / sqrt(n), not below 0
    (Brier and log loss are never negative). (None, None) with fewer than 2 states."""
    losses = np.asarray(losses, float)
    if len(losses) < 2:
        return None, None
    from scipy import stats

    half = stats.t.ppf(0.975, len(losses) - 1) * losses.std(ddof=1) / math.sqrt(len(losses))
    return max(0.0, float(losses.mean() - half)), float(losses.mean() + half)


def _losses(q, y, episodes: int) -> dict:
    """Brier and log loss of probabilities q with their intervals, as `backtests` columns."""
    y = np.asarray(y, bool)
    squared = (np.asarray(q, float) - y) ** 2
    c = clip(q, episodes)
    logs = -np.where(y, np.log(c), np.log1p(-c))
    (bl, bh), (ll, lh) = mean_interval(squared), mean_interval(logs)
    return {"brier": brier(q, y), "log_loss": log_loss(q, y, episodes), "brier_low": bl, "brier_high": bh,
            "log_loss_low": ll, "log_loss_high": lh}


def clip(p, episodes: int):
    """Monte Carlo probabilities clipped to [1/(2n), 1 - 1/(2n)] (n episodes) before taking logs."""
    eps = 1.0 / (2 * episodes)
    return np.clip(np.asarray(p, float), eps, 1 - eps)


def brier(p, y) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def log_loss(p, y, episodes: int) -> float:
    """Mean negative log-likelihood of participation (natural log), probabilities clipped."""
    p, y = clip(p, episodes), np.asarray(y, bool)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def score_rows(run_id, p: Prepared, probs: dict, sizes: dict, episodes: int) -> list[dict]:
    """The `backtests` rows of one case, one per model: `probs[model]` is every candidate's
    probability of joining (None where a model has none), `sizes[model]` the distribution of
    the coalition size (scored only for a complete case)."""
    y = p.joined[p.scored]
    mil = np.nan_to_num(p.inputs.milper, nan=0.0)[p.scored]
    base = float(y.mean()) if len(y) else math.nan
    rows = []
    for model in MODELS:
        row = {"run_id": run_id, "case": p.case.name, "model": model, "scored": int(len(y)),
               "participants": int(y.sum()), "episodes": episodes, "observed_set": observed_set(p.case),
               "auc": None, "brier": None, "log_loss": None}
        n1, n0 = int(y.sum()), int(len(y) - y.sum())
        if model == "capacity":
            row["auc"] = auc(mil, y)
            row["auc_low"], row["auc_high"] = auc_interval(row["auc"], n1, n0)
        elif model == "base_rate":  # AUC 0.5 by construction: no interval
            q = np.full(len(y), base)
            row.update(auc=0.5 if 0 < y.sum() < len(y) else None, **_losses(q, y, episodes))
        elif probs.get(model) is not None:
            q = np.asarray(probs[model])[p.scored]
            row.update(auc=auc(q, y), **_losses(q, y, episodes))
            row["auc_low"], row["auc_high"] = auc_interval(row["auc"], n1, n0)
        if p.case.complete and sizes.get(model) is not None:
            row.update(baselines.size_scores(sizes[model], int(p.joined.sum()), episodes))
        rows.append(row)
    return rows


def state_rows(run_id, p: Prepared, probs: dict) -> list[dict]:
    from scipy import stats

    mil = np.nan_to_num(p.inputs.milper, nan=0.0)
    ranks = stats.rankdata(-mil[p.scored], method="min").astype(int)
    rank_of = dict(zip(np.flatnonzero(p.scored), ranks))
    value = lambda model, k: None if probs.get(model) is None else float(probs[model][k])  # noqa: E731
    return [{"run_id": run_id, "case": p.case.name, "state": s.abb, "ccode": s.ccode,
             "participated": bool(p.joined[k]), "p_member": value("pivotal", k),
             "p_member_no_ties": value("no_ties", k),
             "milper": None if np.isnan(p.inputs.milper[k]) else float(p.inputs.milper[k]),
             "capacity_rank": int(rank_of[k]), "p_member_shuffled_ties": value("shuffled_ties", k),
             "p_member_logit": value("logit", k)}
            for k, s in enumerate(p.inputs.candidates) if p.scored[k]]


def _p_member(tables, scenario_id):
    c = tables["candidates"].filter(pl.col("scenario_id") == scenario_id)
    return c["p_member"].to_numpy()


def _size_pmf(tables, scenario_id) -> np.ndarray:
    d = tables["size_distribution"].filter(pl.col("scenario_id") == scenario_id).sort("size")
    return d["probability"].to_numpy()


def backtest_scenarios(prepared: list[Prepared], prm, seed: int = 1) -> list:
    """Every case's scenario, with every tie off, and with its ties shuffled (SHUFFLES
    permutations fixed by `seed`): one run of them shares random numbers. `prm` is one
    BuilderParams for every case, or a list of one per case (leave-one-case-out parameters)."""
    per_case = prm if isinstance(prm, (list, tuple)) else [prm] * len(prepared)
    return [s for p, q in zip(prepared, per_case) for s in (
        scenario(p, q), scenario(p, q, ties=False),
        *(scenario(p, q, shuffle=k, seed=seed) for k in range(baselines.SHUFFLES)))]


def case_predictions(prepared: list[Prepared], tables: dict) -> list[tuple[dict, dict]]:
    """Per case, every model's probabilities of joining and size distributions, from a run of
    `backtest_scenarios` (Polars tables `candidates` and `size_distribution`)."""
    out = []
    for k, p in enumerate(prepared):
        slug = p.case.slug
        shuffled = [f"{slug}__shuffled_{j}" for j in range(baselines.SHUFFLES)]
        logit = baselines.logit_probabilities(prepared[:k] + prepared[k + 1:], p)
        probs = {"pivotal": _p_member(tables, slug), "no_ties": _p_member(tables, f"{slug}__no_ties"),
                 "shuffled_ties": np.mean([_p_member(tables, i) for i in shuffled], axis=0),
                 "logit": logit}
        sizes = {"pivotal": _size_pmf(tables, slug), "no_ties": _size_pmf(tables, f"{slug}__no_ties"),
                 "shuffled_ties": _mixture([_size_pmf(tables, i) for i in shuffled]),
                 "logit": None if logit is None else baselines.poisson_binomial(logit)}
        out.append((probs, sizes))
    return out


def _mixture(pmfs) -> np.ndarray:
    width = max(len(q) for q in pmfs)
    return np.mean([np.pad(q, (0, width - len(q))) for q in pmfs], axis=0)


def run_backtests(prepared: list[Prepared], prm, *, episodes=DEFAULT_EPISODES,
                  seed=1, out=None, run_id=None, progress=None, resume=False, seeds=SEEDS, **settings):
    """Forecast every case (`backtest_scenarios`, one run: common random numbers), score, and
    publish the `backtests`, `backtest_states` and `backtest_comparisons` tables with the run's
    tables when `out` is given. `prm`: one BuilderParams, or one per case. Other keywords are
    `plan_run`'s."""
    from engine.execution.plan import plan_run

    plan = plan_run(backtest_scenarios(prepared, prm, seed), episodes=episodes, seed=seed, run_id=run_id,
                    **settings)
    return run_backtest_plan(plan, prepared, prm, out=out, resume=resume, progress=progress, seeds=seeds)


def run_backtest_plan(plan, prepared: list[Prepared], prm, *, out=None,
                      resume=False, progress=None, seeds=SEEDS):
    """Steps two and three of a backtest (engine/forecast.py): execute the plan of
    `backtest_scenarios`, score it, and publish the run's tables with the cases' scores. The
    paired differences between models (`backtest_comparisons`) average `seeds` seeds: the
    plan's and the next ones, each a run of the same scenarios that is not published."""
    from engine.forecast import execute_plan, forecast

    execution, publisher = execute_plan(plan, out=out, resume=resume, progress=progress, kind="backtest",
                                        name=",".join(sorted(p.case.name for p in prepared)))
    staged = publisher.staged()
    tables = {name: pl.from_arrow(staged[name]) for name in ("candidates", "size_distribution")}
    rows, states = _scores(plan.run_id, prepared, tables, plan.episodes)
    by_seed = [_by_case(rows)]
    for extra in range(1, seeds):
        again = forecast(backtest_scenarios(prepared, prm, plan.seed + extra), episodes=plan.episodes,
                         seed=plan.seed + extra, workers=plan.workers, executor=plan.executor,
                         ray_address=plan.ray_address, progress=False)
        by_seed.append(_by_case(_scores(plan.run_id, prepared, again.tables, plan.episodes)[0]))
    comparisons = baselines.paired_differences(plan.run_id, by_seed, MODELS[1:], seed=plan.seed)
    return publisher.publish(execution, {
        "backtests": pa.Table.from_pylist(rows, schema=BACKTESTS_SCHEMA),
        "backtest_states": pa.Table.from_pylist(states, schema=STATES_SCHEMA),
        "backtest_comparisons": comparisons})


def _scores(run_id, prepared, tables, episodes) -> tuple[list, list]:
    rows, states = [], []
    for p, (probs, sizes) in zip(prepared, case_predictions(prepared, tables)):
        rows += score_rows(run_id, p, probs, sizes, episodes)
        states += state_rows(run_id, p, probs)
    return rows, states


def _by_case(rows) -> dict:
    return {(r["case"], r["model"]): r for r in rows}


def report(backtests: pl.DataFrame, comparisons: pl.DataFrame | None = None) -> str:
    """The printed table: one block per case, one line per model (with the size scores of a
    complete case), the means over cases, and pivotal minus each baseline with its interval."""
    fmt = lambda v, spec=".3f": "-" if v is None else f"{v:{spec}}"  # noqa: E731
    width = max([len("mean over cases"), *(len(c) for c in backtests["case"])])
    has_size = "size_observed" in backtests.columns and backtests["size_observed"].null_count() < backtests.height
    lines = [f"Note: {THRESHOLD}; a case scored from its own participants file counts whom "
             "that file lists (the observed_set column says which).", ""]
    size_head = f" {'size':>5} {'p05-p95':>8} {'pct':>5}" if has_size else ""
    span = lambda r, k, spec: ("-" if r.get(k + "_low") is None  # noqa: E731
                               else f"{r[k + '_low']:{spec}}-{r[k + '_high']:{spec}}")
    lines.append(f"{'case':{width}} {'model':13} {'scored':>6} {'joined':>6} {'AUC':>6} {'(95%)':>9} "
                 f"{'Brier':>6} {'(95%)':>11} {'logloss':>7} {'(95%)':>11}{size_head}")
    for r in backtests.iter_rows(named=True):
        size = ""
        if has_size and r.get("size_observed") is not None:
            size = (f" {r['size_observed']:>5} {str(r['size_p05']) + '-' + str(r['size_p95']):>8} "
                    f"{fmt(r['size_percentile'], '.2f'):>5}")
        lines.append(f"{r['case']:{width}} {r['model']:13} {r['scored']:>6} {r['participants']:>6} "
                     f"{fmt(r['auc']):>6} {span(r, 'auc', '.2f'):>9} {fmt(r['brier']):>6} "
                     f"{span(r, 'brier', '.3f'):>11} {fmt(r['log_loss']):>7} {span(r, 'log_loss', '.3f'):>11}{size}")
    means = (backtests.group_by("model", maintain_order=True)
             .agg(pl.col("auc").mean(), pl.col("brier").mean(), pl.col("log_loss").mean()))
    lines.append("")
    for r in means.iter_rows(named=True):
        lines.append(f"{'mean over cases':{width}} {r['model']:13} {'':>6} {'':>6} {fmt(r['auc']):>6} {'':>9} "
                     f"{fmt(r['brier']):>6} {'':>11} {fmt(r['log_loss']):>7}")
    if has_size:
        scored = backtests.filter(pl.col("size_observed").is_not_null())
        for model in scored["model"].unique(maintain_order=True):
            m = scored.filter(pl.col("model") == model)
            inside = ((m["size_observed"] >= m["size_p05"]) & (m["size_observed"] <= m["size_p95"])).sum()
            lines.append(f"size, {model}: observed inside the forecast's 5-95% range in {inside} of "
                         f"{m.height} complete case(s); mean log score {m['size_log_score'].mean():.3f}")
    if comparisons is not None and comparisons.height:
        c = comparisons.row(0, named=True)
        lines += ["", f"pivotal minus each baseline, mean over {c['cases']} case(s) and {c['seeds']} seed(s), "
                  "[95% bootstrap interval over cases] (AUC: higher is better; Brier, log loss: lower):"]
        for r in comparisons.iter_rows(named=True):
            if r["difference"] is None:
                continue
            lines.append(f"  {r['baseline']:13} {r['metric']:8} {r['difference']:+.3f} "
                         f"[{r['difference_low']:+.3f}, {r['difference_high']:+.3f}]  "
                         f"(seeds {r['seed_min']:+.3f} .. {r['seed_max']:+.3f}; {r['cases']} cases)")
    return "\n".join(lines)


