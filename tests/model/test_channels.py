"""Per-mechanism ties (MODEL.md, revision 2026-12-04): `tie_information`, `tie_linkage`,
`tie_credibility`, each its own keyed draw; a channel not given is the `tie` draw; the reply
delay follows the information channel and is read at tie 0 when `information` is off. The
episode-by-episode comparison with the SimPy model covers channels too
(tests/model/test_exact_model.py: half its scenarios give some)."""
import json
from pathlib import Path

import polars as pl
import pytest

import pivotal
from conftest import build, metric, run, scenario_doc
from engine.model.scenario import CHANNELS, ScenarioError, scenario_document
from exact_scenarios import exact_scenario_doc

ROOT = Path(__file__).resolve().parents[2]
PINNED = json.loads((ROOT / "tests" / "fixtures" / "numbers_before_channels.json").read_text())


def test_scenarios_without_channels_keep_their_numbers():
    """tests/fixtures/numbers_before_channels.json: the same runs before the revision (every
    mechanism on, where the delay already read the tie); any change of the draws or of the
    rules for a scenario without channels moves them."""
    tutorial = scenario_document(pivotal.load_scenario(ROOT / "configs" / "scenarios" / "tutorial.toml"))
    for c in tutorial["candidates"]:  # the tutorial as it was: one tie per candidate
        for channel in CHANNELS:
            c.pop(channel, None)
    items = [("tutorial", build(tutorial, scenario_id="tutorial"))]
    for seed in (4, 9, 16):
        d = exact_scenario_doc(seed, all_mechanisms=True)
        d["mechanisms"] = {}
        items.append((f"exact-{seed}", build(d, scenario_id=f"exact-{seed}")))
    for name, s in items:
        t = pivotal.forecast(s, episodes=20_000, seed=11, progress=False).tables
        got = {"summary": {r["metric"]: [r["mean"], r["sd"], r["p50"]] for r in t["summary"].iter_rows(named=True)},
               "p_member": t["candidates"]["p_member"].to_list()}
        assert got == PINNED[name], name


EXACT = {"info_noise": 0.0, "holdout": 0.0, "margin": 0.0, "escalation": 0.0, "max_rounds": 1,
         "credibility_floor": 0.5, "linkage": 1.0, "bandwidth": 1}


def one(**channels):
    """One candidate, theta = -0.5 exactly; tie 0 (exact) unless a channel says otherwise."""
    return {"id": "A", "capacity": {"low": 100.0, "mode": 100.0, "high": 100.0},
            "preference": {"mean": -0.5, "sd": 0.0}, "tie": {"mean": 0.0, "concentration": 5.0},
            **{k: {"mean": v, "concentration": 5.0} for k, v in channels.items()}}


def spent(**channels):
    d = scenario_doc(candidates=[one(**channels)], parameters=dict(EXACT), budget=10.0, requirement=100.0)
    return metric(run(d, episodes=200), "spent", "max")


def test_each_channel_drives_its_own_mechanism():
    """v = (rho + (1 - rho) wC) (1 + lambda wL), the planned offer 0.5 / v: at tie 0, v = 0.5
    (offer 1.0); a linkage tie of 1 doubles v (offer 0.5), a credibility tie of 1 doubles it
    too (offer 0.5), both give v = 2 (offer 0.25); an information tie changes no payment."""
    assert spent() == pytest.approx(1.0)
    assert spent(tie_linkage=1.0) == pytest.approx(0.5)
    assert spent(tie_credibility=1.0) == pytest.approx(0.5)
    assert spent(tie_linkage=1.0, tie_credibility=1.0) == pytest.approx(0.25)
    assert spent(tie_information=1.0) == pytest.approx(1.0)


def test_withdrawals_follow_the_credibility_channel_only():
    def withdrawals(**channels):
        d = scenario_doc(candidates=[one(**channels) | {"preference": {"mean": 1.0, "sd": 0.0}}],
                         parameters=dict(EXACT) | {"withdrawal_rate": 0.05, "delay_min_days": 0.0,
                                                    "delay_max_days": 0.0}, requirement=100.0)
        return metric(run(d, episodes=2000), "withdrawals")
    assert withdrawals() > 0.9                               # rate 0.05 a day for 100 days
    assert withdrawals(tie_credibility=1.0) == 0.0           # wC = 1: no hazard
    assert withdrawals(tie_linkage=1.0, tie_information=1.0) > 0.9


def test_the_reply_delay_follows_the_information_channel_and_is_tie_free_when_information_is_off():
    """Mean delay d_min + (d_max - d_min)(1 - wInf): 1 day at wInf = 1, 41 days at wInf = 0; with
    `information` off it is read at 0 whatever the tie (before the revision: the raw tie)."""
    def mean_tts(candidate, mechanisms=None):
        d = scenario_doc(candidates=[candidate | {"preference": {"mean": 1.0, "sd": 0.0}}],
                         parameters=dict(EXACT) | {"delay_min_days": 1.0, "delay_max_days": 41.0},
                         mechanisms=mechanisms or {}, requirement=100.0, deadline_days=1000.0)
        return metric(run(d, episodes=4000), "time_to_success")  # = the mean delay (se 1.6%)
    assert mean_tts(one()) == pytest.approx(41, rel=0.06)
    assert mean_tts(one(tie_information=1.0)) == pytest.approx(1, rel=0.06)
    tie_one = one() | {"tie": {"mean": 1.0, "concentration": 5.0}}
    assert mean_tts(tie_one) == pytest.approx(1, rel=0.06)
    assert mean_tts(tie_one, {"information": False}) == pytest.approx(41, rel=0.06)
    assert mean_tts(one(tie_information=1.0), {"information": False}) == pytest.approx(41, rel=0.06)


def test_with_every_tie_mechanism_and_peers_off_the_ties_change_nothing():
    doc = exact_scenario_doc(12, channels=True)
    doc["mechanisms"] = {m: False for m in ("information", "linkage", "credibility", "brokers", "peers")}
    base = run(doc, episodes=3000, seed=5)
    shuffled = json.loads(json.dumps(doc))
    ties = [{k: v for k, v in c.items() if k.startswith("tie")} for c in doc["candidates"]]
    for c, t in zip(shuffled["candidates"], ties[::-1]):
        for k in [k for k in c if k.startswith("tie")]:
            del c[k]
        c.update(t)
    for peer in shuffled["ties"]:
        peer["mean"] = 1.0 - peer["mean"]
    other = run(shuffled, episodes=3000, seed=5)
    for table in ("summary", "candidates", "size_distribution"):
        assert base[table].drop("run_id").equals(other[table].drop("run_id")), table


def test_linkage_off_and_credibility_off_differ_once_the_channels_differ():
    d = scenario_doc(candidates=[one(tie_linkage=0.9, tie_credibility=0.1)], parameters=dict(EXACT),
                     budget=10.0, requirement=100.0)
    off_linkage = run(d | {"mechanisms": {"linkage": False}}, episodes=200)
    off_credibility = run(d | {"mechanisms": {"credibility": False}}, episodes=200)
    assert metric(off_linkage, "spent") != pytest.approx(metric(off_credibility, "spent"))


@pytest.mark.parametrize("value,rule", [
    ({"mean": 1.5, "concentration": 5.0}, "tie_linkage.mean"),
    ({"mean": 0.5}, "tie_linkage.concentration"),
    ({"mean": 0.5, "concentration": 5.0, "shape": 2}, "tie_linkage.shape"),
    ("strong", "tie_linkage"),
])
def test_a_bad_channel_is_refused_with_its_key_path(value, rule):
    d = scenario_doc(candidates=[one() | {"tie_linkage": value}])
    with pytest.raises(ScenarioError, match=rf"candidates\[0\]\.{rule}"):
        build(d)


def test_a_study_can_vary_a_channel(tmp_path):
    from study_fixtures import write_study

    base = tmp_path / "base.toml"
    import tomli_w
    base.write_bytes(tomli_w.dumps(scenario_doc(candidates=[one(tie_linkage=0.5)], parameters=dict(EXACT),
                                                budget=10.0, requirement=100.0)).encode())
    st = pivotal.load_study(write_study(tmp_path, '''
[design]
sampler = "grid"
levels = 2
[[inputs]]
path = "candidates.A.tie_linkage.mean"
low = 0
high = 1
''', scenario=base))
    means = [s.candidates[0].channels[1][0] for s in st.scenarios if s.id.startswith("row-")]
    assert means == [0.25, 0.75]
    res = pivotal.study(st, episodes=200, progress=False)
    spent_by_row = res.tables["summary"].filter((pl.col("metric") == "spent") & pl.col("scenario_id").str.starts_with("row-"))
    assert spent_by_row["mean"][0] > spent_by_row["mean"][1]  # a stronger linkage tie costs less
