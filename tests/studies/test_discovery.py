"""Scenario discovery (`pivotal discover`, engine/studies/discovery.py) on study tables written in the
layout of STUDY_FORMAT.md, with outcomes whose answer is known."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from engine.cli.main import main
from engine.studies.discovery import OUTPUTS, SCHEMA, DiscoveryError, discover, publish_discovery
from engine.outputs.directory import RunDirectory

ROOT = Path(__file__).resolve().parents[2]
BUDGET, TIE = "budget", "candidates.POL.tie.mean"


def write_study(out, run_id, inputs: dict, means: dict, status="complete", tables=None):
    """Publish a study's runs/summary/design tables. `inputs`: path -> values per design row;
    `means`: output -> mean per design row. A base and a variant (row -1) with extreme inputs
    and outcomes are added: discovery must ignore them."""
    n = len(next(iter(inputs.values())))
    scenarios = [f"row-{r:06d}" for r in range(n)] + ["base", "variant-1"]
    rows = list(range(n)) + [-1, -1]
    design = {"run_id": [], "scenario_id": [], "row": [], "input": [], "value": []}
    for i, (sid, r) in enumerate(zip(scenarios, rows)):
        for path, values in inputs.items():
            design["run_id"].append(run_id)
            design["scenario_id"].append(sid)
            design["row"].append(r)
            design["input"].append(path)
            design["value"].append(float(values[i]) if r >= 0 else 1e6)
    summary = {"run_id": [], "scenario_id": [], "metric": [], "mean": []}
    for i, sid in enumerate(scenarios):
        for metric in OUTPUTS + ("offers",):
            summary["run_id"].append(run_id)
            summary["scenario_id"].append(sid)
            summary["metric"].append(metric)
            values = means.get(metric)
            summary["mean"].append(float(values[i]) if values is not None and i < n else -1e6)
    built = {"summary": pa.table(summary), "design": pa.table(design),
             "runs": pa.table({"run_id": [run_id], "status": [status]})}
    built = {k: v for k, v in built.items() if tables is None or k in tables}
    RunDirectory(out, run_id).publish(built)


def budget_study(n=512, seed=2):
    """success is below 0.5 exactly when budget < 800; the tie mean is irrelevant to success.
    size is above 4 exactly when the tie mean > 0.6 (budget irrelevant)."""
    rng = np.random.default_rng(seed)
    budget, tie = rng.uniform(500, 2000, n), rng.uniform(0.1, 0.9, n)
    success = np.where(budget < 800, 0.3, 0.7) + rng.uniform(-0.15, 0.15, n)
    size = np.where(tie > 0.6, 6.0, 2.0) + rng.uniform(-1.5, 1.5, n)
    return {BUDGET: budget, TIE: tie}, {"success": success, "size": size}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    inputs, means = budget_study()
    write_study(out, "s1", inputs, means)
    return out, inputs, means


def restricted(box):
    return {r.input: r for r in box.restrictions}


def test_first_box_is_the_budget_range_and_ignores_the_irrelevant_input(study):
    out, inputs, means = study
    found = discover(out, "s1", "success", below=0.5)
    assert found.total_rows == 512  # base and variant (row -1) are not design rows
    assert found.total_cases == int((means["success"] < 0.5).sum()) == int((inputs[BUDGET] < 800).sum())
    box = found.boxes[0]
    assert set(restricted(box)) == {BUDGET}
    r = restricted(box)[BUDGET]
    assert r.high_restricted and not r.low_restricted
    assert r.low == inputs[BUDGET].min()
    assert 780 <= r.high <= 900
    assert r.qp_low is None and r.qp_high < 1e-10
    assert box.coverage >= 0.95 and box.density >= 0.8
    # the box's statistics are those of the rows inside its limits
    inside = (inputs[BUDGET] >= r.low) & (inputs[BUDGET] <= r.high)
    assert box.n_rows == inside.sum() and box.n_cases == (inside & (inputs[BUDGET] < 800)).sum()
    assert box.mass == pytest.approx(inside.mean())
    assert box.coverage == pytest.approx(box.n_cases / found.total_cases)
    assert box.density == pytest.approx(box.n_cases / box.n_rows)


def test_above_finds_the_other_side(study):
    out, inputs, _ = study
    found = discover(out, "s1", "success", above=0.5)
    r = restricted(found.boxes[0])
    assert set(r) == {BUDGET}
    assert r[BUDGET].low_restricted and not r[BUDGET].high_restricted
    assert 700 <= r[BUDGET].low <= 820 and r[BUDGET].high == inputs[BUDGET].max()
    assert found.boxes[0].coverage >= 0.95 and found.boxes[0].density >= 0.95


def test_output_selects_the_summary_metric(study):
    out, inputs, _ = study
    found = discover(out, "s1", "size", above=4)
    r = restricted(found.boxes[0])
    assert set(r) == {TIE}  # size depends on the tie mean only
    assert 0.55 <= r[TIE].low <= 0.65 and not r[TIE].high_restricted
    assert found.boxes[0].coverage >= 0.9


def test_two_regions_give_two_boxes_and_noise_restrictions_are_dropped(tmp_path):
    rng = np.random.default_rng(3)
    n = 1024
    a, b, c = rng.uniform(500, 2000, n), rng.uniform(0.1, 0.9, n), rng.uniform(0, 1, n)
    success = np.where((a < 800) | (b > 0.75), 0.2, 0.8)
    write_study(tmp_path, "two", {"a": a, "b": b, "c": c}, {"success": success})
    found = discover(tmp_path, "two", below=0.5)
    assert [set(restricted(box)) for box in found.boxes] == [{"a"}, {"b"}]
    assert sum(box.coverage for box in found.boxes) >= 0.95
    assert restricted(found.boxes[1])["b"].low == pytest.approx(0.75, abs=0.02)
    # keeping every restriction (--max-qp 1) lets PRIM's weak ones through
    kept = discover(tmp_path, "two", below=0.5, max_qp=1.0)
    assert any(len(box.restrictions) > 1 for box in kept.boxes)
    assert len(discover(tmp_path, "two", below=0.5, max_boxes=1).boxes) == 1


def test_same_boxes_whatever_the_order_of_the_tables(study, tmp_path):
    """Outcomes are joined to design rows by scenario id, not by position: shuffled design and
    summary files give the same boxes."""
    out, inputs, means = study
    write_study(tmp_path, "s1", inputs, means)
    rng = np.random.default_rng(0)
    for table in ("design", "summary"):
        path = tmp_path / table / "run_id=s1" / "part-0.parquet"
        t = pq.read_table(path)
        pq.write_table(t.take(rng.permutation(t.num_rows)), path)
    assert discover(tmp_path, "s1", below=0.5).boxes == discover(out, "s1", below=0.5).boxes


def test_a_switch_and_a_constant_input(tmp_path):
    """A mechanism switch (values 0/1) is restricted to one value; a constant input never is."""
    rng = np.random.default_rng(4)
    n = 256
    switch, a = rng.integers(0, 2, n).astype(float), rng.uniform(0, 1, n)
    success = np.where((switch == 0) & (a < 0.5), 0.2, 0.8)
    write_study(tmp_path, "sw", {"mechanisms.venues": switch, "a": a, "const": np.full(n, 3.0)},
                {"success": success})
    box = discover(tmp_path, "sw", below=0.5).boxes[0]
    r = restricted(box)
    assert set(r) == {"mechanisms.venues", "a"}
    assert r["mechanisms.venues"].low == 0 and r["mechanisms.venues"].high < 1
    assert 0.45 <= r["a"].high <= 0.55
    assert box.coverage == 1.0 and box.density >= 0.9


def test_threshold_is_strict(tmp_path):
    inputs, means = budget_study(n=64)
    means["success"] = np.where(inputs[BUDGET] < 800, 0.5, 0.9)
    write_study(tmp_path, "eq", inputs, means)
    with pytest.raises(DiscoveryError, match="nothing to discover"):
        discover(tmp_path, "eq", below=0.5)
    assert discover(tmp_path, "eq", below=0.5000001).total_cases == (inputs[BUDGET] < 800).sum()


def test_every_row_a_case_gives_one_unrestricted_box(tmp_path):
    inputs, means = budget_study(n=64)
    write_study(tmp_path, "all", inputs, means)
    found = discover(tmp_path, "all", below=2.0)
    assert len(found.boxes) == 1 and found.boxes[0].restrictions == ()
    assert found.boxes[0].coverage == found.boxes[0].density == found.boxes[0].mass == 1.0
    table = found.table()
    assert table.num_rows == 1 and table["input"][0].as_py() is None and table["low"].null_count == 1


def test_cli_prints_boxes_and_publishes_the_table(study, capsys):
    out, inputs, _ = study
    assert main(["discover", "--out", str(out), "--run-id", "s1", "--output", "success",
                 "--below", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "success below 0.5" in text and "box 1: coverage" in text and "density" in text
    budget_line = next(line for line in text.splitlines() if line.strip().startswith(BUDGET))
    bound = float(budget_line.split("<=")[1].split()[0].replace(",", ""))
    assert 780 <= bound <= 900
    assert TIE not in text.split("box 1")[1].split("box 2")[0]
    path = out / "discovery" / "run_id=s1" / "part-0.parquet"
    table = pq.read_table(path)
    assert table.schema == SCHEMA
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"
    first = table.filter(pc.equal(table["box"], 1)).to_pylist()
    assert [row["input"] for row in first] == [BUDGET]
    row = first[0]
    assert (row["run_id"], row["output"], row["direction"], row["threshold"]) == \
        ("s1", "success", "below", 0.5)
    assert row["input_min"] == inputs[BUDGET].min() and row["input_max"] == inputs[BUDGET].max()
    assert row["qp_low"] is None and row["total_rows"] == 512
    for name in table.column_names:  # null, never NaN
        if pa.types.is_floating(table.schema.field(name).type):
            assert not any(v is not None and math.isnan(v) for v in table[name].to_pylist()), name

    # a second discovery of the same run replaces the file; no temporary file is left
    assert main(["discover", "--out", str(out), "--run-id", "s1", "--output", "size",
                 "--above", "4"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in path.parent.iterdir()) == ["part-0.parquet"]
    again = pq.read_table(path)
    assert set(again["output"].to_pylist()) == {"size"}
    assert set(again["direction"].to_pylist()) == {"above"}


def test_no_dense_box_writes_an_empty_table(tmp_path, capsys):
    rng = np.random.default_rng(5)
    inputs = {"a": rng.uniform(0, 1, 256), "b": rng.uniform(0, 1, 256)}
    write_study(tmp_path, "noise", inputs, {"success": rng.uniform(0, 1, 256)})
    assert main(["discover", "--out", str(tmp_path), "--run-id", "noise", "--below", "0.3",
                 "--density", "0.99"]) == 0
    assert "no box reaches density 0.99" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "discovery" / "run_id=noise" / "part-0.parquet").num_rows == 0


@pytest.mark.parametrize("argv, message", [
    (["--run-id", "nope", "--below", "0.5"], "no complete run 'nope'"),
    (["--run-id", "plain", "--below", "0.5"], "has no design table"),
    (["--run-id", "variants", "--below", "0.5"], "has no design rows"),
    (["--run-id", "crashed", "--below", "0.5"], "no complete run 'crashed'"),
    (["--run-id", "running", "--below", "0.5"], "no complete run 'running'"),
    (["--run-id", "dup", "--below", "0.5"], "gives an input twice for one row"),
    (["--run-id", "gap", "--below", "0.5"], "lacks a value for some row and input"),
    (["--run-id", "partial", "--below", "0.5"],
     "has no success mean for 1 design row(s), first row-000001"),
    (["--run-id", "s1", "--output", "p_member", "--below", "0.5"], "unknown output 'p_member'"),
    (["--run-id", "s1"], "exactly one of --below or --above"),
    (["--run-id", "s1", "--below", "0.5", "--above", "0.2"], "exactly one of --below or --above"),
    (["--run-id", "s1", "--below", "0.0"], "no design row of run 's1' has success below 0"),
    (["--run-id", "s1", "--below", "nan"], "finite"),
    (["--run-id", "s1", "--below", "0.5", "--density", "1.5"], "--density must be in (0, 1]"),
    (["--run-id", "s1", "--below", "0.5", "--boxes", "0"], "--boxes must be at least 1"),
    (["--run-id", "../s1", "--below", "0.5"], "--run-id must be a plain name"),
])
def test_refusals_are_one_line_exit_2(study, argv, message, capsys):
    out, inputs, means = study
    if not (out / "runs" / "run_id=plain").exists():
        write_study(out, "plain", inputs, means, tables={"summary", "runs"})
        write_study(out, "crashed", inputs, means, tables={"summary", "design"})
        write_study(out, "running", inputs, means, status="running")
        variants = {"summary": pa.table({"run_id": ["variants"], "scenario_id": ["base"],
                                         "metric": ["success"], "mean": [0.1]}),
                    "design": pa.table({"run_id": ["variants"], "scenario_id": ["variant-1"],
                                        "row": [-1], "input": [BUDGET], "value": [900.0]}),
                    "runs": pa.table({"run_id": ["variants"], "status": ["complete"]})}
        RunDirectory(out, "variants").publish(variants)
        broken = {"dup": ([0, 0, 1], [BUDGET, BUDGET, BUDGET], [0, 1]),
                  "gap": ([0, 1, 1], [BUDGET, BUDGET, TIE], [0, 1]),
                  "partial": ([0, 1], [BUDGET, BUDGET], [0])}
        for run_id, (rows, paths, with_mean) in broken.items():
            RunDirectory(out, run_id).publish({
                "design": pa.table({"run_id": [run_id] * len(rows),
                                    "scenario_id": [f"row-{r:06d}" for r in rows], "row": rows,
                                    "input": paths, "value": [900.0] * len(rows)}),
                "summary": pa.table({"run_id": [run_id] * len(with_mean),
                                     "scenario_id": [f"row-{r:06d}" for r in with_mean],
                                     "metric": ["success"] * len(with_mean),
                                     "mean": [0.1] * len(with_mean)}),
                "runs": pa.table({"run_id": [run_id], "status": ["complete"]})})
    before = sorted((p, p.stat().st_mtime_ns) for p in out.glob("discovery/*/*"))
    assert main(["discover", "--out", str(out), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pivotal: error: ") and message in lines[0], lines
    assert sorted((p, p.stat().st_mtime_ns) for p in out.glob("discovery/*/*")) == before


def test_without_ema_workbench_one_line_says_how_to_install(study, monkeypatch, capsys):
    out, _, _ = study
    for name in [m for m in sys.modules if m == "ema_workbench" or m.startswith("ema_workbench.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ema_workbench", None)  # import fails as if not installed
    assert main(["discover", "--out", str(out), "--run-id", "s1", "--below", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("pivotal: error: scenario discovery needs EMA Workbench, the extra "
                   "pivotal[discover]: pip install -e '.[discover]' in the pivotal checkout "
                   "(make install includes it)")


def test_command_line_is_quiet(study):
    """In a fresh process (EMA Workbench imported for the first time) stderr stays empty."""
    out, _, _ = study
    result = subprocess.run([sys.executable, "-m", "engine.cli", "discover", "--out", str(out),
                             "--run-id", "s1", "--below", "0.5"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("run s1: success below 0.5")


def test_publish_replaces_atomically(study, tmp_path):
    out, _, _ = study
    found = discover(out, "s1", below=0.5)
    path = publish_discovery(tmp_path, found)
    assert path == tmp_path / "discovery" / "run_id=s1" / "part-0.parquet"
    first = path.stat().st_ino
    publish_discovery(tmp_path, found)
    assert path.stat().st_ino != first  # a new file renamed into place, not rewritten in place
    assert pq.read_table(path).equals(found.table())
