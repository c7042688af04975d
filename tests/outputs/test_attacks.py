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
