"""What a dashboard reads from the catalog (issue 19): one consistent set of runs per query
while runs publish, keys that never mix runs, design rows in a view of their own."""
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

import pivotal
from conftest import build, scenario_doc
from engine.execution.plan import plan_run
from engine.forecast import execute_plan
from engine.outputs.catalog import build_catalog
from study_fixtures import backtest_tables, write_study

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"

# one query over two views joined as a dashboard joins them: per series, the run each view shows
# (they must agree; a series missing from either, or a view empty, shows as null)
CONSISTENT = """
    SELECT coalesce(s.series, c.series), s.run_id, c.run_id
    FROM (SELECT series, run_id FROM latest_summary WHERE metric = 'success') s
    FULL JOIN (SELECT DISTINCT series, run_id FROM latest_candidates) c USING (series)"""

WRITER = textwrap.dedent("""
    import os, sys, time
    import pyarrow as pa
    from engine.outputs.directory import run_directory
    from engine.outputs.storage import locate
    out, template, progress, stop = sys.argv[1:5]
    location = locate(out)
    tables = {t: location.read(t, template) for t in location.table_names()
              if location.exists(location.part(t, template))}
    k = 0
    while not os.path.exists(stop):
        # one run per 50 queries the reader has made: the reader's queries overlap publishing
        # throughout, and the directory stays small enough for fast queries
        if k * 50 > int(open(progress).read() or 0):
            time.sleep(0.005)
            continue
        run_id = f"w{k:04d}"
        store = run_directory(out, run_id)
        store.prepare({"run": run_id}, False)
        store.publish({t: table.set_column(0, "run_id", pa.array([run_id] * len(table), pa.string()))
                       for t, table in tables.items()})
        print(run_id, flush=True)
        k += 1
""")



def _publish(out, scenarios, run_id, kind, name, extra=None, episodes=500):
    """A run published as `kind` named `name`, the way a study, ablation or backtest does."""
    plan = plan_run(scenarios, episodes=episodes, seed=1, run_id=run_id)
    execution, publisher = execute_plan(plan, out=out, progress=False, kind=kind, name=name)
    return publisher.publish(execution, extra)


def test_a_reader_sees_one_complete_set_of_runs_in_every_query_while_runs_publish(tmp_path):
    """1,000+ queries over several latest views and their joins while another process publishes
    runs: no series missing, no view empty, every view showing the same run per series.
    (Before: each read_parquet glob was expanded at its own moment, so a query could take a
    run as complete from the runs file and miss its summary, or the reverse.)"""
    out = tmp_path / "fc"
    two = [pivotal.load_scenario(TUTORIAL), build(scenario_doc(name="second"), "second")]
    pivotal.forecast(two, episodes=300, out=out, run_id="template", progress=False)
    build_catalog(out)
    stop, progress = tmp_path / "stop", tmp_path / "progress"
    progress.write_text("0")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "template", str(progress), str(stop)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    con = duckdb.connect(str(out / "forecasts.duckdb"), read_only=True)
    expected = {"run/tutorial", "run/second"}
    bad, queries, runs_seen = [], 0, set()
    try:
        assert writer.stdout.readline().strip() == "w0000"  # publishing has begun
        while queries < 1000:
            rows = con.execute(CONSISTENT).fetchall()
            queries += 1
            series = {r[0] for r in rows}
            if series != expected or any(len(set(r[1:])) != 1 or r[1] is None for r in rows):
                bad.append(rows)
            runs_seen |= {r[1] for r in rows}
            if queries % 10 == 0:
                progress.write_text(str(queries))
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert bad == [], f"{len(bad)} inconsistent reads of {queries}: {bad[:3]}"
    assert queries >= 1000 and len(runs_seen) >= 15  # the reader saw the latest run move on


def test_a_run_counts_only_in_queries_that_began_after_its_commit(tmp_path):
    """The rule behind the consistency: a `runs` file whose commit time is in the future (a
    rename in progress) is not yet complete; once that time passes, it is."""
    import os

    out = tmp_path / "fc"
    pivotal.forecast(TUTORIAL, episodes=300, out=out, run_id="a", progress=False)
    con = duckdb.connect(build_catalog(out), read_only=True)
    part = out / "runs" / "run_id=a" / "part-0.parquet"
    soon = time.time_ns() + 3 * 10**9
    os.utime(part, ns=(soon, soon))
    assert con.execute("SELECT count(*) FROM runs_complete").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM latest_summary").fetchone()[0] == 0
    past = time.time_ns() - 10**9
    os.utime(part, ns=(past, past))
    assert con.execute("SELECT count(*) FROM latest_summary").fetchone()[0] == 8


@pytest.fixture(scope="module")
def keyed(keyed_out):
    return duckdb.connect(build_catalog(keyed_out), read_only=True)


@pytest.fixture(scope="module")
def keyed_out(tmp_path_factory):
    """A run and a backtest of one scenario id; an ablation and two studies (one with a design)
    of one base scenario."""
    out = tmp_path_factory.mktemp("keys")
    gulf = build(scenario_doc(name="gulf"), "gulf_war_1990")
    pivotal.forecast(gulf, episodes=500, out=out, run_id="run-gulf", progress=False)
    _publish(out, gulf, "backtest-gulf", "backtest", "gulf_war_1990", backtest_tables("backtest-gulf"))
    pivotal.ablate(TUTORIAL, episodes=400, out=out, run_id="ablation", progress=False)
    variants = '[[variants]]\nname = "no venues"\nset = { "mechanisms.venues" = false }\n'
    design = ('[design]\nsampler = "lhs"\nsamples = 4\n[[inputs]]\npath = "budget"\nlow = 50\nhigh = 600\n'
              '[[inputs]]\npath = "parameters.linkage"\nlow = 0.0\nhigh = 1.0\n')
    first = write_study(tmp_path_factory.mktemp("s1"), "episodes = 400\n" + variants + design)
    second = write_study(tmp_path_factory.mktemp("s2"), "episodes = 400\n" + variants + design)
    second.write_text(second.read_text().replace('name = "test study"', 'name = "second study"'))
    pivotal.study(first, out=out, run_id="study-1", progress=False)
    pivotal.study(second, out=out, run_id="study-2", progress=False)
    return out


def test_runs_say_what_wrote_them(keyed):
    rows = dict((r, (k, n)) for r, k, n in keyed.execute("SELECT run_id, kind, name FROM runs").fetchall())
    assert rows == {"run-gulf": ("run", None), "backtest-gulf": ("backtest", "gulf_war_1990"),
                    "ablation": ("ablate", "tutorial"), "study-1": ("study", "test study"),
                    "study-2": ("study", "second study")}


def test_a_chart_grouped_by_series_never_mixes_runs(keyed):
    """scenario_id repeats across kinds (gulf_war_1990 from a run and a backtest; base and
    variant-1 from an ablation and two studies): `series` does not."""
    mixed = keyed.execute("""SELECT series FROM latest_summary GROUP BY series
                           HAVING count(DISTINCT run_id) > 1""").fetchall()
    assert mixed == []
    series = dict(keyed.execute("SELECT series, run_id FROM latest_summary_wide").fetchall())
    assert series["run/gulf_war_1990"] == "run-gulf"
    assert series["backtest:gulf_war_1990/gulf_war_1990"] == "backtest-gulf"
    assert series["ablate:tutorial/base"] == "ablation" and series["ablate:tutorial/variant-8"] == "ablation"
    assert series["study:test study/base"] == "study-1" and series["study:second study/base"] == "study-2"
    assert series["study:test study/variant-1"] == "study-1"
    assert len(series) == 2 + 9 + 2 + 2  # every series once; no design row among them
    named = keyed.execute("""SELECT DISTINCT scenario_name FROM latest_summary
                           WHERE series = 'study:test study/variant-1'""").fetchall()
    assert named == [("Tutorial: a stabilisation force of four neighbours [no venues]",)]


def test_two_studies_of_one_base_both_keep_their_study_tables(keyed):
    for view in ("latest_sensitivity", "latest_comparisons", "latest_design"):
        runs = keyed.execute(f"SELECT DISTINCT run_id, kind, name FROM {view} WHERE kind = 'study' "
                             "ORDER BY run_id").fetchall()
        assert runs == [("study-1", "study", "test study"), ("study-2", "study", "second study")], view
    ablation = keyed.execute("SELECT count(*) FROM latest_comparisons WHERE run_id = 'ablation'").fetchone()[0]
    assert ablation == 8 * 4  # each of 8 ablations x 4 outputs
    cases = keyed.execute("SELECT DISTINCT run_id, \"case\" FROM latest_backtests").fetchall()
    assert cases == [("backtest-gulf", "Gulf War, 1990")]


def test_design_rows_have_a_view_of_their_own(keyed):
    assert keyed.execute("SELECT count(*) FROM latest_summary WHERE scenario_id LIKE 'row-%'").fetchone()[0] == 0
    rows = keyed.execute("""SELECT run_id, scenario_id, row, inputs, success_mean, success_low, series
                          FROM latest_design_rows ORDER BY run_id, row""").fetchall()
    assert [(r[0], r[2]) for r in rows] == [(s, k) for s in ("study-1", "study-2") for k in range(4)]
    design = dict(((r, s, i), v) for r, s, i, v in keyed.execute(
        "SELECT run_id, scenario_id, input, value FROM design").fetchall())
    for run_id, sid, _, inputs, mean, low, series in rows:
        assert inputs == (f"budget = {design[(run_id, sid, 'budget')]}; "
                          f"parameters.linkage = {design[(run_id, sid, 'parameters.linkage')]}")
        assert 0 <= low <= mean and series.endswith("/" + sid)
    all_rows = keyed.execute("SELECT count(*) FROM summary_wide WHERE scenario_id LIKE 'row-%'").fetchone()[0]
    assert all_rows == 8  # the unfiltered views keep every row


OLDEST_DUCKDB = "1.1.*"  # the oldest DuckDB docs/OUTPUTS.md supports
BI_QUERIES = {  # what a dashboard asks (docs/OUTPUTS.md, "A Superset dashboard")
    "success": """SELECT series, scenario_name, success_mean, success_low, success_high
                  FROM latest_summary_wide ORDER BY series""",
    "sensitivity": "SELECT name, output, input, ST FROM latest_sensitivity ORDER BY ALL",
    "runs": "SELECT run_id, kind, name, CAST(finished_at AS VARCHAR) FROM runs ORDER BY run_id",
    "design": "SELECT run_id, row, inputs, success_mean FROM latest_design_rows ORDER BY ALL",
    "filters": """SELECT c.series, candidate_id FROM latest_candidates c JOIN latest_scenarios s
                  USING (run_id, scenario_id) WHERE list_contains(s.candidate_ids, 'USA')
                  ORDER BY ALL""",
}


@pytest.fixture(scope="session")
def oldest_duckdb(tmp_path_factory):
    """DuckDB 1.1 installed into a directory of its own (the test environment keeps its newer one)."""
    target = tmp_path_factory.mktemp("duckdb11")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "--target", str(target), f"duckdb=={OLDEST_DUCKDB}"], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(f"DuckDB {OLDEST_DUCKDB} could not be installed from the package registry: "
                    f"{result.stderr.strip().splitlines()[-1:]}")
    return target


def test_the_catalog_opens_in_duckdb_1_1_with_the_same_answers(keyed, oldest_duckdb):
    """The catalog file was written in DuckDB 2's storage format with `if()` in its views, which
    DuckDB 1.x (pinned by many BI images) cannot open."""
    import json

    path = keyed.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0]
    script = ("import duckdb, json, sys\n"
              "con = duckdb.connect(sys.argv[1], read_only=True)\n"
              "queries = json.loads(sys.argv[2])\n"
              "print(json.dumps({'version': duckdb.__version__, **{k: [list(map(str, r)) for r in "
              "con.execute(q).fetchall()] for k, q in queries.items()}}))\n")
    result = subprocess.run([sys.executable, "-c", script, path, json.dumps(BI_QUERIES)], capture_output=True,
                            text=True, env={"PYTHONPATH": str(oldest_duckdb), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    old = json.loads(result.stdout)
    assert old.pop("version").startswith("1.1.")
    new = {k: [list(map(str, r)) for r in keyed.execute(q).fetchall()] for k, q in BI_QUERIES.items()}
    assert old == new and all(old[k] for k in ("success", "sensitivity", "runs", "design"))


def test_the_catalog_through_sqlalchemy_and_duckdb_engine_as_superset_connects(keyed):
    """Superset and Metabase connect through SQLAlchemy with duckdb-engine; timestamps are UTC
    TIMESTAMPTZ, shown in the session time zone the connection pins."""
    import datetime as dt

    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("duckdb_engine")
    import shutil

    path = keyed.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0]
    path = shutil.copy(path, Path(path).with_name("superset.duckdb"))  # (one process, one configuration a file)
    engine = sqlalchemy.create_engine(f"duckdb:///{path}", connect_args={"read_only": True})

    @sqlalchemy.event.listens_for(engine, "connect")
    def pin_time_zone(dbapi_connection, _):  # (the config key TimeZone needs ICU loaded first)
        dbapi_connection.execute("SET TimeZone = 'UTC'")
    with engine.connect() as con:
        views = set(sqlalchemy.inspect(con).get_view_names())
        assert {"latest_summary_wide", "latest_summary", "latest_design_rows", "runs"} <= views
        rows = con.execute(sqlalchemy.text(BI_QUERIES["success"])).fetchall()
        assert [tuple(r) for r in rows] == keyed.execute(BI_QUERIES["success"]).fetchall()
        finished = con.execute(sqlalchemy.text("SELECT finished_at FROM runs")).scalars().all()
        assert all(t.utcoffset() == dt.timedelta(0) for t in finished)
        typ = con.execute(sqlalchemy.text("SELECT typeof(finished_at) FROM runs LIMIT 1")).scalar()
        assert typ == "TIMESTAMP WITH TIME ZONE"


def test_show_reprints_a_studys_and_an_ablations_tables(keyed_out):
    """`pivotal show` of a study or an ablation printed only the run's summary."""
    from engine.cli.outputs import show_text

    study = show_text(keyed_out, "study-1")
    for text in ("difference from the base", "no venues", "design: 4 rows x 2 inputs",
                 "sensitivity (", "success (S", "budget", "parameters.linkage"):
        assert text in study, text
    ablation = show_text(keyed_out, "ablation")
    assert "difference from the base" in ablation and "no ties" in ablation and "sensitivity" not in ablation
    assert "difference from the base" not in show_text(keyed_out, "run-gulf")


def test_a_result_displays_as_a_short_summary_and_as_html(keyed_out):
    """A Forecast printed every table raw in a terminal or a notebook."""
    res = pivotal.ablate(TUTORIAL, episodes=300, progress=False)
    text = repr(res)
    assert text == str(res) and text.startswith("Forecast(ablate ")
    assert len(text.splitlines()) == 1 + 9 and "(95% CI " in text and "shape:" not in text
    html = res._repr_html_()
    assert html.count("<tr>") == 1 + 9 and "<table>" in html and "[no ties]" in html
    low = res.tables["summary"].filter(pl.col("metric") == "success").row(0, named=True)["success_low"]
    assert f"{low:.1%}" in text.splitlines()[1] or f"{low * 100:.2g}%" in text.splitlines()[1]
