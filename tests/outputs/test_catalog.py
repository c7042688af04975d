"""`pivotal catalog`: DuckDB views for dashboards (engine/outputs/catalog.py, docs/OUTPUTS.md)."""
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pivotal
from conftest import build, scenario_doc
from engine.outputs.catalog import CATALOG, STATISTICS, build_catalog
from engine.outputs.tables import METRICS
from study_fixtures import backtest_tables, publish_with, study_tables

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SYRIA = ROOT / "configs" / "scenarios" / "syria_safe_zone_2019.toml"
LATEST_SUCCESS = """
    SELECT scenario_id, run_id, mean AS p_success
    FROM latest_summary WHERE metric = 'success' ORDER BY scenario_id"""


def _run(out, scenarios, run_id, **kw):
    return pivotal.forecast(scenarios, out=out, run_id=run_id, progress=False, **{"episodes": 2000, **kw})


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Runs in finishing order: old (written by a pre-version-2 writer, with NaN), a, b,
    study, backtest, then c, which crashed while publishing (tables but no runs row)."""
    out = tmp_path_factory.mktemp("forecasts")
    never = pivotal.load_scenario(SYRIA).with_(requirement=1e12)  # no episode reaches success
    old = pivotal.forecast([TUTORIAL, never], episodes=1000, run_id="old", progress=False)
    for name, frame in old.tables.items():  # as schema version 1 wrote them: NaN, no version
        table = frame.drop("schema_version") if name == "runs" else frame
        table = table.to_arrow()
        if name == "summary":  # version 1 wrote NaN for statistics that do not exist
            table = table.set_column(table.schema.get_field_index("p50"), "p50",
                                     pc.fill_null(table["p50"], float("nan")))
        (out / name / "run_id=old").mkdir(parents=True)
        pq.write_table(table, out / name / "run_id=old" / "part-0.parquet")
    _run(out, [TUTORIAL, SYRIA], "a")
    _run(out, [TUTORIAL], "b", seed=2)
    publish_with(out, build(scenario_doc(name="study base"), "base"), "study", study_tables("study"))
    publish_with(out, build(scenario_doc(name="gulf"), "gulf"), "backtest", backtest_tables("backtest"))
    _run(out, [TUTORIAL, SYRIA], "c", seed=3)
    shutil.rmtree(out / "runs" / "run_id=c")
    build_catalog(out)
    return out


def connect(out):
    return duckdb.connect(str(out / CATALOG), read_only=True)


def published(out, table, run_id):
    return pq.read_table(out / table / f"run_id={run_id}" / "part-0.parquet").to_pylist()


def test_latest_success_probability_per_scenario_is_one_query(out):
    rows = connect(out).execute(LATEST_SUCCESS).fetchall()
    assert [(s, r) for s, r, _ in rows] == [("base", "study"), ("gulf", "backtest"),
                                            ("syria_safe_zone_2019", "a"), ("tutorial", "b")]
    b = next(r["mean"] for r in published(out, "summary", "b") if r["metric"] == "success")
    assert rows[-1][2] == b


def test_views_hold_complete_runs_only_and_read_new_runs_without_a_rebuild(out, tmp_path):
    con = connect(out)
    assert {r for (r,) in con.execute("SELECT DISTINCT run_id FROM summary").fetchall()} == {
        "old", "a", "b", "study", "backtest"}  # c has tables but no runs row
    assert con.execute("SELECT count(*) FROM runs_complete").fetchone()[0] == 5
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    build_catalog(copy)
    _run(copy, [TUTORIAL], "d", seed=4)  # a rerun of the scenario file replaces it on the dashboard
    rows = dict((s, r) for s, r, _ in connect(copy).execute(LATEST_SUCCESS).fetchall())
    assert rows["tutorial"] == "d" and rows["syria_safe_zone_2019"] == "a"
    assert {r for (r,) in connect(copy).execute("SELECT run_id FROM latest_runs").fetchall()} == {
        "a", "d", "study", "backtest"}


def test_every_table_has_a_view_and_a_latest_view(out):
    names = {n for (n,) in connect(out).execute("SELECT table_name FROM information_schema.tables").fetchall()}
    tables = {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert {"sensitivity", "comparisons", "backtests", "backtest_states"} <= tables
    assert tables | {f"latest_{t}" for t in tables} | {"runs_complete", "scenario_series", "latest_scenario_runs",
                                                       "summary_wide", "latest_summary_wide",
                                                       "capacity_distribution_shared"} == names


def test_tables_without_a_scenario_take_the_latest_run_that_has_rows(out):
    con = connect(out)
    assert con.execute("SELECT DISTINCT run_id FROM latest_sensitivity").fetchall() == [("study",)]
    assert con.execute("SELECT count(*) FROM latest_comparisons").fetchone()[0] == len(published(out, "comparisons", "study"))
    assert con.execute("SELECT DISTINCT run_id FROM latest_backtest_states").fetchall() == [("backtest",)]
    latest_c = con.execute("SELECT count(*) FROM latest_candidates WHERE scenario_id = 'tutorial'").fetchone()[0]
    assert latest_c == len([r for r in published(out, "candidates", "b")])


def test_nan_from_old_files_reads_as_null(out):
    con = connect(out)
    assert con.execute("SELECT count(*) FROM summary WHERE isnan(p50)").fetchone()[0] == 0
    old = con.execute("""SELECT p50 FROM summary WHERE run_id = 'old' AND scenario_id = 'syria_safe_zone_2019'
                     AND metric = 'time_to_success'""").fetchone()
    assert old == (None,)
    # avg over scenarios is a number, not NaN
    mean = con.execute("SELECT avg(p50) FROM summary WHERE metric = 'time_to_success'").fetchone()[0]
    assert mean == mean and mean > 0


def test_summary_wide_has_one_row_per_run_and_scenario_and_every_statistic(out):
    con = connect(out)
    wide = con.execute("SELECT * FROM summary_wide WHERE run_id = 'a' ORDER BY scenario_id").fetchall()
    columns = [d[0] for d in con.execute("SELECT * FROM summary_wide").description]
    assert columns == ["run_id", "scenario_id", "scenario_name", "capacity_unit", "payment_unit"] + [
        f"{m}_{s}" for m in METRICS for s in STATISTICS] + ["success_low", "success_high"]
    assert [r[1] for r in wide] == ["syria_safe_zone_2019", "tutorial"]
    long = {(r["scenario_id"], r["metric"]): r for r in published(out, "summary", "a")}
    for row in wide:
        named = dict(zip(columns, row))
        for m in METRICS:
            for s in STATISTICS:
                assert named[f"{m}_{s}"] == long[(named["scenario_id"], m)][s], (m, s)
        success = long[(named["scenario_id"], "success")]
        assert (named["success_low"], named["success_high"]) == (success["success_low"], success["success_high"])
        assert 0 <= named["success_low"] <= named["success_mean"] <= named["success_high"] <= 1
    assert dict(zip(columns, wide[0]))["capacity_unit"] == "troops"
    assert con.execute("SELECT count(*) FROM latest_summary_wide").fetchone()[0] == 4


def test_capacity_distributions_of_a_run_share_one_grid(out):
    con = connect(out)
    grids = con.execute("""SELECT scenario_id, list(bin_low ORDER BY bin), sum(probability), max(cdf), count(*)
                       FROM capacity_distribution_shared WHERE run_id = 'a' GROUP BY scenario_id""").fetchall()
    assert len(grids) == 2 and grids[0][1] == grids[1][1]  # the same edges for both scenarios
    for _, _, total, top, bins in grids:
        assert total == pytest.approx(1.0) and top == pytest.approx(1.0) and bins == 64
    # the mean read off the shared grid is the summary's mean to within one shared bin
    means = dict(con.execute("""SELECT scenario_id, sum(probability * (bin_low + bin_high) / 2)
                            FROM capacity_distribution_shared WHERE run_id = 'a' GROUP BY ALL""").fetchall())
    width = con.execute("""SELECT max(bin_high - bin_low) FROM capacity_distribution_shared
                       WHERE run_id = 'a'""").fetchone()[0]
    for row in published(out, "summary", "a"):
        if row["metric"] == "capacity":
            assert abs(means[row["scenario_id"]] - row["mean"]) <= width


def test_rebuild_is_atomic_and_idempotent(out):
    before = connect(out)
    views = before.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
    result = subprocess.run([sys.executable, "-m", "engine.cli", "catalog", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == str(out / CATALOG)
    assert connect(out).execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall() == views
    assert before.execute(LATEST_SUCCESS).fetchall()  # a connection to the replaced file still answers
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_catalog_of_an_empty_directory_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "engine.cli", "catalog", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "no published run" in result.stderr and "Traceback" not in result.stderr


def test_latest_views_keep_generic_ids_of_different_studies_apart(tmp_path):
    """An ablation and a study both call their scenarios base and variant-k; the latest views
    keep each scenario (id and name) apart instead of mixing the two runs."""
    from engine.outputs.catalog import build_catalog

    pivotal.ablate(TUTORIAL, episodes=500, out=tmp_path, run_id="ablation", progress=False)
    study = tmp_path / "s.toml"
    study.write_text(f'name = "s"\nscenario = "{SYRIA}"\nepisodes = 500\n'
                     '[[variants]]\nname = "no summit"\nset = { "mechanisms.venues" = false }\n')
    pivotal.study(study, out=tmp_path, run_id="study", progress=False)
    con = duckdb.connect(build_catalog(str(tmp_path)), read_only=True)
    rows = con.execute("SELECT scenario_id, run_id FROM latest_scenarios ORDER BY run_id, scenario_id").fetchall()
    assert ("base", "ablation") in rows and ("base", "study") in rows
    assert sum(run == "ablation" for _, run in rows) == 9 and sum(run == "study" for _, run in rows) == 2
