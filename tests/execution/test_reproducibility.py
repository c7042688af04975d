"""Same seed, same numbers: for any worker count, chunk size, keep window, and after a resume."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import pivotal
from engine.outputs.directory import RunExistsError
from conftest import wait_for_checkpoints

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
BENCH_120 = ROOT / "bench" / "scenarios" / "synthetic_120.toml"
NUMBERS = ("summary", "size_distribution", "capacity_distribution", "time_to_success",
           "candidates", "episodes", "scenarios")


def assert_same_numbers(a, b):
    for name in NUMBERS:
        assert_frame_equal(a[name].drop("run_id"), b[name].drop("run_id"), check_exact=True)


def forecast(**kw):
    kw = {"episodes": 30_000, "seed": 11, "keep_episodes": 50, "progress": False} | kw
    return pivotal.forecast(TUTORIAL, **kw).tables


def test_identical_for_workers_and_chunk_sizes():
    reference = forecast(workers=1, chunk_size=30_000)
    for workers, chunk_size in [(2, 30_000), (1, 777), (2, 4096), (2, 29_999)]:
        assert_same_numbers(reference, forecast(workers=workers, chunk_size=chunk_size))


def test_kept_episodes_are_the_leading_episodes_of_a_longer_run():
    short = forecast(episodes=200, keep_episodes=200)
    long = forecast(episodes=30_000, keep_episodes=200, chunk_size=64)
    assert_frame_equal(short["episodes"].drop("run_id"), long["episodes"].drop("run_id"))


def test_different_seeds_differ():
    a, b = forecast(seed=1), forecast(seed=2)
    assert not a["size_distribution"]["episodes"].equals(b["size_distribution"]["episodes"])


def test_scenarios_share_random_numbers(tmp_path):
    """Common random numbers: a parameter that cannot matter before day 30 leaves the
    first 30 days of every episode identical, episode by episode."""
    text = TUTORIAL.read_text()
    (tmp_path / "late.toml").write_text(text.replace("venue_day = 30", "venue_day = 60"))
    tables = pivotal.forecast([TUTORIAL, tmp_path / "late.toml"], episodes=2000, keep_episodes=2000,
                              progress=False).tables
    eps = tables["episodes"]
    early = eps.filter(pl.col("time_to_success") < 30)
    a = early.filter(pl.col("scenario_id") == "tutorial").select("episode", "time_to_success")
    b = early.filter(pl.col("scenario_id") == "late").select("episode", "time_to_success")
    assert a.height > 50
    assert_frame_equal(a, b)


def test_resume_after_sigkill_equals_undisturbed_run(tmp_path):
    args = [str(BENCH_120), "--episodes", "120000", "--chunk-size", "2000", "--seed", "5",
            "--out", str(tmp_path / "killed"), "--run-id", "r1", "--quiet", "--keep-episodes", "10"]
    cmd = [sys.executable, "-m", "engine.cli", "run", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_checkpoints(proc, tmp_path / "killed", "r1", 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = tmp_path / "killed"
    assert not (killed / "runs").exists()
    assert not any((killed / t).exists() for t in NUMBERS)
    # a fresh run may not take the id; a resume with other arguments is refused
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 2
    changed = [a if a != "5" else "6" for a in cmd]
    assert subprocess.run(changed + ["--resume"], cwd=ROOT, capture_output=True).returncode == 2
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = {t: pl.read_parquet(killed / t / "run_id=r1" / "part-0.parquet") for t in NUMBERS}
    clean = pivotal.forecast(BENCH_120, episodes=120000, chunk_size=2000, seed=5, keep_episodes=10,
                             progress=False).tables
    assert_same_numbers(resumed, clean)
    assert not (killed / "_staging" / "run_id=r1").exists()
    with pytest.raises(RunExistsError):
        pivotal.forecast(BENCH_120, episodes=10, out=killed, run_id="r1", progress=False)
