"""`--out s3://bucket/prefix` against a local S3-compatible server (moto, on 127.0.0.1)."""
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine.outputs.directory
import pivotal
from engine.execution.journal import count
from engine.outputs.storage import StorageError, complete_runs, locate
from s3_fixtures import BUCKET, s3  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SYRIA = ROOT / "configs" / "scenarios" / "syria_safe_zone_2019.toml"
TIMES = ("started_at", "finished_at")


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def read_all(out, run_id):
    location = locate(out)
    return {t: location.read(t, run_id) for t in location.table_names()
            if location.exists(location.part(t, run_id))}


@pytest.fixture(scope="module")
def both(s3, tmp_path_factory):
    """The same run written to the S3 server and to a local directory."""
    local = tmp_path_factory.mktemp("local")
    args = [TUTORIAL, SYRIA, "--episodes", 3000, "--run-id", "r1", "--keep-episodes", 5, "--quiet"]
    for out in (f"s3://{BUCKET}/team/fc", local):
        result = cli(s3, "run", *args, "--out", out)
        assert result.returncode == 0, result.stderr
    return f"s3://{BUCKET}/team/fc", local


def test_a_run_on_object_storage_reads_back_identical_to_the_same_run_on_disk(both, s3):
    remote, local = both
    a, b = read_all(remote, "r1"), read_all(local, "r1")
    assert sorted(a) == sorted(b) == sorted(engine.outputs.directory.RUN_TABLES)
    for name in a:
        assert a[name].schema == b[name].schema, name  # types and the schema-version metadata
        left, right = a[name], b[name]
        if name == "runs":
            left, right = left.drop_columns(list(TIMES)), right.drop_columns(list(TIMES))
        assert left.equals(right), name
    assert not list(Path(s3["PIVOTAL_CHECKPOINT_DIR"]).rglob("run_id=r1"))  # staging removed after publish


def test_show_report_and_refusals_work_on_object_storage(both, s3, tmp_path):
    remote, _ = both
    shown = cli(s3, "show", "--out", remote)
    assert shown.returncode == 0, shown.stderr
    assert "run r1" in shown.stdout and "[syria_safe_zone_2019]" in shown.stdout
    page = tmp_path / "r1.html"
    report = cli(s3, "report", "--out", remote, "--html", page)
    assert report.returncode == 0, report.stderr
    assert page.read_text().count("data-chart='candidates'") == 2
    again = cli(s3, "run", TUTORIAL, "--episodes", 100, "--out", remote, "--run-id", "r1")
    assert again.returncode == 2 and "already complete" in again.stderr
    bad = cli(s3, "run", TUTORIAL, "--episodes", 100, "--out", "ftp://host/x")
    assert bad.returncode == 2 and "ftp://host/x" in bad.stderr and "Traceback" not in bad.stderr
    nobucket = cli(s3, "run", TUTORIAL, "--episodes", 100, "--out", "s3://no-such-bucket/x")
    assert nobucket.returncode == 2 and "'no-such-bucket' does not exist" in nobucket.stderr


def test_runs_object_is_the_commit_and_resume_keeps_checkpoints_on_local_disk(s3, monkeypatch):
    out = f"s3://{BUCKET}/crash"
    written = []
    real = engine.outputs.directory.ObjectRunDirectory._upload

    def failing(self, name):
        written.append(name)
        if name == "candidates":
            raise OSError("simulated network failure")
        return real(self, name)

    monkeypatch.setattr(engine.outputs.directory.ObjectRunDirectory, "_upload", failing)
    args = dict(episodes=4000, chunk_size=1000, seed=5, out=out, run_id="x", progress=False)
    with pytest.raises(OSError, match="simulated"):
        pivotal.forecast(TUTORIAL, **args)
    location = locate(out)
    assert "summary" in location.table_names() and "runs" not in location.table_names()
    assert complete_runs(location).is_empty()  # readers see nothing of the half-published run
    with pytest.raises(StorageError, match="no complete run"):
        from engine.cli.outputs import show_text
        show_text(out)
    checkpoints = Path(os.environ["PIVOTAL_CHECKPOINT_DIR"])
    assert count(next(checkpoints.rglob("run_id=x/chunks"))) == 4
    written.clear()
    monkeypatch.setattr(engine.outputs.directory.ObjectRunDirectory, "_upload",
                        lambda self, name: (written.append(name), real(self, name)))
    resumed = pivotal.forecast(TUTORIAL, resume=True, **args)
    assert written[-1] == "runs" and sorted(written) == sorted(engine.outputs.directory.RUN_TABLES)
    assert resumed.computed == 0  # every chunk came from the local checkpoints
    clean = pivotal.forecast(TUTORIAL, episodes=4000, chunk_size=1000, seed=5, progress=False)
    assert_frame_equal(pl.from_arrow(read_all(out, "x")["summary"]).drop("run_id"),
                       clean.tables["summary"].drop("run_id"))
    assert not list(checkpoints.rglob("run_id=x"))
