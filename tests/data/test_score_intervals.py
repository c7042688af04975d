"""Per-case intervals of the backtest scores (issue 22): an AUC from 2 participants is not
read like one from many. AUC: Newcombe's score interval (Hanley-McNeil variance at the
hypothesised value, inverted); Brier and log loss: the mean loss +- t x its standard error."""
import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from engine.data import backtest


def scores(n1, n0, shift, seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
    return np.r_[rng.normal(shift, 1, n1), rng.normal(0, 1, n0)], y


def test_an_auc_from_two_participants_has_a_wide_interval_and_one_from_many_a_narrow_one():
    s, y = scores(2, 40, 1.5, 1)
    a = backtest.auc(s, y)
    low, high = backtest.auc_interval(a, 2, 40)
    assert low < a < high and high - low > 0.3
    s, y = scores(60, 140, 1.5, 1)
    a = backtest.auc(s, y)
    low, high = backtest.auc_interval(a, 60, 140)
    assert low < a < high and high - low < 0.15


def test_a_perfect_auc_from_few_participants_is_not_trusted():
    """AUC 1 from 2 participants: a Wald interval (se at the estimate) is [1, 1]; the score
    interval is not."""
    low, high = backtest.auc_interval(1.0, 2, 40)
    assert high == 1.0 and low < 0.85
    low, high = backtest.auc_interval(0.0, 3, 30)
    assert low == 0.0 and high > 0.1
    assert backtest.auc_interval(None, 0, 10) == (None, None)


def test_the_auc_interval_is_newcombes_and_covers():
    """The bounds solve (A - t)^2 = z^2 V(t), V Newcombe's (2006) method 5; and over 400 samples
    of 5 participants among 30 (true AUC Phi(1 / sqrt 2) = 0.76) the interval holds the true
    AUC about 95% of the time."""
    a, n1, n0, z = 0.8, 5, 30, 1.959963984540054
    big_n = (n1 + n0) / 2

    def v(t):
        return t * (1 - t) / (n1 * n0) * ((2 * big_n - 1) - (3 * big_n - 3) / ((2 - t) * (1 + t)))

    for bound in backtest.auc_interval(a, n1, n0):
        assert (a - bound) ** 2 == pytest.approx(z * z * v(bound), rel=1e-9)
    truth = stats.norm.cdf(1 / math.sqrt(2))
    hits = []
    for seed in range(400):
        s, y = scores(n1, n0, 1.0, seed)
        low, high = backtest.auc_interval(backtest.auc(s, y), n1, n0)
        hits.append(low <= truth <= high)
    assert 0.92 <= np.mean(hits) <= 0.99


def test_brier_and_log_loss_intervals_are_the_mean_loss_and_its_standard_error():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 50)
    y = rng.uniform(0, 1, 50) < p
    low, high = backtest.mean_interval((p - y) ** 2)
    loss = (p - y) ** 2
    half = stats.t.ppf(0.975, 49) * loss.std(ddof=1) / math.sqrt(50)
    assert (low, high) == pytest.approx((loss.mean() - half, loss.mean() + half), rel=1e-12)
    few = backtest.mean_interval(loss[:5])
    assert few[1] - few[0] > high - low
    assert backtest.mean_interval(np.array([0.001, 0.002, 0.9]))[0] == 0.0  # a loss is never below 0
    assert backtest.mean_interval(np.array([0.3])) == (None, None)


def test_the_backtests_table_carries_the_intervals(monkeypatch):
    """score_rows writes auc_low/auc_high, brier_low/brier_high, log_loss_low/log_loss_high
    around each model's score (null where the score is null, and for base_rate's AUC, 0.5 by
    construction)."""
    from types import SimpleNamespace

    n = 30
    y = np.zeros(n, bool)
    y[[3, 17]] = True
    prob = np.linspace(0.01, 0.3, n)
    prob[[3, 17]] = [0.6, 0.2]
    case = SimpleNamespace(name="c", complete=False, path="c.toml")
    p = SimpleNamespace(joined=y, scored=np.ones(n, bool), case=case,
                        inputs=SimpleNamespace(milper=np.arange(n, dtype=float)))
    monkeypatch.setattr(backtest, "observed_set", lambda c: "test")
    rows = backtest.score_rows("r", p, {"pivotal": prob, "no_ties": None, "shuffled_ties": prob,
                                        "logit": None}, {}, 1000)
    table = pl.from_arrow(pa.Table.from_pylist(rows, schema=backtest.BACKTESTS_SCHEMA))
    piv = table.filter(pl.col("model") == "pivotal").row(0, named=True)
    for k in ("auc", "brier", "log_loss"):
        assert piv[k + "_low"] <= piv[k] <= piv[k + "_high"] and piv[k + "_low"] < piv[k + "_high"]
    assert (piv["auc_low"], piv["auc_high"]) == backtest.auc_interval(piv["auc"], 2, n - 2)
    assert piv["brier_low"] == pytest.approx(backtest.mean_interval((prob - y) ** 2)[0])
    cap = table.filter(pl.col("model") == "capacity").row(0, named=True)
    assert cap["auc_low"] is not None and cap["brier_low"] is None
    base = table.filter(pl.col("model") == "base_rate").row(0, named=True)
    assert base["auc_low"] is None and base["brier_low"] is not None
    none = table.filter(pl.col("model") == "no_ties").row(0, named=True)
    assert none["auc_low"] is None and none["log_loss_high"] is None
    text = backtest.report(table)
    assert f"{piv['auc_low']:.2f}-{piv['auc_high']:.2f}" in text
    # a table written before the intervals existed still prints
    assert "pivotal" in backtest.report(table.drop([c for c in table.columns if c.endswith(("_low", "_high"))]))
