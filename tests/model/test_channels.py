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
from engine.cli.main import main
from engine.model.scenario import CHANNELS, ScenarioError, scenario_document
from exact_scenarios import exact_scenario_doc
from study_fixtures import write_study

ROOT = Path(__file__).resolve().parents[2]
PINNED = json.loads((ROOT / "tests" / "fixtures" / "numbers_before_channels.json").read_text())
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
LINKAGE_LINE = "tie_linkage = { mean = 0.4, concentration = 20.0 }"
STUDY = '''
episodes = 100
[design]
sampler = "grid"
levels = 2
[[inputs]]
path = "PATH"
low = LOW
high = 0.9
'''  # a study of the tutorial: PATH from LOW to 0.9


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


def test_with_one_tie_and_the_default_floor_and_linkage_the_two_switches_differ_only_by_withdrawals():
    """Why the revision was needed: with one tie w, rho = 0.5 and lambda = 1, v = 0.5 (1 + w)
    with `linkage` off and 0.5 + 0.5 w with `credibility` off, the same to the bit; so without
    channels the two switches differ only through the withdrawal hazard h (1 - wC). With the
    channels given, payments differ too."""
    doc = exact_scenario_doc(6)
    doc["parameters"] |= {"credibility_floor": 0.5, "linkage": 1.0}
    doc["mechanisms"] = {"withdrawals": False}

    def off(d, mechanism):
        return run(d | {"mechanisms": d["mechanisms"] | {mechanism: False}}, episodes=3000, seed=3)
    a, b = off(doc, "linkage"), off(doc, "credibility")
    for table in ("summary", "candidates"):
        assert a[table].drop("run_id").equals(b[table].drop("run_id")), table
    assert 0 < metric(a, "spent")  # payments were made, so the equality is not vacuous
    with_withdrawals = doc | {"mechanisms": {}, "parameters": doc["parameters"] | {"withdrawal_rate": 0.01}}
    assert metric(off(with_withdrawals, "linkage"), "withdrawals") < metric(
        off(with_withdrawals, "credibility"), "withdrawals")  # wC = 0: the full hazard h
    channels = json.loads(json.dumps(doc))
    for k, c in enumerate(channels["candidates"]):
        c["tie_linkage"] = {"mean": 0.9 if k % 2 else 0.1, "concentration": 20.0}
        c["tie_credibility"] = {"mean": 0.1 if k % 2 else 0.9, "concentration": 20.0}
    assert metric(off(channels, "linkage"), "spent") != metric(off(channels, "credibility"), "spent")


BAD_CHANNELS = [
    ("tie_linkage = { mean = 1.4, concentration = 20.0 }", "candidates[0].tie_linkage.mean", "must be in [0, 1]"),
    ("tie_linkage = { mean = 0.4, concentration = 0.0 }", "candidates[0].tie_linkage.concentration",
     "must be in (0, 1e6]"),
    ("tie_linkage = { concentration = 20.0 }", "candidates[0].tie_linkage.mean", "required key is missing"),
    ("tie_linkage = { mean = 0.4, concentration = 20.0, shape = 1 }", "candidates[0].tie_linkage.shape",
     "unknown key"),
    ('tie_linkage = "strong"', "candidates[0].tie_linkage", "must be a table"),
    ("tie_linkages = { mean = 0.4, concentration = 20.0 }", "candidates[0].tie_linkages", "unknown key"),
]


@pytest.mark.parametrize("line,key,rule", BAD_CHANNELS, ids=[b[1] for b in BAD_CHANNELS])
def test_the_cli_refuses_a_bad_channel_in_one_line_with_exit_2(tmp_path, capsys, line, key, rule):
    text = TUTORIAL.read_text()
    assert text.count(LINKAGE_LINE) == 1  # Bigland, the first candidate, gives a linkage tie
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(LINKAGE_LINE, line))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: {key}: {rule}" in err[0], err


@pytest.mark.parametrize("path,low,key,rule", [
    ("candidates.C.tie_linkage.mean", 0.1, "inputs[0].path", "no candidate 'C' with a tie_linkage"),
    ("candidates.B.tie_linkage.shape", 0.1, "inputs[0].path", "a candidate has no value tie_linkage.shape"),
    ("candidates.E.tie_credibility.mean", -0.5, "inputs[0]",
     "invalid scenario: candidates[3].tie_credibility.mean: must be in [0, 1]"),
])
def test_a_study_path_to_a_channel_is_refused_in_one_line(tmp_path, capsys, path, low, key, rule):
    """The tutorial gives B a linkage tie and E a credibility tie; C gives no channel."""
    study = write_study(tmp_path, STUDY.replace("PATH", path).replace("LOW", str(low)), scenario=TUTORIAL)
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{study}: {key}: " in err[0] and rule in err[0], err


def test_a_study_path_to_every_candidate_s_channel_takes_those_that_give_it(tmp_path):
    st = pivotal.load_study(write_study(tmp_path, STUDY.replace("PATH", "candidates.*.tie_linkage.mean")
                                        .replace("LOW", "0.1"), scenario=TUTORIAL))
    rows = [s for s in st.scenarios if s.id.startswith("row-")]
    assert [s.candidates[0].field("tie_linkage")[0] for s in rows] == pytest.approx([0.3, 0.7])
    assert all([c.field("tie_linkage") for c in s.candidates[1:]] == [None] * 3 for s in rows)
    assert all(s.candidates[3].field("tie_credibility") == (0.6, 10.0) for s in rows)  # untouched
    assert all([c.tie for c in s.candidates] == [c.tie for c in st.scenarios[0].candidates] for s in rows)


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "configs" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.name != "tutorial.toml"], ids=lambda p: p.stem)
def test_linkage_off_and_credibility_off_give_different_numbers_on_every_shipped_scenario(path):
    """Issue 18's bar: with each mechanism fed by its own data, switching linkage off and
    switching credibility off are different questions on every built scenario."""
    doc = scenario_document(pivotal.load_scenario(path))
    runs = [pivotal.forecast([build(doc | {"mechanisms": {**doc["mechanisms"], m: False}}, path.stem)],
                             episodes=500, seed=1, progress=False) for m in ("linkage", "credibility")]
    spent, size = ([r.tables["summary"].filter(pl.col("metric") == k)["mean"][0] for r in runs]
                   for k in ("spent", "size"))
    assert spent[0] != spent[1] or size[0] != size[1]
