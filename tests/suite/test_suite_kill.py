"""A suite SIGKILLed in the middle of an item and started again finishes only what is missing, under
the same suite run id, and ends with the same tables as an undisturbed night."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl

import pivotal
from conftest import wait_for_checkpoints

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SUITE = """name = "kill-night"
[defaults]
episodes = 60000
seed = 3
workers = 1
chunk_size = 2000

[[items]]
scenario = "scenarios/*.toml"
"""
VOLATILE = ["suite_run_id", "run_id", "reused_from", "seconds", "started_at", "finished_at",
            "suite_started_at", "suite_finished_at"]
TABLES = ("summary", "candidates", "size_distribution", "capacity_distribution", "time_to_success")


def item_tables(out, run_id):
    return {t: pl.read_parquet(Path(out) / t / f"run_id={run_id}" / "part-0.parquet").drop("run_id")
            for t in TABLES}


def test_sigkill_mid_item_then_the_same_command_finishes_it(tmp_path):
    (tmp_path / "scenarios").mkdir()
    for name, requirement in (("a", 4000), ("b", 3000), ("c", 2000)):
        (tmp_path / "scenarios" / f"{name}.toml").write_text(
            TUTORIAL.read_text().replace("requirement = 4000", f"requirement = {requirement}"))
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text(SUITE)
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "suite", str(suite_file), "--out", str(killed_out)],
                            cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    suite_run_id = proc.stdout.readline().strip()
    wait_for_checkpoints(proc, killed_out, f"{suite_run_id}.b", 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    staged = killed_out / "_suite" / "staging" / f"suite_run_id={suite_run_id}" / "items"
    assert [p.name for p in staged.iterdir()] == ["a.json"]  # a was recorded, b was cut short
    assert (killed_out / "_staging" / f"run_id={suite_run_id}.b" / "plan.json").exists()

    finished = pivotal.suite(suite_file, out=killed_out)  # the same command, started again
    assert finished.resumed and finished.suite_run_id == suite_run_id and finished.exit_code == 0
    assert not (killed_out / "_suite" / "staging" / f"suite_run_id={suite_run_id}").exists()
    assert not list((killed_out / "_staging").glob("run_id=*"))

    calm = pivotal.suite(suite_file, out=tmp_path / "calm")  # an undisturbed night
    assert not calm.resumed
    assert finished.rows.drop(VOLATILE).equals(calm.rows.drop(VOLATILE))
    assert finished.rows["status"].to_list() == ["complete"] * 3
    for a, b in zip(finished.rows["run_id"], calm.rows["run_id"]):
        assert a.removeprefix(suite_run_id) == b.removeprefix(calm.suite_run_id)
        mine, theirs = item_tables(killed_out, a), item_tables(tmp_path / "calm", b)
        for t in TABLES:
            assert mine[t].equals(theirs[t]), t
    shutil.rmtree(tmp_path / "calm")
