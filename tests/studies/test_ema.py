"""EMA Workbench interoperability (pivotal.ema): perform_experiments over a pivotal model with
the sequential and multiprocessing evaluators; prim, feature_scoring and dimensional_stacking
over an exported study run; the SALib ProblemSpec of a study."""
import numpy as np
import polars as pl
import pytest

import pivotal
import pivotal.ema
from engine.cli.main import main
from engine.model.scenario import ScenarioError
from study_fixtures import TUTORIAL, write_study

ema = pytest.importorskip("ema_workbench")
UNCERTAINTIES = [{"path": "budget", "low": 20, "high": 600},
                 {"path": "mechanisms.venues", "distribution": "choice", "values": [True, False]},
                 {"path": "parameters.bandwidth", "low": 1, "high": 3}]
OUTCOMES = ["success", "candidates.B.member", "capacity.p50"]


def _model(**kw):
    return pivotal.ema.model(TUTORIAL, UNCERTAINTIES, OUTCOMES, episodes=300, seed=5, **kw)


def test_model_names_and_one_experiment_is_a_plain_run():
    m = _model()
    names = [u.name for u in m.uncertainties]
    assert names == ["budget", "mechanisms__venues", "parameters__bandwidth"]
    assert type(m.uncertainties["parameters__bandwidth"]).__name__ == "IntegerParameter"
    assert type(m.uncertainties["mechanisms__venues"]).__name__ == "BooleanParameter"
    assert [o.name for o in m.outcomes] == ["success", "candidates__B__member", "capacity__p50"]
    values = {"budget": 250.0, "mechanisms__venues": False, "parameters__bandwidth": 2}
    got = m.function(**values)
    s = m.function.scenario(**values)
    assert s.budget == 250.0 and s.mechanisms["venues"] is False and s.parameters["bandwidth"] == 2
    t = pivotal.forecast(s, episodes=300, seed=5, progress=False).tables
    assert got["success"] == t["summary"].filter(pl.col("metric") == "success")["mean"].item()
    assert got["candidates__B__member"] == t["candidates"].filter(pl.col("candidate_id") == "B")["p_member"].item()
    assert pivotal.ema.path_of("candidates__ALL__tie__mean") == "candidates.*.tie.mean"


def test_perform_experiments_sequential_and_multiprocessing():
    from ema_workbench import MultiprocessingEvaluator, SequentialEvaluator

    m = _model()
    with SequentialEvaluator(m) as evaluator:
        experiments, outcomes = evaluator.perform_experiments(scenarios=4)
    assert len(experiments) == 4 and set(outcomes) == {"success", "candidates__B__member", "capacity__p50"}
    with MultiprocessingEvaluator(m, n_processes=2) as evaluator:
        exp2, out2 = evaluator.perform_experiments(scenarios=4)
    assert len(exp2) == 4
    for k in range(4):  # each experiment's outcomes are the model's at its values, in any process
        values = {n: exp2[n].iloc[k] for n in ("budget", "mechanisms__venues", "parameters__bandwidth")}
        again = m.function(**values)
        assert {o: out2[o][k] for o in again} == again
    assert np.ptp(np.concatenate([outcomes["success"], out2["success"]])) > 0


def test_model_refusals():
    with pytest.raises(ScenarioError, match="uncertainties\\[0\\].path"):
        pivotal.ema.model(TUTORIAL, [{"path": "candidates.ZZ.tie.mean", "low": 0.1, "high": 0.2}])
    with pytest.raises(ScenarioError, match="no candidate 'ZZ'"):
        pivotal.ema.model(TUTORIAL, UNCERTAINTIES, ["candidates.ZZ.member"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ema")
    body = ('episodes = 400\nseed = 3\noutputs = ["success", "candidates.B.member"]\n[design]\n'
            'sampler = "lhs"\nsamples = 40\n[[inputs]]\npath = "budget"\nlow = 20\nhigh = 600\n'
            '[[inputs]]\npath = "institutions.REG.broker"\nlow = 0\nhigh = 0.01\n')
    path = write_study(tmp, body)
    out = tmp / "out"
    assert main(["study", str(path), "--out", str(out), "--run-id", "e", "--quiet",
                 "--export", "ema", str(tmp / "export")]) == 0
    return tmp, path, out


def test_results_run_prim_feature_scoring_and_dimensional_stacking(exported):
    from ema_workbench.analysis import dimensional_stacking, feature_scoring, prim

    tmp, path, out = exported
    experiments, outcomes = pivotal.ema.results(out, run_id="e")
    assert list(experiments.columns) == ["budget", "institutions__REG__broker"] and len(experiments) == 40
    assert set(outcomes) == {"success", "candidates__B__member"}
    y = outcomes["success"] < 0.3
    assert 0 < y.sum() < 40
    import inspect
    options = {"threshold": 0.8} if "threshold" in inspect.signature(prim.Prim).parameters else {}  # EMA 3 dropped it
    box = prim.Prim(experiments, y, **options).find_box()
    limits = box.box_lims[box._cur_box]
    # low success lives at low budgets: the box restricts the budget's top, well inside the range
    assert float(limits["budget"].iloc[1]) < 500
    assert float(limits["budget"].iloc[0]) == pytest.approx(experiments["budget"].min())
    scores = feature_scoring.get_feature_scores_all(experiments, outcomes)
    assert scores.loc["budget", "success"] > scores.loc["institutions__REG__broker", "success"]
    import matplotlib
    matplotlib.use("Agg")
    dimensional_stacking.create_pivot_plot(experiments, y.astype(int), 2, nbins=3)
    # the CLI's export: EMA's own archive, read back by EMA
    from ema_workbench import load_results
    exp2, out2 = load_results(str(tmp / "export" / "e.tar.gz"))
    np.testing.assert_allclose(exp2["budget"].to_numpy(), experiments["budget"].to_numpy())
    np.testing.assert_array_equal(out2["success"], outcomes["success"])


def test_problem_spec_of_a_study(exported):
    tmp, path, out = exported
    st = pivotal.load_study(path)
    result = pivotal.study(st, progress=False)
    spec = pivotal.ema.problem_spec(st, result)
    assert spec["names"] == ["budget", "institutions.REG.broker"] and spec["outputs"] == ["success", "candidates.B.member"]
    np.testing.assert_array_equal(spec.samples, st.unit)
    experiments, outcomes = pivotal.ema.results(out, run_id="e")
    np.testing.assert_array_equal(spec.results[:, 0], outcomes["success"])
    # the unit coordinates map to the design's values
    np.testing.assert_allclose(20 + 580 * spec.samples[:, 0], experiments["budget"].to_numpy())
