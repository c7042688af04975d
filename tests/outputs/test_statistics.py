"""The statistics the engine prints against published references (issue 22): the Wilson
interval against scipy's, Sobol indices against SALib and the Ishigami function's known
values, AUC, Brier and log loss against scikit-learn."""
import numpy as np
import pytest
from scipy.stats import binomtest

from engine.data import backtest
from engine.outputs.tables import wilson
from engine.studies.designs import sensitivity_tables, unit_sample


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000, 123_457])
def test_wilson_interval_is_scipys(n):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n} - {-1}):
        if not 0 <= k <= n:
            continue
        low, high = wilson(k, n)
        ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12), (k, n)


def ishigami(x, a=7.0, b=0.1):
    """Ishigami on [-pi, pi]^3; S1 = 0.3139, 0.4424, 0; ST = 0.5576, 0.4424, 0.2437; S13 = 0.2437."""
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def _indices(second_order, samples=16384, seed=3):
    names = ["x1", "x2", "x3"]
    u = unit_sample("sobol", names, samples, second_order, 1, seed)
    y = ishigami(-np.pi + 2 * np.pi * u)
    t = sensitivity_tables("r", "sobol", names, u, {"y": y}, second_order, seed)
    return {k: v.to_pylist() for k, v in t.items()}, u, y


def test_sobol_indices_of_the_ishigami_function():
    tables, u, y = _indices(True)
    rows = {r["input"]: r for r in tables["sensitivity"]}
    for name, s1, st in (("x1", 0.3139, 0.5576), ("x2", 0.4424, 0.4424), ("x3", 0.0, 0.2437)):
        assert rows[name]["S1"] == pytest.approx(s1, abs=0.03), name
        assert rows[name]["ST"] == pytest.approx(st, abs=0.03), name
    s2 = {(r["input_a"], r["input_b"]): r["S2"] for r in tables["sensitivity_s2"]}
    assert s2[("x1", "x3")] == pytest.approx(0.2437, abs=0.05)
    assert abs(s2[("x1", "x2")]) < 0.05 and abs(s2[("x2", "x3")]) < 0.05
    # and the numbers are SALib's own on the same design (a second-order design analysed as
    # first-order reads its rows in the wrong blocks and moves every index)
    from SALib.analyze import sobol
    want = sobol.analyze({"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[0, 1]] * 3}, y,
                         calc_second_order=True, num_resamples=100, conf_level=0.95, seed=4)
    assert [rows[n]["S1"] for n in ("x1", "x2", "x3")] == pytest.approx(list(want["S1"]), abs=1e-12)
    assert [rows[n]["ST"] for n in ("x1", "x2", "x3")] == pytest.approx(list(want["ST"]), abs=1e-12)


def test_first_order_design_gives_the_same_indices():
    tables, _, _ = _indices(False)
    rows = {r["input"]: r for r in tables["sensitivity"]}
    assert rows["x1"]["S1"] == pytest.approx(0.3139, abs=0.03)
    assert rows["x3"]["ST"] == pytest.approx(0.2437, abs=0.03)
    assert "sensitivity_s2" not in tables


def test_auc_brier_log_loss_are_scikit_learns_with_ties():
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.random(n) < 0.3
        if y.all() or not y.any():
            continue
        p = np.round(rng.random(n), 1)  # many ties
        p[0] = 0.0  # a Monte Carlo probability of exactly 0: clipped to 1/(2 episodes)
        assert backtest.auc(p, y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert backtest.brier(p, y) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
        eps = 1 / (2 * 1000)
        assert backtest.log_loss(p, y, 1000) == pytest.approx(
            log_loss(y, np.clip(p, eps, 1 - eps), labels=[False, True]), abs=1e-12)
