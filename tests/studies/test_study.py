"""Studies (STUDY_FORMAT.md): scenarios, tables, common random numbers, sensitivity,
paired comparisons, --target-se, refusals."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tomli_w
from polars.testing import assert_frame_equal
from scipy import stats

import pivotal
from engine.cli.main import main
from engine.forecast import forecast, plan_run
from engine.studies.run import run_ablation
from conftest import wait_for_checkpoints
from study_fixtures import SMALL, TUTORIAL, write_study

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ("summary", "size_distribution", "capacity_distribution", "time_to_success", "candidates")
STUDY_TABLES = ("design", "sensitivity", "comparisons")


def rows_of(tables, scenario_id):
    return {name: tables[name].filter(pl.col("scenario_id") == scenario_id).drop("run_id", "scenario_id")
            for name in NUMBERS}


def test_scenario_ids_design_table_and_rerun_of_an_exported_row(tmp_path, capsys):
    study = write_study(tmp_path, SMALL)
    result = pivotal.study(study, progress=False)
    t = result.tables
    ids = t["scenarios"]["scenario_id"].to_list()
    assert ids == ["base", "variant-1", "variant-2"] + [f"row-{r:06d}" for r in range(6)]
    design = t["design"]
    assert design.height == 9 * 4 and design["row"].to_list()[:12] == [-1] * 12
    # base and variants in the inputs' terms: budget as set, the shift 0, the switch 1/0
    base = dict(zip(design.filter(pl.col("scenario_id") == "base")["input"],
                    design.filter(pl.col("scenario_id") == "base")["value"]))
    assert base == {"budget": 300.0, "candidates.*.preference.mean": 0.0, "ties.B.C.mean": 0.7,
                    "mechanisms.venues": 1.0}
    v2 = design.filter(pl.col("scenario_id") == "variant-2")
    assert v2.filter(pl.col("input") == "budget")["value"].item() == 450.0
    # the design rows are the LHS sample mapped through each distribution
    rows = design.filter(pl.col("row") >= 0)
    budget = rows.filter(pl.col("input") == "budget")["value"].to_numpy()
    assert sorted(np.floor((budget - 50) / 550 * 6).astype(int)) == list(range(6))  # one per stratum
    assert set(rows.filter(pl.col("input") == "mechanisms.venues")["value"]) <= {0.0, 1.0}
    # the scenarios table carries the applied values
    sc = t["scenarios"].filter(pl.col("scenario_id") == "row-000003")
    assert sc["budget"].item() == pytest.approx(budget[3])

    # --scenarios DIR writes every scenario and runs nothing
    out = tmp_path / "out"
    assert main(["study", str(study), "--scenarios", str(tmp_path / "sc"), "--out", str(out)]) == 0
    assert sorted(p.stem for p in (tmp_path / "sc").glob("*.toml")) == sorted(ids)
    assert not out.exists()
    # a plain run of an exported row (same seed, episodes) is the study's row, bit for bit
    for sid in ("row-000003", "variant-2", "base"):
        plain = forecast(tmp_path / "sc" / f"{sid}.toml", episodes=3000, seed=5, progress=False).tables
        for name, frame in rows_of(t, "row-000003" if sid == "row-000003" else sid).items():
            assert_frame_equal(frame, plain[name].drop("run_id", "scenario_id"), check_exact=True)
    # a different row is not
    other = forecast(tmp_path / "sc" / "row-000004.toml", episodes=3000, seed=5, progress=False).tables
    assert not rows_of(t, "row-000003")["summary"].equals(other["summary"].drop("run_id", "scenario_id"))


def test_study_tables_identical_for_chunk_sizes_workers_and_resume(tmp_path, monkeypatch):
    study = write_study(tmp_path, SMALL)
    ref = pivotal.study(study, workers=1, progress=False).tables
    for workers, chunk in [(2, 333), (1, 1024)]:
        other = pivotal.study(study, workers=workers, chunk_size=chunk, progress=False).tables
        for name in NUMBERS + STUDY_TABLES + ("episodes",):
            assert_frame_equal(ref[name].drop("run_id"), other[name].drop("run_id"), check_exact=True)
    # a run that fails part-way keeps its chunks; --resume finishes it with the same tables
    import engine.execution.executors as ex
    real, calls = ex.run_chunk, []

    def flaky(job, chunk, *a, **k):
        calls.append(chunk.position)
        if len(calls) == 4:
            raise RuntimeError("node lost")
        return real(job, chunk, *a, **k)

    monkeypatch.setattr(ex, "run_chunk", flaky)
    with pytest.raises(pivotal.forecast.__globals__["RunFailedError"]):
        pivotal.study(study, chunk_size=500, out=tmp_path / "o", run_id="r", progress=False)
    monkeypatch.setattr(ex, "run_chunk", real)
    done = pivotal.study(study, chunk_size=500, out=tmp_path / "o", run_id="r", resume=True,
                         progress=False)
    assert done.computed < 9 * 3000
    for name in NUMBERS + STUDY_TABLES:
        published = pl.read_parquet(tmp_path / "o" / name / "run_id=r" / "part-0.parquet")
        assert_frame_equal(ref[name].drop("run_id"), published.drop("run_id"), check_exact=True)


def test_paired_comparisons_match_the_episodes_and_are_tighter_than_independent():
    """difference, its se and the independent se, recomputed from every episode's record."""
    n = 20_000
    items, names = pivotal.ablate.__globals__["ablation_scenarios"](TUTORIAL)
    plan = plan_run(items[:1] + items[5:6], episodes=n, seed=9, keep_episodes=n, paired=2)
    result = run_ablation(plan, ["venues off"], progress=False)
    assert names[4] == "venues off"
    eps = result.tables["episodes"]
    comp = {r["output"]: r for r in result.tables["comparisons"].iter_rows(named=True)}
    for output in ("success", "size", "capacity", "spent"):
        b = eps.filter(pl.col("scenario_id") == "base")[output].cast(pl.Float64).to_numpy()
        v = eps.filter(pl.col("scenario_id") == "variant-5")[output].cast(pl.Float64).to_numpy()
        d = v - b
        r = comp[output]
        tol = 1e-6 * max(1.0, abs(b).max())
        assert r["difference"] == pytest.approx(d.mean(), abs=tol)
        assert r["difference_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(n), rel=1e-6, abs=1e-9)
        assert r["independent_se"] == pytest.approx(
            math.sqrt(b.var(ddof=1) / n + v.var(ddof=1) / n), rel=1e-6)
        assert r["difference_low"] < r["difference"] < r["difference_high"]
        assert r["variance_reduction"] == pytest.approx(r["independent_se"] ** 2 / r["difference_se"] ** 2)
    # common random numbers make the interval much tighter on this realistic change
    assert comp["success"]["variance_reduction"] > 5
    assert comp["capacity"]["variance_reduction"] > 5
    # and the summaries agree with the comparison
    s = result.tables["summary"].filter(pl.col("metric") == "capacity")
    assert comp["capacity"]["difference"] == pytest.approx(s["mean"][1] - s["mean"][0], rel=1e-12)


def test_ablate_cli_prints_the_table_and_target_se(tmp_path, capsys):
    code = main(["ablate", str(TUTORIAL), "--episodes", "1000", "--chunk-size", "1000", "--target-se",
                 "0.012", "--out", str(tmp_path), "--run-id", "a"])
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("information off", "linkage off", "credibility off", "brokers off", "venues off",
                 "peers off", "withdrawals off", "no ties"):
        assert name in printed
    assert "--target-se reached" in printed
    comp = pl.read_parquet(tmp_path / "comparisons" / "run_id=a" / "part-0.parquet")
    assert comp.height == 8 * 4
    summary = pl.read_parquet(tmp_path / "summary" / "run_id=a" / "part-0.parquet")
    se = summary.filter(pl.col("metric") == "success")["se"]
    assert se.max() <= 0.012 and summary["n"][0] % 1000 == 0
    # no ties hurts success in the tutorial: the interval excludes 0
    nt = comp.filter((pl.col("variant") == "no ties") & (pl.col("output") == "success"))
    assert nt["difference_high"].item() < 0


def test_target_se_gives_the_tables_of_a_plain_run_of_the_final_count():
    kw = dict(seed=4, chunk_size=700, progress=False, keep_episodes=20)
    reached = forecast(TUTORIAL, episodes=1000, target_se=0.006, **kw)
    n = reached.tables["runs"]["episodes"].item()
    assert reached.target.startswith("reached") and n % 700 == 0 and n > 1400
    se = reached.tables["summary"].filter(pl.col("metric") == "success")["se"].item()
    assert se <= 0.006
    half = forecast(TUTORIAL, episodes=n // 2, **kw).tables["summary"]
    assert half.filter(pl.col("metric") == "success")["se"].item() > 0.006  # the round before was short
    plain = forecast(TUTORIAL, episodes=n, **kw).tables
    for name in NUMBERS + ("episodes",):
        assert_frame_equal(reached.tables[name].drop("run_id"), plain[name].drop("run_id"), check_exact=True)
    capped = forecast(TUTORIAL, episodes=1000, target_se=0.001, max_episodes=2500, **kw)
    assert capped.target.startswith("capped") and capped.tables["runs"]["episodes"].item() == 2500


def closed_form_file(tmp_path, closed_form_doc):
    doc = dict(closed_form_doc)
    doc["mechanisms"] = dict(doc["mechanisms"], venues=False)  # the venue bonus then has no effect
    path = tmp_path / "closed.toml"
    path.write_text(tomli_w.dumps(doc))
    return path, doc


def test_sobol_ranks_inputs_as_the_closed_form_and_gives_a_no_effect_input_zero(tmp_path, closed_form_doc):
    """Mean size = sum_i Phi(mean_i / sd_i) (closed form): additive in the candidates' preference
    means, so each input's Sobol index is its term's share of the variance."""
    scenario, doc = closed_form_file(tmp_path, closed_form_doc)
    c0, c1 = doc["candidates"][0], doc["candidates"][1]
    ranges = {"C0": (-3.0, 3.0), "C1": (-1.0, 1.0)}
    body = f'''
episodes = 1500
seed = 2
[design]
samples = 64
[[inputs]]
path = "candidates.C1.preference.mean"
low = {ranges["C1"][0]}
high = {ranges["C1"][1]}
[[inputs]]
path = "institutions.ORG.venue_bonus"
low = 0
high = 500
[[inputs]]
path = "candidates.C0.preference.mean"
low = {ranges["C0"][0]}
high = {ranges["C0"][1]}
'''
    result = pivotal.study(write_study(tmp_path, body, scenario), progress=False)
    sens = result.tables["sensitivity"].filter(pl.col("output") == "size")
    st = dict(zip(sens["input"], sens["ST"]))
    s1 = dict(zip(sens["input"], sens["S1"]))
    # independent computation: variances of the two terms by quadrature
    var = {}
    for cid, c in (("C0", c0), ("C1", c1)):
        x = np.linspace(*ranges[cid], 20001)
        g = stats.norm.cdf(x / c["preference"]["sd"])
        var[cid] = g.var()
    exact = {f"candidates.{k}.preference.mean": v / sum(var.values()) for k, v in var.items()}
    exact["institutions.ORG.venue_bonus"] = 0.0
    order = lambda d: sorted(d, key=d.get)  # noqa: E731
    assert order(st) == order(exact) and order(s1) == order(exact)
    assert st["institutions.ORG.venue_bonus"] == 0.0 and s1["institutions.ORG.venue_bonus"] == 0.0
    for k in exact:
        assert abs(st[k] - exact[k]) < 0.1 and abs(s1[k] - exact[k]) < 0.1
    # success is 0 in every row (the requirement is out of reach): no indices, null not NaN
    assert result.tables["sensitivity"].filter(pl.col("output") == "success")["ST"].null_count() == 3


GOOD = '''
episodes = 100
[design]
samples = 4
[[inputs]]
path = "budget"
low = 0
high = 100
[[variants]]
name = "v"
set = { budget = 10 }
'''

# (change to GOOD, key path named, words of the rule)
REFUSALS = [
    (lambda t: "colour = 1\n" + t, "colour", "unknown key"),
    (lambda t: t.replace("high = 100", "high = 100\nhihg = 3"), "inputs[0].hihg", "unknown key"),
    (lambda t: t.replace('path = "budget"', 'path = "candidates.XX.tie.mean"'), "inputs[0].path", "no candidate"),
    (lambda t: t.replace('path = "budget"', 'path = "parameters.speed"'), "inputs[0].path", "no parameter"),
    (lambda t: t.replace('path = "budget"', 'path = "weather"'), "inputs[0].path", "names nothing"),
    (lambda t: t + '[[inputs]]\npath = "budget"\nlow = 1\nhigh = 2\n', "inputs[1].path", "twice"),
    (lambda t: t.replace("high = 100\n", ""), "inputs[0].high", "required"),
    (lambda t: t.replace("low = 0", "low = 200"), "inputs[0]", "low must be <= high"),
    (lambda t: t.replace("low = 0\nhigh = 100", 'distribution = "normal"\nmean = 5\nsd = -1'),
     "inputs[0].sd", ">= 0"),
    (lambda t: t.replace("low = 0\nhigh = 100", 'distribution = "choice"\nvalues = []'),
     "inputs[0].values", "non-empty"),
    (lambda t: t.replace("low = 0\nhigh = 100", 'distribution = "triangular"\nlow = 0\nmode = 5\nhigh = 4'),
     "inputs[0].mode", "must be in [low, high]"),
    (lambda t: t.replace("samples = 4", "samples = 6"), "design.samples", "power of 2"),
    (lambda t: t.replace("episodes = 100", "episodes = 0"), "episodes", "positive"),
    (lambda t: t + '[[variants]]\nname = "v"\nset = { budget = 20 }\n', "variants[1].name", "share the name"),
    (lambda t: t.replace("low = 0\nhigh = 100", 'distribution = "normal"\nmean = 20\nsd = 40'),
     "inputs[0]", "invalid scenario: budget: must be in [0, 1e12]"),
    (lambda t: t.replace('path = "budget"\nlow = 0\nhigh = 100',
                         'path = "candidates.*.tie.mean"\nlow = 0.5\nhigh = 1.6\napply = "scale"'),
     "inputs[0]", "invalid scenario: candidates[0].tie.mean: must be in [0, 1]"),
    (lambda t: t.replace("budget = 10", "budget = -1"), "variants[0]", "invalid scenario: budget"),
    (lambda t: t.replace('path = "budget"', 'path = "mechanisms.venues"'), "inputs[0].distribution",
     "true/false"),
    (lambda t: t.replace("budget = 10", '"mechanisms.venues" = 1'), 'variants[0].set."mechanisms.venues"',
     "true or false"),
    (lambda t: t.replace("samples = 4", 'sampler = "halton"'), "design.sampler", "one of"),
    (lambda t: t.replace('name = "test study"\n', ""), "name", "required"),
]


@pytest.mark.parametrize("change, key, rule", REFUSALS)
def test_malformed_studies_are_refused_before_anything_runs(tmp_path, capsys, change, key, rule):
    path = write_study(tmp_path, GOOD)
    path.write_text(change(path.read_text()))
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{path}: {key}: " in err[0] and rule in err[0], err[0]
    assert not out.exists()
    assert main(["validate", str(path)]) == 2


def test_good_study_validates_and_refusal_has_no_traceback(tmp_path):
    path = write_study(tmp_path, GOOD)
    ok = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(path)], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "study: 1 inputs, 1 variants, 12 design rows" in ok.stdout
    path.write_text(GOOD.replace("samples = 4", "samples = 5"))
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "study", str(path), "--out",
                          str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "o").exists()


def test_grid_and_second_order_designs(tmp_path):
    grid = write_study(tmp_path, '''
episodes = 500
[design]
sampler = "grid"
levels = 3
[[inputs]]
path = "parameters.bandwidth"
low = 1
high = 4
[[inputs]]
path = "candidates.B.capacity.high"
distribution = "choice"
values = [3000, 6000]
''', name="grid.toml")
    st = pivotal.load_study(grid)
    assert st.rows == 9
    # midpoints u = 1/6, 1/2, 5/6, first input slowest; bandwidth takes whole numbers, each of 1..4
    # equally likely: 1 + floor(4u) (issue 22: these were 1.5, 2.5, 3.5 recorded, {2, 2, 4} run)
    assert [v[0] for v in st.values[::3]] == [1, 3, 4]
    assert [v[1] for v in st.values[:3]] == [3000, 6000, 6000]           # u = 1/6, 1/2, 5/6
    assert [s.parameters["bandwidth"] for s in st.scenarios[1:4]] == [1, 1, 1]  # the value recorded is run
    result = pivotal.study(st, progress=False)
    sens = result.tables["sensitivity"]
    assert set(sens["method"]) == {"delta"} and sens["ST"].null_count() == sens.height
    assert "comparisons" not in result.tables

    sobol2 = write_study(tmp_path, '''
episodes = 300
[design]
samples = 8
second_order = true
[[inputs]]
path = "budget"
low = 0
high = 600
[[inputs]]
path = "parameters.peer_weight"
low = 0
high = 10
[[inputs]]
path = "institutions.REG.venue_day"
low = 10
high = 80
''', name="s2.toml")
    result = pivotal.study(sobol2, progress=False)
    assert result.tables["scenarios"].height == 1 + 8 * (2 * 3 + 2)
    s2 = result.tables["sensitivity_s2"]
    assert s2.height == 4 * 3 and set(s2.columns) >= {"output", "input_a", "input_b", "S2", "S2_conf"}


def test_study_target_se_equals_a_plain_study_of_the_final_count(tmp_path):
    study = write_study(tmp_path, SMALL.replace("samples = 6", "samples = 2"))
    reached = pivotal.study(study, episodes=500, chunk_size=500, target_se=0.02, progress=False)
    n = reached.tables["runs"]["episodes"].item()
    assert reached.target.startswith("reached") and n > 500
    assert reached.tables["summary"].filter(pl.col("metric") == "success")["se"].max() <= 0.02
    plain = pivotal.study(study, episodes=n, chunk_size=500, progress=False)
    for name in NUMBERS + STUDY_TABLES:
        assert_frame_equal(reached.tables[name].drop("run_id"), plain.tables[name].drop("run_id"),
                           check_exact=True)


def test_study_on_ray_equals_local(tmp_path):
    import ray
    study = write_study(tmp_path, SMALL.replace("samples = 6", "samples = 3"))
    local = pivotal.study(study, episodes=1000, progress=False).tables
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = pivotal.study(study, episodes=1000, executor="ray", workers=2, chunk_size=300,
                               progress=False)
    finally:
        if started:
            ray.shutdown()
    assert remote.tables["runs"]["executor"].item() == "ray"
    for name in NUMBERS + STUDY_TABLES:
        assert_frame_equal(local[name].drop("run_id"), remote.tables[name].drop("run_id"), check_exact=True)


def test_a_study_of_variants_only_compares_them_with_the_base(tmp_path):
    study = write_study(tmp_path, '''
episodes = 4000
[[variants]]
name = "all ties stronger"
set = { "candidates.*.tie.mean" = 0.9 }
[[variants]]
name = "same as base"
set = { budget = 300 }
''')
    result = pivotal.study(study, progress=False)
    assert result.tables["scenarios"]["scenario_id"].to_list() == ["base", "variant-1", "variant-2"]
    assert "design" not in result.tables and "sensitivity" not in result.tables
    comp = result.tables["comparisons"]
    same = comp.filter(pl.col("variant") == "same as base")
    assert (same["difference"] == 0).all() and (same["difference_se"] == 0).all()
    assert same["variance_reduction"].null_count() == 4   # null, not NaN or inf
    summary = result.tables["summary"].filter(pl.col("metric") == "size")
    stronger = comp.filter((pl.col("variant") == "all ties stronger") & (pl.col("output") == "size"))
    assert stronger["difference"].item() == pytest.approx(summary["mean"][1] - summary["mean"][0], rel=1e-12)
    assert stronger["variance_reduction"].item() > 1


def test_run_cli_says_when_the_target_se_is_capped(tmp_path, capsys):
    code = main(["run", str(TUTORIAL), "--episodes", "800", "--target-se", "0.001", "--max-episodes",
                 "3000", "--out", str(tmp_path), "--run-id", "r", "--quiet"])
    assert code == 0
    assert "--target-se capped: success se" in capsys.readouterr().out
    runs = pl.read_parquet(tmp_path / "runs" / "run_id=r" / "part-0.parquet")
    assert runs["episodes"].item() == 3000
    assert main(["run", str(TUTORIAL), "--target-se", "-1", "--out", str(tmp_path)]) == 2


def test_set_shift_and_scale_apply_to_the_base_values(tmp_path):
    study = write_study(tmp_path, '''
[design]
sampler = "random"
samples = 5
[[inputs]]
path = "candidates.*.preference.mean"
low = -3
high = 3
apply = "shift"
[[inputs]]
path = "candidates.*.tie.mean"
low = 0.5
high = 1.1
apply = "scale"
[[inputs]]
path = "ties.C.B.mean"
low = 0.1
high = 0.2
[[inputs]]
path = "min_partners"
low = 0
high = 4
''')
    st = pivotal.load_study(study)
    base = st.scenarios[0]
    assert [s.id for s in st.scenarios] == ["base"] + [f"row-{r:06d}" for r in range(5)]
    for r, (shift, factor, tie, partners) in enumerate(st.values):
        s = st.scenarios[1 + r]
        for c, b in zip(s.candidates, base.candidates):
            assert c.preference == (b.preference[0] + shift, b.preference[1])
            assert c.tie == (b.tie[0] * factor, b.tie[1])
            assert c.capacity == b.capacity
        assert [t.mean for t in s.ties if {t.a, t.b} == {"B", "C"}] == [tie]   # a tie named either way
        assert s.min_partners == round(partners) and isinstance(s.min_partners, int)
        assert s.budget == base.budget and s.parameters == base.parameters


def test_study_killed_with_sigkill_resumes_to_the_same_tables(tmp_path):
    import os
    import signal

    study = write_study(tmp_path, SMALL.replace("samples = 6", "samples = 24").replace(
        "episodes = 3000", "episodes = 16000"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "engine.cli", "study", str(study), "--chunk-size", "400", "--out", str(out),
           "--run-id", "k", "--quiet", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_checkpoints(proc, out, "k", 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "runs").exists() and not (out / "design").exists()
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    clean = pivotal.study(study, chunk_size=400, progress=False).tables
    for name in NUMBERS + STUDY_TABLES:
        published = pl.read_parquet(out / name / "run_id=k" / "part-0.parquet")
        assert_frame_equal(clean[name].drop("run_id"), published.drop("run_id"), check_exact=True)
