"""Calibrating the builder to backtest cases (`pivotal backtest --fit`; docs/BACKTESTS.md).

Cheap by design, in two steps:

1. Preference coefficients by maximum likelihood of the analytic approximation the
   simulation reduces to when the process does not bind (budget 0, every candidate
   approached, no noise: a candidate joins iff theta_i >= 0, theta_i ~ Normal(mean_i, sd),
   so P(join) = Phi(mean_i / sd)): a probit of joining on the preference covariates
   (builder.PREF_COVARIATES), pooled over the scored states of the cases, with a
   Normal(0, prior_sd) prior on every coefficient but the intercept (a MAP estimate; its
   optimum is found by L-BFGS with the exact gradient in well under a second).
2. Process parameters (PROCESS_GRID: bandwidth, budget, requirement share) by a small grid:
   each point simulates every case once (FIT_EPISODES episodes, one seed: common random
   numbers) and is scored by the mean size log score over the complete cases (those whose
   every contributor is known), ties broken by the mean membership log loss; without a
   complete case, by the membership log loss alone.

`leave_one_out` repeats both steps without each case and scores that case with the result:
the out-of-case numbers `--fit` reports.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from engine.data import baselines, builder
from engine.data.backtest import _p_member, _size_pmf, log_loss, scenario
from engine.data.cases import Prepared

FIT_EPISODES = 2_000           # per case at each grid point
FIT_PRIOR_SD = 2.0             # sd of the Normal(0, sd) prior on each probit slope
PREF_NAMES = ("pref_intercept",) + tuple(f"pref_{k}" for k in builder.PREF_COVARIATES)
# The process grid (docs/BACKTESTS.md, "Calibration"): how many negotiations the pivot holds open
# at once, what it can pay (preference sd), and how much force it wants before it stops recruiting.
PROCESS_GRID = {"bandwidth": (15, 60), "budget": (0.0, 1.5, 4.0), "requirement_share": (1.0, 3.0)}
FIT_NAMES = PREF_NAMES + tuple(PROCESS_GRID)


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


def grid_scores(prepared: list[Prepared], base: builder.BuilderParams, *, episodes=FIT_EPISODES,
                seed=1) -> list[dict]:
    """Every grid point of PROCESS_GRID with its scores over the cases (one run per point)."""
    from engine.forecast import forecast

    out = []
    names = list(PROCESS_GRID)
    for values in itertools.product(*PROCESS_GRID.values()):
        prm = base.replace(**dict(zip(names, values)))
        res = forecast([scenario(p, prm) for p in prepared], episodes=episodes, seed=seed, progress=False)
        losses, sizes, inside = [], [], []
        for p in prepared:
            q = _p_member(res.tables, p.case.slug)
            losses.append(log_loss(q[p.scored], p.joined[p.scored], episodes))
            if p.case.complete:
                s = baselines.size_scores(_size_pmf(res.tables, p.case.slug), int(p.joined.sum()), episodes)
                sizes.append(s["size_log_score"])
                inside.append(s["size_p05"] <= s["size_observed"] <= s["size_p95"])
        out.append({**dict(zip(names, values)), "log_loss": float(np.mean(losses)),
                    "size_log_score": float(np.mean(sizes)) if sizes else None,
                    "size_inside": float(np.mean(inside)) if inside else None})
    return out


def best(rows: list[dict]) -> dict:
    """The grid point with the lowest mean size log score (then log loss); log loss alone
    when no case is complete."""
    key = (lambda r: (r["size_log_score"], r["log_loss"])) if rows[0]["size_log_score"] is not None \
        else (lambda r: r["log_loss"])
    return min(rows, key=key)


@dataclass
class Fit:
    params: builder.BuilderParams
    probit_ll: float               # mean log-likelihood per scored state of the probit
    grid: list[dict]               # every grid point with its scores
    chosen: dict                   # the chosen grid point


def fit(prepared: list[Prepared], base: builder.BuilderParams, *, episodes=FIT_EPISODES, seed=1,
        prior_sd=FIT_PRIOR_SD) -> Fit:
    """The probit, then the process grid at the probit's coefficients."""
    coefficients, ll = probit(prepared, prior_sd)
    with_pref = base.replace(**coefficients)
    rows = grid_scores(prepared, with_pref, episodes=episodes, seed=seed)
    chosen = best(rows)
    params = with_pref.replace(**{k: (int(chosen[k]) if k in builder.INTEGER_PARAMS else float(chosen[k]))
                                  for k in PROCESS_GRID})
    return Fit(params, ll, rows, chosen)


def leave_one_out(prepared: list[Prepared], base: builder.BuilderParams, *, episodes=FIT_EPISODES, seed=1,
                  prior_sd=FIT_PRIOR_SD, announce=None) -> list[builder.BuilderParams]:
    """For each case, the parameters fitted on all the others (probit and grid)."""
    out = []
    for k, held in enumerate(prepared):
        loo = fit(prepared[:k] + prepared[k + 1:], base, episodes=episodes, seed=seed, prior_sd=prior_sd)
        if announce:
            announce(held, loo)
        out.append(loo.params)
    return out


def params_text(prm: builder.BuilderParams, header: str) -> str:
    """A builder parameters file (`scenario build --params FILE`)."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[builder]"]
    for f in dataclasses.fields(prm):
        v = getattr(prm, f.name)
        mark = "  # fitted" if f.name in FIT_NAMES else ""
        lines.append(f"{f.name} = {v if isinstance(v, int) else round(float(v), 6)!r}{mark}")
    return "\n".join(lines) + "\n"
