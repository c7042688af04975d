"""EMA Workbench interoperability (needs the extra pivotal[ema]; docs/STUDIES.md).

    import pivotal.ema
    from ema_workbench import perform_experiments
    m = pivotal.ema.model("configs/scenarios/tutorial.toml",
                          uncertainties=[{"path": "budget", "low": 100, "high": 600}],
                          outcomes=["success", "candidates.B.member"], episodes=2_000)
    experiments, outcomes = perform_experiments(m, 50)
    experiments, outcomes = pivotal.ema.results("forecasts", run_id="my-study")   # a study run
"""
from engine.studies.ema import ScenarioFunction, ema_name, model, path_of, problem_spec, results

__all__ = ["ScenarioFunction", "ema_name", "model", "path_of", "problem_spec", "results"]
