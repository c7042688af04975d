"""pivotal: forecast the coalitions a pivotal state builds (REM-1; docs/MODEL.md).

In a notebook:

    import pivotal
    result = pivotal.forecast("configs/scenarios/tutorial.toml", episodes=100_000)
    result.tables["summary"]          # Polars DataFrames, one per output table
"""
from engine import __version__
from engine.run import Forecast, forecast
from engine.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Forecast", "Scenario", "ScenarioError", "__version__", "forecast", "load_scenario"]
