"""The Ray executor: same numbers as local, lost workers survived, crashed runs resumed.

All tests share one Ray instance (num_cpus=2) started once per test session."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
import ray
from polars.testing import assert_frame_equal

import pivotal
from engine.execution.executors import ChunkError, Job
from engine.model.arrays import build_model_arrays, outcome_ranges
from engine.execution.plan import Chunk
from engine.model.scenario import load_scenario
from conftest import wait_for_checkpoints

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
BENCH_120 = ROOT / "bench" / "scenarios" / "synthetic_120.toml"
NUMBERS = ("summary", "size_distribution", "capacity_distribution", "time_to_success",
           "candidates", "episodes", "scenarios")


@pytest.fixture(scope="session")
def ray_cluster():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def assert_same_numbers(a, b):
    for name in NUMBERS:
        assert_frame_equal(a[name].drop("run_id"), b[name].drop("run_id"), check_exact=True)


def test_ray_equals_local_for_any_workers_and_chunks(ray_cluster):
    local = pivotal.forecast(TUTORIAL, episodes=20_000, seed=4, keep_episodes=30, progress=False).tables
    for workers, chunk_size in [(2, 3000), (1, 7001)]:
        remote = pivotal.forecast(TUTORIAL, episodes=20_000, seed=4, keep_episodes=30, workers=workers,
                                  chunk_size=chunk_size, executor="ray", progress=False)
        assert remote.tables["runs"]["executor"].item() == "ray"
        assert_same_numbers(local, remote.tables)


def test_compact_study_rows_on_ray_equal_local(ray_cluster):
    """Blocks of compact design rows (engine/studies/rows.py) shipped to Ray workers give the
    figures the local threads give."""
    inputs = [{"path": "budget", "low": 50, "high": 600},
              {"path": "candidates.*.tie.mean", "low": 0.2, "high": 0.8}]
    outputs = ["success", "size.p50", "candidates.C.member"]

    def figures(**settings):
        st = pivotal.Study("ray rows", TUTORIAL, episodes=400, seed=2, inputs=inputs, outputs=outputs,
                           design={"sampler": "lhs", "samples": 40, "row_tables": False})
        return pivotal.study(st, progress=False, chunk_size=4000, **settings).row_figures

    local = figures()
    remote = figures(executor="ray", workers=2)
    assert local.shape == (40, 3) and (local == remote).all()


def _busy_chunk_processes():
    return [p for p in psutil.process_iter(["cmdline"])
            if any("ray::run_chunk" in part for part in (p.info["cmdline"] or []))]


def test_a_killed_busy_worker_loses_and_doubles_nothing(ray_cluster):
    args = dict(episodes=96_000, seed=8, chunk_size=6000, progress=False)  # chunks of ~0.2 s
    result = {}

    def run_on_ray():
        try:
            result["tables"] = pivotal.forecast(BENCH_120, executor="ray", workers=2, **args).tables
        except Exception as exc:  # surfaced below, in the test's thread
            result["error"] = exc

    runner = threading.Thread(target=run_on_ray)
    runner.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and runner.is_alive():
        busy = _busy_chunk_processes()
        if busy:
            killed = busy[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    runner.join(timeout=300)
    assert not runner.is_alive(), "the run did not finish"
    assert "error" not in result, result.get("error")
    assert killed is not None, "no busy worker was seen"
    assert_same_numbers(result["tables"], pivotal.forecast(BENCH_120, **args).tables)


def test_a_failing_task_names_its_chunk(ray_cluster):
    from engine.execution.ray_executor import RayExecutor

    s = load_scenario(TUTORIAL)
    job = Job(1, 0, (build_model_arrays(s),), (outcome_ranges(s),))
    broken = Chunk(position=0, scenario=3, index=0, first=0, stop=10)  # no scenario 3
    with pytest.raises(ChunkError, match="IndexError") as err:
        list(RayExecutor(2).map(job, [broken]))  # not retried: a Python error fails at once
    assert err.value.chunk == broken


def test_ray_run_killed_with_sigkill_resumes_to_the_same_tables(ray_cluster, tmp_path):
    cmd = [sys.executable, "-m", "engine.cli", "run", str(BENCH_120), "--episodes", "120000",
           "--chunk-size", "2000", "--seed", "12", "--out", str(tmp_path), "--run-id", "r",
           "--executor", "ray", "--ray-address", ray_cluster, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoints(proc, tmp_path, "r", 3, timeout=180)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "summary").exists()
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = {t: pl.read_parquet(tmp_path / t / "run_id=r" / "part-0.parquet") for t in NUMBERS}
    clean = pivotal.forecast(BENCH_120, episodes=120000, chunk_size=2000, seed=12, progress=False).tables
    assert_same_numbers(resumed, clean)


def test_a_failed_cluster_is_one_line_with_the_resume_hint(ray_cluster, tmp_path, monkeypatch):
    """When Ray itself fails (a node or the GCS lost while waiting for results), the run fails
    like a chunk would: one pivotal line naming the chunk, checkpoints kept for --resume."""
    from engine.forecast import RunFailedError

    real_wait, calls = ray.wait, []

    def failing_wait(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise ray.exceptions.RaySystemError("simulated: the GCS is gone")
        return real_wait(*args, **kwargs)
    monkeypatch.setattr(ray, "wait", failing_wait)
    with pytest.raises(RunFailedError, match="the Ray cluster failed.*--resume"):
        pivotal.forecast(TUTORIAL, episodes=20_000, chunk_size=2000, executor="ray", workers=2,
                         out=tmp_path, run_id="lost", progress=False)
    monkeypatch.setattr(ray, "wait", real_wait)
    resumed = pivotal.forecast(TUTORIAL, episodes=20_000, chunk_size=2000, executor="ray", workers=2,
                               out=tmp_path, run_id="lost", resume=True, progress=False)
    assert 0 < resumed.computed < 20_000
