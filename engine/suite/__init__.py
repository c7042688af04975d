"""Overnight suites (docs/NIGHTLY.md): a night's scenarios, studies and backtests as one unit.

`suitefile` (the suite file and its checks), `digest` (what an item reads, for reuse),
`drift` (did a scenario move beyond Monte Carlo error), `store` (staging, records and the
`suite_runs` / `suite_drift` tables), `index` (the night's HTML page), `runner` (`suite`).
"""
