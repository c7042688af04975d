"""Calibrating the builder to backtest cases (`pivotal backtest --fit`; docs/BACKTESTS.md)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from engine.data import builder
from engine.data.backtest import _p_member, log_loss, scenario
from engine.data.cases import Prepared

FIT_EPISODES = 2_000           # per case in each evaluation of the fit's objective
FIT_MAX_EVALS = 400            # objective evaluations per fit (Nelder-Mead)
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
