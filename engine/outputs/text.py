"""The readable summary printed after a run, and again by `pivotal show`."""
from __future__ import annotations

import polars as pl

from engine.outputs.tables import wilson


def _pct(p: float) -> str:
    """A share as a percentage, with enough digits to tell a rare event from none."""
    p = 0.0 if abs(p) < 1e-12 else p  # a Wilson bound at 0 successes is 0 up to rounding
    return f"{p:.1%}" if p == 0 or p >= 0.01 else f"{p * 100:.2g}%"


def _fmt(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.1f}" if abs(x) >= 10 else f"{x:,.2f}"


def summary_text(result, top: int = 5, max_scenarios: int | None = None) -> str:
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
        lines += ["", f"{s['scenario_name']}  [{s['scenario_id']}]", *scenario_lines(tables, s, top)]
    if max_scenarios is not None and len(scenarios) > max_scenarios:
        lines += ["", f"... and {len(scenarios) - max_scenarios} more scenarios (pivotal report shows them)"]
    return "\n".join(lines)


def scenario_lines(tables: dict[str, pl.DataFrame], s: dict, top: int = 5, names: bool = False) -> list[str]:
    """The headline figures of scenario `s` (its `scenarios` row), one line each: its terms,
    success with a 95% interval, size/capacity/spent quantiles, time to success, and the
    candidates most and least likely to be members (by name and code with `names`)."""
    summary = tables["summary"].filter(pl.col("scenario_id") == s["scenario_id"])
    row = {r["metric"]: r for r in summary.iter_rows(named=True)}
    n = row["size"]["n"]
    wins = round(row["success"]["mean"] * n)
    low, high = wilson(wins, n)
    q = lambda m: "  ".join(f"p{p} {_fmt(row[m][f'p{p}'])}" for p in ("05", "50", "95"))  # noqa: E731
    tts = row["time_to_success"]
    lines = [
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
    label = (lambda r: f"{r['candidate_name']} ({r['candidate_id']})") if names else (  # noqa: E731
        lambda r: r["candidate_id"])
    pick = lambda df: ", ".join(f"{label(r)} {r['p_member']:.0%}" for r in df.iter_rows(named=True))  # noqa: E731
    k = min(top, max(1, cands.height // 2))
    lines.append(f"  most likely      {pick(cands.head(k))}")
    lines.append(f"  least likely     {pick(cands.tail(k).reverse())}")
    return lines


BRIEF_SCENARIOS = 10  # scenarios a short summary lists (a study's design rows are counted only)


def _brief_rows(tables: dict[str, pl.DataFrame]) -> tuple[dict, list[dict], int]:
    run = tables["runs"].row(0, named=True) if "runs" in tables else {}
    scenarios = tables["scenarios"] if "scenarios" in tables else pl.DataFrame({"scenario_id": []})
    summary = tables.get("summary")
    rows = []
    listed = [s for s in scenarios.iter_rows(named=True) if not s["scenario_id"].startswith("row-")]
    for s in listed[:BRIEF_SCENARIOS]:
        ok = None if summary is None else summary.filter(
            (pl.col("scenario_id") == s["scenario_id"]) & (pl.col("metric") == "success"))
        if ok is None or ok.is_empty():
            continue
        r = ok.row(0, named=True)
        low, high = r.get("success_low"), r.get("success_high")
        if low is None:
            low, high = wilson(round(r["mean"] * r["n"]), r["n"])
        rows.append({"scenario": s["scenario_name"], "id": s["scenario_id"], "success": r["mean"],
                     "low": float(low), "high": float(high), "episodes": r["n"]})
    return run, rows, scenarios.height - len(rows)


def brief_text(tables: dict[str, pl.DataFrame]) -> str:
    """A few lines for a result in a terminal: the run, its kind, its tables, each scenario's
    success with its 95% interval."""
    run, rows, more = _brief_rows(tables)
    kind = run.get("kind") or "run"
    head = (f"Forecast({kind} {run.get('run_id')!s}" + (f" {run['name']!r}" if run.get("name") else "")
            + f": {run.get('scenarios', len(rows))} scenario(s) x {run.get('episodes', 0):,} episodes; "
            f"tables {', '.join(sorted(tables))})")
    lines = [head] + [f"  {r['scenario']} [{r['id']}]: success {_pct(r['success'])} "
                      f"(95% CI {_pct(r['low'])} - {_pct(r['high'])})" for r in rows]
    if more > 0:
        lines.append(f"  ... and {more} more scenario(s) (design rows included): see .tables")
    return "\n".join(lines)


def brief_html(tables: dict[str, pl.DataFrame]) -> str:
    """The short summary as HTML (a notebook's display of a result)."""
    import html

    run, rows, more = _brief_rows(tables)
    e = lambda x: html.escape(str(x))  # noqa: E731
    body = "".join(f"<tr><td>{e(r['scenario'])}</td><td><code>{e(r['id'])}</code></td>"
                   f"<td>{_pct(r['success'])}</td><td>{_pct(r['low'])} - {_pct(r['high'])}</td></tr>"
                   for r in rows)
    kind = run.get("kind") or "run"
    name = f" <i>{e(run['name'])}</i>" if run.get("name") else ""
    note = f"<p>... and {more} more scenario(s): see <code>.tables</code></p>" if more > 0 else ""
    return (f"<div><b>pivotal {e(kind)} <code>{e(run.get('run_id'))}</code></b>{name}: "
            f"{e(run.get('scenarios', len(rows)))} scenario(s) x {run.get('episodes', 0):,} episodes"
            "<table><tr><th>scenario</th><th>id</th><th>P(success)</th><th>95% interval</th></tr>"
            f"{body}</table>{note}<p>tables: {e(', '.join(sorted(tables)))}</p></div>")
