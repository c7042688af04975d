"""Historical backtests (shared/design/BACKTEST_FORMAT.md): case files, scoring, baselines, fit.

A case names a historical coalition: how to build its scenario from the
COW/ATOP data and who actually joined. `run_backtests` forecasts every case's
built scenario and the same scenario with its tie mechanisms off, in one run
(common random numbers), scores both and two data-only baselines, and returns
the `backtests` and `backtest_states` tables. Case files are read by
engine/data/cases.py; `pivotal backtest --fit` calibrates the builder with
engine/data/fit.py (docs/BACKTESTS.md).
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa

from engine.data import builder
from engine.data.cases import (THRESHOLD, Case, CaseError, Prepared, check_distinct, load_case,  # noqa: F401
                               notes, observed_set, participants, prepare)
from engine.model.scenario import parse_scenario

DEFAULT_EPISODES = 20_000      # per case and model in `pivotal backtest`
TIES_OFF = {"information": False, "linkage": False, "credibility": False, "brokers": False}
MODELS = ("pivotal", "no_ties", "capacity", "base_rate")
BACKTESTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("case", pa.string()), ("model", pa.string()), ("scored", pa.int64()),
    ("participants", pa.int64()), ("auc", pa.float64()), ("brier", pa.float64()),
    ("log_loss", pa.float64()), ("episodes", pa.int64()), ("observed_set", pa.string())])
STATES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("case", pa.string()), ("state", pa.string()), ("ccode", pa.int64()),
    ("participated", pa.bool_()), ("p_member", pa.float64()), ("p_member_no_ties", pa.float64()),
    ("milper", pa.float64()), ("capacity_rank", pa.int64())])


def scenario(p: Prepared, prm: builder.BuilderParams, ties: bool = True):
    """The case's scenario (validated by the project's loader); ties off for the `no_ties` model."""
    c = p.case
    doc = builder.compose(p.inputs, prm, requirement=c.requirement, deadline_days=c.deadline_days,
                          budget=c.budget, name=c.name)
    if not ties:
        doc["mechanisms"] = dict(TIES_OFF)
    return parse_scenario(doc, str(c.path), scenario_id=c.slug if ties else f"{c.slug}__no_ties")


# ------------------------------------------------------------------ scoring

def auc(score, y) -> float | None:
    """Area under the ROC curve = Mann-Whitney U / (n1 n0), mid-ranks for ties; None without both classes."""
    score, y = np.asarray(score, float), np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    from scipy import stats  # here, not at the top: every command imports this module for its help
    return float((stats.rankdata(score)[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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


def score_rows(run_id, p: Prepared, p_member, p_no_ties, episodes: int) -> list[dict]:
    """The `backtests` rows of one case: pivotal, no_ties, capacity, base_rate."""
    y = p.joined[p.scored]
    mil = np.nan_to_num(p.inputs.milper, nan=0.0)[p.scored]
    base = float(y.mean()) if len(y) else math.nan
    probs = {"pivotal": np.asarray(p_member)[p.scored], "no_ties": np.asarray(p_no_ties)[p.scored],
             "base_rate": np.full(len(y), base)}
    rows = []
    for model in MODELS:
        row = {"run_id": run_id, "case": p.case.name, "model": model, "scored": int(len(y)),
               "participants": int(y.sum()), "episodes": episodes, "observed_set": observed_set(p.case)}
        if model == "capacity":
            row.update(auc=auc(mil, y), brier=None, log_loss=None)
        else:
            q = probs[model]
            row.update(auc=0.5 if model == "base_rate" and 0 < y.sum() < len(y) else auc(q, y),
                       brier=brier(q, y), log_loss=log_loss(q, y, episodes))
        rows.append(row)
    return rows


def state_rows(run_id, p: Prepared, p_member, p_no_ties) -> list[dict]:
    from scipy import stats

    mil = np.nan_to_num(p.inputs.milper, nan=0.0)
    ranks = stats.rankdata(-mil[p.scored], method="min").astype(int)
    rank_of = dict(zip(np.flatnonzero(p.scored), ranks))
    return [{"run_id": run_id, "case": p.case.name, "state": s.abb, "ccode": s.ccode,
             "participated": bool(p.joined[k]), "p_member": float(p_member[k]),
             "p_member_no_ties": float(p_no_ties[k]),
             "milper": None if np.isnan(p.inputs.milper[k]) else float(p.inputs.milper[k]),
             "capacity_rank": int(rank_of[k])}
            for k, s in enumerate(p.inputs.candidates) if p.scored[k]]


def _p_member(tables, scenario_id):
    c = tables["candidates"].filter(pl.col("scenario_id") == scenario_id)
    return c["p_member"].to_numpy()


def backtest_scenarios(prepared: list[Prepared], prm: builder.BuilderParams) -> list:
    """Every case's scenario with ties on and off: one run of them shares random numbers."""
    return [s for p in prepared for s in (scenario(p, prm), scenario(p, prm, ties=False))]


def run_backtests(prepared: list[Prepared], prm: builder.BuilderParams, *, episodes=DEFAULT_EPISODES,
                  seed=1, out=None, run_id=None, progress=None, resume=False, **settings):
    """Forecast every case (ties on and off, one run: common random numbers), score, and publish
    the `backtests` and `backtest_states` tables with the run's tables when `out` is given.
    Other keywords are `plan_run`'s."""
    from engine.execution.plan import plan_run

    plan = plan_run(backtest_scenarios(prepared, prm), episodes=episodes, seed=seed, run_id=run_id,
                    **settings)
    return run_backtest_plan(plan, prepared, out=out, resume=resume, progress=progress)


def run_backtest_plan(plan, prepared: list[Prepared], *, out=None, resume=False, progress=None):
    """Steps two and three of a backtest (engine/forecast.py): execute the plan of
    `backtest_scenarios`, then publish the run's tables with the cases' scores."""
    from engine.forecast import execute_plan

    execution, publisher = execute_plan(plan, out=out, resume=resume, progress=progress)
    tables = {"candidates": pl.from_arrow(publisher.staged()["candidates"])}
    rows, states = [], []
    for p in prepared:
        on = _p_member(tables, p.case.slug)
        off = _p_member(tables, f"{p.case.slug}__no_ties")
        rows += score_rows(plan.run_id, p, on, off, plan.episodes)
        states += state_rows(plan.run_id, p, on, off)
    return publisher.publish(execution, {
        "backtests": pa.Table.from_pylist(rows, schema=BACKTESTS_SCHEMA),
        "backtest_states": pa.Table.from_pylist(states, schema=STATES_SCHEMA)})


def report(backtests: pl.DataFrame) -> str:
    """The printed table: one block per case, one line per model."""
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    width = max([len("mean over cases"), *(len(c) for c in backtests["case"])])
    lines = [f"Note: {THRESHOLD}; a case scored from its own participants file counts whom "
             "that file lists (the observed_set column says which).", ""]
    lines.append(f"{'case':{width}} {'model':10} {'scored':>6} {'joined':>6} {'AUC':>6} {'Brier':>6} "
                 f"{'logloss':>7}")
    for r in backtests.iter_rows(named=True):
        lines.append(f"{r['case']:{width}} {r['model']:10} {r['scored']:>6} {r['participants']:>6} "
                     f"{fmt(r['auc']):>6} {fmt(r['brier']):>6} {fmt(r['log_loss']):>7}")
    means = (backtests.group_by("model", maintain_order=True)
             .agg(pl.col("auc").mean(), pl.col("brier").mean(), pl.col("log_loss").mean()))
    lines.append("")
    for r in means.iter_rows(named=True):
        lines.append(f"{'mean over cases':{width}} {r['model']:10} {'':>6} {'':>6} {fmt(r['auc']):>6} "
                     f"{fmt(r['brier']):>6} {fmt(r['log_loss']):>7}")
    return "\n".join(lines)


