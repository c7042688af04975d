"""Calibrating the builder to backtest cases (`pivotal backtest --fit`; docs/BACKTESTS.md).

Cheap by design, in two steps:

1. Preference coefficients by maximum likelihood of the analytic approximation the
   simulation reduces to when the process does not bind (budget 0, every candidate
   approached, no noise: a candidate joins iff theta_i >= 0, theta_i ~ Normal(mean_i, sd),
   so P(join) = Phi(mean_i / sd)): a probit of joining on the preference covariates
   (builder.PREF_COVARIATES), pooled over the scored states of the cases, with a
   Normal(0, prior_sd) prior on every coefficient but the intercept (a MAP estimate; its
   optimum is found by L-BFGS with the exact gradient in well under a second).
2. The process (PROCESS_GRID: the pull of a council of the pivot's security institutions,
   what the pivot can pay, and a shift of the probit's intercept, which the approximation
   cannot place once payments, venues and peers act) by a small grid. Each point simulates
   every case once (FIT_EPISODES episodes, one seed: common random numbers) and is scored by
   the joint log score of the cases: the membership log-likelihood of every scored state
   plus, for a complete case (every contributor known), the log score of its observed size.

`leave_one_out` repeats both steps without each case and scores that case with the result:
the out-of-case numbers `--fit` reports. All folds are fitted together: each grid point
simulates every fold's training cases in one run.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from engine.data import baselines, builder
from engine.data.backtest import _p_member, _size_pmf, log_loss, scenario
from engine.data.cases import Prepared

FIT_EPISODES = 1_000           # per case at each grid point (common random numbers)
FIT_PRIOR_SD = 2.0             # sd of the Normal(0, sd) prior on each probit slope
PREF_NAMES = ("pref_intercept",) + tuple(f"pref_{k}" for k in builder.PREF_COVARIATES)
# The process grid (docs/BACKTESTS.md, "Calibration"): the pull of a council of the pivot's security
# institutions (venue_bonus, preference sd at full attendance), what the pivot can pay (budget,
# preference sd), and a shift of the probit's intercept (preference sd).
PROCESS_GRID = {"venue_bonus": (0.0, 1.0, 2.0, 3.0), "budget": (0.75, 1.5),
                "intercept_shift": (0.0, -0.2, -0.4)}
FIT_NAMES = PREF_NAMES + ("venue_bonus", "budget")


def design(prepared: list[Prepared]) -> tuple[np.ndarray, np.ndarray]:
    """The probit's design matrix (intercept first, PREF_COVARIATES) and outcomes, scored states."""
    rows, ys = [], []
    for p in prepared:
        x = builder.covariates(p.inputs)
        rows.append(np.column_stack([np.ones(len(p.scored))] + [x[k] for k in builder.PREF_COVARIATES])[p.scored])
        ys.append(p.joined[p.scored])
    return np.vstack(rows), np.concatenate(ys).astype(float)


def probit(prepared: list[Prepared], prior_sd: float = FIT_PRIOR_SD) -> tuple[dict, float]:
    """MAP probit coefficients {pref_name: value} and the mean log-likelihood per scored state."""
    from scipy import optimize, special

    x, y = design(prepared)
    s = 2 * y - 1
    penalty = np.r_[0.0, np.full(x.shape[1] - 1, 1.0 / prior_sd ** 2)]

    def objective(b):
        z = s * (x @ b)
        logcdf = special.log_ndtr(z)
        ratio = np.exp(-0.5 * z ** 2 - logcdf) / np.sqrt(2 * np.pi)   # phi(z) / Phi(z), stable
        value = -logcdf.sum() + 0.5 * np.sum(penalty * b ** 2)
        grad = -(x * (s * ratio)[:, None]).sum(axis=0) + penalty * b
        return value, grad

    b0 = np.zeros(x.shape[1])
    b0[0] = special.ndtri(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    res = optimize.minimize(objective, b0, jac=True, method="L-BFGS-B")
    ll = float(special.log_ndtr(s * (x @ res.x)).mean())
    return dict(zip(PREF_NAMES, map(float, res.x))), ll


def at_point(prm: builder.BuilderParams, point: dict) -> builder.BuilderParams:
    """The parameters `prm` at a grid point (its intercept shifted by the point's shift)."""
    changes = {k: v for k, v in point.items() if k != "intercept_shift"}
    return prm.replace(pref_intercept=prm.pref_intercept + point.get("intercept_shift", 0.0), **changes)


def grid_scores(prepared: list[Prepared], folds: list[tuple[builder.BuilderParams, list[int]]], *,
                episodes=FIT_EPISODES, seed=1, announce=None) -> list[list[dict]]:
    """Every grid point of PROCESS_GRID scored on each fold's cases: `folds` holds (the fold's
    parameters, the indices of its cases). One run per point simulates every fold's cases;
    the result is one list of rows (the point and its scores) per fold."""
    from engine.forecast import forecast
    from engine.model import tie_tables

    names = list(PROCESS_GRID)
    points = [dict(zip(names, values)) for values in itertools.product(*PROCESS_GRID.values())]
    out = [[] for _ in folds]
    shapes = len(tie_shapes(prepared, folds[0][0]))
    with tie_tables.cache_at_least(shapes + 64):  # every case's ties, kept across the points
        for n, point in enumerate(points):
            scenarios = [scenario(prepared[j], at_point(prm, point), tag=f"fold{f}")
                         for f, (prm, cases) in enumerate(folds) for j in cases]
            res = forecast(scenarios, episodes=episodes, seed=seed, progress=False)
            for f, (_, cases) in enumerate(folds):
                out[f].append(point | _scores([prepared[j] for j in cases], res.tables, f"fold{f}", episodes))
            if announce:
                announce(n + 1, len(points))
    return out


def _scores(prepared: list[Prepared], tables, tag: str, episodes: int) -> dict:
    """Mean membership log loss, size log score and share inside the 5-95% range over the
    cases, and the joint log score (summed over cases; the grid's criterion)."""
    losses, joint, sizes, inside = [], 0.0, [], []
    for p in prepared:
        q = _p_member(tables, f"{p.case.slug}__{tag}")
        loss = log_loss(q[p.scored], p.joined[p.scored], episodes)
        losses.append(loss)
        joint += loss * int(p.scored.sum())
        if p.case.complete:
            s = baselines.size_scores(_size_pmf(tables, f"{p.case.slug}__{tag}"), int(p.joined.sum()), episodes)
            sizes.append(s["size_log_score"])
            inside.append(s["size_p05"] <= s["size_observed"] <= s["size_p95"])
            joint += s["size_log_score"]
    return {"log_loss": float(np.mean(losses)), "size_log_score": float(np.mean(sizes)) if sizes else None,
            "size_inside": float(np.mean(inside)) if inside else None, "joint": joint}


def tie_shapes(prepared: list[Prepared], prm: builder.BuilderParams) -> set:
    """The distinct (mean, concentration) of every tie of the cases (the grid does not move them)."""
    shapes = set()
    for p in prepared:
        doc = builder.compose(p.inputs, prm, requirement=0.0)
        for c in doc["candidates"]:
            shapes.update((v["mean"], v["concentration"]) for k, v in c.items() if k.startswith("tie"))
        shapes.update((t["mean"], t["concentration"]) for t in doc["ties"])
    return shapes


def best(rows: list[dict]) -> dict:
    """The grid point with the lowest joint log score."""
    return min(rows, key=lambda r: r["joint"])


@dataclass
class Fit:
    params: builder.BuilderParams
    probit_ll: float               # mean log-likelihood per scored state of the probit
    grid: list[dict]               # every grid point with its scores
    chosen: dict                   # the chosen grid point


def fit_folds(prepared: list[Prepared], base: builder.BuilderParams, held_out: list[int | None], *,
              episodes=FIT_EPISODES, seed=1, prior_sd=FIT_PRIOR_SD, announce=None) -> list[Fit]:
    """One fit per entry of `held_out`: on every case but that one (None: on every case). Each
    fit is the probit on its cases, then the grid point with the lowest joint log score there."""
    folds = []
    for h in held_out:
        cases = [j for j in range(len(prepared)) if j != h]
        coefficients, ll = probit([prepared[j] for j in cases], prior_sd)
        folds.append((base.replace(**coefficients), cases, ll))
    grids = grid_scores(prepared, [(prm, cases) for prm, cases, _ in folds], episodes=episodes, seed=seed,
                        announce=announce)
    fits = []
    for (prm, _, ll), rows in zip(folds, grids):
        chosen = best(rows)
        point = {k: chosen[k] for k in PROCESS_GRID}
        fits.append(Fit(at_point(prm, point), ll, rows, chosen))
    return fits


def fit(prepared: list[Prepared], base: builder.BuilderParams, *, episodes=FIT_EPISODES, seed=1,
        prior_sd=FIT_PRIOR_SD, announce=None) -> Fit:
    """The probit, then the process grid at the probit's coefficients, on every case."""
    return fit_folds(prepared, base, [None], episodes=episodes, seed=seed, prior_sd=prior_sd,
                     announce=announce)[0]


def leave_one_out(prepared: list[Prepared], base: builder.BuilderParams, *, episodes=FIT_EPISODES, seed=1,
                  prior_sd=FIT_PRIOR_SD, announce=None) -> list[Fit]:
    """For each case, the fit on all the others (probit and grid)."""
    return fit_folds(prepared, base, list(range(len(prepared))), episodes=episodes, seed=seed,
                     prior_sd=prior_sd, announce=announce)


def params_text(prm: builder.BuilderParams, header: str) -> str:
    """A builder parameters file (`scenario build --params FILE`)."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[builder]"]
    for f in dataclasses.fields(prm):
        v = getattr(prm, f.name)
        mark = "  # fitted" if f.name in FIT_NAMES else ""
        lines.append(f"{f.name} = {v if isinstance(v, int) else round(float(v), 6)!r}{mark}")
    return "\n".join(lines) + "\n"
