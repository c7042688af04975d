"""The one entry point: a run as three steps, plan -> execute -> publish.

    plan = plan_run(scenarios, episodes=..., seed=...)        # 1. engine/execution/plan.py
    execution, publisher = execute_plan(plan, out=..., ...)   # 2. engine/execution/execute.py
    result = publisher.publish(execution)                     # 3. engine/outputs/publish.py

`forecast` does the three; a study or a backtest adds its own tables to step 3
(engine/studies/run.py, engine/data/backtest.py).
"""
from __future__ import annotations

import time

from engine.execution.execute import Execution, RunFailedError, execute, open_executor
from engine.execution.plan import (DEFAULT_EPISODES, DEFAULT_SEED, MAX_EPISODES, RunPlan,
                                   RunSettingsError, new_run_id, plan_run)
from engine.outputs.publish import Forecast, Publisher

__all__ = ["DEFAULT_EPISODES", "DEFAULT_SEED", "MAX_EPISODES", "Forecast", "RunFailedError", "RunPlan",
           "RunSettingsError", "execute_plan", "forecast", "new_run_id", "plan_run", "run_plan"]


def forecast(scenarios, *, episodes: int = DEFAULT_EPISODES, seed: int = DEFAULT_SEED,
             out=None, run_id: str | None = None, workers: int | None = None,
             chunk_size: int | None = None, executor: str | None = None, ray_address: str | None = None,
             keep_episodes: int = 0, resume: bool = False, progress: bool | None = None,
             target_se: float | None = None, max_episodes: int | None = None) -> Forecast:
    """Run one or more scenarios (paths or `Scenario`s) and return their forecast tables.

    Scenarios of one run share random numbers: episode e of each uses the same
    draws. With `out`, tables are published under `out` and every finished
    chunk is checkpointed there (so `resume=True` can finish a crashed run);
    without it nothing is written. `executor` is "local" (kernel threads in this
    process) or "ray"; by default Ray when `ray_address` or RAY_ADDRESS is set.

    With `target_se`, whole chunks are added (the episode count doubles, in whole
    chunks, from `episodes`) until the standard error of the success probability is
    at most `target_se` in every scenario or `max_episodes` (default 100 x
    `episodes`) is reached; the tables are those of a run of the final episode
    count.
    """
    plan = plan_run(scenarios, episodes=episodes, seed=seed, run_id=run_id, workers=workers,
                    chunk_size=chunk_size, executor=executor, ray_address=ray_address,
                    keep_episodes=keep_episodes, target_se=target_se, max_episodes=max_episodes)
    return run_plan(plan, out=out, resume=resume, progress=progress)


def execute_plan(plan: RunPlan, *, out=None, resume: bool = False, progress: bool | None = None,
                 kind: str = "run", name: str | None = None, figures=None,
                 row_tables=None) -> tuple[Execution, Publisher]:
    """Connect the plan's executor, claim its run id under `out` (None: write nothing) and
    execute it; returns the execution and the publisher holding its staged tables (and the
    `figures` of each scenario: engine/outputs/figures.py, default the four means). `kind` and
    `name` are recorded in the `runs` row (engine/outputs/publish.py: Publisher); `row_tables`
    gives the tables of each block of a plan's design rows, streamed as they arrive."""
    started = time.perf_counter()
    runner = open_executor(plan)  # connects first: fails before the id is claimed
    publisher = Publisher(plan, out, resume, kind=kind, name=name, row_tables=row_tables,
                          **({} if figures is None else {"figures": figures}))
    return execute(plan, runner, publisher, progress=progress, started=started), publisher


def run_plan(plan: RunPlan, *, out=None, resume: bool = False, progress: bool | None = None,
             read_back: bool = True) -> Forecast:
    """Execute a plan and publish its tables. With `read_back=False` only `summary`,
    `candidates` and the small tables are read back into the result (the CLI's choice: a
    run of many scenarios stays small)."""
    execution, publisher = execute_plan(plan, out=out, resume=resume, progress=progress)
    return publisher.publish(execution, read_back=read_back)
