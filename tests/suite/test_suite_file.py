"""Suite files: a bad one is one line naming the file, the key path and the rule (exit 2, nothing
written); the shipped nightly suite reads, expands its glob and plans every item (--dry-run)."""
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.suite.suitefile import load_suite

ROOT = Path(__file__).resolve().parents[2]
NIGHTLY = ROOT / "configs" / "suites" / "nightly.toml"
GOOD = 'name = "n"\n[[items]]\nscenario = "a.toml"\n'


@pytest.mark.parametrize("text, where, rule", [
    ('name = "n"\n', "items", "at least one [[items]]"),
    ('[[items]]\nscenario = "a.toml"\n', "name", "required"),
    ('name = "a b"\n[[items]]\nscenario = "a.toml"\n', "name", "letters, digits"),
    ("colour = 1\n" + GOOD, "colour", "unknown key"),
    (GOOD + "colour = 1\n", "items[0].colour", "unknown key"),
    ('name = "n"\n[defaults]\nepisodes = 0\n[[items]]\nscenario = "a.toml"\n', "defaults.episodes", ">= 1"),
    ('name = "n"\n[defaults]\nseed = "one"\n[[items]]\nscenario = "a.toml"\n', "defaults.seed", "integer"),
    ('name = "n"\n[drift]\nalpha = 1.5\n[[items]]\nscenario = "a.toml"\n', "drift.alpha", "(0, 1)"),
    ('name = "n"\n[[items]]\nscenario = "a.toml"\nstudy = "s.toml"\n', "items[0]", "exactly one"),
    ('name = "n"\n[[items]]\nscenario = "a.toml"\nseeds = 2\n', "items[0].seeds", "unknown key"),
    ('name = "n"\n[[items]]\nscenario = "a.toml"\nmax_episodes = 9\n', "items[0].max_episodes", "target_se"),
    ('name = "n"\n[[items]]\nscenario = "none/*.toml"\n', "items[0].scenario", "no file matches"),
    ('name = "n"\n[[items]]\nscenario = "a.toml"\n[[items]]\nscenario = "x/a.toml"\n', "items[1]", "used twice"),
    ('name = "n"\n[[items]]\nbacktest = []\n', "items[0].backtest", "non-empty list"),
    ('name = "n"\n[[items]]\nscenario = "a.toml"\nexecutor = "gpu"\n', "items[0].executor", "'local' or 'ray'"),
    ("name = \n", "", "not valid TOML"),
])
def test_a_bad_suite_file_is_one_line_and_exit_2(tmp_path, capsys, text, where, rule):
    f = tmp_path / "suite.toml"
    f.write_text(text)
    assert main(["suite", str(f), "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"pivotal: error: {f}: {where + ': ' if where else ''}") and rule in err, err
    assert not (tmp_path / "out").exists()


def test_only_names_an_item(tmp_path, capsys):
    (tmp_path / "suite.toml").write_text(GOOD)
    assert main(["suite", str(tmp_path / "suite.toml"), "--only", "zzz", "--out", str(tmp_path / "o")]) == 2
    assert "--only zzz: no item of the suite has that name (items: a)" in capsys.readouterr().err


def test_the_shipped_nightly_suite_plans_every_item(tmp_path, capsys):
    st = load_suite(NIGHTLY)
    shipped = sorted(p.stem for p in (ROOT / "configs" / "scenarios").glob("*.toml"))
    assert [i.name for i in st.items if i.kind == "scenario"] == shipped
    study = st.item("syria_drivers")
    assert study.kind == "study" and study.settings["episodes"] <= 500
    backtest = st.item("backtest_iraq_kosovo")
    assert [f.name for f in backtest.files] == ["iraq_2003.toml", "kosovo_1999.toml"]
    assert st.out == str((ROOT / "forecasts").resolve())
    assert main(["suite", str(NIGHTLY), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(st.items) and all(" run " in line and "new item" in line for line in lines)
    assert not (tmp_path / "o").exists()  # a dry run writes nothing
