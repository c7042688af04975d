"""The backtest's placebo and baselines, size scoring and paired differences (BACKTEST_FORMAT.md,
revision 2026-12-04; engine/data/baselines.py)."""
import itertools
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.data import backtest, baselines
from engine.data.builder import BuilderParams

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cow"
CASE = """name = "{name}"
data = "cow"

[build]
pivot = "PIV"
year = 2000
target = "TGT"
deadline_days = 120

[observed]
file = "./{name}.csv"
warnum = 7
side = 1
{extra}
"""


def make_case(tmp_path, name, joined, extra=""):
    """A fixture case (candidates ALY 200, NON 220, FAR 900) whose participants are `joined`."""
    if not (tmp_path / "cow").exists():
        (tmp_path / "cow").symlink_to(FIX.resolve())
    (tmp_path / f"{name}.csv").write_text("warnum,ccode,side\n" + "".join(f"7,{c},1\n" for c in joined))
    f = tmp_path / f"{name}.toml"
    f.write_text(CASE.format(name=name, extra=extra))
    return backtest.prepare(backtest.load_case(f))


def test_shuffled_ties_permute_every_tie_channel_and_nothing_else():
    doc = {"candidates": [{"id": c, "preference": {"mean": k}, "tie": {"mean": k / 10},
                           "tie_linkage": {"mean": k / 20}} for k, c in enumerate("ABC")], "ties": ["peer"]}
    out = baselines.shuffle_ties(doc, np.array([2, 0, 1]))
    assert [c["id"] for c in out["candidates"]] == ["A", "B", "C"]
    assert [c["preference"]["mean"] for c in out["candidates"]] == [0, 1, 2]   # preferences stay
    assert [c["tie"]["mean"] for c in out["candidates"]] == [0.2, 0.0, 0.1]    # ties move together
    assert [c["tie_linkage"]["mean"] for c in out["candidates"]] == [0.1, 0.0, 0.05]
    assert out["ties"] == ["peer"] and doc["candidates"][0]["tie"]["mean"] == 0  # peers kept, input untouched


def test_permutations_are_fixed_by_the_seed_and_differ_between_shuffles():
    a = [tuple(baselines.tie_permutation("case", 3, k, 12)) for k in range(baselines.SHUFFLES)]
    assert a == [tuple(baselines.tie_permutation("case", 3, k, 12)) for k in range(baselines.SHUFFLES)]
    assert len(set(a)) == baselines.SHUFFLES
    assert a[0] != tuple(baselines.tie_permutation("case", 4, 0, 12))
    assert a[0] != tuple(baselines.tie_permutation("other", 3, 0, 12))


def test_poisson_binomial_matches_enumeration():
    p = [0.1, 0.5, 0.75, 0.3]
    want = np.zeros(5)
    for bits in itertools.product([0, 1], repeat=4):
        want[sum(bits)] += np.prod([q if b else 1 - q for q, b in zip(p, bits)])
    assert np.allclose(baselines.poisson_binomial(p), want, atol=1e-15)


def test_size_scores_closed_form():
    pmf = np.array([0.1, 0.2, 0.4, 0.3])
    s = baselines.size_scores(pmf, 2, episodes=1000)
    assert s["size_percentile"] == pytest.approx(0.1 + 0.2 + 0.4 / 2)   # P(<2) + P(=2)/2
    assert s["size_log_score"] == pytest.approx(-math.log(0.4))
    assert s["size_mean"] == pytest.approx(0.2 + 0.8 + 0.9)
    assert (s["size_p05"], s["size_p95"]) == (0, 3)
    # the smallest size whose cdf reaches the level: cdf(1) = 0.3 exactly is p30's size 1, not 2
    assert baselines.size_scores(np.array([0.05, 0.9, 0.05]), 1, 10)["size_p05"] == 0
    assert baselines.size_scores(np.array([0.04, 0.92, 0.04]), 1, 10)["size_p95"] == 1
    # an observed size the forecast never reached: clipped like the log loss, percentile 1
    s = baselines.size_scores(pmf, 7, episodes=500)
    assert s["size_percentile"] == pytest.approx(1.0) and s["size_log_score"] == pytest.approx(math.log(1000))


def test_paired_differences_average_seeds_and_bootstrap_cases():
    def rows(values):
        return {(c, m): {"auc": v} for c, by in values.items() for m, v in by.items()}
    seed1 = rows({"a": {"pivotal": 0.9, "logit": 0.8}, "b": {"pivotal": 0.7, "logit": 0.75},
                  "c": {"pivotal": 0.8, "logit": None}})
    seed2 = rows({"a": {"pivotal": 0.92, "logit": 0.8}, "b": {"pivotal": 0.69, "logit": 0.75},
                  "c": {"pivotal": 0.8, "logit": 0.6}})
    t = pl.from_arrow(baselines.paired_differences("r", [seed1, seed2], ["logit"], metrics=("auc",)))
    r = t.row(0, named=True)
    by_case = [(0.1 + 0.12) / 2, (-0.05 - 0.06) / 2]       # case c lacks a value in seed 1: left out
    assert r["cases"] == 2 and r["seeds"] == 2
    assert r["difference"] == pytest.approx(np.mean(by_case))
    assert min(by_case) - 1e-12 <= r["difference_low"] < r["difference"] < r["difference_high"] <= max(by_case) + 1e-12
    assert r["seed_min"] == pytest.approx((0.1 - 0.05) / 2) and r["seed_max"] == pytest.approx((0.12 - 0.06) / 2)
    again = pl.from_arrow(baselines.paired_differences("r", [seed1, seed2], ["logit"], metrics=("auc",)))
    assert again.equals(t)


def test_logit_is_fitted_on_the_other_cases_only(tmp_path):
    cases = [make_case(tmp_path, f"c{k}", joined) for k, joined in
             enumerate([[200], [200, 220], [200], [900], [200, 900]])]
    assert baselines.logit_probabilities(cases[:2], cases[4]) is None       # fewer than 3 others
    p = baselines.logit_probabilities(cases[:4], cases[4])
    assert p.shape == (3,) and ((0 < p) & (p < 1)).all()
    # the held-out case's own participants never enter its probabilities
    flipped = make_case(tmp_path, "c4b", [220])
    assert np.array_equal(baselines.logit_probabilities(cases[:4], flipped), p)
    # but the others' do
    assert not np.allclose(baselines.logit_probabilities(cases[1:4], cases[0]),
                           baselines.logit_probabilities(cases[2:5], cases[0]))


def test_a_complete_case_has_its_size_scored_and_an_incomplete_one_not(tmp_path):
    prm = BuilderParams(budget=2.0)
    complete = make_case(tmp_path, "full", [200, 220], "complete = true")
    partial = make_case(tmp_path, "part", [200, 220])
    assert complete.case.complete and not partial.case.complete
    res = backtest.run_backtests([complete, partial], prm, episodes=2000, seed=3)
    bt = res.tables["backtests"]
    full = bt.filter(pl.col("case") == "full")
    assert full.filter(pl.col("model") == "pivotal")["size_observed"].item() == 2
    assert bt.filter(pl.col("case") == "part")["size_observed"].null_count() == len(backtest.MODELS)
    # the percentile is the run's own size distribution at the observed size
    sizes = res.tables["size_distribution"].filter(pl.col("scenario_id") == "full").sort("size")
    pmf = sizes["probability"].to_numpy()
    row = full.filter(pl.col("model") == "pivotal").row(0, named=True)
    assert row["size_percentile"] == pytest.approx(pmf[:2].sum() + pmf[2] / 2)
    # shuffled_ties is the mean of its permutations; logit is null with fewer than 3 other cases
    cands = res.tables["candidates"]
    shuffled = np.mean([cands.filter(pl.col("scenario_id") == f"full__shuffled_{k}")["p_member"].to_numpy()
                        for k in range(baselines.SHUFFLES)], axis=0)
    st = res.tables["backtest_states"].filter(pl.col("case") == "full")
    assert np.allclose(st["p_member_shuffled_ties"].to_numpy(), shuffled)
    assert bt.filter(pl.col("model") == "logit")["auc"].null_count() == 2
    comp = res.tables["backtest_comparisons"]
    assert set(comp["baseline"]) == set(backtest.MODELS[1:]) and (comp["seeds"] == backtest.SEEDS).all()
    text = backtest.report(bt, comp)
    assert "size, pivotal: observed inside the forecast's 5-95% range in" in text
    assert "pivotal minus each baseline" in text


def test_no_ties_switches_off_the_peer_effect_too(tmp_path):
    p = make_case(tmp_path, "c", [200])
    off = backtest.scenario(p, BuilderParams(), ties=False)
    assert not any(off.mechanisms[m] for m in ("information", "linkage", "credibility", "brokers", "peers"))
    assert off.mechanisms["venues"] and off.mechanisms["withdrawals"]


def test_a_case_s_own_participants_never_enter_its_logit_score(tmp_path):
    """Leave-one-case-out through the backtest itself: changing who joined in case 4 leaves case
    4's logit probabilities as they were (they come from the other cases), and changes those of
    the cases that learn from it."""
    joined = [[200], [200, 220], [200], [900], [200, 900]]
    prm = BuilderParams(budget=2.0)

    def logit_of(last):
        cases = [make_case(tmp_path, f"c{k}", j) for k, j in enumerate(joined[:4] + [last])]
        states = backtest.run_backtests(cases, prm, episodes=300, seed=2, seeds=1).tables["backtest_states"]
        return {case: states.filter(pl.col("case") == case)["p_member_logit"].to_numpy() for case in states["case"].unique()}
    before, after = logit_of([200, 900]), logit_of([220])
    assert np.array_equal(before["c4"], after["c4"])
    assert not np.allclose(before["c0"], after["c0"])
