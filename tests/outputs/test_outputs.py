"""The output contract (docs/OUTPUTS.md): layout, columns, types, publishing, failures."""
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

import engine.execution.executors
import pivotal
from engine.forecast import RunFailedError
from conftest import checkpointed

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SYRIA = ROOT / "configs" / "scenarios" / "syria_safe_zone_2019.toml"
REQUIRED = {
    "runs": ["run_id", "status", "started_at", "finished_at", "episodes", "scenarios", "seed",
             "engine_version", "config_sha256", "executor", "workers", "chunk_size"],
    "scenarios": ["run_id", "scenario_id", "scenario_name", "pivot", "deadline_days", "requirement",
                  "min_partners", "budget", "info_noise", "credibility_floor", "linkage", "holdout",
                  "peer_weight", "bandwidth", "delay_min_days", "delay_max_days", "max_rounds",
                  "escalation", "margin", "approach_cost", "withdrawal_rate"],
    "summary": ["run_id", "scenario_id", "metric", "mean", "sd", "se", "p05", "p25", "p50", "p75",
                "p95", "min", "max"],
    "size_distribution": ["run_id", "scenario_id", "size", "episodes", "probability", "cdf"],
    "capacity_distribution": ["run_id", "scenario_id", "bin_low", "bin_high", "episodes",
                              "probability", "cdf"],
    "time_to_success": ["run_id", "scenario_id", "day", "p_success_by_day"],
    "candidates": ["run_id", "scenario_id", "candidate_id", "candidate_name", "p_member",
                   "p_member_low", "p_member_high", "p_ever_joined", "p_venue_join", "mean_payment"],
    "episodes": ["run_id", "scenario_id", "episode", "size", "capacity", "spent", "success",
                 "time_to_success", "offers", "venue_joins", "withdrawals", "members"],
}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("forecasts")
    cmd = [sys.executable, "-m", "engine.cli", "run", str(TUTORIAL), str(SYRIA), "--episodes", "20000",
           "--out", str(out), "--run-id", "r1", "--keep-episodes", "7"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_layout_and_columns(published):
    out, _ = published
    assert not (out / "_staging" / "run_id=r1").exists()
    for table, columns in REQUIRED.items():
        path = out / table / "run_id=r1" / "part-0.parquet"
        t = pq.read_table(path)
        assert set(columns) <= set(t.column_names), (table, set(columns) - set(t.column_names))
        assert t.column("run_id").to_pylist() == ["r1"] * t.num_rows
        for field in t.schema:
            assert not pa.types.is_unsigned_integer(field.type), (table, field)
            if pa.types.is_timestamp(field.type):
                assert field.type.unit == "us" and field.type.tz == "UTC"
        meta = pq.ParquetFile(path).metadata
        assert all(meta.row_group(0).column(i).compression == "SNAPPY" for i in range(meta.num_columns))
    runs = pl.read_parquet(out / "runs" / "run_id=r1" / "part-0.parquet")
    assert runs["status"].to_list() == ["complete"] and runs["scenarios"].item() == 2


def test_table_shapes(published):
    out, _ = published
    read = lambda t: pl.read_parquet(out / t / "run_id=r1" / "part-0.parquet")  # noqa: E731
    assert read("summary").height == 2 * 8
    sizes = read("size_distribution").filter(pl.col("scenario_id") == "tutorial")
    assert sizes["size"].to_list() == [0, 1, 2, 3, 4] and sizes["cdf"][-1] == pytest.approx(1.0)
    assert read("episodes").height == 14
    tts = read("time_to_success").filter(pl.col("scenario_id") == "tutorial")
    assert tts["day"].to_list() == list(range(91))
    assert (tts["p_success_by_day"].diff().drop_nulls() >= 0).all()


def test_duckdb_and_polars_read_the_tables(published):
    out, stdout = published
    row = duckdb.sql(f"""
        select s.scenario_id, s.mean
        from read_parquet('{out}/summary/*/*.parquet', hive_partitioning = false) s
        join read_parquet('{out}/runs/*/*.parquet', hive_partitioning = false) r using (run_id)
        where r.status = 'complete' and s.metric = 'success' and s.scenario_id = 'tutorial'
    """).fetchall()[0]
    lazy = pl.scan_parquet(f"{out}/summary/*/*.parquet", hive_partitioning=False)
    mean = lazy.filter((pl.col("metric") == "success") & (pl.col("scenario_id") == "tutorial"))
    assert row[1] == mean.collect()["mean"].item()
    tutorial = stdout[stdout.index("[tutorial]"):]
    success_line = next(line for line in tutorial.splitlines() if line.strip().startswith("success"))
    assert success_line.split()[1] == f"{row[1]:.1%}"  # the printed summary agrees with the table


def test_reused_run_id_is_refused(published):
    out, _ = published
    cmd = [sys.executable, "-m", "engine.cli", "run", str(TUTORIAL), "--episodes", "100",
           "--out", str(out), "--run-id", "r1"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "already complete" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_chunk_publishes_nothing_and_can_be_resumed(tmp_path, monkeypatch):
    real = engine.execution.executors.run_chunk

    def flaky(job, chunk, *args):
        if chunk.index == 2:
            raise MemoryError("simulated")
        return real(job, chunk, *args)

    monkeypatch.setattr(engine.execution.executors, "run_chunk", flaky)
    args = dict(episodes=5000, chunk_size=1000, seed=9, out=tmp_path, run_id="x", progress=False)
    with pytest.raises(RunFailedError, match=r"scenario 'tutorial', chunk 2 \(episodes 2000..2999\)"):
        pivotal.forecast(TUTORIAL, **args)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "summary").exists()
    assert checkpointed(tmp_path, "x") == 2
    monkeypatch.setattr(engine.execution.executors, "run_chunk", real)
    resumed = pivotal.forecast(TUTORIAL, resume=True, **args).tables
    clean = pivotal.forecast(TUTORIAL, episodes=5000, seed=9, progress=False).tables
    assert_frame_equal(resumed["summary"].drop("run_id"), clean["summary"].drop("run_id"))
