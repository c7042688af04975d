"""Whatever the input or signal: one clear line, a documented exit code, no traceback,
no stuck run id, and never an unvalidated scenario (issue: hardening)."""
import dataclasses
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
from engine.outputs.directory import RunExistsError
from engine.model.scenario import ScenarioError
from conftest import checkpointed, messages, start_past_entry_point, wait_for_checkpoints

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
BENCH_120 = ROOT / "bench" / "scenarios" / "synthetic_120.toml"
CLI = [sys.executable, "-m", "engine.cli"]


def interrupted_after(chunks, scenario, **kw):
    """Run `scenario` with `forecast(**kw)` and interrupt it (Ctrl-C) once `chunks` chunks are
    checkpointed."""
    from engine.outputs.directory import RunDirectory

    saved = []
    original = RunDirectory.save_chunk

    def save_then_stop(self, position, aggregates):
        original(self, position, aggregates)
        saved.append(position)
        if len(saved) == chunks:
            raise KeyboardInterrupt
    with pytest.MonkeyPatch.context() as m:
        m.setattr(RunDirectory, "save_chunk", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            pivotal.forecast(scenario, progress=False, **kw)


def cli(*args, cwd=ROOT, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the engine also from another working directory
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, **kw)


# --- scenarios made in Python are validated like files ---------------------------------------

@pytest.mark.parametrize("change,key", [
    ({"budget": -500.0}, "budget"),
    ({"budget": float("nan")}, "budget"),
    ({"deadline_days": 0.0}, "deadline_days"),
    ({"parameters": {"bandwidth": 0}}, "parameters.bandwidth"),
    ({"min_partners": 10**23}, "min_partners"),
])
def test_python_made_scenarios_are_validated(change, key):
    s = pivotal.load_scenario(TUTORIAL)
    with pytest.raises(ScenarioError, match=key):
        s.with_(**change)
    with pytest.raises(ScenarioError, match=key):
        pivotal.forecast(dataclasses.replace(s, **change), episodes=10, progress=False)


def test_with_makes_a_validated_variant():
    s = pivotal.load_scenario(TUTORIAL)
    cheaper = s.with_(budget=100.0)
    assert cheaper.budget == 100.0 and cheaper.candidates == s.candidates
    assert cheaper.content_sha256() != s.content_sha256()


def test_resume_refuses_a_scenario_changed_in_python(tmp_path):
    """The plan hashes the validated content, not the source file: a variant of the same file
    cannot be resumed into a run of the original (it would mix two scenarios)."""
    s = pivotal.load_scenario(TUTORIAL)
    store = tmp_path / "out"
    interrupted_after(1, s, episodes=4000, chunk_size=1000, out=store, run_id="r")
    with pytest.raises(RunExistsError, match="scenarios"):
        pivotal.forecast(s.with_(budget=1.0), episodes=4000, chunk_size=1000, out=store, run_id="r",
                         resume=True, progress=False)
    done = pivotal.forecast(s, episodes=4000, chunk_size=1000, out=store, run_id="r", resume=True,
                            progress=False)
    assert done.computed == 3000


# --- every number has a finite range --------------------------------------------------------

@pytest.mark.parametrize("line,key", [
    ("deadline_days = " + "9" * 400, "deadline_days"),
    ("deadline_days = 36500.5", "deadline_days"),
    ("min_partners = 100000000000000000000000", "min_partners"),
    ("budget = 1.7e308", "budget"),
    ("requirement = 2e12", "requirement"),
])
def test_out_of_range_numbers_are_refused(tmp_path, line, key):
    key_name = line.split(" = ")[0]
    text = "\n".join(l for l in TUTORIAL.read_text().splitlines() if not l.startswith(key_name + " "))
    path = tmp_path / "bad.toml"
    path.write_text(line + "\n" + text)
    done = cli("validate", path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and f": {key}: must be" in done.stderr
    assert len(done.stderr) < 300  # a 400-digit number is shortened


def test_range_boundaries_are_accepted(tmp_path):
    text = TUTORIAL.read_text().replace("deadline_days = 90", "deadline_days = 36500").replace(
        "budget = 300", "budget = 1e12")
    text = text.replace("capacity = { low = 1000, mode = 2000, high = 3000 }",
                        "capacity = { low = 1000, mode = 2000, high = 1e12 }")
    (tmp_path / "edge.toml").write_text(text)
    tables = pivotal.forecast(tmp_path / "edge.toml", episodes=2000, progress=False).tables
    assert tables["time_to_success"].height == 36501
    summary = tables["summary"]
    for column in ("mean", "max"):
        values = summary.filter(pl.col("metric").is_in(["capacity", "spent"]))[column]
        assert values.is_finite().all()


def test_huge_capacity_is_refused(tmp_path):
    text = TUTORIAL.read_text().replace("capacity = { low = 1000, mode = 2000, high = 3000 }",
                                        "capacity = { low = 1000, mode = 2000, high = 1.7e308 }")
    (tmp_path / "cap.toml").write_text(text)
    done = cli("validate", tmp_path / "cap.toml")
    assert done.returncode == 2 and "candidates[0].capacity.high: must be in [0, 1e12]" in done.stderr


def test_deeply_nested_values_are_refused(tmp_path):
    (tmp_path / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    done = cli("validate", tmp_path / "deep.toml")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "deep.toml" in done.stderr


# --- the command line -------------------------------------------------------------------------

def test_version_and_episode_counts(tmp_path):
    assert cli("--version").stdout.startswith("pivotal ")
    for episodes in ("1e3", "1_000", "1000"):
        done = cli("run", TUTORIAL, "--episodes", episodes, "--out", tmp_path, "--quiet")
        assert done.returncode == 0, done.stderr
    run_ids = pl.read_parquet(tmp_path / "runs" / "*" / "*.parquet")
    assert run_ids["episodes"].to_list() == [1000, 1000, 1000]
    bad = cli("run", TUTORIAL, "--episodes", "1.5", "--out", tmp_path)
    assert bad.returncode == 2 and "whole number" in bad.stderr and "Traceback" not in bad.stderr


def _start(out, *extra):
    args = [*CLI, "run", str(BENCH_120), "--episodes", "80000", "--chunk-size", "2000", "--seed", "5",
            "--out", str(out), "--quiet", *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_leave_a_resumable_run_and_say_so(tmp_path, sig, code):
    """The run id is the first line, at once; SIGTERM is handled like Ctrl-C; `--resume`
    without `--run-id` finishes the latest interrupted run, equal to an undisturbed one."""
    out = tmp_path / "out"
    proc = _start(out)
    run_id = proc.stdout.readline().strip()  # printed before anything is computed
    wait_for_checkpoints(proc, out, run_id, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in err and f"--resume --run-id {run_id}" in err
    assert not (out / "runs").exists()
    resumed = _start(out, "--resume")
    assert resumed.stdout.readline().strip() == run_id
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    clean = pivotal.forecast(BENCH_120, episodes=80000, chunk_size=2000, seed=5, progress=False).tables
    for table in ("summary", "candidates", "size_distribution"):
        assert_frame_equal(pl.read_parquet(out / table / f"run_id={run_id}" / "part-0.parquet").drop("run_id"),
                           clean[table].drop("run_id"))


def test_interrupt_before_the_run_starts_is_one_line(tmp_path):
    proc = start_past_entry_point(["run", TUTORIAL, "--out", tmp_path], cwd=ROOT)
    time.sleep(0.3)  # importing the engine
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    said = messages(err)
    assert proc.returncode == 143 and "Traceback" not in err and len(said) == 1 and "interrupted" in said[0], err


def test_resume_without_a_run_id_and_nothing_to_resume(tmp_path):
    done = cli("run", TUTORIAL, "--out", tmp_path, "--resume")
    assert done.returncode == 2 and "nothing to resume" in done.stderr


# --- Ray: an unreachable cluster fails fast, before the run id is claimed ---------------------

def test_unreachable_ray_address_fails_in_seconds_and_claims_nothing(tmp_path):
    started = time.time()
    done = cli("run", TUTORIAL, "--executor", "ray", "--ray-address", "127.0.0.1:1",
               "--out", tmp_path / "out", "--run-id", "r1", timeout=60)
    assert time.time() - started < 30
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in done.stderr
    assert not (tmp_path / "out").exists()  # the id is free: a later run may take it


def test_local_ray_workers_are_bounded_like_local_threads(tmp_path):
    done = cli("run", TUTORIAL, "--executor", "ray", "--workers", "10000", "--out", tmp_path)
    assert done.returncode == 2 and "--workers must be <=" in done.stderr
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())


# --- the file system: one line, exit 3, and --resume when it can finish ------------------------

def test_out_that_is_a_file_or_read_only_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    done = cli("run", TUTORIAL, "--episodes", "100", "--out", tmp_path / "file")
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "nothing was claimed" in done.stderr and str(tmp_path / "file") in done.stderr
    if os.geteuid() != 0:  # root writes anywhere; the read-only case needs a plain user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        done = cli("run", TUTORIAL, "--episodes", "100", "--out", ro)
        assert done.returncode == 3 and "Permission denied" in done.stderr


def test_long_or_odd_run_ids_are_refused(tmp_path):
    for bad in ("x" * 241, "a b", "../up", ".hidden"):
        done = cli("run", TUTORIAL, "--episodes", "100", "--out", tmp_path, "--run-id", bad)
        assert done.returncode == 2 and "--run-id must be" in done.stderr and len(done.stderr) < 300
    assert not any(tmp_path.iterdir())


def test_a_full_disk_while_checkpointing_keeps_the_run_resumable(tmp_path, monkeypatch, capsys):
    import errno

    from engine.cli import main as cli_module
    from engine.outputs.directory import RunDirectory

    original, saved = RunDirectory.save_chunk, []

    def fill_up(self, position, aggregate):
        if len(saved) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.chunks / "0000.journal"))
        saved.append(position)
        original(self, position, aggregate)
    monkeypatch.setattr(RunDirectory, "save_chunk", fill_up)
    args = ["run", str(TUTORIAL), "--episodes", "10000", "--chunk-size", "1000", "--out", str(tmp_path),
            "--run-id", "full", "--quiet", "--workers", "1"]
    assert cli_module.main(args) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume --run-id full" in err
    assert "2 finished chunk(s)" in err
    monkeypatch.setattr(RunDirectory, "save_chunk", original)
    assert cli_module.main(args + ["--resume"]) == 0
    clean = pivotal.forecast(TUTORIAL, episodes=10000, chunk_size=1000, progress=False).tables
    published = pl.read_parquet(tmp_path / "summary" / "run_id=full" / "part-0.parquet")
    assert_frame_equal(published.drop("run_id"), clean["summary"].drop("run_id"))


def test_a_truncated_checkpoint_journal_is_computed_again_from_the_cut(tmp_path):
    store = tmp_path / "out"
    interrupted_after(3, TUTORIAL, episodes=6000, chunk_size=1000, out=store, run_id="t", workers=1)
    journal = store / "_staging" / "run_id=t" / "chunks" / "0000.journal"
    assert checkpointed(store, "t") == 3
    whole = journal.read_bytes()
    journal.write_bytes(whole[:len(whole) // 2])  # a disk that filled up under it: cut in chunk 1's record
    assert checkpointed(store, "t") == 1
    done = pivotal.forecast(TUTORIAL, episodes=6000, chunk_size=1000, out=store, run_id="t",
                            resume=True, progress=False)
    assert done.computed == 5000  # chunks 1 to 5: the cut ends the journal
    clean = pivotal.forecast(TUTORIAL, episodes=6000, chunk_size=1000, progress=False).tables
    assert_frame_equal(done.tables["summary"].drop("run_id"), clean["summary"].drop("run_id"))


def test_publish_flushes_every_file_and_rename_before_the_runs_table(tmp_path, monkeypatch):
    import engine.outputs.directory as output
    events = []
    original_fsync, original_replace = output.fsync_path, os.replace
    monkeypatch.setattr(output, "fsync_path", lambda p: (events.append(("fsync", Path(p))), original_fsync(p)))
    monkeypatch.setattr(output.os, "replace",
                        lambda a, b: (events.append(("rename", Path(b))), original_replace(a, b)))
    pivotal.forecast(TUTORIAL, episodes=500, out=tmp_path, run_id="f", progress=False)
    renames = [p for kind, p in events if kind == "rename" and p.name == "run_id=f"]
    assert renames[-1].parent.name == "runs" and len(renames) >= 8
    first_rename = next(i for i, (kind, p) in enumerate(events) if kind == "rename" and p.name == "run_id=f")
    synced = {p for kind, p in events[:first_rename] if kind == "fsync"}
    for path in (tmp_path / "_staging").glob("**/part-0.parquet"):
        raise AssertionError(f"staging left behind: {path}")
    assert sum(p.name == "part-0.parquet" for p in synced) == len(renames)
    for i, (kind, p) in enumerate(events):
        if kind == "rename" and p.name == "run_id=f":
            assert events[i + 1] == ("fsync", p.parent), "each rename is flushed before the next"


# --- one writer per run id ---------------------------------------------------------------------

def _race(tmp_path, extra=()):
    """Start two runs of the same id at the same moment (a barrier file both wait for)."""
    barrier = tmp_path / "go"
    code = ("import sys, time, pathlib; b = pathlib.Path(sys.argv[1])\n"
            "while not b.exists(): time.sleep(0.001)\n"
            "from engine.cli.main import main; sys.exit(main(sys.argv[2:]))")
    args = ["run", str(BENCH_120), "--episodes", "20000", "--chunk-size", "2000", "--out",
            str(tmp_path / "out"), "--run-id", "same", "--quiet", *extra]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(barrier), *args], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(3)  # both waiting at the barrier, engine imported
    barrier.write_text("go")
    return [(p.wait(timeout=300), p.stderr.read()) for p in procs]


def test_two_writers_of_one_run_id_one_wins_one_is_refused(tmp_path):
    results = sorted(_race(tmp_path))
    assert [code for code, _ in results] == [0, 2], results
    assert "Traceback" not in results[1][1] and "run id 'same'" in results[1][1]
    staging = tmp_path / "out" / "_staging"
    assert not [p for p in staging.iterdir() if p.name.startswith(".")]  # nothing half-built left
    assert (tmp_path / "out" / "runs" / "run_id=same").exists()


def test_two_resumes_of_one_run_id_do_not_collide(tmp_path):
    from engine.outputs.directory import RunDirectory

    interrupted_after(1, BENCH_120, episodes=20000, chunk_size=2000, out=tmp_path / "out", run_id="same")
    RunDirectory(tmp_path / "out", "same").unlock()  # as if this process had ended
    results = sorted(_race(tmp_path, ["--resume"]))
    assert [code for code, _ in results] == [0, 2], results
    assert all("Traceback" not in err for _, err in results)
    assert "being written by another pivotal process" in results[1][1] or "complete" in results[1][1]


def test_a_compile_is_announced_and_the_cache_is_found(monkeypatch, capsys):
    import engine.execution.execute as run_module
    from engine.execution.executors import kernels_cached

    pivotal.forecast(TUTORIAL, episodes=100, progress=False)
    assert kernels_cached()  # Numba's cache index is where we look (fails if Numba moves it)
    monkeypatch.setattr(run_module, "kernels_cached", lambda: False)
    pivotal.forecast(TUTORIAL, episodes=100)
    assert "compiling kernels (first run only)..." in capsys.readouterr().err
    pivotal.forecast(TUTORIAL, episodes=100, progress=False)
    assert "compiling" not in capsys.readouterr().err


# --- runs too long to plan are refused, long ones planned in bounded chunks -------------------

def test_episode_counts_beyond_the_bound_are_refused_before_anything_is_planned(tmp_path):
    started = time.time()
    for args in (["--episodes", "1e15"], ["--episodes", "1e12", "--chunk-size", "10"],
                 ["--keep-episodes", "1e9"]):
        done = cli("run", TUTORIAL, *args, "--out", tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert time.time() - started < 60 and not any(tmp_path.iterdir())


def test_long_runs_are_planned_in_bounded_chunks():
    from engine.execution.plan import MAX_CHUNKS, default_chunk_size, plan_chunks
    from engine.forecast import MAX_EPISODES

    for candidates in (4, 500):
        size = default_chunk_size(candidates, MAX_EPISODES)
        assert -(-MAX_EPISODES // size) <= MAX_CHUNKS
        assert default_chunk_size(candidates, 10**6) == default_chunk_size(candidates)  # short runs: ~1-2 s
    assert len(plan_chunks(1, 10**12, default_chunk_size(30, 10**12))) <= MAX_CHUNKS


# --- Ray and tqdm are optional extras -----------------------------------------------------------

def test_without_ray_the_ray_executor_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import raises ImportError
    from engine.forecast import RunSettingsError
    with pytest.raises(RunSettingsError, match=r"pivotal\[ray\]"):
        pivotal.forecast(TUTORIAL, episodes=100, executor="ray", out=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())
    assert pivotal.forecast(TUTORIAL, episodes=100, progress=False).tables["summary"].height == 8


def test_without_tqdm_progress_is_a_plain_line(monkeypatch, capsys):
    from engine.execution.progress import PlainProgress, progress_bar
    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = progress_bar(1000, 200, disable=False)
    assert isinstance(bar, PlainProgress)
    bar.every = 0.0
    bar.update(300)
    assert "episodes: 500/1,000 (50%)" in capsys.readouterr().err
    tables = pivotal.forecast(TUTORIAL, episodes=3000, chunk_size=1000).tables  # the whole run too
    assert tables["summary"].height == 8


# --- found by a new user's review ---------------------------------------------------------------

FIXTURE_DATA = ROOT / "tests" / "fixtures" / "cow"


def test_scenario_build_writes_only_a_valid_file_and_says_why_not(tmp_path):
    build = ("scenario", "build", "--data", FIXTURE_DATA, "--pivot", "PIV", "--year", "2000", "--target", "TGT")
    bad = cli(*build, "--budget", "-5", "-o", tmp_path / "neg.toml")
    assert bad.returncode == 2 and "the built scenario: budget: must be in [0, 1e12]" in bad.stderr
    nowhere = cli(*build, "-o", tmp_path / "missing" / "x.toml")
    assert nowhere.returncode == 2 and "No such file or directory" in nowhere.stderr
    assert not any(tmp_path.rglob("*.toml"))
    for done in (bad, nowhere):
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert cli(*build, "-o", tmp_path / "ok.toml").returncode == 0
    pivotal.load_scenario(tmp_path / "ok.toml")


def test_a_damaged_file_under_out_is_one_line(tmp_path):
    pivotal.forecast(TUTORIAL, episodes=500, out=tmp_path, run_id="good", progress=False)
    (tmp_path / "runs" / "run_id=junk").mkdir()
    (tmp_path / "runs" / "run_id=junk" / "part-0.parquet").write_text("garbage")
    for args in (("show",), ("catalog",), ("report", "--html", tmp_path / "r.html")):
        done = cli(*args, "--out", tmp_path)
        assert done.returncode == 3 and "Traceback" not in done.stderr, (args, done.stderr)
        assert "cannot be read" in done.stderr and done.stderr.count("\n") == 1


def test_an_empty_out_is_refused(tmp_path):
    done = cli("run", TUTORIAL, "--episodes", "100", "--out", "", cwd=tmp_path)
    assert done.returncode == 2 and "--out is empty" in done.stderr and not any(tmp_path.iterdir())


def test_validate_checks_every_file_and_fails_if_any_is_refused(tmp_path):
    (tmp_path / "bad.toml").write_text("name = 1\n")
    done = cli("validate", tmp_path / "bad.toml", TUTORIAL, tmp_path / "missing.toml")
    assert done.returncode == 2 and "tutorial.toml: ok" in done.stdout
    assert done.stderr.count("pivotal: error:") == 2 and "Traceback" not in done.stderr


def test_the_rate_counts_simulation_only_and_warmup_fills_the_cache(tmp_path):
    done = cli("warmup")
    assert done.returncode == 0 and done.stdout.startswith("kernels ready (")
    result = pivotal.forecast(TUTORIAL, episodes=20_000, progress=False)
    assert 0 < result.simulating <= result.seconds and 0 <= result.starting <= result.seconds
    from engine.outputs.text import summary_text
    assert f"{result.computed / result.simulating:,.0f} episodes/s over" in summary_text(result)
