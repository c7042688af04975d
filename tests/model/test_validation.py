"""Every rule of the scenario format: one message naming the file, the key path and the rule."""
import subprocess
import sys
from pathlib import Path

import pytest

from engine.model.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]

GOOD = '''
name = "ok"
pivot = "P"
deadline_days = 100
[[candidates]]
id = "A"
capacity = { low = 1, mode = 2, high = 3 }
preference = { mean = 0.0, sd = 1.0 }
tie = { mean = 0.5, concentration = 10.0 }
[[candidates]]
id = "B"
capacity = { low = 1, mode = 2, high = 3 }
preference = { mean = 0.0, sd = 1.0 }
tie = { mean = 0.5, concentration = 10.0 }
'''


def after_deadline(lines):
    """A change that inserts `lines` after `deadline_days` (top-level keys or whole tables)."""
    return lambda t: t.replace("deadline_days = 100", "deadline_days = 100\n" + lines)


# (what to change, key path in the message, words of the rule in the message)
CASES = [
    (lambda t: t.replace('name = "ok"\n', ""), "name", "required"),
    (lambda t: t.replace('pivot = "P"\n', ""), "pivot", "required"),
    (lambda t: t.replace("deadline_days = 100", "deadline_days = 0"), "deadline_days", "in (0, 36500]"),
    (lambda t: t.replace("deadline_days = 100", 'deadline_days = "soon"'), "deadline_days", "number"),
    (lambda t: "colour = 1\n" + t, "colour", "unknown key"),
    (after_deadline("requirement = -1"), "requirement", "in [0, 1e12]"),
    (after_deadline("min_partners = 1.5"), "min_partners", "integer"),
    (after_deadline("budget = nan"), "budget", "finite"),
    (after_deadline("[parameters]\nbandwidth = 0"), "parameters.bandwidth", "in [1, 1000000]"),
    (after_deadline("[parameters]\ncredibility_floor = 1.5"), "parameters.credibility_floor", "in [0, 1]"),
    (after_deadline("[parameters]\napproach_cost = 0"), "parameters.approach_cost", "in (0, 1e12]"),
    (after_deadline("[parameters]\nmax_rounds = 0"), "parameters.max_rounds", "in [1, 1000000]"),
    (after_deadline("[parameters]\ndelay_min_days = 9\ndelay_max_days = 8"),
     "parameters.delay_min_days", "<= delay_max_days"),
    (after_deadline("[parameters]\nspeed = 1"), "parameters.speed", "unknown key"),
    (after_deadline("[mechanisms]\nvenues = 1"), "mechanisms.venues", "true or false"),
    (after_deadline("[mechanisms]\nbribes = true"), "mechanisms.bribes", "unknown key"),
    (lambda t: t.split("[[candidates]]")[0], "candidates", "at least one"),
    (lambda t: t.replace('id = "B"', 'id = "A"'), "candidates[1].id", "duplicate"),
    (lambda t: t.replace('id = "B"', 'id = "P"'), "candidates[1].id", "pivot"),
    (lambda t: t.replace("low = 1, mode = 2", "low = 3, mode = 2", 1), "candidates[0].capacity", "low must be <= mode"),
    (lambda t: t.replace("mode = 2, high = 3", "mode = 4, high = 3", 1), "candidates[0].capacity", "mode must be <= high"),
    (lambda t: t.replace("low = 1, mode = 2", "low = -1, mode = 2", 1), "candidates[0].capacity.low", "in [0, 1e12]"),
    (lambda t: t.replace("sd = 1.0", "sd = -1.0", 1), "candidates[0].preference.sd", "in [0, 1e9]"),
    (lambda t: t.replace("mean = 0.5", "mean = 1.5", 1), "candidates[0].tie.mean", "in [0, 1]"),
    (lambda t: t.replace("concentration = 10.0", "concentration = 0", 1), "candidates[0].tie.concentration", "in (0, 1e6]"),
    (lambda t: t.replace("tie = { mean = 0.5, concentration = 10.0 }\n", "", 1), "candidates[0].tie", "required"),
    (lambda t: t.replace('id = "A"', 'id = "A"\nflag = "x"', 1), "candidates[0].flag", "unknown key"),
    (lambda t: t + '[[ties]]\na = "A"\nb = "Z"\nmean = 0.5\nconcentration = 5.0\n', "ties[0].b", "unknown candidate"),
    (lambda t: t + '[[ties]]\na = "A"\nb = "A"\nmean = 0.5\nconcentration = 5.0\n', "ties[0]", "two different"),
    (lambda t: t + '[[ties]]\na = "A"\nb = "B"\nmean = 0.5\nconcentration = 5.0\n'
     '[[ties]]\na = "B"\nb = "A"\nmean = 0.5\nconcentration = 5.0\n', "ties[1]", "tied twice"),
    (lambda t: t + '[[ties]]\na = "A"\nb = "B"\nmean = 2\nconcentration = 5.0\n', "ties[0].mean", "in [0, 1]"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A", "Q"]\n', "institutions[0].members[1]", "unknown candidate"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A", "A"]\n', "institutions[0].members[1]", "twice"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["P"]\n', "institutions[0].members[0]", "pivot"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = []\n[[institutions]]\nid = "I"\nmembers = []\n',
     "institutions[1].id", "duplicate"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A"]\nbroker = 2\n', "institutions[0].broker", "in [0, 1]"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A"]\nvenue_day = -1\n', "institutions[0].venue_day", "in [0, 36500]"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A"]\nvenue_bonus = -1\n', "institutions[0].venue_bonus", "in [0, 1e9]"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A"]\npivot_member = "yes"\n', "institutions[0].pivot_member", "true or false"),
    (lambda t: t + '[[institutions]]\nid = "I"\nmembers = ["A"]\nchair = "A"\n', "institutions[0].chair", "unknown key"),
]


def test_the_good_file_is_accepted(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    s = load_scenario(tmp_path / "good.toml")
    assert s.parameters["bandwidth"] == 5 and s.mechanisms["venues"] is True and s.budget == 0.0


@pytest.mark.parametrize("change,key,rule", CASES, ids=[c[1] + ":" + c[2] for c in CASES])
def test_each_rule_is_enforced_with_key_and_rule(tmp_path, change, key, rule):
    path = tmp_path / "bad.toml"
    path.write_text(change(GOOD))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert err.value.key == key
    assert rule in err.value.rule
    assert str(path) in str(err.value)


def test_syntax_errors_and_missing_files_name_the_file(tmp_path):
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(ScenarioError, match="broken.toml: not valid TOML"):
        load_scenario(tmp_path / "broken.toml")
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "absent.toml")


def pivotal_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_rejects_bad_input_with_exit_2_and_no_traceback(tmp_path):
    (tmp_path / "bad.toml").write_text(GOOD.replace("deadline_days = 100", "deadline_days = -5"))
    for args in (["validate", "bad.toml"], ["run", "bad.toml"]):
        result = pivotal_cli(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "bad.toml: deadline_days: must be in (0, 36500]" in lines[0]
    assert not (tmp_path / "forecasts").exists()  # nothing ran


def test_cli_rejects_bad_run_arguments_with_exit_2(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    for bad in (["--episodes", "0"], ["--workers", "999"], ["--workers", "0"], ["--chunk-size", "0"], ["--seed", "-1"],
                ["--run-id", "a/b"], ["--keep-episodes", "-1"]):
        result = pivotal_cli("run", "good.toml", *bad, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (bad, result.stderr)
        assert result.stderr.count("\n") == 1


def test_every_shipped_scenario_and_study_validates():
    """A shipped file that no longer fits the code (say, a study whose ranges a rebuilt base
    scenario makes invalid) is caught here, not by a user."""
    root = Path(__file__).resolve().parents[2]
    files = sorted((root / "configs" / "scenarios").glob("*.toml")) + sorted((root / "configs" / "studies").glob("*.toml"))
    assert len(files) >= 8
    result = pivotal_cli("validate", *map(str, files), cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(files)
