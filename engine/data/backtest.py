"""Historical backtests (shared/design/BACKTEST_FORMAT.md): case files, scoring, baselines, fit.

A case names a historical coalition: how to build its scenario from the
COW/ATOP data and who actually joined. `run_backtests` forecasts every case's
built scenario and the same scenario with its tie mechanisms off, in one run
(common random numbers), scores both and two data-only baselines, and returns
the `backtests` and `backtest_states` tables. `fit` calibrates the builder's
preference coefficients and budget to the cases (docs/BACKTESTS.md).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from engine.data import builder, cow
from engine.data.cow import DataError
from engine.model.scenario import parse_scenario, read_toml

DEFAULT_EPISODES = 20_000      # per case and model in `pivotal backtest`
FIT_EPISODES = 2_000           # per case in each evaluation of the fit's objective
FIT_MAX_EVALS = 400            # objective evaluations per fit (Nelder-Mead)
THRESHOLD = ("COW lists only states above its participation threshold (about 1,000 troops in combat "
             "or 100 battle deaths): participants are the major contributors")
TIES_OFF = {"information": False, "linkage": False, "credibility": False, "brokers": False}
MODELS = ("pivotal", "no_ties", "capacity", "base_rate")
# the fitted parameters (docs/BACKTESTS.md); budget is searched on a log scale
FIT_NAMES = ("pref_intercept", "pref_ally_pivot", "pref_ally_target", "pref_igo", "pref_log_distance",
             "pref_major", "pref_major_ally", "pref_log_milper", "budget")
# every fit starts here (a documented prior, not the shipped fitted values, so that a
# leave-one-case-out fit never starts from values that saw the held-out case)
FIT_START = {"pref_intercept": -1.5, "pref_ally_pivot": 1.0, "pref_ally_target": -1.0, "pref_igo": 1.0,
             "pref_log_distance": -0.3, "pref_major": 0.5, "pref_major_ally": 0.5, "pref_log_milper": 0.3,
             "budget": 5.0}
FIT_STEPS = (0.5, 0.5, 0.5, 0.5, 0.2, 0.5, 0.5, 0.2, 0.7)  # the first simplex's step in each coordinate
# The signs theory gives the coefficients (docs/BACKTESTS.md, "Calibration"): an alliance with the
# pivot, shared IGOs, major-power status (allied or not) and capacity make joining likelier; an
# alliance with the target and distance from the theater make it less likely. The fit keeps each
# within its sign.
FIT_SIGNS = {"pref_ally_pivot": 1, "pref_ally_target": -1, "pref_igo": 1, "pref_log_distance": -1,
             "pref_major": 1, "pref_major_ally": 1, "pref_log_milper": 1}
# A Normal(FIT_START, FIT_PRIOR_SD) prior on each signed coefficient: the fit maximises the mean
# log-likelihood minus sum((b - start)^2) / (2 sd^2 N), N = the scored states of all cases
# (a maximum a posteriori estimate; five cases cannot pin nine free values down alone).
FIT_PRIOR_SD = 1.0

BACKTESTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("case", pa.string()), ("model", pa.string()), ("scored", pa.int64()),
    ("participants", pa.int64()), ("auc", pa.float64()), ("brier", pa.float64()),
    ("log_loss", pa.float64()), ("episodes", pa.int64()), ("observed_set", pa.string())])
STATES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("case", pa.string()), ("state", pa.string()), ("ccode", pa.int64()),
    ("participated", pa.bool_()), ("p_member", pa.float64()), ("p_member_no_ties", pa.float64()),
    ("milper", pa.float64()), ("capacity_rank", pa.int64())])


class CaseError(DataError):
    """A case file breaks a rule of BACKTEST_FORMAT.md (exit code 2)."""

    def __init__(self, path, key, rule):
        super().__init__(f"{path}: {key}: {rule}" if key else f"{path}: {rule}")


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    data: Path
    pivot: str
    year: int
    target: str
    theater: str | None
    candidates: str
    requirement: float | None
    deadline_days: float | None
    budget: float | None
    observed_file: Path
    warnum: int
    side: int
    exclude: tuple[str, ...]

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.path.stem)


CASE_KEYS = {"name", "data", "build", "observed"}
BUILD_KEYS = {"pivot", "year", "target", "theater", "candidates", "requirement", "deadline_days", "budget"}
OBSERVED_KEYS = {"file", "warnum", "side", "exclude"}


def load_case(path, data_override=None) -> Case:
    """Read and check one case file (paths resolved as BACKTEST_FORMAT.md says)."""
    path = Path(path)
    def fail(rule):
        raise CaseError(path, "", rule) from None
    doc, _ = read_toml(path, fail)

    def table(d, key):
        v = d.get(key)
        if not isinstance(v, dict):
            raise CaseError(path, key, "required table is missing" if v is None else "must be a table")
        return v

    def unknown(d, allowed, prefix):
        for k in d:
            if k not in allowed:
                raise CaseError(path, f"{prefix}{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(d, key, prefix, kinds, required=False, default=None):
        if key not in d:
            if required:
                raise CaseError(path, prefix + key, "required key is missing")
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, kinds):
            names = {str: "a string", int: "an integer", float: "a number"}
            raise CaseError(path, prefix + key, "must be " + " or ".join(names[k] for k in kinds))
        if isinstance(v, float) and not math.isfinite(v):
            raise CaseError(path, prefix + key, f"must be finite (got {v})")
        return v

    if "candidates" in doc and "build" not in doc:
        fail("a scenario file, not a backtest case: run it with `pivotal run`; a case file has "
             "[build] and [observed] tables (docs/BACKTESTS.md)")
    unknown(doc, CASE_KEYS, "")
    name = get(doc, "name", "", (str,), required=True)
    b, o = table(doc, "build"), table(doc, "observed")
    unknown(b, BUILD_KEYS, "build.")
    unknown(o, OBSERVED_KEYS, "observed.")
    if data_override is not None:
        data = Path(data_override)
    elif "data" in doc:
        data = (path.parent / get(doc, "data", "", (str,))).resolve()
    else:
        data = builder.DEFAULT_DATA.resolve()
    numbers = {}
    for key in ("requirement", "deadline_days", "budget"):
        v = get(b, key, "build.", (int, float))
        if v is not None and (v < 0 or (key == "deadline_days" and v <= 0)):
            raise CaseError(path, f"build.{key}", f"must be {'> 0' if key == 'deadline_days' else '>= 0'} "
                            f"(got {v})")
        numbers[key] = None if v is None else float(v)
    file = get(o, "file", "observed.", (str,), required=True)
    observed = (path.parent / file) if file.startswith(("./", "../")) else data / file
    exclude = get(o, "exclude", "observed.", (list,), default=[])
    if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in exclude):
        raise CaseError(path, "observed.exclude", "must be a list of COW abbreviations or codes")
    pivot = get(b, "pivot", "build.", (str, int), required=True)
    target = get(b, "target", "build.", (str, int), required=True)
    theater = get(b, "theater", "build.", (str, int))
    return Case(name=name, path=path, data=data, pivot=str(pivot),
                year=get(b, "year", "build.", (int,), required=True), target=str(target),
                theater=None if theater is None else str(theater),
                candidates=get(b, "candidates", "build.", (str,), default="all"),
                observed_file=observed, warnum=get(o, "warnum", "observed.", (int,), required=True),
                side=get(o, "side", "observed.", (int,), required=True),
                exclude=tuple(str(x) for x in exclude), **numbers)


def participants(case: Case) -> set[int]:
    """ccodes with a row of the case's war and side in its observed file (a CSV with at least the
    columns warnum, ccode, side; a value that is not an integer is refused with its line)."""
    where = case.observed_file

    def fail(rule):
        raise CaseError(case.path, "observed.file", f"{where}: {rule}") from None

    try:
        with open(where, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except OSError as exc:
        raise CaseError(case.path, "observed.file", f"cannot read {where} ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        fail(f"cannot read it as a CSV file ({exc})")
    header = [h.strip() for h in lines[0]] if lines else []
    missing = {"warnum", "ccode", "side"} - set(header)
    if missing:
        fail(f"lacks the columns {', '.join(sorted(missing))} (needs warnum, ccode, side)")
    col = {name: header.index(name) for name in ("warnum", "ccode", "side")}

    def integer(row, line, name):
        try:
            return int(row[col[name]].strip())
        except ValueError:
            fail(f"line {line}: {name} must be an integer (got {row[col[name]].strip()!r})")

    found = set()
    for line, row in enumerate(lines[1:], start=2):
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(header):
            fail(f"line {line} has {len(row)} fields where the header has {len(header)} "
                 "(quote a value that contains a comma)")
        if integer(row, line, "warnum") == case.warnum and integer(row, line, "side") == case.side:
            found.add(integer(row, line, "ccode"))
    if not found:
        raise CaseError(case.path, "observed", f"no row of warnum {case.warnum}, side {case.side} in {where}")
    return found


def observed_set(case: Case) -> str:
    """What the case's participants are (the `observed_set` column): COW's major contributors, or
    whoever the case's own file lists."""
    if case.observed_file.resolve() == (case.data / "cow_war_participants.csv").resolve():
        return THRESHOLD
    return (f"participants as listed in the case's own file {case.observed_file.name} "
            "(not COW's list: its threshold need not apply)")


@dataclass
class Prepared:
    """A case with its data read once: inputs, participants and the scored candidates."""
    case: Case
    inputs: builder.Inputs
    scored: np.ndarray          # bool per candidate
    joined: np.ndarray          # bool per candidate (participated)
    unscored: tuple[str, ...] = ()  # participants that are not candidates (pivot, target aside)


def prepare(case: Case) -> Prepared:
    """Read the case's data and observed participants once (refusing what the data lack)."""
    try:
        inp = builder.gather(case.data, case.pivot, case.year, case.target, case.theater, case.candidates)
    except DataError as exc:  # "--target X: ..." names a flag of `scenario build`: give the case's key
        flag = re.match(r"--(\w+) ?", str(exc))
        name = flag and flag.group(1)
        if name not in BUILD_KEYS | {"data"}:
            raise CaseError(case.path, "build", str(exc)) from None
        key = name if name == "data" else f"build.{name}"
        raise CaseError(case.path, key, str(exc)[flag.end():]) from None
    joined_codes = participants(case)
    excluded = set()
    for token in case.exclude:
        try:
            excluded.add(cow.resolve(case.data, token, case.year, "exclude").ccode)
        except DataError as exc:
            raise CaseError(case.path, "observed.exclude", str(exc)) from None
    known = {int(c): a for c, a in cow.frames(case.data)["states"].select("ccode", "stateabb").iter_rows()}
    unknown = sorted(joined_codes - set(known))
    if unknown:
        raise CaseError(case.path, "observed.file", f"{case.observed_file}: ccode {unknown[0]} (warnum "
                        f"{case.warnum}, side {case.side}) is not a COW state code (cow_states.csv)")
    ccodes = np.array([s.ccode for s in inp.candidates])
    scored = ~np.isin(ccodes, list(excluded))
    if not scored.any():
        raise CaseError(case.path, "observed.exclude", "leaves no candidate to score")
    joined = np.isin(ccodes, list(joined_codes))
    outside = sorted(joined_codes - set(ccodes.tolist()) - {inp.pivot.ccode, inp.target.ccode})
    unscored = tuple(f"{known[c]} ({c})" for c in outside)
    return Prepared(case, inp, scored, joined, unscored)


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


def check_distinct(cases: list[Case]) -> None:
    """Refuse two cases with the same name or file name (their rows could not be told apart)."""
    for attr, what in (("name", "name"), ("slug", "file name")):
        seen = {}
        for c in cases:
            key = getattr(c, attr)
            if key in seen:
                raise CaseError(c.path, "name" if attr == "name" else "",
                                f"same {what} {key!r} as {seen[key]}: each case needs its own")
            seen[key] = c.path


def notes(prepared: list[Prepared]) -> list[str]:
    """One line per case whose participants file lists states that are not its candidates."""
    return [f"{p.case.path}: participants not among the candidates, not scored: {', '.join(p.unscored)}"
            for p in prepared if p.unscored]


# ------------------------------------------------------------------ calibration

def _params_at(base: builder.BuilderParams, x) -> builder.BuilderParams:
    values = dict(zip(FIT_NAMES, map(float, x)))
    values["budget"] = math.exp(values["budget"])
    return base.replace(**values)


def _start(base: builder.BuilderParams) -> np.ndarray:
    return np.array([math.log(max(base.budget, 1e-3)) if n == "budget" else getattr(base, n)
                     for n in FIT_NAMES])


def mean_log_likelihood(prepared: list[Prepared], prm, *, episodes=FIT_EPISODES, seed=1) -> float:
    """Mean over cases of the mean log-likelihood of participation of the scored states
    (pivotal model, probabilities clipped), all cases in one run: common random numbers."""
    from engine.forecast import forecast

    res = forecast([scenario(p, prm) for p in prepared], episodes=episodes, seed=seed, progress=False)
    return float(np.mean([-log_loss(_p_member(res.tables, p.case.slug)[p.scored], p.joined[p.scored],
                                    episodes) for p in prepared]))


@dataclass
class Fit:
    params: builder.BuilderParams
    start_ll: float
    fitted_ll: float
    evaluations: int


def fit(prepared: list[Prepared], base: builder.BuilderParams, *, episodes=FIT_EPISODES, seed=1,
        max_evals=FIT_MAX_EVALS, prior_sd=FIT_PRIOR_SD) -> Fit:
    """Maximise the mean log-likelihood over FIT_NAMES, with each coefficient kept within
    FIT_SIGNS and a Normal(start, prior_sd) prior, by scipy's bounded Nelder-Mead, same
    seed (common random numbers) at every evaluation, starting from `base`."""
    from scipy import optimize

    lower = np.array([0.0 if FIT_SIGNS.get(n) == 1 else -np.inf for n in FIT_NAMES])
    upper = np.array([0.0 if FIT_SIGNS.get(n) == -1 else np.inf for n in FIT_NAMES])
    x0 = np.clip(_start(base), lower, upper)  # a start of the wrong sign: 0
    signed = np.array([n in FIT_SIGNS for n in FIT_NAMES])
    n_scored = sum(int(p.scored.sum()) for p in prepared)
    cache: dict = {}

    def log_likelihood(x):
        key = tuple(np.round(x, 12))
        if key not in cache:
            cache[key] = mean_log_likelihood(prepared, _params_at(base, x), episodes=episodes, seed=seed)
        return cache[key]

    def objective(x):
        prior = np.sum((x[signed] - x0[signed]) ** 2) / (2 * prior_sd ** 2 * n_scored)
        return -log_likelihood(x) + prior

    simplex = np.vstack([x0] + [x0 + np.eye(len(x0))[k] * FIT_STEPS[k] for k in range(len(x0))])
    res = optimize.minimize(objective, x0, method="Nelder-Mead", bounds=optimize.Bounds(lower, upper),
                            options={"maxfev": max_evals, "initial_simplex": simplex,
                                     "xatol": 1e-3, "fatol": 1e-4})
    return Fit(_params_at(base, res.x), log_likelihood(x0), log_likelihood(res.x), len(cache))


def params_text(prm: builder.BuilderParams, header: str) -> str:
    """A builder parameters file (`scenario build --params FILE`)."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[builder]"]
    for f in dataclasses.fields(prm):
        v = getattr(prm, f.name)
        mark = "  # fitted" if f.name in FIT_NAMES else ""
        lines.append(f"{f.name} = {v if isinstance(v, int) else round(float(v), 6)!r}{mark}")
    return "\n".join(lines) + "\n"
