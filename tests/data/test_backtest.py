"""`pivotal backtest`: case files, scores against hand computations, baselines, tables, fit."""
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pivotal
from engine.data import backtest, builder, fit
from engine.data.builder import BuilderParams
from engine.cli.main import main
from case_fixtures import CASE, FIX

HERE = Path(__file__).resolve().parents[1]
REAL = HERE.resolve().parents[0] / ".." / "shared" / "data"
needs_real = pytest.mark.skipif(not (REAL / "cow_states.csv").exists(), reason="../shared/data not present")



@pytest.fixture
def case_file(tmp_path):
    (tmp_path / "cow").symlink_to(FIX.resolve())
    f = tmp_path / "fixture_war.toml"
    f.write_text(CASE)
    return f


def test_auc_brier_log_loss_match_hand_computation():
    p, y = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # pairs (positive > negative): 0.35>0.1, 0.8>0.1, 0.8>0.4 = 3 of 4
    assert backtest.auc(p, y) == pytest.approx(0.75)
    assert backtest.brier(p, y) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    want = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert backtest.log_loss(p, y, episodes=1000) == pytest.approx(want)
    assert backtest.auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # ties count one half
    assert backtest.auc([0.2, 0.9], [1, 0]) == 0.0
    assert backtest.auc([0.2, 0.9], [1, 1]) is None
    # a Monte Carlo probability of exactly 0 is clipped to 1/(2n)
    assert backtest.log_loss([0.0], [1], episodes=500) == pytest.approx(math.log(1000))


def test_case_file_paths_and_participants(case_file):
    c = backtest.load_case(case_file)
    assert c.data == (case_file.parent / "cow").resolve()
    assert c.observed_file == c.data / "cow_war_participants.csv"
    p = backtest.prepare(c)
    assert [s.abb for s in p.inputs.candidates] == ["ALY", "NON", "FAR"]
    assert list(p.joined) == [True, False, False] and p.scored.all()
    # ./file is relative to the case file, and exclude removes a state from scoring
    (case_file.parent / "mine.csv").write_text("warnum,ccode,side\n7,220,2\n7,900,2\n")
    case_file.write_text(CASE.replace('"cow_war_participants.csv"', '"./mine.csv"')
                         .replace("warnum = 999\nside = 1", 'warnum = 7\nside = 2\nexclude = ["FAR"]'))
    p = backtest.prepare(backtest.load_case(case_file))
    assert list(p.joined) == [False, True, True] and list(p.scored) == [True, True, False]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('name = "Fixture war"\n', ""), "name: required key is missing"),
    (lambda t: t.replace("year = 2000", "year = 2000\nspeed = 3"), "build.speed: unknown key"),
    (lambda t: t.replace("year = 2000", 'year = "2000"'), "build.year: must be an integer"),
    (lambda t: t.replace("warnum = 999", "warnum = 998"), "no row of warnum 998, side 1"),
    (lambda t: t.replace('"cow_war_participants.csv"', '"./none.csv"'), "observed.file: cannot read"),
    (lambda t: t.replace('pivot = "PIV"', 'pivot = "XYZ"'), "build.pivot: XYZ: no such COW state"),
    (lambda t: t.replace("year = 2000", "year = 1700"), "build.year: 1700: not in the data"),
    (lambda t: t.replace("year = 2000", 'year = 2000\ncandidates = "region:mars"'),
     "build.candidates: region:mars: unknown region"),
    (lambda t: t.replace("[observed]", "[observed]\nexclude = [true]"), "observed.exclude"),
    (lambda t: t.replace("deadline_days = 120", "deadline_days = 0"), "build.deadline_days: must be > 0"),
])
def test_bad_case_files_exit_2_with_one_line(case_file, capsys, edit, message):
    case_file.write_text(edit(CASE))
    assert main(["backtest", str(case_file), "--episodes", "100", "--out", str(case_file.parent / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(case_file) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("rows, message", [
    ("warnum,ccode,side,note\n7,220,2,ok\n7,SPN,2,ok\n", "line 3: ccode must be an integer (got 'SPN')"),
    ("warnum,ccode,side,note\n7,220,2,ok\n7,,2,ok\n", "line 3: ccode must be an integer (got '')"),
    ("warnum,ccode,side,note\n7,220,one,ok\n", "line 2: side must be an integer (got 'one')"),
    ("warnum,ccode,side,note\n7,220,2,air, sea\n", "line 2 has 5 fields where the header has 4"),
    ("warnum,side\n7,2\n", "lacks the columns ccode"),
    ("warnum,ccode,side\n7,9999,2\n", "ccode 9999 (warnum 7, side 2) is not a COW state code"),
])
def test_a_bad_participants_file_is_refused_with_its_line(case_file, capsys, rows, message):
    (case_file.parent / "mine.csv").write_text(rows)
    case_file.write_text(CASE.replace('"cow_war_participants.csv"', '"./mine.csv"')
                         .replace("warnum = 999\nside = 1", "warnum = 7\nside = 2"))
    assert main(["backtest", str(case_file), "--episodes", "100", "--out", str(case_file.parent / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "observed.file" in err and "mine.csv" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_participants_that_are_not_candidates_are_named_not_scored(case_file, capsys):
    # FAR (900) joined but the candidates are a list without it; the pivot's own row is no news
    (case_file.parent / "mine.csv").write_text("warnum,ccode,side\n7,2,1\n7,220,1\n7,900,1\n")
    case_file.write_text(CASE.replace('"cow_war_participants.csv"', '"./mine.csv"')
                         .replace("warnum = 999", "warnum = 7")
                         .replace("year = 2000", 'year = 2000\ncandidates = "list:ALY,NON"'))
    assert main(["backtest", str(case_file), "--episodes", "200", "--out", str(case_file.parent / "o")]) == 0
    captured = capsys.readouterr()
    assert "participants not among the candidates, not scored: FAR (900)" in captured.err
    assert "PIV" not in captured.err.split("not scored:")[1]
    assert "own file mine.csv" in pl.read_parquet(case_file.parent / "o" / "backtests")["observed_set"][0]


def test_only_the_datas_own_war_list_is_labelled_with_cows_threshold(case_file):
    assert backtest.observed_set(backtest.load_case(case_file)) == backtest.THRESHOLD
    (case_file.parent / "cow_war_participants.csv").write_text("warnum,ccode,side\n999,200,1\n")
    case_file.write_text(CASE.replace('"cow_war_participants.csv"', '"./cow_war_participants.csv"'))
    assert "own file cow_war_participants.csv" in backtest.observed_set(backtest.load_case(case_file))


def test_two_cases_with_one_name_or_file_name_are_refused(case_file, capsys):
    twin = case_file.parent / "twin.toml"
    twin.write_text(CASE)  # same name "Fixture war"
    assert main(["backtest", str(case_file), str(twin), "--episodes", "100"]) == 2
    err = capsys.readouterr().err
    assert "name: same name 'Fixture war' as" in err and str(case_file) in err and str(twin) in err
    (case_file.parent / "d").mkdir()
    same_stem = case_file.parent / "d" / case_file.name
    same_stem.write_text(CASE.replace("Fixture war", "Another war"))
    assert main(["backtest", str(case_file), str(same_stem), "--episodes", "100"]) == 2
    err = capsys.readouterr().err
    assert "same file name 'fixture_war'" in err and len(err.strip().splitlines()) == 1


def test_a_case_file_and_a_scenario_file_mistaken_for_each_other_are_named(case_file, capsys):
    scenario = HERE.parent / "configs" / "scenarios" / "tutorial.toml"
    assert main(["backtest", str(scenario), "--episodes", "100"]) == 2
    assert "a scenario file, not a backtest case: run it with `pivotal run`" in capsys.readouterr().err
    assert main(["validate", str(case_file)]) == 2
    err = capsys.readouterr().err
    assert "a backtest case file, not a scenario: run it with `pivotal backtest`" in err
    assert len(err.strip().splitlines()) == 1


def test_the_printout_keeps_long_case_names_whole():
    rows = pl.DataFrame({"case": ["A case whose name is much longer than thirty-four characters"] * 2,
                         "model": ["pivotal", "capacity"], "scored": [3, 3], "participants": [1, 1],
                         "auc": [0.9, 0.5], "brier": [0.1, None], "log_loss": [0.3, None]})
    assert "A case whose name is much longer than thirty-four characters pivotal" in backtest.report(rows)


def test_backtest_tables_published_with_the_run(case_file, tmp_path, capsys):
    out = tmp_path / "fc"
    assert main(["backtest", str(case_file), "--episodes", "2000", "--out", str(out), "--run-id", "r1"]) == 0
    printed = capsys.readouterr().out
    assert "participation threshold" in printed and "base_rate" in printed
    assert pl.read_parquet(out / "backtests")["observed_set"][0] == backtest.THRESHOLD  # COW's own list
    assert main(["show", "--out", str(out), "--run-id", "r1"]) == 0  # the scores again, from the tables
    shown = capsys.readouterr().out
    assert printed.split("Note: ")[1] in shown
    bt = pl.read_parquet(out / "backtests" / "run_id=r1" / "part-0.parquet")
    st = pl.read_parquet(out / "backtest_states" / "run_id=r1" / "part-0.parquet")
    assert (out / "runs" / "run_id=r1").exists() and not (out / "_staging" / "run_id=r1").exists()
    assert bt["model"].to_list() == ["pivotal", "no_ties", "shuffled_ties", "capacity", "base_rate", "logit"]
    assert set(bt["scored"]) == {3} and set(bt["participants"]) == {1}
    cap = bt.filter(pl.col("model") == "capacity")
    assert cap["brier"].null_count() == 1 and cap["log_loss"].null_count() == 1  # null, never NaN
    assert not any(bt[c].is_nan().any() for c in ("auc", "brier", "log_loss"))
    base = bt.filter(pl.col("model") == "base_rate").row(0, named=True)
    assert base["auc"] == 0.5 and base["brier"] == pytest.approx(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 3)
    assert st.columns[:7] == ["run_id", "case", "state", "ccode", "participated", "p_member", "capacity_rank"] \
        or {"run_id", "case", "state", "ccode", "participated", "p_member", "capacity_rank"} <= set(st.columns)
    assert st["state"].to_list() == ["ALY", "NON", "FAR"]
    assert st["capacity_rank"].to_list() == [1, 1, 1]  # equal milper: tied ranks
    # the scores are those of the printed probabilities
    y = st["participated"].to_numpy()
    row = bt.filter(pl.col("model") == "pivotal").row(0, named=True)
    assert row["brier"] == pytest.approx(backtest.brier(st["p_member"].to_numpy(), y))
    assert row["auc"] == pytest.approx(backtest.auc(st["p_member"].to_numpy(), y))


def test_no_ties_baseline_is_the_same_scenario_with_ties_off_and_same_seed(case_file):
    prm = BuilderParams(budget=2.0)
    p = backtest.prepare(backtest.load_case(case_file))
    res = backtest.run_backtests([p], prm, episodes=3000, seed=5)
    alone = pivotal.forecast(backtest.scenario(p, prm, ties=False), episodes=3000, seed=5, progress=False)
    st = res.tables["backtest_states"]
    assert np.array_equal(st["p_member_no_ties"].to_numpy(), alone.tables["candidates"]["p_member"].to_numpy())
    off = backtest.scenario(p, prm, ties=False)
    assert off.mechanisms == {**{k: True for k in off.mechanisms}, **backtest.TIES_OFF}


def test_probit_recovers_known_coefficients(monkeypatch):
    """On data drawn from a probit with known coefficients, the fit's MAP estimate (a wide
    prior) lands near them, and a narrow prior pulls the slopes towards 0 (not the intercept)."""
    rng = np.random.default_rng(3)
    n, k = 20_000, len(fit.PREF_NAMES)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    beta = np.linspace(-1.0, 1.0, k)
    y = (x @ beta + rng.normal(size=n) >= 0).astype(float)
    monkeypatch.setattr(fit, "design", lambda prepared: (x, y))
    wide, ll = fit.probit([], prior_sd=100.0)
    assert [wide[name] for name in fit.PREF_NAMES] == pytest.approx(beta, abs=0.06)
    assert -1.0 < ll < 0.0
    narrow, _ = fit.probit([], prior_sd=0.001)
    assert all(abs(narrow[name]) < 0.05 for name in fit.PREF_NAMES[1:])


def test_fit_takes_the_probit_and_the_best_grid_point_and_round_trips(case_file):
    p = backtest.prepare(backtest.load_case(case_file))
    res = fit.fit([p], BuilderParams(), episodes=300)
    assert len(res.grid) == int(np.prod([len(v) for v in fit.PROCESS_GRID.values()]))
    assert res.chosen is fit.best(res.grid)
    assert res.chosen["joint"] == min(r["joint"] for r in res.grid)
    # no complete case: the joint score is the membership log-likelihood of the scored states
    assert res.chosen["size_log_score"] is None
    assert res.chosen["joint"] == pytest.approx(res.chosen["log_loss"] * int(p.scored.sum()))
    coefficients, _ = fit.probit([p])
    for name in fit.PREF_NAMES[1:]:
        assert getattr(res.params, name) == pytest.approx(coefficients[name])
    # the intercept is the probit's moved by the chosen shift; the other grid values are taken as chosen
    assert res.params.pref_intercept == pytest.approx(coefficients["pref_intercept"] + res.chosen["intercept_shift"])
    for name in set(fit.PROCESS_GRID) - {"intercept_shift"}:
        assert getattr(res.params, name) == res.chosen[name]
    f = case_file.parent / "fitted.toml"
    f.write_text(fit.params_text(res.params, "test"))
    again = builder.load_params(f)
    for name in fit.FIT_NAMES:
        assert getattr(again, name) == pytest.approx(getattr(res.params, name), abs=1e-5)


def test_joint_score_adds_the_size_log_score_of_complete_cases(monkeypatch):
    """The grid's criterion: summed membership log loss of the scored states plus each complete
    case's size log score; the best point is the lowest joint score, not the lowest log loss."""
    rows = [{"joint": 20.0, "log_loss": 0.1}, {"joint": 19.0, "log_loss": 0.5}]
    assert fit.best(rows) is rows[1]


def test_leave_one_out_fits_each_fold_without_its_case(case_file):
    """Fold k's probit is fitted on every case but k (the held-out case never enters its own fit)."""
    (case_file.parent / "second_war.toml").write_text(CASE.replace("Fixture war", "Second war"))
    a = backtest.prepare(backtest.load_case(case_file))
    b = backtest.prepare(backtest.load_case(case_file.parent / "second_war.toml"))
    b.joined = ~b.joined                                     # the second war: the others joined
    folds = fit.leave_one_out([a, b], BuilderParams(), episodes=200)
    fitted = [fit.probit([other])[0] for other in (b, a)]
    assert fitted[0] != pytest.approx(fitted[1])          # the two folds' data differ
    for fold, coefficients in zip(folds, fitted):
        for name in fit.PREF_NAMES[1:]:
            assert getattr(fold.params, name) == pytest.approx(coefficients[name])
        assert fold.params.pref_intercept == pytest.approx(coefficients["pref_intercept"]
                                                           + fold.chosen["intercept_shift"])


def test_cli_fit_writes_a_parameters_file_and_scores_leave_one_out(case_file, tmp_path, capsys):
    (case_file.parent / "second_war.toml").write_text(CASE.replace("Fixture war", "Second war"))
    out = tmp_path / "fitted.toml"
    assert main(["backtest", "--fit", str(case_file), str(case_file.parent / "second_war.toml"),
                 "--episodes", "200", "--seeds", "1", "--out", str(tmp_path / "fc"),
                 "--params-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "leave-one-case-out" in printed and "<- chosen" in printed
    assert "without Fixture war:" in printed and "without Second war:" in printed
    fitted = builder.load_params(out)
    assert "[builder]" in out.read_text() and "# fitted" in out.read_text()
    # `scenario build --params FILE` uses the fitted values
    built = tmp_path / "s.toml"
    assert main(["scenario", "build", "--pivot", "PIV", "--year", "2000", "--target", "TGT", "--data", str(FIX),
                 "--params", str(out), "-o", str(built)]) == 0
    assert f"mean = {fitted.pref_intercept:g} + " in built.read_text()


def test_data_flag_overrides_the_case_file(case_file, tmp_path, capsys):
    case_file.write_text(CASE.replace('data = "cow"', 'data = "nowhere"'))
    assert main(["backtest", str(case_file), "--episodes", "200", "--out", str(tmp_path / "a")]) == 2
    assert "not a COW data directory" in capsys.readouterr().err
    assert main(["backtest", str(case_file), "--episodes", "200", "--out", str(tmp_path / "b"),
                 "--data", str(FIX)]) == 0


@pytest.fixture(scope="module")
def shipped_and_korea():
    cases = sorted((HERE.parent / "configs" / "backtests").glob("*.toml"))
    korea = HERE / "fixtures" / "korea_1950" / "korean_war_1950.toml"
    prepared = [backtest.prepare(backtest.load_case(f)) for f in [*cases, korea]]
    res = backtest.run_backtests(prepared, builder.load_params(), episodes=4000, seeds=1)  # (paired differences not asserted here)
    return {(r["case"], r["model"]): r for r in res.tables["backtests"].iter_rows(named=True)}, prepared


@needs_real
def test_shipped_cases_run_and_beat_the_baselines_in_sample(shipped_and_korea):
    rows, prepared = shipped_and_korea
    assert len(rows) == len(backtest.MODELS) * len(prepared)
    for p in prepared[:-1]:
        r = {m: rows[(p.case.name, m)] for m in backtest.MODELS}
        assert r["pivotal"]["auc"] >= 0.75, p.case.name  # Iraq 2003 (2 participants): about 0.78
    mean = lambda m, k="log_loss": np.mean([rows[(p.case.name, m)][k] for p in prepared[:-1]])  # noqa: E731
    assert mean("pivotal", "auc") >= 0.85 and mean("pivotal", "auc") > mean("capacity", "auc") + 0.05
    assert mean("pivotal") < mean("base_rate")  # on average (not in every case: Iraq 2003)


@needs_real
def test_a_case_outside_the_data_with_its_own_participants_is_built_and_scored(shipped_and_korea):
    rows, prepared = shipped_and_korea
    korea = prepared[-1]
    assert korea.case.observed_file == HERE / "fixtures" / "korea_1950" / "./participants.csv"
    assert (korea.joined & korea.scored).sum() == 12 and korea.scored.sum() == len(korea.scored) - 1  # ROK out
    r = rows[("Korean War, 1950", "pivotal")]
    assert r["scored"] == korea.scored.sum() and r["auc"] > 0.6


@needs_real
def test_a_second_case_outside_the_data_beats_the_capacity_ranking():
    """Libya 2011 (France as pivot), scored from its own participants file: every state that
    sent aircraft or ships. Not used to fit anything."""
    case = HERE / "fixtures" / "libya_2011" / "libya_2011.toml"
    p = backtest.prepare(backtest.load_case(case))
    assert p.joined[p.scored].sum() == 17  # the 18 listed, France (the pivot) not scored
    res = backtest.run_backtests([p], builder.load_params(), episodes=4000, seeds=1)
    rows = {r["model"]: r for r in res.tables["backtests"].iter_rows(named=True)}
    # 0.84 against capacity's 0.74 with the defaults fitted on the 35 cases (0.90 with the earlier
    # defaults fitted on nine wars: docs/BACKTESTS.md)
    assert rows["pivotal"]["auc"] >= 0.8 and rows["pivotal"]["auc"] > rows["capacity"]["auc"] + 0.05
    assert rows["pivotal"]["brier"] < rows["base_rate"]["brier"]


@needs_real
def test_three_more_coalitions_outside_the_data_pass_the_bar():
    """UNITAF Somalia 1992, Deliberate Force 1995 and Serval/AFISMA Mali 2013 (France as pivot),
    written from history by a reviewer before any forecast; not used to fit anything."""
    names = ("somalia_1992", "bosnia_1995", "mali_2013")
    prepared = [backtest.prepare(backtest.load_case(HERE / "fixtures" / n / f"{n}.toml")) for n in names]
    assert [int(p.joined[p.scored].sum()) for p in prepared] == [21, 7, 15]
    res = backtest.run_backtests(prepared, builder.load_params(), episodes=4000, seeds=1)
    rows = {(r["case"], r["model"]): r for r in res.tables["backtests"].iter_rows(named=True)}
    aucs = {p.case.name: (rows[(p.case.name, "pivotal")]["auc"], rows[(p.case.name, "capacity")]["auc"])
            for p in prepared}
    assert all(auc >= 0.7 for auc, _ in aucs.values()), aucs
    # Somalia ranks at its capacity ranking's level (0.742 against 0.745 with the defaults fitted on
    # the 35 cases; 0.783 before): above it on average, not in every case (docs/BACKTESTS.md)
    assert np.mean([a for a, _ in aucs.values()]) > np.mean([c for _, c in aucs.values()]) + 0.05, aucs
    for name in ("Deliberate Force, Bosnia 1995", "Serval/AFISMA Mali, 2013"):
        assert aucs[name][0] > aucs[name][1], name


@needs_real
def test_korean_war_acceptance_auc(shipped_and_korea):
    """The issue's bar on a coalition outside the data: AUC >= 0.7 and above the capacity ranking.
    (It failed, 0.69 against 0.70, until the allied-major covariate: docs/BACKTESTS.md.)"""
    rows, _ = shipped_and_korea
    pivotal_auc = rows[("Korean War, 1950", "pivotal")]["auc"]
    assert pivotal_auc >= 0.7 and pivotal_auc > rows[("Korean War, 1950", "capacity")]["auc"]


@needs_real
def test_korean_war_passes_however_the_case_file_is_written(tmp_path):
    """The same bar when distances go to the target's capital (no theater) and South Korea,
    the invaded state, is scored as a participant: the result is not an artefact of the case
    file's choices."""
    src = HERE / "fixtures" / "korea_1950"
    text = (src / "korean_war_1950.toml").read_text()
    text = text.replace('data = "../../../../shared/data"', f'data = "{REAL}"')
    text = text.replace('theater = "ROK"\n', "").replace('exclude = ["ROK"]', "")
    (tmp_path / "participants.csv").write_text((src / "participants.csv").read_text())
    (tmp_path / "korea.toml").write_text(text)
    p = backtest.prepare(backtest.load_case(tmp_path / "korea.toml"))
    assert p.inputs.theater.abb == "PRK" and p.scored.all() and p.joined.sum() == 13  # ROK scored
    res = backtest.run_backtests([p], builder.load_params(), episodes=4000, seeds=1)
    rows = {r["model"]: r for r in res.tables["backtests"].iter_rows(named=True)}
    assert rows["pivotal"]["auc"] >= 0.7 and rows["pivotal"]["auc"] > rows["capacity"]["auc"]
