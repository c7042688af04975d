"""The readable summary printed after a run, and again by `pivotal show`."""
from __future__ import annotations

import polars as pl

from engine.outputs.publish import Forecast
from engine.outputs.tables import wilson


def _pct(p: float) -> str:
    """A share as a percentage, with enough digits to tell a rare event from none."""
    p = 0.0 if abs(p) < 1e-12 else p  # a Wilson bound at 0 successes is 0 up to rounding
    return f"{p:.1%}" if p == 0 or p >= 0.01 else f"{p * 100:.2g}%"


def _fmt(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.1f}" if abs(x) >= 10 else f"{x:,.2f}"


def summary_text(result: Forecast, top: int = 5, max_scenarios: int | None = None) -> str:
    """The summary printed at the end of a run: `tables_text` with this call's timing (of the
    first `max_scenarios` scenarios: a study prints its base only)."""
    run = result.tables["runs"].row(0, named=True)
    rate = result.computed / max(result.simulating, 1e-9)
    resumed = run["episodes"] * run["scenarios"] - result.computed
    start = "to load or compile the kernels" if run["executor"] == "local" else "to start Ray"
    timing = (f"{result.seconds:.1f} s ({rate:,.0f} episodes/s over {result.simulating:.1f} s of "
              f"simulation; {result.starting:.1f} s {start}"
              + (f"; {resumed:,} episodes from checkpoints)" if resumed else ")"))
    return tables_text(result.tables, timing, top, max_scenarios)


def tables_text(tables: dict[str, pl.DataFrame], timing: str | None = None, top: int = 5,
                max_scenarios: int | None = None) -> str:
    """Per scenario: success with a 95% interval, size/capacity quantiles, spent,
    median time to success, and the candidates most and least likely to join.
    `timing` defaults to the run's recorded start and finish."""
    run = tables["runs"].row(0, named=True)
    if timing is None:
        seconds = (run["finished_at"] - run["started_at"]).total_seconds()
        timing = f"finished {run['finished_at']:%Y-%m-%d %H:%M:%S} UTC after {seconds:.1f} s"
    lines = [f"run {run['run_id']}  seed {run['seed']}  {run['episodes']:,} episodes x "
             f"{run['scenarios']} scenario(s)  {run['executor']} x{run['workers']}  {timing}"]
    scenarios = list(tables["scenarios"].iter_rows(named=True))
    for s in scenarios[:max_scenarios]:
        summary = tables["summary"].filter(pl.col("scenario_id") == s["scenario_id"])
        row = {r["metric"]: r for r in summary.iter_rows(named=True)}
        n = row["size"]["n"]
        wins = round(row["success"]["mean"] * n)
        low, high = wilson(wins, n)
        q = lambda m: "  ".join(f"p{p} {_fmt(row[m][f'p{p}'])}" for p in ("05", "50", "95"))  # noqa: E731
        tts = row["time_to_success"]
        lines += [
            "",
            f"{s['scenario_name']}  [{s['scenario_id']}]",
            f"  pivot {s['pivot']}; needs {_fmt(s['requirement'])} {s['capacity_unit']} and "
            f"{s['min_partners']} partners by day {_fmt(s['deadline_days'])}; budget {_fmt(s['budget'])} "
            f"{s['payment_unit']}",
            f"  success          {_pct(row['success']['mean'])}  (95% CI {_pct(low)} - {_pct(high)})",
            f"  size             {q('size')}  (mean {row['size']['mean']:.2f})",
            f"  capacity         {q('capacity')}  (mean {_fmt(row['capacity']['mean'])} {s['capacity_unit']})",
            f"  spent            {q('spent')}  (mean {_fmt(row['spent']['mean'])} {s['payment_unit']})",
            "  time to success  " + (f"median {_fmt(tts['p50'])} days (in the {_pct(tts['n'] / n)} of "
                                     "episodes that reached it)" if tts["n"] else "never reached"),
        ]
        cands = (tables["candidates"].filter(pl.col("scenario_id") == s["scenario_id"])
                 .sort(["p_member", "candidate_id"], descending=[True, False]))
        pick = lambda df: ", ".join(f"{r['candidate_id']} {r['p_member']:.0%}"  # noqa: E731
                                    for r in df.iter_rows(named=True))
        k = min(top, max(1, cands.height // 2))
        lines.append(f"  most likely      {pick(cands.head(k))}")
        lines.append(f"  least likely     {pick(cands.tail(k).reverse())}")
    if max_scenarios is not None and len(scenarios) > max_scenarios:
        lines += ["", f"... and {len(scenarios) - max_scenarios} more scenarios (pivotal report shows them)"]
    return "\n".join(lines)
