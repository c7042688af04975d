"""pivotal: forecast the coalitions a pivotal state builds (REM-1; docs/MODEL.md).

In a notebook:

    import pivotal
    result = pivotal.forecast("configs/scenarios/tutorial.toml", episodes=100_000)
    result.tables["summary"]          # Polars DataFrames, one per output table
    study = pivotal.study("configs/studies/syria_drivers.toml", episodes=2_000)
    study.tables["sensitivity"]       # + design, comparisons (docs/STUDIES.md)
    st = pivotal.Study("drivers", "configs/scenarios/tutorial.toml", inputs=[...], outputs=[...])
    pivotal.study(st)                 # the same checks and tables as a study file
    pivotal.input_paths(scenario), pivotal.figure_paths(scenario)   # the path grammars
    # pivotal.ema: EMA Workbench models and results (needs pivotal[ema])
    night = pivotal.suite("configs/suites/nightly.toml", out="forecasts")   # docs/NIGHTLY.md
"""
from engine import __version__
from engine.forecast import Forecast, forecast
from engine.model.scenario import Scenario, ScenarioError, load_scenario
from engine.outputs.figures import figure_paths
from engine.studies.define import Study, input_paths
from engine.studies.study import load_study
from engine.studies.run import ablate, study
from engine.suite.runner import suite

__all__ = ["Forecast", "Scenario", "ScenarioError", "Study", "__version__", "ablate", "figure_paths", "forecast",
           "input_paths", "load_scenario", "load_study", "study", "suite"]
