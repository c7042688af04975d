"""`pivotal scenario build`: formulas on small fixtures (tests/fixtures/cow), and the real data."""
import math
import random
import tomllib
from pathlib import Path

import numpy as np
import pytest

import pivotal

from engine.data import builder, cow
from engine.data.builder import BuilderParams
from engine.cli.main import main
from engine.data.cow import DataError
from engine.data.render import build_file, render
from engine.model.scenario import load_scenario, parse_scenario

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cow"
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_real = pytest.mark.skipif(not (REAL / "cow_states.csv").exists(), reason="../shared/data not present")


def built(year=2000, prm=None, **kw):
    prm = prm or BuilderParams()
    kw.setdefault("target", "TGT")
    inp = builder.gather(FIX, kw.pop("pivot", "PIV"), year, kw.pop("target"), kw.pop("theater", None),
                         kw.pop("candidates", "all"), kw.pop("institutions", None))
    doc = builder.compose(inp, prm, **kw)
    text = render(doc, inp, prm)
    return inp, doc, text


def by_id(doc):
    return {c["id"]: c for c in doc["candidates"]}


def test_fixture_scenario_is_valid_and_excludes_pivot_and_target():
    inp, doc, text = built()
    s = parse_scenario(tomllib.loads(text), "<built>")
    assert [c.id for c in s.candidates] == ["ALY", "NON", "FAR"]  # NEW enters in 2003
    assert s.pivot == "PIV"


def test_capacity_is_milper_times_documented_shares():
    prm = BuilderParams(share_low=0.01, share_mode=0.02, share_high=0.05)
    _, doc, _ = built(prm=prm)
    assert by_id(doc)["ALY"]["capacity"] == {"low": 1000.0, "mode": 2000.0, "high": 5000.0}  # 100k


def test_preference_covariates_from_the_interest_data():
    """Fixture 2000: PIV votes yes on 12 roll calls; ALY yes, NON alternates yes/no, FAR abstains,
    TGT no. Agreement index = mean of 1 - |a - b| / 2 with yes 1, abstain 2, no 3."""
    inp, _, _ = built()
    x = builder.covariates(inp)
    assert x["un_pivot"].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert x["un_target"].tolist() == pytest.approx([0.0, 0.5, 0.5])
    assert inp.interests.distance_km.tolist() == pytest.approx([500.0, 500.0, 15000.0])  # cow_mindist
    # V-Dem: PIV 0.9, ALY 0.9, NON 0.3; FAR has none: Polity2 6 -> (6 + 10) / 20 = 0.8
    assert x["regime"].tolist() == pytest.approx([1.0, 0.4, 0.9])
    assert x["rival_target"].tolist() == [0.0, 1.0, 0.0]  # Nonallia-Targetia rivalry
    assert x["major"].tolist() == [0.0, 0.0, 0.0] and x["major_aligned"].tolist() == [0.0, 0.0, 0.0]


def test_preference_is_the_documented_linear_index():
    prm = BuilderParams(pref_intercept=-1.0, pref_un_pivot=2.0, pref_un_target=-1.5, pref_log_distance=-0.5,
                        pref_regime=0.7, pref_rival_target=0.9, pref_rival_pivot=-0.4, pref_major=0.3,
                        pref_major_aligned=1.1, pref_log_milper=0.2)
    inp, doc, _ = built(prm=prm)
    x = builder.covariates(inp)
    for k, c in enumerate(doc["candidates"]):
        want = (-1.0 + 2.0 * x["un_pivot"][k] - 1.5 * x["un_target"][k]
                - 0.5 * math.log1p(inp.interests.distance_km[k] / 1000) + 0.7 * x["regime"][k]
                + 0.9 * x["rival_target"][k] - 0.4 * x["rival_pivot"][k] + 0.3 * x["major"][k]
                + 1.1 * x["major_aligned"][k] + 0.2 * math.log1p(inp.milper[k]))
        assert c["preference"]["mean"] == pytest.approx(want, abs=1e-4)


def test_each_tie_channel_is_its_documented_formula():
    """Fixture 2000: IGOs shared with PIV: ALY 20, NON 10, FAR 5; trade with PIV / own trade:
    ALY 100/200, NON 10/200, FAR 0; ln GDP PIV 30, ALY and NON 27; ATOP defence PIV-ALY since 1900."""
    prm = BuilderParams(tie_base=0.1, tie_max=0.9, trade_share_full=0.25, credibility_young=0.4)
    inp, doc, _ = built(prm=prm, channels=True)
    span = 0.8
    aly, non, far = (by_id(doc)[k] for k in ("ALY", "NON", "FAR"))
    assert [c["tie_information"]["mean"] for c in (aly, non, far)] == pytest.approx(
        [0.1 + span * 1.0, 0.1 + span * 0.5, 0.1 + span * 0.25], abs=1e-4)
    asym = 1 / (1 + math.exp(-3.0))
    assert aly["tie_linkage"]["mean"] == pytest.approx(0.1 + span * min(1, 0.5 / 0.25) * asym, abs=1e-4)
    assert non["tie_linkage"]["mean"] == pytest.approx(0.1 + span * (0.05 / 0.25) * asym, abs=1e-4)
    assert far["tie_linkage"]["mean"] == pytest.approx(0.1, abs=1e-4)
    assert aly["tie_credibility"]["mean"] == pytest.approx(0.9, abs=1e-4)  # a pledge of 101 years
    assert non["tie_credibility"]["mean"] == pytest.approx(0.1, abs=1e-4)
    for c in (aly, non, far):
        three = [c[k]["mean"] for k in ("tie_information", "tie_linkage", "tie_credibility")]
        assert c["tie"]["mean"] == pytest.approx(sum(three) / 3, abs=2e-4)
    # a pledge in its sixth year (1900-1905) counts young + (1 - young) * 6 / 10
    inp, doc, _ = built(year=1905, prm=prm, channels=True)
    assert inp.ties.defense_age[0] == 6
    assert by_id(doc)["ALY"]["tie_credibility"]["mean"] == pytest.approx(0.1 + span * (0.4 + 0.6 * 0.6), abs=1e-4)


def test_channels_are_emitted_only_when_asked_or_supported():
    _, doc, _ = built(channels=False)
    assert not any(k.startswith("tie_") for c in doc["candidates"] for k in c)
    _, doc, _ = built(channels=True)
    assert all({"tie_information", "tie_linkage", "tie_credibility"} <= set(c) for c in doc["candidates"])
    _, doc, _ = built()
    assert any(k.startswith("tie_") for k in doc["candidates"][0]) == builder.channels_supported()


def test_no_data_column_feeds_both_a_preference_and_a_tie():
    """From the formula table: the (file, column) pairs of the preference and of every tie
    output (the three channels, brokers and venues, candidate-to-candidate ties) are disjoint."""
    def columns(outputs):
        return {(f, c.strip()) for out, _, f, cols in builder.FORMULAS if out in outputs for c in cols.split(",")}
    pref, tie = columns({builder.PREFERENCE}), columns(set(builder.TIE_OUTPUTS))
    assert pref and tie and not pref & tie
    assert {builder.INFORMATION, builder.LINKAGE, builder.CREDIBILITY} <= {r[0] for r in builder.FORMULAS}
    # every preference covariate is named in the table
    named = " ".join(r[1] for r in builder.FORMULAS if r[0] == builder.PREFERENCE)
    assert all(k in named for k in builder.PREF_COVARIATES)


def test_changing_the_tie_data_leaves_preferences_alone_and_vice_versa(tmp_path):
    """What the table says, in behaviour: other trade, IGO-dyad and ATOP files change the ties and
    no preference; other UN votes change the preferences and no tie."""
    import shutil

    import polars as pl

    def build(data):
        inp = builder.gather(data, "PIV", 2000, "TGT")
        return builder.compose(inp, BuilderParams(), channels=True)

    base = build(FIX)
    ties_changed = tmp_path / "ties"
    shutil.copytree(FIX, ties_changed)
    for name, col in (("cow_trade_dyad_year.parquet", "flow1"), ("cow_igo_dyad_year.parquet", "dyadigos")):
        f = pl.read_parquet(FIX / name)
        f.with_columns(pl.col(col) * 3 + 7).write_parquet(ties_changed / name)
    atop = pl.read_parquet(FIX / "atop_alliance_dyad_year.parquet")
    atop.with_columns(pl.lit(0).cast(atop["atop_defense"].dtype).alias("atop_defense")).write_parquet(
        ties_changed / "atop_alliance_dyad_year.parquet")
    cow._frames.cache_clear()
    other = build(ties_changed)
    assert [c["preference"] for c in other["candidates"]] == [c["preference"] for c in base["candidates"]]
    assert [c["tie_credibility"] for c in other["candidates"]] != [c["tie_credibility"] for c in base["candidates"]]
    assert [c["tie_linkage"] for c in other["candidates"]] != [c["tie_linkage"] for c in base["candidates"]]
    prefs_changed = tmp_path / "prefs"
    shutil.copytree(FIX, prefs_changed)
    votes = pl.read_parquet(FIX / "un_votes.parquet")
    votes.with_columns(vote=pl.when(pl.col("ccode") == 200).then(pl.lit("no")).otherwise(pl.col("vote"))
                       ).write_parquet(prefs_changed / "un_votes.parquet")
    other = build(prefs_changed)
    assert [c["preference"] for c in other["candidates"]] != [c["preference"] for c in base["candidates"]]
    assert [{k: v for k, v in c.items() if k.startswith("tie")} for c in other["candidates"]] == \
        [{k: v for k, v in c.items() if k.startswith("tie")} for c in base["candidates"]]


def test_requirement_default_is_the_expected_capacity_of_the_willing():
    from scipy.special import ndtr
    prm = BuilderParams(requirement_share=1.5)
    inp, doc, _ = built(prm=prm)
    cap = builder.capacities(prm, inp).mean(axis=1)
    want = 1.5 * float(np.sum(ndtr(builder.preference_mean(prm, inp) / prm.pref_sd) * cap))
    assert doc["requirement"] == pytest.approx(round(want))
    assert 0 < doc["requirement"] < cap.sum()


def test_institutions_are_the_pivots_security_igos_and_those_given():
    _, doc, text = built(prm=BuilderParams(institution_min_members=3))
    ids = {i["id"]: i for i in doc["institutions"]}
    assert set(ids) == {"NATO"}  # UN is political but not a security organisation; MISC neither
    assert set(ids["NATO"]["members"]) == {"ALY", "NON", "FAR"} and ids["NATO"]["pivot_member"]
    assert ids["NATO"]["broker"] == pytest.approx(BuilderParams().broker_scale * (1 - 4 / 5))
    # no summit given: its council meets at venue_share x the deadline, with the fitted pull
    prm = BuilderParams()
    assert ids["NATO"]["venue_day"] == pytest.approx(prm.venue_share * doc["deadline_days"])
    assert ids["NATO"]["venue_bonus"] == prm.venue_bonus
    assert "North Atlantic alliance" in text
    _, doc, _ = built(prm=BuilderParams(institution_min_members=3, venue_share=0.5), deadline_days=40)
    assert doc["institutions"][0]["venue_day"] == 20.0
    _, doc, text = built(prm=BuilderParams(venue_bonus=0.7), institutions="UN:30,NATO:12.5")
    ids = {i["id"]: i for i in doc["institutions"]}
    assert ids["UN"]["venue_day"] == 30.0 and ids["UN"]["venue_bonus"] == 0.7 and ids["UN"]["broker"] == 0.0
    assert ids["NATO"]["venue_day"] == 12.5
    assert "given with --institutions" in text
    for bad, match in (("XYZ", "no IGO XYZ"), ("NATO:soon", "summit day must be a number"),
                       ("NATO:-3", r"in \[0, 36500\]")):
        with pytest.raises(DataError, match=match):
            built(institutions=bad)


def test_year_beyond_coverage_falls_back_and_the_file_says_so():
    inp, doc, text = built(year=2010)
    assert inp.years["igo"] == 2003 and inp.years["atop"] == 2008 and inp.years["trade"] == 2000
    assert "COW IGO members: year 2003 used for 2010" in text
    assert "ATOP: year 2008 used for 2010" in text and "COW trade: year 2000 used for 2010" in text
    assert any("ATOP" in s and "year 2008" in s for s in doc["sources"])
    inp, doc, text = built(year=2014)
    assert inp.years["nmc"] == 2012 and "COW NMC: year 2012 used for 2014" in text


def test_igo_years_before_1965_use_the_five_yearly_wave():
    inp, doc, text = built(year=1963)
    assert inp.years["igo"] == 1960
    assert "COW IGO members: year 1960 used for 1963 (the latest five-yearly wave" in text


def test_candidate_options_and_how_they_are_described():
    inp, doc, text = built(candidates="region:oceania")
    assert [c["id"] for c in doc["candidates"]] == ["FAR"]
    assert "the states of COW region oceania (ccode 900-999)" in text
    assert [c["id"] for c in built(candidates="list:NON,200")[1]["candidates"]] == ["NON", "ALY"]
    inp, doc, text = built(candidates="igo:nato")
    assert {c["id"] for c in doc["candidates"]} == {"ALY", "NON", "FAR"}
    assert "the full members of NATO in COW IGO v3, year 2000" in text and "all states" not in text
    assert "the full members of NATO" in doc["description"]
    assert "every state in the COW state system on 2000-07-01" in built()[2]
    with pytest.raises(DataError, match="unknown region"):
        built(candidates="region:atlantis")
    with pytest.raises(DataError, match="no IGO"):
        built(candidates="igo:xyz")


def test_costs_are_explained_in_the_file():
    _, doc, text = built()
    assert "payment unit is one preference sd" in text and "from a 50% to an 84% chance" in text
    assert "such offers" in text


def test_peer_ties_are_each_states_strongest_k():
    prm = BuilderParams(peer_k=1)
    inp, doc, _ = built(prm=prm)
    assert 1 <= len(doc["ties"]) <= len(doc["candidates"])
    assert all(t["a"] != t["b"] for t in doc["ties"])


def test_unknown_state_and_year_are_refused():
    with pytest.raises(DataError, match="--pivot XYZ: no such COW state"):
        built(pivot="XYZ")
    with pytest.raises(DataError, match="--target NEW: not in the COW state system on 2000-07-01"):
        built(target="NEW")
    with pytest.raises(DataError, match="--year 2030: not in the data"):
        built(year=2030)
    with pytest.raises(DataError, match="is the pivot"):
        built(target="PIV")


def test_cli_build_writes_a_valid_file_and_refuses_with_exit_2(tmp_path, capsys):
    out = tmp_path / "s.toml"
    assert main(["scenario", "build", "--pivot", "2", "--year", "2000", "--target", "TGT", "--data",
                 str(FIX), "-o", str(out)]) == 0
    s = load_scenario(out)
    assert s.pivot == "PIV" and len(s.candidates) == 3
    assert "pivotal scenario build --pivot 2 --year 2000" in out.read_text()
    for argv, what in ((["--pivot", "XYZ", "--year", "2000"], "--pivot XYZ"),
                       (["--pivot", "PIV", "--year", "1700"], "--year 1700"),
                       (["--pivot", "PIV", "--year", "2000", "--candidates", "igo:nope"], "igo:nope")):
        assert main(["scenario", "build", "--target", "TGT", "--data", str(FIX), *argv]) == 2
        err = capsys.readouterr().err
        assert what in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["scenario", "build", "--pivot", "PIV", "--year", "2000", "--target", "TGT",
                 "--data", str(tmp_path)]) == 2
    assert "not a COW data directory" in capsys.readouterr().err


def test_params_file_overrides_and_is_checked(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[builder]\npref_major = 2.5\nbandwidth = 7\n")
    prm = builder.load_params(f)
    assert prm.pref_major == 2.5 and prm.bandwidth == 7 and prm.pref_un_pivot == BuilderParams().pref_un_pivot
    f.write_text("[builder]\npref_nonsense = 1\n")
    with pytest.raises(DataError, match="pref_nonsense: unknown builder parameter"):
        builder.load_params(f)


def test_shipped_params_are_the_builder_defaults():
    assert builder.load_params() == BuilderParams()


# ------------------------------------------------------------------ real data

@needs_real
def test_real_data_quirks():
    assert cow.resolve(REAL, "GFR", 1990, "--pivot").ccode == 260
    with pytest.raises(DataError, match="West Germany is GFR, code 260"):
        cow.resolve(REAL, "GMY", 1990, "--pivot")
    assert cow.resolve(REAL, "255", 1999, "--pivot").abb == "GMY"
    # ATOP 1990: the US has a defence pledge with the UK (NATO) since 1949
    m = cow.atop_pledges(REAL, 1990, [2, 200])
    assert m["defense"][0, 1] == 1 == m["defense"][1, 0]
    from engine.data import ties
    d, _ = ties.defence(REAL, 1990, 2, [200])
    assert d["defense"][0] == 1 and d["age"][0] >= 40
    # Kuwait has no 1990 shape in cow_mindist: the latest year before it is used, not capitals
    inp = builder.gather(REAL, "USA", 1990, "IRQ", "KUW")
    assert not any("cow_mindist: no row for 1" in n and "SAU" in n for n in inp.notes)
    assert inp.interests.distance_km[[s.abb for s in inp.candidates].index("SAU")] == 0.0
    # Iraq has no votes in the data 1996-2003: its agreement comes from the latest window with them
    inp = builder.gather(REAL, "USA", 2003, "IRQ")
    assert inp.years["un"] == 2003 and inp.years["un_target"] < 2000


@needs_real
def test_random_pivots_and_years_build_valid_scenarios(tmp_path):
    rng = random.Random(11)
    years = [1823, 1900, 1937, 1952, 1963, 1990, 2015, 2019, 2022] + [rng.randint(1816, 2022) for _ in range(3)]
    for year in years:
        states = cow.system(REAL, year)
        pivot, target = rng.sample(states, 2)
        text, doc, inp = build_file(REAL, pivot.abb, year, str(target.ccode), prm=BuilderParams())
        out = tmp_path / f"s{year}.toml"
        out.write_text(text)
        s = load_scenario(out)
        assert len(s.candidates) == len(states) - 2
        if year > 2014:
            assert "COW IGO members: year 2014 used" in text and "COW trade: year 2014 used" in text
        if year > 2018:
            assert "ATOP: year 2018 used" in text
        if year < 1965:
            assert inp.years["igo"] % 5 == 0


@needs_real
@pytest.mark.parametrize("case", sorted((Path(__file__).resolve().parents[2] / "configs" / "backtests")
                                        .glob("*.toml")))
def test_shipped_wars_build(case):
    from engine.data import backtest
    p = backtest.prepare(backtest.load_case(case))
    s = backtest.scenario(p, BuilderParams())
    assert len(s.candidates) > 50 and p.joined.sum() >= 2
    assert s.pivot == "USA"
    # the default requirement makes success neither impossible nor certain
    res = pivotal.forecast(s, episodes=1000, seed=1, progress=False)
    summary = res.tables["summary"]
    success = summary.filter(summary["metric"] == "success")["mean"][0]
    assert 0.0 < success < 1.0, case.name


@needs_real
def test_shipped_scenarios_are_valid():
    root = Path(__file__).resolve().parents[2] / "configs" / "scenarios"
    for f in root.glob("*.toml"):
        load_scenario(f)


def test_every_named_parameter_is_documented_with_its_default():
    import dataclasses
    text = (Path(__file__).resolve().parents[2] / "docs" / "SCENARIOS.md").read_text()
    for f in dataclasses.fields(BuilderParams):
        assert f"| `{f.name}` | {getattr(BuilderParams(), f.name)}" in text, f.name
