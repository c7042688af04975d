"""PIVOTAL_CHECKPOINT_DIR=s3://...: a run whose driver's machine is lost is resumed by another
driver (another process, home and working directory), against a local S3 server (moto)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest
from polars.testing import assert_frame_equal

import pivotal
from engine.execution.aggregate import decode_chunk
from engine.outputs.checkpoints import Lease, LeaseError
from engine.outputs.directory import RunExistsError, SharedRunDirectory
from engine.outputs.storage import checkpoint_root, get_object, locate, put_object
from s3_fixtures import BUCKET, s3  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
CHECKPOINTS = f"s3://{BUCKET}/checkpoints"
ARGS = ["run", str(TUTORIAL), "--episodes", "8000", "--chunk-size", "1000", "--seed", "5",
        "--workers", "1", "--quiet"]
# driver A: the CLI in this process, killed (SIGKILL: no clean-up at all) after its third checkpoint
KILLED_AFTER_3 = """
import os, signal, sys
from engine.outputs.directory import SharedRunDirectory
real, saved = SharedRunDirectory.save_chunk, []
def save(self, position, aggregates):
    real(self, position, aggregates)
    saved.append(position)
    if len(saved) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
SharedRunDirectory.save_chunk = save
from engine.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def machine(s3, tmp_path, name, **extra):
    """The environment and working directory of a driver on its own machine: its own home (so
    its own ~/.cache staging), the shared kernel cache (no recompiling), the shared checkpoints."""
    home, cwd = tmp_path / name / "home", tmp_path / name / "cwd"
    home.mkdir(parents=True)
    cwd.mkdir()
    cache = os.environ.get("PIVOTAL_CACHE_DIR") or str(Path.home() / ".cache" / "pivotal")
    env = {**s3, "HOME": str(home), "PIVOTAL_CACHE_DIR": cache, "PIVOTAL_CHECKPOINT_DIR": CHECKPOINTS,
           "PYTHONPATH": str(ROOT), **extra}
    return env, cwd


def command(env, cwd, *args, script=None):
    code = ["-c", script, *args] if script else ["-m", "engine.cli", *args]
    return subprocess.run([sys.executable, *code], cwd=cwd, env=env, capture_output=True, text=True)


def checkpoint_objects(out, run_id):
    """What is kept in object storage for run `run_id` of `out` (names under its folder)."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("PIVOTAL_CHECKPOINT_DIR", CHECKPOINTS)
        root = checkpoint_root(locate(out))
    prefix = root.path(f"run_id={run_id}")
    found = root.fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True, recursive=True))
    return sorted(i.path.removeprefix(prefix + "/") for i in found if i.type == pafs.FileType.File)


def clean_tables():
    return pivotal.forecast(TUTORIAL, episodes=8000, chunk_size=1000, seed=5, workers=1,
                            progress=False).tables


def test_a_run_whose_driver_died_is_resumed_by_a_driver_on_another_machine(s3, tmp_path):
    out = f"s3://{BUCKET}/moved"
    run = [*ARGS, "--out", out, "--run-id", "m"]
    env_a, cwd_a = machine(s3, tmp_path, "a")
    killed = command(env_a, cwd_a, *run, script=KILLED_AFTER_3)
    assert killed.returncode == -9, killed.stderr
    assert checkpoint_objects(out, "m") == ["chunks/00000000.chunk", "chunks/00000001.chunk",
                                            "chunks/00000002.chunk", "lease.json", "plan.json"]
    shutil.rmtree(tmp_path / "a")  # the first machine is gone, with its staging and lock files

    env_b, cwd_b = machine(s3, tmp_path, "b")
    refused = command(env_b, cwd_b, *run, "--resume")  # A's lease is seconds old: A may be alive
    assert refused.returncode == 2, refused.stderr
    assert "being written by another driver" in refused.stderr and "lease" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 2
    fresh = command(env_b, cwd_b, *run)  # without --resume the id is refused as taken
    assert fresh.returncode == 2 and "being written by another driver" in fresh.stderr

    env_b["PIVOTAL_LEASE_SECONDS"] = "1"  # A's lease, renewed over a second ago, is stale
    resumed = command(env_b, cwd_b, *[a for a in ARGS if a != "--quiet"], "--out", out, "--resume")
    assert resumed.stdout.splitlines()[0] == "m"  # the interrupted run found in object storage
    assert resumed.returncode == 0, resumed.stderr
    assert "3,000 episodes from checkpoints" in resumed.stdout + resumed.stderr
    assert checkpoint_objects(out, "m") == []  # plan, checkpoints and lease deleted after publishing
    assert not list((tmp_path / "b" / "home").rglob("run_id=m*"))  # B's local staging too

    location, clean = locate(out), clean_tables()
    for table in ("summary", "candidates", "size_distribution", "capacity_distribution",
                  "time_to_success"):
        assert_frame_equal(pl.from_arrow(location.read(table, "m")).drop("run_id"),
                           clean[table].drop("run_id"), check_dtypes=False)


def test_a_driver_stopped_by_ctrl_c_lets_go_of_its_lease_so_another_resumes_at_once(s3, tmp_path):
    out = f"s3://{BUCKET}/stopped"
    run = [*ARGS, "--out", out, "--run-id", "s"]
    env_a, cwd_a = machine(s3, tmp_path, "a")
    stopped = command(env_a, cwd_a, *run, script=KILLED_AFTER_3.replace(
        "os.kill(os.getpid(), signal.SIGKILL)", "raise KeyboardInterrupt"))
    assert stopped.returncode == 130, stopped.stderr
    assert "3 finished chunk(s) of run s are kept" in stopped.stderr
    assert "lease.json" not in checkpoint_objects(out, "s")
    env_b, cwd_b = machine(s3, tmp_path, "b")  # the default lease time: no waiting needed
    resumed = command(env_b, cwd_b, *run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint_objects(out, "s") == []


def test_a_damaged_or_partial_checkpoint_in_object_storage_is_computed_again(s3, monkeypatch, tmp_path):
    monkeypatch.setenv("PIVOTAL_CHECKPOINT_DIR", CHECKPOINTS)
    monkeypatch.setenv("HOME", str(tmp_path))
    out = f"s3://{BUCKET}/damaged"
    saved, real = [], SharedRunDirectory.save_chunk

    def save_then_stop(self, position, aggregates):
        real(self, position, aggregates)
        saved.append(position)
        if len(saved) == 4:
            raise KeyboardInterrupt
    monkeypatch.setattr(SharedRunDirectory, "save_chunk", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pivotal.forecast(TUTORIAL, episodes=8000, chunk_size=1000, seed=5, workers=1, out=out,
                         run_id="d", progress=False)
    monkeypatch.setattr(SharedRunDirectory, "save_chunk", real)
    root = checkpoint_root(locate(out))
    key = lambda p: root.path("run_id=d", "chunks", f"{p:08d}.chunk")  # noqa: E731
    whole = get_object(root, key(1))
    assert len(decode_chunk(whole)) == 1  # a good checkpoint reads back
    put_object(root, key(1), whole[: len(whole) // 2])  # a partial object
    put_object(root, key(2), b"not a checkpoint")
    done = pivotal.forecast(TUTORIAL, episodes=8000, chunk_size=1000, seed=5, workers=1, out=out,
                            run_id="d", resume=True, progress=False)
    assert done.computed == 6000  # the two damaged chunks and the four never run
    clean = clean_tables()
    for table in ("summary", "candidates", "size_distribution"):
        assert_frame_equal(done.tables[table].drop("run_id"), clean[table].drop("run_id"))
    assert checkpoint_objects(out, "d") == []


def test_a_second_driver_is_kept_out_by_the_lease_and_a_run_taken_over_stops(s3, monkeypatch, tmp_path):
    monkeypatch.setenv("PIVOTAL_CHECKPOINT_DIR", CHECKPOINTS)
    monkeypatch.setenv("HOME", str(tmp_path))
    out = f"s3://{BUCKET}/leased"
    store = SharedRunDirectory(locate(out), checkpoint_root(locate(out)), "l")
    store.prepare({"plan": 1}, resume=False)
    other = Lease(store.remote.location, store.remote._key("lease.json"), store.remote.uri)
    with pytest.raises(LeaseError, match="being written by another driver"):
        other.take()
    other._write()  # another driver took it over (this one had stalled past its lease)
    store.remote.lease._renew_once()
    with pytest.raises(RunExistsError, match="taken over by another driver"):
        store.save_chunk(0, [])
    store.unlock()
    assert get_object(store.remote.location, store.remote._key("lease.json"))  # not ours: kept


@pytest.mark.parametrize("uri, says", [
    ("ftp://host/x", "cannot be opened"),
    ("s3://no-such-bucket/x", "'no-such-bucket' does not exist"),
    ("s3://forecasts/x?endpoint_override=http://127.0.0.1:9", "cannot be reached"),
    ("s3:/forecasts/x", "looks like a URI"),
])
def test_a_bad_or_unreachable_checkpoint_location_is_one_line(s3, tmp_path, uri, says):
    env, cwd = machine(s3, tmp_path, "c", PIVOTAL_CHECKPOINT_DIR=uri)
    result = command(env, cwd, *ARGS, "--out", f"s3://{BUCKET}/bad", "--run-id", "b")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert says in last and "PIVOTAL_CHECKPOINT_DIR" in last and "Traceback" not in result.stderr

