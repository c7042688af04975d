"""Defects a hostile-input attack found (issue 19), each pinned by a test that failed before
its fix."""
import os
import stat
import sys

import pytest

import pivotal
from conftest import build, candidate, scenario_doc
from engine.cli.main import main
from engine.outputs.html_report import render


def test_a_dollar_in_a_name_is_shown_literally_in_the_report(tmp_path):
    """A '$' in a scenario or candidate name crashed `report` (Matplotlib mathtext) or altered
    the text: names are shown literally."""
    doc = scenario_doc(name="Cost $5 vs $\\frac$ $10", candidates=[candidate("C$_$1"), candidate("D")])
    res = pivotal.forecast(build(doc, scenario_id="dollar"), episodes=500, progress=False)
    page = render(res.tables)
    assert "Cost $5 vs $\\frac$ $10" in page   # (before: ValueError from Matplotlib's mathtext)
    assert "C$_$1" in page


def test_params_out_that_cannot_be_written_is_refused_before_the_fit(tmp_path, capsys, monkeypatch):
    """`--fit --params-out /` failed with a traceback after the whole fit: now one line before it."""
    from case_fixtures import CASE, FIX
    from engine.data import fit

    (tmp_path / "cow").symlink_to(FIX.resolve())
    case = tmp_path / "war.toml"
    case.write_text(CASE)
    monkeypatch.setattr(fit, "fit", lambda *a, **k: pytest.fail("the fit ran"))
    for target in ("/", str(tmp_path / "no" / "such" / "dir" / "p.toml")):
        assert main(["backtest", str(case), "--fit", "--params-out", target]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--params-out" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() != 0 and not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_catalog_file_must_be_a_regular_file_or_a_new_path(tmp_path, capsys):
    """`pivotal catalog --file` replaced whatever was at the path, device nodes and FIFOs
    included (as root, --file /dev/null replaced /dev/null)."""
    out = tmp_path / "fc"
    pivotal.forecast(build(scenario_doc(), scenario_id="s"), episodes=200, out=out, progress=False)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    directory = tmp_path / "adir"
    directory.mkdir()
    for target in (fifo, directory, "/dev/null"):
        before = os.stat(target)
        assert main(["catalog", "--out", str(out), "--file", str(target)]) == 2
        err = capsys.readouterr().err
        assert "--file" in err and "regular file" in err and err.count("\n") == 1
        after = os.stat(target)
        assert (stat.S_IFMT(after.st_mode), after.st_ino) == (stat.S_IFMT(before.st_mode), before.st_ino)
    fresh = tmp_path / "new.duckdb"
    assert main(["catalog", "--out", str(out), "--file", str(fresh)]) == 0 and fresh.is_file()
    assert main(["catalog", "--out", str(out), "--file", str(fresh)]) == 0  # a regular file: replaced
    assert sys.stdout is not None


def _one_run(tmp_path, name="fc"):
    out = tmp_path / name
    pivotal.forecast(build(scenario_doc(), scenario_id="s"), episodes=200, out=out, run_id="a", progress=False)
    return out


def _opens(catalog) -> bool:
    import duckdb

    with duckdb.connect(str(catalog), read_only=True) as con:
        return con.execute("SELECT count(*) FROM latest_summary").fetchone()[0] == 8


def test_a_stale_wal_beside_the_catalog_does_not_break_the_rebuilt_catalog(tmp_path):
    """A leftover forecasts.duckdb.wal was replayed into every rebuilt catalog, which then
    could not be opened while each rebuild reported success."""
    out = _one_run(tmp_path)
    catalog = out / "forecasts.duckdb"
    assert main(["catalog", "--out", str(out)]) == 0
    (out / "forecasts.duckdb.wal").write_bytes(os.urandom(4096))
    assert main(["catalog", "--out", str(out)]) == 0
    assert _opens(catalog) and not (out / "forecasts.duckdb.wal").exists()


def test_temporary_files_of_a_killed_catalog_build_are_removed(tmp_path):
    """A SIGKILLed `pivotal catalog` left .forecasts.duckdb.<pid>.tmp behind forever: the next
    build removes those of processes that are gone, never those of a build still running."""
    import subprocess

    out = _one_run(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphans = [out / f".forecasts.duckdb.{gone.pid}.tmp", out / f".forecasts.duckdb.{gone.pid}.tmp.wal"]
    running = out / f".forecasts.duckdb.{os.getppid()}.tmp"
    for p in (*orphans, running):
        p.write_bytes(b"x" * 100)
    assert main(["catalog", "--out", str(out)]) == 0
    assert not any(p.exists() for p in orphans) and running.exists()


def test_glob_characters_in_out_are_literal(tmp_path):
    """`--out 'fc[1]*'` read the runs of ./fc1x (or nothing): the path is glob-escaped."""
    import duckdb

    odd = _one_run(tmp_path, "fc[1]*")
    other = tmp_path / "fc1x"
    pivotal.forecast(build(scenario_doc(), scenario_id="other"), episodes=200, out=other, run_id="b",
                     progress=False)
    assert main(["catalog", "--out", str(odd)]) == 0
    with duckdb.connect(str(odd / "forecasts.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT run_id, scenario_id FROM latest_summary").fetchall() == [("a", "s")]


def test_a_full_disk_while_cataloguing_is_exit_3_and_names_the_catalog(tmp_path, capsys, monkeypatch):
    """Disk full during `catalog` exited 2 (the docs say 3) and named a --file not given."""
    import duckdb

    from engine.outputs import catalog

    out = _one_run(tmp_path)

    def full(*args, **kwargs):
        raise duckdb.IOException("Could not write file: No space left on device")
    monkeypatch.setattr(catalog, "_suite_views", full)
    assert main(["catalog", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left" in err and "--file" not in err
    assert str(out / "forecasts.duckdb") in err
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("command", ["show", "report"])
def test_a_complete_run_missing_a_table_is_one_line(tmp_path, capsys, command):
    import shutil

    out = _one_run(tmp_path)
    shutil.rmtree(out / "candidates")
    argv = [command, "--out", str(out)] + (["--html", str(tmp_path / "r.html")] if command == "report" else [])
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "candidates" in err and "missing" in err


def test_a_garbage_data_file_is_one_line(tmp_path, capsys):
    """A data file that is not what its name says gave a Polars traceback."""
    from case_fixtures import FIX

    data = tmp_path / "data"
    data.mkdir()
    for f in FIX.iterdir():
        (data / f.name).symlink_to(f.resolve())
    for name, junk in (("cow_states.csv", b"\x00\xff garbage \x01\n\x02"),
                       ("atop_alliance_dyad_year.parquet", b"not parquet at all")):
        (data / name).unlink()
        (data / name).write_bytes(junk)
        assert main(["scenario", "build", "--data", str(data), "--pivot", "PIV", "--year", "2000",
                     "--target", "TGT"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--data {data}" in err and "Traceback" not in err, err
        assert name in err or "no column" in err
        (data / name).unlink()
        (data / name).symlink_to((FIX / name).resolve())
