"""`pivotal scenario build`: formulas on small fixtures (tests/fixtures/cow), and the real data."""
import math
import random
import tomllib
from pathlib import Path

import numpy as np
import pytest

from engine.data import builder, cow
from engine.data.builder import BuilderParams
from engine.cli.main import main
from engine.data.cow import DataError
from engine.model.scenario import load_scenario, parse_scenario

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cow"
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_real = pytest.mark.skipif(not (REAL / "cow_states.csv").exists(), reason="../shared/data not present")


def built(year=2000, prm=None, **kw):
    prm = prm or BuilderParams()
    kw.setdefault("target", "TGT")
    inp = builder.gather(FIX, kw.pop("pivot", "PIV"), year, kw.pop("target"), kw.pop("theater", None),
                         kw.pop("candidates", "all"))
    doc = builder.compose(inp, prm, **kw)
    text = builder.render(doc, inp, prm)
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


def test_an_ally_gets_a_higher_tie_and_preference_than_an_identical_non_ally():
    prm = BuilderParams()
    inp, doc, _ = built(prm=prm)
    aly, non = by_id(doc)["ALY"], by_id(doc)["NON"]
    # the only ATOP row is PIV -> ALY (directed): counted for the pair in either direction
    assert aly["tie"]["mean"] == pytest.approx(non["tie"]["mean"] + prm.w_defense + prm.w_consult, abs=1e-3)
    assert aly["preference"]["mean"] == pytest.approx(non["preference"]["mean"] + prm.pref_ally_pivot,
                                                      abs=1e-3)


def test_tie_mean_formula_and_cap():
    prm = BuilderParams(tie_base=0.1, tie_max=0.6, w_igo=0.5)
    inp, doc, _ = built(prm=prm)
    # NON shares NATO, UN, MISC with PIV: cosine 1 -> 0.1 + 0.5 = 0.6 (= the cap); ALY would pass it
    assert by_id(doc)["NON"]["tie"]["mean"] == pytest.approx(0.6)
    assert by_id(doc)["ALY"]["tie"]["mean"] == pytest.approx(0.6)
    assert by_id(doc)["NON"]["tie"]["concentration"] == prm.tie_concentration


def test_distance_enters_the_preference_with_the_documented_sign():
    for coef in (-0.4, 0.3):
        prm = BuilderParams(pref_log_distance=coef)
        inp, doc, _ = built(prm=prm)
        k_non, k_far = 1, 2
        expected = coef * (math.log1p(inp.distance_km[k_far] / 1000) - math.log1p(inp.distance_km[k_non] / 1000))
        diff = by_id(doc)["FAR"]["preference"]["mean"] - by_id(doc)["NON"]["preference"]["mean"]
        assert inp.distance_km[k_far] > 5 * inp.distance_km[k_non]
        assert diff == pytest.approx(expected, abs=1e-3)
        assert (diff < 0) == (coef < 0)


def test_preference_is_the_documented_linear_prior():
    prm = BuilderParams(pref_intercept=-2.0, pref_ally_pivot=1.5, pref_ally_target=-0.7, pref_igo=0.9,
                        pref_log_distance=-0.25, pref_major=0.6, pref_log_milper=0.2)
    inp, doc, _ = built(prm=prm)
    x = builder.covariates(inp)
    for k, c in enumerate(doc["candidates"]):
        want = (-2.0 + 1.5 * x["ally_pivot"][k] - 0.7 * x["ally_target"][k] + 0.9 * x["igo"][k]
                - 0.25 * x["log_distance"][k] + 0.6 * x["major"][k] + 0.2 * math.log1p(100.0))
        assert c["preference"]["mean"] == pytest.approx(want, abs=1e-3)
        assert c["preference"]["sd"] == prm.pref_sd


def test_the_allied_major_term_lifts_only_a_major_power_allied_with_the_pivot():
    inp, _, _ = built()
    inp.major = np.array([1.0, 1.0, 0.0])  # ALY (allied with PIV) and NON (not) made major powers
    x = builder.covariates(inp)
    assert list(x["major_ally"]) == [1.0, 0.0, 0.0]
    prm = BuilderParams(pref_major=0.3, pref_major_ally=1.2)
    lift = builder.preference_mean(prm, inp) - builder.preference_mean(
        prm.replace(pref_major=0.0, pref_major_ally=0.0), inp)
    assert lift == pytest.approx([1.5, 0.3, 0.0])
    doc = builder.compose(inp, prm)
    assert "1.2*major*ally_pivot" in builder.render(doc, inp, prm)


@needs_real
def test_allied_and_unallied_major_powers_in_1950():
    inp = builder.gather(REAL, "USA", 1950, "PRK", "ROK")
    x = builder.covariates(inp)
    ally_major = {s.abb for s, v in zip(inp.candidates, x["major_ally"]) if v}
    major = {s.abb for s, v in zip(inp.candidates, x["major"]) if v}
    assert ally_major == {"UKG", "FRN"} and major == {"UKG", "FRN", "RUS", "CHN"}


def test_institutions_are_the_pivots_political_igos():
    _, doc, _ = built(prm=BuilderParams(institution_min_members=3))
    ids = {i["id"]: i for i in doc["institutions"]}
    assert "MISC" not in ids  # not political in the catalog
    assert set(ids["NATO"]["members"]) == {"ALY", "NON", "FAR"}
    # UN has every state: broker 0; NATO has 4 of the 5 states in the IGO data
    assert ids["UN"]["broker"] == pytest.approx(0.0)
    assert ids["NATO"]["broker"] == pytest.approx(BuilderParams().broker_scale * (1 - 4 / 5))
    _, doc, _ = built(prm=BuilderParams(institution_min_members=4))
    assert doc["institutions"] == []


def test_year_beyond_coverage_falls_back_and_the_file_says_so():
    inp, doc, text = built(year=2010)
    assert inp.years == {"states": 2010, "nmc": 2010, "igo": 2003, "atop": 2008, "capitals": 2010}
    assert "COW IGO: year 2003 used for 2010" in text
    assert "ATOP: year 2008 used for 2010" in text
    assert any("year 2003" in s and "IGO" in s for s in doc["sources"])
    inp, doc, text = built(year=2014)
    assert inp.years["nmc"] == 2012 and "COW NMC: year 2012 used for 2014" in text


def test_igo_years_before_1965_use_the_five_yearly_wave():
    inp, doc, text = built(year=1963)
    assert inp.years["igo"] == 1960
    assert "COW IGO: year 1960 used for 1963 (the latest five-yearly wave" in text
    # ALY joins NATO only in the 1965 data: in the 1960 wave it is not a NATO member
    nato = {i["id"]: i for i in doc["institutions"]}.get("NATO")
    assert nato is None or "ALY" not in nato["members"]


def test_candidate_options():
    assert [c["id"] for c in built(candidates="region:oceania")[1]["candidates"]] == ["FAR"]
    assert [c["id"] for c in built(candidates="list:NON,200")[1]["candidates"]] == ["NON", "ALY"]
    assert {c["id"] for c in built(candidates="igo:nato")[1]["candidates"]} == {"ALY", "NON", "FAR"}
    with pytest.raises(DataError, match="unknown region"):
        built(candidates="region:atlantis")
    with pytest.raises(DataError, match="no IGO"):
        built(candidates="igo:xyz")


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
    assert prm.pref_major == 2.5 and prm.bandwidth == 7 and prm.pref_igo == BuilderParams().pref_igo
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
    # ATOP 1990: the US has a defence pledge with the UK (NATO)
    m = cow.atop_pledges(REAL, 1990, [2, 200])
    assert m["defense"][0, 1] == 1 == m["defense"][1, 0]


@needs_real
def test_random_pivots_and_years_build_valid_scenarios(tmp_path):
    rng = random.Random(11)
    years = [1823, 1900, 1937, 1952, 1963, 1990, 2015, 2019, 2022] + [rng.randint(1816, 2022) for _ in range(3)]
    for year in years:
        states = cow.system(REAL, year)
        pivot, target = rng.sample(states, 2)
        text, doc, inp = builder.build_file(REAL, pivot.abb, year, str(target.ccode), prm=BuilderParams())
        out = tmp_path / f"s{year}.toml"
        out.write_text(text)
        s = load_scenario(out)
        assert len(s.candidates) == len(states) - 2
        if year > 2014:
            assert "COW IGO: year 2014 used" in text
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
