"""Every published table recomputed from raw episodes by code written for this test (NumPy,
Polars, scipy, SALib, scikit-learn), independent of engine/outputs/tables.py and
engine/studies/comparisons.py (issue 22). Exact where the quantity is exact; where binning
is documented (docs/OUTPUTS.md: 1,024 bins of [0, top], quantiles interpolated in the
histogram and clamped to [min, max]) the binning is redone here from the published bin
edges and the interpolation must agree to 1e-9, and the quantile must lie within one bin of
the empirical one.

Misreadings these tests catch (each tried by hand): a discrete quantile with > instead of
>=; a continuous quantile read one bin off; sd with ddof 0; se over n - 1; a time to success
binned by floor instead of ceil; a Wilson interval with z instead of z^2 in the centre; a
paired se from the independent variances; p_member over kept episodes with a member of a
different scenario; the sobol analysis as first order only."""
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

import pivotal
from conftest import build
from exact_scenarios import exact_scenario_doc

N = 4000
QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95}
DISCRETE = ("size", "offers", "venue_joins", "withdrawals", "success")
CONTINUOUS = ("capacity", "spent", "time_to_success")


@pytest.fixture(scope="module", params=[3, 11, 21])
def run(request):
    """A scenario that exercises every rule (budgets, escalation, withdrawals, peers, venues,
    brokers, hold-outs), every episode kept."""
    s = build(exact_scenario_doc(request.param, all_mechanisms=True), scenario_id=f"every-{request.param}")
    res = pivotal.forecast(s, episodes=N, seed=request.param, keep_episodes=N, progress=False)
    return s, res.tables


def test_the_kept_episodes_are_all_of_them(run):
    _, t = run
    assert t["episodes"].height == N == t["runs"]["episodes"].item()


def _summary(t, metric):
    return t["summary"].filter(pl.col("metric") == metric).row(0, named=True)


@pytest.mark.parametrize("metric", DISCRETE)
def test_discrete_summary_rows_are_exact(run, metric):
    _, t = run
    x = t["episodes"][metric].cast(pl.Float64).to_numpy()
    row = _summary(t, metric)
    assert row["n"] == N
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-12, abs=1e-12)
    assert row["sd"] == pytest.approx(x.std(ddof=1), rel=1e-9, abs=1e-12)
    assert row["se"] == pytest.approx(x.std(ddof=1) / math.sqrt(N), rel=1e-9, abs=1e-12)
    for name, q in QUANTILES.items():  # numpy's inverted_cdf: the smallest v with CDF(v) >= q
        assert row[name] == np.quantile(x, q, method="inverted_cdf"), (metric, name)
    assert (row["min"], row["max"]) == (x.min(), x.max())


def _binned_quantiles(x, edges, count):
    """The documented rule, redone: the cdf of the values binned on `edges` (bin b holds
    floor(x / top * bins), the last bin closed), linearly interpolated, clamped to [min, max]."""
    bins = len(edges) - 1
    b = np.clip((x / edges[-1] * bins).astype(np.int64), 0, bins - 1)
    hist = np.bincount(b, minlength=bins)
    cdf = np.concatenate([[0.0], np.cumsum(hist) / count])
    return {name: float(min(max(np.interp(q, cdf, edges), x.min()), x.max())) for name, q in QUANTILES.items()}, hist


@pytest.mark.parametrize("metric", CONTINUOUS)
def test_continuous_summary_rows_follow_the_documented_binning(run, metric):
    s, t = run
    x = t["episodes"][metric].drop_nulls().to_numpy().astype(float)
    row = _summary(t, metric)
    assert row["n"] == len(x)
    if len(x) == 0:
        assert row["mean"] is None and row["p50"] is None
        return
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-6, abs=1e-9)   # sums on a 2^-32 grid of the range
    if len(x) > 1:
        assert row["sd"] == pytest.approx(x.std(ddof=1), rel=1e-4, abs=1e-6)
        assert row["se"] == pytest.approx(row["sd"] / math.sqrt(len(x)), rel=1e-12)
    assert (row["min"], row["max"]) == pytest.approx((x.min(), x.max()), rel=1e-12)
    if metric == "capacity":
        dist = t["capacity_distribution"].sort("bin_low")
        edges = np.concatenate([dist["bin_low"].to_numpy(), dist["bin_high"].to_numpy()[-1:]])
        want, hist = _binned_quantiles(x, edges, len(x))
        assert np.array_equal(dist["episodes"].to_numpy(), hist)
        assert np.allclose(dist["probability"].to_numpy(), hist / N, rtol=0, atol=1e-15)
        assert np.allclose(dist["cdf"].to_numpy(), np.cumsum(hist) / N, rtol=0, atol=1e-12)
        width = edges[1] - edges[0]
        for name, q in QUANTILES.items():
            assert row[name] == pytest.approx(want[name], rel=1e-9, abs=1e-9), name
            assert abs(row[name] - np.quantile(x, q, method="inverted_cdf")) <= width + 1e-9, name


def test_size_distribution_is_the_histogram_of_sizes(run):
    s, t = run
    sizes = t["episodes"]["size"].to_numpy()
    d = t["size_distribution"].sort("size")
    assert d["size"].to_list() == list(range(len(s.candidates) + 1))
    counts = np.bincount(sizes, minlength=len(s.candidates) + 1)
    assert np.array_equal(d["episodes"].to_numpy(), counts)
    assert np.array_equal(d["probability"].to_numpy(), counts / N)
    assert np.allclose(d["cdf"].to_numpy(), np.cumsum(counts) / N, rtol=0, atol=1e-15)


def test_time_to_success_counts_success_by_the_end_of_each_day(run):
    """Day d counts the episodes whose time to success is <= d (ceil binning: a success at day
    2.3 counts from day 3; documented in docs/OUTPUTS.md)."""
    s, t = run
    tts = t["episodes"]["time_to_success"].to_numpy().astype(float)  # NaN where never reached
    d = t["time_to_success"].sort("day")
    assert d["day"].to_list() == list(range(math.ceil(s.deadline_days) + 1))
    want = np.array([(tts <= day).sum() for day in d["day"].to_numpy()])
    assert np.array_equal(d["episodes_succeeded_by_day"].to_numpy(), want)
    assert np.allclose(d["p_success_by_day"].to_numpy(), want / N, rtol=0, atol=1e-15)
    assert want[-1] == _summary(t, "time_to_success")["n"]


def test_candidates_membership_and_its_wilson_interval(run):
    s, t = run
    members = t["episodes"]["members"].to_list()
    c = t["candidates"]
    assert c["candidate_id"].to_list() == [x.id for x in s.candidates]
    for row in c.iter_rows(named=True):
        k = sum(row["candidate_id"] in m for m in members)
        assert row["p_member"] == k / N
        low, high = binomtest(k, N).proportion_ci(method="wilson")
        assert (row["p_member_low"], row["p_member_high"]) == pytest.approx((low, high), abs=1e-12)
        assert row["p_member_low"] <= row["p_member"] <= row["p_member_high"]
        assert row["p_ever_joined"] >= row["p_member"] - 1e-12  # ever joined includes the members at T
    # the sizes are the members counted; mean payments add up to the mean spent (docs/OUTPUTS.md)
    assert [len(m) for m in members] == t["episodes"]["size"].to_list()
    assert c["mean_payment"].sum() == pytest.approx(_summary(t, "spent")["mean"], rel=1e-6, abs=1e-9)


def _paired(eps, base, other, output):
    b = eps.filter(pl.col("scenario_id") == base).sort("episode")[output].cast(pl.Float64).to_numpy()
    v = eps.filter(pl.col("scenario_id") == other).sort("episode")[output].cast(pl.Float64).to_numpy()
    return b, v


def test_every_comparison_of_an_ablation_is_the_paired_difference_of_its_episodes():
    s = build(exact_scenario_doc(5, all_mechanisms=True), scenario_id="every")
    res = pivotal.ablate(s, episodes=3000, seed=2, keep_episodes=3000, progress=False)
    eps, comp = res.tables["episodes"], res.tables["comparisons"]
    assert comp.height == 8 * 4
    for r in comp.iter_rows(named=True):
        b, v = _paired(eps, "base", r["scenario_id"], r["output"])
        n, d = len(b), v - b
        tol = 1e-6 * max(1.0, np.abs(b).max(), np.abs(v).max())
        assert r["episodes"] == n == 3000
        assert r["base_mean"] == pytest.approx(b.mean(), abs=tol)
        assert r["variant_mean"] == pytest.approx(v.mean(), abs=tol)
        assert r["difference"] == pytest.approx(d.mean(), abs=tol)
        assert r["difference_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(n), rel=1e-5, abs=1e-9)
        assert r["independent_se"] == pytest.approx(math.sqrt(b.var(ddof=1) / n + v.var(ddof=1) / n),
                                                    rel=1e-5, abs=1e-9)
        z = 1.959963984540054
        assert r["difference_low"] == pytest.approx(r["difference"] - z * r["difference_se"], abs=1e-12)
        assert r["difference_high"] == pytest.approx(r["difference"] + z * r["difference_se"], abs=1e-12)


def test_a_study_sensitivity_table_is_salibs_on_the_design_rows_means(tmp_path):
    from SALib.analyze import sobol

    from study_fixtures import write_study
    st = pivotal.load_study(write_study(tmp_path, '''
episodes = 400
seed = 4
[design]
sampler = "sobol"
samples = 8
second_order = true
[[inputs]]
path = "budget"
low = 0
high = 400
[[inputs]]
path = "candidates.*.preference.mean"
distribution = "normal"
mean = 0
sd = 1
apply = "shift"
[[inputs]]
path = "parameters.linkage"
low = 0
high = 2
'''))
    res = pivotal.study(st, progress=False)
    summary = res.tables["summary"].filter(pl.col("scenario_id").str.starts_with("row-"))
    problem = {"num_vars": 3, "names": [i.path for i in st.inputs], "bounds": [[0.0, 1.0]] * 3}
    sens, s2 = res.tables["sensitivity"], res.tables["sensitivity_s2"]
    for output in ("success", "size", "capacity", "spent"):
        y = summary.filter(pl.col("metric") == output).sort("scenario_id")["mean"].to_numpy()
        assert len(y) == st.rows == 8 * (2 * 3 + 2)
        want = sobol.analyze(problem, y, calc_second_order=True, num_resamples=100, conf_level=0.95,
                             seed=st.seed + 1)
        rows = sens.filter(pl.col("output") == output)
        for k, name in enumerate(problem["names"]):
            r = rows.filter(pl.col("input") == name).row(0, named=True)
            for key in ("S1", "ST"):
                assert r[key] == pytest.approx(want[key][k], abs=1e-12), (output, name, key)
        pairs = s2.filter(pl.col("output") == output)
        for r in pairs.iter_rows(named=True):
            i, j = problem["names"].index(r["input_a"]), problem["names"].index(r["input_b"])
            assert r["S2"] == pytest.approx(want["S2"][i, j], abs=1e-12)


def test_backtest_scores_are_sklearns_on_the_published_states(tmp_path):
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    from case_fixtures import CASE, FIX
    from engine.data import backtest
    from engine.data.builder import BuilderParams
    (tmp_path / "cow").symlink_to(FIX.resolve())
    f = tmp_path / "war.toml"
    f.write_text(CASE)
    p = backtest.prepare(backtest.load_case(f))
    res = backtest.run_backtests([p], BuilderParams(budget=2.0), episodes=2000, seed=7, seeds=1)
    st, bt = res.tables["backtest_states"], res.tables["backtests"]
    y = st["participated"].to_numpy()
    eps = 1 / (2 * 2000)
    for model, column in (("pivotal", "p_member"), ("no_ties", "p_member_no_ties"),
                          ("shuffled_ties", "p_member_shuffled_ties")):
        q = st[column].to_numpy()
        r = bt.filter(pl.col("model") == model).row(0, named=True)
        assert r["auc"] == pytest.approx(roc_auc_score(y, q), abs=1e-12)
        assert r["brier"] == pytest.approx(brier_score_loss(y, q), abs=1e-12)
        assert r["log_loss"] == pytest.approx(log_loss(y, np.clip(q, eps, 1 - eps), labels=[0, 1]), abs=1e-12)
    cap = bt.filter(pl.col("model") == "capacity").row(0, named=True)
    assert cap["auc"] == pytest.approx(roc_auc_score(y, st["milper"].fill_null(0).to_numpy()), abs=1e-12)


def test_a_discrete_quantile_at_an_exact_cdf_level_is_the_smaller_value():
    """CDF(v) = q exactly: the quantile is v (smallest v with CDF(v) >= q), not the next value
    (a > misreading); random runs almost never hit a level exactly, so it is pinned here on a
    histogram whose cdf is 0.05, 0.25, 0.5, 0.75, 0.95 at values 0..4."""
    from engine.outputs.tables import _discrete_stats

    hist = [1, 4, 5, 5, 4, 1]  # n = 20: cdf 0.05, 0.25, 0.5, 0.75, 0.95, 1
    n, mean, var, quantiles, lo, hi = _discrete_stats(hist)
    values = np.repeat(np.arange(6), hist).astype(float)
    assert quantiles == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert quantiles == [np.quantile(values, q, method="inverted_cdf") for q in QUANTILES.values()]
    assert (n, lo, hi) == (20, 0.0, 5.0) and mean == values.mean() and var == pytest.approx(values.var(ddof=1))


def test_the_summary_carries_the_success_interval_the_cli_prints(run):
    _, t = run
    k = int(t["episodes"]["success"].sum())
    rows = t["summary"]
    success = rows.filter(pl.col("metric") == "success").row(0, named=True)
    ref = binomtest(k, N).proportion_ci(method="wilson")
    assert (success["success_low"], success["success_high"]) == pytest.approx((ref.low, ref.high), abs=1e-12)
    others = rows.filter(pl.col("metric") != "success")
    assert others["success_low"].null_count() == others.height == 7
