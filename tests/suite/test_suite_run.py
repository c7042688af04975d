"""`pivotal suite` over four nights: isolation of a broken item, reuse, a changed scenario (reruns
it and the study that reads it, flags its drift), a changed data file (reruns the backtest only),
--force/--only, --notify, the suite_runs table, the catalog views and the index page."""
import json
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import browser
import pivotal
from case_fixtures import CASE, FIX
from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
ARTIFACTS = ROOT / "tests" / "artifacts"
SUITE = """name = "test-night"
out = "out"

[defaults]
episodes = 3000
seed = 1
workers = 1

[[items]]
scenario = "scenarios/*.toml"

[[items]]
name = "study_a"
study = "study.toml"
episodes = 1000

[[items]]
name = "fixture_war"
backtest = "case.toml"
episodes = 500
seeds = 1
"""
STUDY = """name = "budget of a"
scenario = "scenarios/a.toml"
episodes = 1000
seed = 1

[[variants]]
name = "budget doubled"
set = { budget = 600 }
"""


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The suite's folder: scenarios a, b and a broken one, a study of a, a backtest case on a
    copy of the COW fixtures, and the suite file; plus where --notify writes."""
    d = tmp_path_factory.mktemp("night")
    (d / "scenarios").mkdir()
    shutil.copy(TUTORIAL, d / "scenarios" / "a.toml")
    (d / "scenarios" / "b.toml").write_text(TUTORIAL.read_text().replace("requirement = 4000", "requirement = 3000"))
    (d / "scenarios" / "broken.toml").write_text('name = "broken"\ndeadline_days = 90\n')
    (d / "study.toml").write_text(STUDY)
    shutil.copytree(FIX, d / "cow")
    (d / "case.toml").write_text(CASE)
    (d / "suite.toml").write_text(SUITE)
    return d


def status(result):
    return {r["item"]: r["status"] for r in result.rows.iter_rows(named=True)}


def rows(result):
    return {r["item"]: r for r in result.rows.iter_rows(named=True)}


def test_four_nights(night, capsys):
    notified = night / "notify.json"
    notify = f"cat > {notified}"

    # night 1: the broken scenario fails, every other item is published; exit 1, one line naming it
    assert main(["suite", str(night / "suite.toml"), "--notify", notify]) == 1
    out, err = capsys.readouterr()
    suite_run_id = out.splitlines()[0]
    failed = [line for line in err.splitlines() if "failed:" in line]
    assert len(failed) == 1 and failed[0].startswith("pivotal: item broken (scenario) failed:")
    assert "broken.toml" in failed[0] and "Traceback" not in err
    first = pq.read_table(night / "out" / "_suite" / "suite_runs" / f"suite_run_id={suite_run_id}"
                          / "part-0.parquet").to_pylist()
    assert {r["item"]: r["status"] for r in first} == {
        "a": "complete", "b": "complete", "broken": "failed", "study_a": "complete", "fixture_war": "complete"}
    for r in first:
        if r["status"] == "complete":
            assert r["run_id"] == f"{suite_run_id}.{r['item']}"
            assert (night / "out" / "runs" / f"run_id={r['run_id']}").is_dir()
    sent = json.loads(notified.read_text())
    assert sent["status"] == "failed" and sent["exit_code"] == 1 and sent["suite_run_id"] == suite_run_id
    assert [f["item"] for f in sent["failed"]] == ["broken"] and sent["counts"]["complete"] == 4
    first_page = night / "out" / "_suite" / "test-night" / f"{suite_run_id}.html"
    assert first_page.exists()

    # night 2: the broken file is fixed: only it runs, the rest is reused; exit 0, no notification
    notified.unlink()
    shutil.copy(TUTORIAL, night / "scenarios" / "broken.toml")
    second = pivotal.suite(night / "suite.toml", notify=notify)
    assert second.exit_code == 0 and not notified.exists()
    assert status(second) == {"a": "reused", "b": "reused", "broken": "complete", "study_a": "reused",
                              "fixture_war": "reused"}
    r2 = rows(second)
    assert r2["a"]["run_id"] == f"{suite_run_id}.a" and r2["a"]["reused_from"] == suite_run_id
    assert r2["broken"]["cause"] == "input changed: broken.toml"

    # night 3: scenario a changes: a and the study of a run again, a's drift is flagged and named
    text = (night / "scenarios" / "a.toml").read_text()
    (night / "scenarios" / "a.toml").write_text(text.replace("requirement = 4000", "requirement = 1500"))
    third = pivotal.suite(night / "suite.toml", notify=notify)
    assert status(third) == {"a": "complete", "b": "reused", "broken": "reused", "study_a": "complete",
                             "fixture_war": "reused"}
    r3 = rows(third)
    assert r3["study_a"]["cause"] == "input changed: a.toml"
    assert r3["a"]["drift_flags"] and all("input changed: a.toml" in f for f in r3["a"]["drift_flags"])
    assert any(f.startswith("a success") for f in r3["a"]["drift_flags"])
    assert not r3["b"]["drift_flags"]
    sent = json.loads(notified.read_text())
    assert sent["status"] == "drift" and sent["drift"][0]["item"] == "a"

    # night 4: a data file changes (same rows, other bytes): only the backtest, which reads it, runs
    nmc = night / "cow" / "cow_mindist.parquet"
    pq.write_table(pq.read_table(nmc), nmc, compression="gzip")
    fourth = pivotal.suite(night / "suite.toml")
    assert status(fourth) == {"a": "reused", "b": "reused", "broken": "reused", "study_a": "reused",
                              "fixture_war": "complete"}
    assert rows(fourth)["fixture_war"]["cause"] == "data changed: cow_mindist.parquet"

    # --force --only b: b runs again with the same seed: the same numbers, no drift
    forced = pivotal.suite(night / "suite.toml", force=True, only="b")
    assert status(forced) == {"b": "complete"} and rows(forced)["b"]["cause"] == "forced"
    assert not rows(forced)["b"]["drift_flags"] and forced.drift.height > 0
    assert forced.drift["z"].abs().max() == 0

    # the catalog: latest_suite is the --only night; drift holds night 3's flags
    con = duckdb.connect(str(night / "out" / "forecasts.duckdb"), read_only=True)
    assert con.execute("SELECT item, status FROM latest_suite").fetchall() == [("b", "complete")]
    assert con.execute("SELECT count(DISTINCT suite_run_id) FROM suite_runs").fetchone()[0] == 5
    flagged = con.execute("SELECT DISTINCT suite_run_id, item FROM drift").fetchall()
    assert flagged == [(third.suite_run_id, "a")]
    assert con.execute("SELECT count(*) FROM latest_summary").fetchone()[0] > 0  # the run views are there too

    # the first night's page, offline in headless Chromium: failures first
    check_page(first_page, "broken.toml")


def check_page(page, failure):
    if browser.chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed")
    loaded = browser.load(str(page), """(() => ({
        headings: Array.from(document.querySelectorAll('h2')).map(h => h.id),
        failed: Array.from(document.querySelectorAll('tr.failed')).map(r => r.textContent),
        rows: Array.from(document.querySelectorAll('#items ~ table tr')).slice(1).map(r => r.cells[2].textContent),
        scripts: document.scripts.length, height: document.body.scrollHeight}))()""")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "suite_index.png").write_bytes(loaded.screenshot)
    assert loaded.requests == [f"file://{page}"] and loaded.errors == [] and loaded.value["scripts"] == 0
    assert loaded.value["headings"][:3] == ["failures", "changes", "items"]
    assert any(failure in text for text in loaded.value["failed"])
    assert loaded.value["rows"][0] == "failed"  # failures first in the list of items too
    assert loaded.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and loaded.value["height"] > 300
