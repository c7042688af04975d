"""Hardening, second round: lock files, early signals, checkpoints read once, Ray node failures,
hostile files and flags (issue 11). Each test names the rule it holds."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import pivotal
from engine.outputs.directory import RunDirectory, RunExistsError
from conftest import (checkpointed, journal_records, messages, start_past_entry_point, stop_after_saving,
                      wait_for_checkpoints)
from engine.execution.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
BENCH_120 = ROOT / "bench" / "scenarios" / "synthetic_120.toml"
COMMAND = [sys.executable, "-m", "engine.cli.start"]  # the `pivotal` command as installed


def pivotal_cli(*args, **kw):
    return subprocess.run([*COMMAND, *map(str, args)], cwd=ROOT, capture_output=True, text=True, **kw)


# --- run-id lock files: taken for the run, removed after it, never two holders --------------

def test_no_lock_file_is_left_after_a_run_a_refusal_or_a_failure(tmp_path):
    out = tmp_path / "out"
    assert pivotal_cli("run", TUTORIAL, "--episodes", 2000, "--out", out, "--run-id", "a",
                       "--quiet").returncode == 0
    again = pivotal_cli("run", TUTORIAL, "--episodes", 2000, "--out", out, "--run-id", "a", "--quiet")
    assert again.returncode == 2 and "already complete" in again.stderr
    with pytest.raises(KeyboardInterrupt):  # a failed run in this process: its lock is let go at exit
        with pytest.MonkeyPatch.context() as m:
            m.setattr(RunDirectory, "save_chunk", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
            pivotal.forecast(TUTORIAL, episodes=2000, chunk_size=1000, out=out, run_id="b", progress=False)
    assert (out / "_staging" / "run_id=b.lock").exists()  # held by this process until it ends
    from engine.outputs.directory import release_locks
    release_locks()  # what atexit does
    assert not list((out / "_staging").glob("*.lock"))
    done = pivotal.forecast(TUTORIAL, episodes=2000, chunk_size=1000, out=out, run_id="b", resume=True,
                            progress=False)
    assert done.computed == 2000 and not list((out / "_staging").glob("*.lock"))


def test_a_lock_taken_on_a_removed_lock_file_is_not_a_second_lock(tmp_path, monkeypatch):
    """The race the removal opens: B opens the lock file, A finishes and removes it, C creates
    a new one and locks it, B's lock on the old file succeeds. B must see its file is gone
    and contend for C's: exactly one of B and C writes."""
    import engine.outputs.directory as output

    holder = RunDirectory(tmp_path, "x")
    holder.lock()
    path = holder._lock_path()
    stale = os.open(path, os.O_RDWR)  # B opened the file while A held it
    holder.unlock()                    # A is done: the file is removed
    assert not os.path.exists(path)
    RunDirectory(tmp_path, "x").lock()  # C
    c_fd = output._LOCKS.pop(path)      # (as if C were another process)
    real_open, opened = os.open, []

    def open_stale_first(*args, **kwargs):
        opened.append(args[0])
        return stale if len(opened) == 1 else real_open(*args, **kwargs)
    monkeypatch.setattr(output.os, "open", open_stale_first)
    with pytest.raises(RunExistsError, match="being written by another pivotal process"):
        RunDirectory(tmp_path, "x").lock()  # B: locks the stale file, sees it is gone, tries C's
    assert len(opened) == 2
    os.close(c_fd)


# --- signals in the first moments of a command ----------------------------------------------

def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130(tmp_path):
    """From the moment engine.cli.start runs, Ctrl-C at any time ends the command with one line
    and exit 130, never a traceback. Python's own start-up (`site`) is before our code and left
    to Python, so each signal is timed from the child's own report (`-X importtime`) that it has
    imported the entry point's first module, not from a guess at how long start-up takes (a
    loaded CI machine took longer than twice a `python -c pass`)."""
    for delay in (0.002, 0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8):
        proc = start_past_entry_point(["run", TUTORIAL, "--episodes", "5000000", "--out", tmp_path / "out"],
                                      cwd=ROOT)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        said = messages(err)
        assert proc.returncode == 130, (delay, proc.returncode, err[-2000:])
        assert "Traceback" not in err and said and "interrupted" in said[-1], (delay, said)


# --- checkpoints are read once on resume; a damaged one is computed again -------------------

def test_resume_reads_each_checkpoint_once_and_recomputes_damaged_ones(tmp_path, monkeypatch):
    import engine.outputs.directory as output

    store = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with pytest.MonkeyPatch.context() as m:
            stop_after_saving(m, 4)
            pivotal.forecast(TUTORIAL, episodes=8000, chunk_size=1000, out=store, run_id="t", workers=1,
                             progress=False)
    journal = store / "_staging" / "run_id=t" / "chunks" / "0000.journal"
    records = journal_records(journal)
    assert [position for position, _, _ in records] == [0, 1, 2, 3]
    data = bytearray(journal.read_bytes())
    _, start, length = records[2]
    data[start:start + length] = b"x" * length       # not a checkpoint
    _, start, length = records[1]
    data[start + length // 2] ^= 0x10                # one bit flipped (an unsynced page lost in a power cut)
    journal.write_bytes(bytes(data))
    reads = []
    real_read = Journal.read
    monkeypatch.setattr(Journal, "read", lambda self, p: reads.append(p) or real_read(self, p))
    done = pivotal.forecast(TUTORIAL, episodes=8000, chunk_size=1000, out=store, run_id="t", resume=True,
                            progress=False)
    assert sorted(reads) == [0, 1, 2, 3]  # each once, the damaged ones included
    assert done.computed == 6000  # the two damaged chunks and the four never run
    clean = pivotal.forecast(TUTORIAL, episodes=8000, chunk_size=1000, progress=False).tables
    for table in ("summary", "candidates", "size_distribution"):
        assert_frame_equal(done.tables[table].drop("run_id"), clean[table].drop("run_id"))


# --- Ray: a node failure that ends the driver is one line, and leaves no Ray process --------

def _ray_run(out, *extra):
    pytest.importorskip("ray")
    args = [*COMMAND, "run", str(BENCH_120), "--episodes", "60000", "--chunk-size", "2000", "--seed", "3",
            "--out", str(out), "--run-id", "r", "--quiet", *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _after_checkpoints(proc, out, n):
    """The processes under the command (its driver and the local Ray instance), once `n` chunks
    are checkpointed."""
    import psutil

    wait_for_checkpoints(proc, out, "r", n, timeout=180, poll=0.02)
    return psutil.Process(proc.pid).children(recursive=True)


def _still_running(processes, within=10.0):
    import psutil

    deadline = time.time() + within
    while True:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.time() > deadline:
            return [p.name() for p in alive]
        time.sleep(0.2)


def test_a_ray_node_failure_is_one_line_with_the_resume_hint(tmp_path):
    """Killing the local Ray's RuntimeEnvAgent takes its raylet down, and Ray's C++ core ends the
    driver at once: the command still ends with one pivotal line, exit 1, the --resume hint,
    no Ray process left, and the resumed run equals an undisturbed one."""
    out = tmp_path / "out"
    proc = _ray_run(out, "--executor", "ray", "--workers", "1")
    processes = _after_checkpoints(proc, out, 2)
    [agent] = [p for p in processes if p.name() == "ray::RuntimeEnvAgent"]
    agent.kill()
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert last.startswith("pivotal: run failed: the driver process was ended by Ray"), err
    assert last.endswith("--resume --run-id r") and "finished chunk(s) of run r are kept" in last
    assert _still_running(processes) == []
    resumed = _ray_run(out, "--resume")  # (the local executor: the plan does not name one)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    clean = pivotal.forecast(BENCH_120, episodes=60000, chunk_size=2000, seed=3, progress=False).tables
    for table in ("summary", "candidates"):
        published = pl.read_parquet(out / table / "run_id=r" / "part-0.parquet")
        assert_frame_equal(published.drop("run_id"), clean[table].drop("run_id"))


def test_a_killed_ray_driver_leaves_no_ray_process(tmp_path):
    """SIGKILL of the driver (the OOM killer's way): Ray's agents would outlive it by about a
    minute; the supervisor stops every process of the Ray instance the run started, and says
    what happened in one line."""
    out = tmp_path / "out"
    proc = _ray_run(out, "--executor", "ray", "--workers", "1")
    processes = _after_checkpoints(proc, out, 1)
    [driver] = [p for p in processes if p.ppid() == proc.pid]
    assert any(p.name() == "ray::DashboardAgent" for p in processes)
    driver.kill()
    _, err = proc.communicate(timeout=60)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "the driver process was killed by signal 9" in last and "--resume --run-id r" in last
    assert _still_running(processes, within=5.0) == []


# --- the chunk plan is computed, not stored ---------------------------------------------------

def test_the_chunk_plan_takes_the_same_memory_for_ten_chunks_and_a_hundred_thousand():
    import tracemalloc

    from engine.execution.plan import MAX_CHUNKS, Chunk, plan_chunks

    def eager(groups, episodes, size, first_index=0):  # the plan as a list, by its definition
        n = -(-episodes // size)
        return [Chunk(i * len(groups) + g, s, i, i * size, min(i * size + size, episodes), c)
                for g, (s, c) in enumerate(groups) for i in range(first_index, n)]
    for groups, episodes, size, first in [([(0, 1)], 10, 3, 0), ([(0, 2), (2, 3)], 100, 9, 4),
                                          ([(0, 1), (1, 1), (2, 1)], 12, 4, 2), ([(0, 1)], 5, 10, 0)]:
        plan = plan_chunks(0, episodes, size, groups, first_index=first)
        assert list(plan) == eager(groups, episodes, size, first) and len(plan) == len(eager(groups, episodes, size, first))
        assert plan[-1] == eager(groups, episodes, size, first)[-1] and plan[1:3] == eager(groups, episodes, size, first)[1:3]
    peaks = []
    for chunks in (10, MAX_CHUNKS):
        tracemalloc.start()
        plan = plan_chunks(0, chunks * 10**8, 10**8, [(0, 1), (1, 1)])
        total = sum(c.episodes for c in plan if c.position not in {3})  # as the driver walks it
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(plan) == 2 * chunks and total == 2 * chunks * 10**8 - 10**8
    assert peaks[1] < peaks[0] + 10_000, peaks  # a list of 2 x 10^5 chunks would take ~50 MB


# --- a hostile new user: files, flags and places that are not what they should be ------------

def _one_line_refusal(capsys, argv, code=2):
    """Run the command in this process; return its one error line (no traceback, exit `code`)."""
    from engine.cli.main import main

    try:
        got = main(argv)
    except SystemExit as exc:  # argparse
        got = exc.code
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if not l.startswith("pivotal: run ")]
    assert got == code and len(lines) == 1 and "Traceback" not in err, (got, err)
    return lines[0]


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "oversized"])
def test_a_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path, capsys, monkeypatch, kind):
    """A FIFO used to block `validate` forever; a device or a huge file would be read whole."""
    import engine.model.scenario as scenario

    path = tmp_path / "s.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.write_text(TUTORIAL.read_text())
        monkeypatch.setattr(scenario, "MAX_FILE_BYTES", 1000)
    for command in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "o")],
                    ["study", str(path)], ["ablate", str(path)]):
        line = _one_line_refusal(capsys, command)
        assert str(path) in line and ("not a regular file" in line or "larger than" in line), line


@pytest.mark.parametrize("argv,says", [
    (["run", str(TUTORIAL), "--episodes", "1e400"], "argument --episodes: must be a whole number"),
    (["run", str(TUTORIAL), "--workers", "nan"], "argument --workers: must be a whole number"),
    (["run", str(TUTORIAL), "--executor", "foo"], "argument --executor: invalid choice"),
    (["run", str(TUTORIAL), "--bogus"], "unrecognized arguments: --bogus"),
    (["run"], "required: SCENARIO.toml"),
    ([], "required: command"),
    (["run", str(TUTORIAL), "--run-id="], "--run-id is empty"),
    (["study", str(ROOT / "configs" / "studies" / "syria_drivers.toml"), "--episodes", "0"], "--episodes must be in [1"),
    (["ablate", str(TUTORIAL), "--episodes", "0"], "--episodes must be in [1"),
    (["backtest", "case.toml", "--episodes", "0"], "--episodes must be >= 1"),
    (["run", str(TUTORIAL), "--out", "s3:/bucket/x"], "looks like a URI but is not one"),
    (["run", str(TUTORIAL), "--out", "s3://"], "names no bucket"),
])
def test_hostile_flags_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)  # (nothing may be written; if it were, it would land here)
    line = _one_line_refusal(capsys, argv)
    assert says in line, line
    assert not (tmp_path / "forecasts" / "runs").exists()


def test_a_malformed_ray_address_says_what_is_wrong():
    from engine.execution.cluster import RayUnreachableError, _check_reachable

    for address, says in (("x", "not host:port"), ("ray://h:", "not host:port"),
                          ("127.0.0.1:99999", "port out of range")):
        with pytest.raises(RayUnreachableError, match=rf"at '{address}' \({says}\); check --ray-address"):
            _check_reachable(address)


@pytest.mark.parametrize("edit,says", [
    ("episodes = 99999999999999999999", "episodes: must be a positive integer of at most 1e+13"),
    ('[design]\nsampler = "grid"\nlevels = 3000000', "design: makes 3,000,000 rows (at most 2,097,152"),
    ('[design]\nsampler = "grid"\nlevels = 200000\nrow_tables = true',
     "design.row_tables: rows with their own run tables are at most 100,000"),
])
def test_study_files_beyond_the_bounds_are_refused_before_anything_is_built(tmp_path, capsys, edit, says):
    study = tmp_path / "s.toml"
    design = "" if "[design]" in edit else '[design]\nsampler = "random"\nsamples = 4\n'
    study.write_text(f'name = "s"\nscenario = "{TUTORIAL}"\n{edit}\n{design}[[inputs]]\npath = "budget"\n'
                     'distribution = "uniform"\nlow = 0\nhigh = 100\n')
    started = time.perf_counter()
    line = _one_line_refusal(capsys, ["validate", str(study)])
    assert line == f"pivotal: error: {study}: {says}" or line.startswith(f"pivotal: error: {study}: {says}"), line
    assert time.perf_counter() - started < 10  # the rows are never built


def test_a_catalog_that_cannot_be_written_names_the_file(tmp_path, capsys):
    out = tmp_path / "out"
    pivotal.forecast(TUTORIAL, episodes=200, out=out, run_id="a", progress=False)
    line = _one_line_refusal(capsys, ["catalog", "--out", str(out), "--file", "/proc/catalog.duckdb"])
    assert line.startswith("pivotal: error: --file /proc/catalog.duckdb: the catalog cannot be written there")


def test_a_signal_whose_interrupt_a_library_swallowed_still_stops_the_run(tmp_path):
    """Python drops an exception raised in a weakref callback or __del__ (where a signal can
    land); the signal is remembered and the run stops after the chunk it arrived in."""
    from engine.execution import signals

    def save_and_lose_a_signal(self, position, aggregates):
        original(self, position, aggregates)
        if position == 1:
            signals.received.append(signal.SIGTERM)  # as the handler does, its exception then lost
    original = RunDirectory.save_chunk
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(RunDirectory, "save_chunk", save_and_lose_a_signal)
            with pytest.raises(signals.Terminated):
                pivotal.forecast(TUTORIAL, episodes=6000, chunk_size=1000, out=tmp_path, run_id="s",
                                 workers=1, progress=False)
    finally:
        signals.received.clear()
    assert checkpointed(tmp_path, "s") == 2


def test_a_gcs_uri_gets_a_bounded_retry_time():
    """pyarrow's GCS client retries an unreachable service for 15 minutes by default (a run to
    gs:// on a machine without network waited past 120 s); pivotal bounds it unless the URI
    says otherwise. (Measured here: gs://... with retry_limit_seconds=3 fails in 6 s, exit 3.)"""
    from engine.outputs.storage import GCS_RETRY_SECONDS, _bounded_retries

    assert _bounded_retries("gs://b/p") == f"gs://b/p?retry_limit_seconds={GCS_RETRY_SECONDS}"
    assert _bounded_retries("gs://b/p?project_id=x") == f"gs://b/p?project_id=x&retry_limit_seconds={GCS_RETRY_SECONDS}"
    assert _bounded_retries("gs://b/p?retry_limit_seconds=5") == "gs://b/p?retry_limit_seconds=5"
    assert _bounded_retries("s3://b/p") == "s3://b/p"


def test_a_dropped_interrupt_is_not_printed_other_dropped_errors_are(capsys, monkeypatch):
    from engine.execution import signals

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's, which prints all
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # (leave pytest's own handlers)
    signals.handle_signals()

    class Dropped:
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc
    Dropped(KeyboardInterrupt())
    assert "KeyboardInterrupt" not in capsys.readouterr().err
    Dropped(ValueError("something else"))
    assert "ValueError: something else" in capsys.readouterr().err
