"""Study outputs beyond the four means (docs/STUDIES.md, "Outputs"): every figure a study
analyses is checked against a recomputation from the per-episode outputs of a run of one
row (its ties drawn as the study's row draws them); comparisons of each figure; the outputs
key's refusals; pivotal.Study = the file."""
import math

import numpy as np
import polars as pl
import pytest

import pivotal
import pivotal.ema
from engine.cli.main import main
from engine.execution.plan import plan_run
from engine.forecast import run_plan
from engine.model.arrays import VALUE_BINS, TieShapes, outcome_ranges
from engine.model.scenario import ScenarioError
from engine.outputs.figures import FigureError, figure_paths, parse_figure
from study_fixtures import TUTORIAL, analysed_figures, write_study

EPISODES, SEED = 3000, 7
OUTPUTS = ["success", "size", "size.p25", "size.p50", "size.sd", "spent.p95", "offers.p75", "capacity.p05", "capacity.p50",
           "capacity.mean", "candidates.B.member", "candidates.E.ever_joined", "candidates.C.payment",
           "time_to_success.p50", "time_to_success.mean", "success_by_day.30", "offers.mean", "withdrawals.max"]
INPUTS = [{"path": "budget", "low": 50, "high": 600}, {"path": "candidates.*.tie.mean", "low": 0.2, "high": 0.8}]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A small lhs study with many outputs: its result, the per-row values its sensitivity
    analysis received, and its checked study."""
    st = pivotal.Study("outputs", TUTORIAL, episodes=EPISODES, seed=SEED,
                       design={"sampler": "lhs", "samples": 3}, inputs=INPUTS,
                       variants=[{"name": "poorer", "set": {"budget": 120}}], outputs=OUTPUTS)
    out = tmp_path_factory.mktemp("out")
    result, seen = analysed_figures(st, out=out, run_id="many")
    return result, seen, st.checked, out


def _row_run(scenario, base, **kw):
    """A plain run of one row's scenario drawing its ties as the study's row does: shapes its base
    lacks from the shape grid (docs/MODEL.md, section 8), so the numbers are the row's exactly."""
    plan = plan_run([scenario], episodes=EPISODES, seed=SEED, grid_rows=(0, TieShapes.of(base)), **kw)
    return run_plan(plan, progress=False).tables


def _reference(scenario, base, path, episodes):
    """A figure recomputed from the per-episode outputs of a row's run (every episode kept)."""
    t = _row_run(scenario, base, keep_episodes=EPISODES)
    ep = t["episodes"]
    assert ep.height == EPISODES
    kind, a, b = parse_figure(path)
    if kind == "candidate":
        if b == "p_member":
            return np.mean([a in m for m in ep["members"].to_list()]), 0.0
        return None, None  # not in the per-episode outputs: checked against the candidates table
    if kind == "by_day":
        t_s = ep["time_to_success"].cast(pl.Float64).fill_null(np.nan).to_numpy()  # null: never reached
        return np.sum(np.isfinite(t_s) & (np.ceil(t_s) <= a)) / EPISODES, 0.0
    x = ep[a].cast(pl.Float64).fill_null(np.nan).to_numpy()
    x = x[np.isfinite(x)]
    top = dict(zip(("capacity", "spent", "time_to_success"), outcome_ranges(scenario).top))
    width = top.get(a, 0.0) / VALUE_BINS  # continuous quantiles: interpolated in a 1/1024 histogram
    if b in ("mean", "sd", "se"):
        value = {"mean": x.mean(), "sd": x.std(ddof=1), "se": x.std(ddof=1) / math.sqrt(len(x))}[b]
        return value, 1e-6 * max(1.0, abs(value))
    if b in ("min", "max"):
        return (x.min() if b == "min" else x.max()), 1e-9 * max(1.0, abs(x.max()))
    q = int(b[1:]) / 100
    if a in top:
        return np.quantile(x, q), width
    return np.quantile(x, q, method="inverted_cdf"), 0.0


def test_every_output_of_a_row_matches_its_plain_run(analysed):
    result, seen, st, out = analysed
    assert list(seen) == OUTPUTS
    r = 1
    scenario = st.scenarios[1 + len(st.variants) + r]
    assert scenario.id == "row-000001"
    cand = _row_run(scenario, st.scenarios[0])["candidates"]
    for path in OUTPUTS:
        got = seen[path][r]
        want, tol = _reference(scenario, st.scenarios[0], path, EPISODES)
        if want is None:
            column = {"ever_joined": "p_ever_joined", "payment": "mean_payment"}[path.split(".")[2]]
            want, tol = cand.filter(pl.col("candidate_id") == path.split(".")[1])[column].item(), 0.0
        assert got == pytest.approx(want, abs=tol, rel=0), path
    # the values vary over the rows where the inputs matter (not a constant by mistake)
    assert np.ptp(seen["success"]) > 0.05 and np.ptp(seen["candidates.B.member"]) > 0.01


def test_exported_outcomes_equal_the_values_analysed(analysed):
    result, seen, st, out = analysed
    experiments, outcomes = pivotal.ema.results(out, "many")
    assert list(experiments.columns) == ["budget", "candidates__ALL__tie__mean"]
    assert len(experiments) == 3
    for path in OUTPUTS:
        np.testing.assert_array_equal(outcomes[pivotal.ema.ema_name(path)], seen[path])
    budgets = result.tables["design"].filter((pl.col("row") >= 0) & (pl.col("input") == "budget"))["value"]
    np.testing.assert_array_equal(experiments["budget"].to_numpy(), budgets.to_numpy())


def test_sensitivity_and_comparisons_for_each_output(analysed):
    result, seen, st, out = analysed
    sens, comp = result.tables["sensitivity"], result.tables["comparisons"]
    assert sens["output"].unique(maintain_order=True).to_list() == OUTPUTS
    assert comp["output"].to_list() == OUTPUTS
    base = pivotal.forecast(st.scenarios[0], episodes=EPISODES, seed=SEED, progress=False).tables
    poor = pivotal.forecast(st.scenarios[1], episodes=EPISODES, seed=SEED, progress=False).tables
    by = {r["output"]: r for r in comp.iter_rows(named=True)}
    cap = lambda t: t["summary"].filter(pl.col("metric") == "capacity")["p50"].item()  # noqa: E731
    assert by["capacity.p50"]["base_mean"] == cap(base) and by["capacity.p50"]["variant_mean"] == cap(poor)
    assert by["capacity.p50"]["difference_se"] is None
    # membership: a paired comparison from exact cross sums, checked against the per-episode members
    kept = [pivotal.forecast(s, episodes=EPISODES, seed=SEED, keep_episodes=EPISODES, progress=False)
            .tables["episodes"]["members"].to_list() for s in st.scenarios[:2]]
    b = np.array(["B" in m for m in kept[0]], float)
    v = np.array(["B" in m for m in kept[1]], float)
    row = by["candidates.B.member"]
    assert row["difference"] == pytest.approx(v.mean() - b.mean(), abs=1e-12)
    assert row["difference_se"] == pytest.approx(np.std(v - b, ddof=1) / math.sqrt(EPISODES), rel=1e-9)
    assert row["difference"] < 0  # a smaller budget buys fewer members
    assert row["independent_se"] == pytest.approx(
        math.sqrt(b.var(ddof=1) / EPISODES + v.var(ddof=1) / EPISODES), rel=1e-9)
    # the four means keep their exact paired rows
    assert by["success"]["difference_se"] > 0 and by["size"]["variance_reduction"] > 1


def test_outputs_key_refusals(tmp_path, capsys):
    base = '[design]\nsampler = "lhs"\nsamples = 2\n[[inputs]]\npath = "budget"\nlow = 50\nhigh = 600\n'
    for outputs, rule in ((["capacity.p51"], "outputs[0]"), (["candidates.ZZ.member"], "no candidate 'ZZ'"),
                          (["success", "success"], "given twice"), ([], "non-empty"),
                          (["success_by_day.91"], "after the deadline"), (["size.median"], "no statistic")):
        path = write_study(tmp_path, f"outputs = {outputs!r}\n".replace("'", '"') + base)
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert "outputs" in err and rule in err and err.count("\n") == 1, err


def test_figure_grammar():
    s = pivotal.load_scenario(TUTORIAL)
    paths = figure_paths(s)
    assert "candidates.B.member" in paths and "capacity.p95" in paths and "success_by_day.90" in paths
    for p in paths:
        parse_figure(p)
    with pytest.raises(FigureError):
        parse_figure("candidates.B")


def test_python_study_is_the_study_file(tmp_path):
    body = ('episodes = 500\nseed = 2\noutputs = ["success", "candidates.B.member"]\n[design]\nsampler = "lhs"\n'
            'samples = 3\n[[inputs]]\npath = "budget"\nlow = 50\nhigh = 600\n')
    from_file = pivotal.study(write_study(tmp_path, body), progress=False)
    st = pivotal.Study("test study", TUTORIAL, episodes=500, seed=2, outputs=["success", "candidates.B.member"],
                       design={"sampler": "lhs", "samples": 3}, inputs=[{"path": "budget", "low": 50, "high": 600}])
    from_python = pivotal.study(st, progress=False)
    for name in ("sensitivity", "design", "summary"):
        a, b = (r.tables[name].drop("run_id") for r in (from_file, from_python))
        assert a.equals(b), name
    st.to_toml(tmp_path / "again.toml")
    assert pivotal.Study.from_toml(tmp_path / "again.toml").document["inputs"] == st.document["inputs"]
    with pytest.raises(ScenarioError) as e:
        pivotal.Study("bad", TUTORIAL, inputs=[{"path": "candidates.ZZ.tie.mean", "low": 0.1, "high": 0.2}],
                      design={"sampler": "lhs", "samples": 2})
    assert e.value.key == "inputs[0].path" and "ZZ" in e.value.rule and "<Study 'bad'>" in str(e.value)


def test_input_paths_are_the_grammar():
    s = pivotal.load_scenario(TUTORIAL)
    paths = pivotal.input_paths(s)
    assert {"budget", "parameters.linkage", "mechanisms.venues", "candidates.*.tie.mean",
            "candidates.B.capacity.high", "ties.B.C.mean", "institutions.REG.broker"} <= set(paths)
    assert "candidates.ZZ.tie.mean" not in paths
    # every listed path is accepted by a study
    st = pivotal.Study("all", TUTORIAL, variants=[{"name": "v", "set": {"budget": 400}}])
    from engine.studies.study import resolve
    assert all(not isinstance(resolve(p, st.checked.base_doc, s), str) for p in paths)
