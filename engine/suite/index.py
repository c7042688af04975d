"""The night's index page: one self-contained HTML file (no script, no network request).

Failures first, then what changed since the previous complete suite run (items that ran again
and why, status changes, drift flags), then every item with its headline figures, read from
its run's published tables.
"""
from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from engine.suite.store import run_table

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.failed{background:#fde2e2}
.reused{color:#666}.flag{color:#a40000}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
.num{text-align:right}"""


def _e(text) -> str:
    return html.escape("" if text is None else str(text))


def headline(out, kind: str, run_id: str | None) -> str:
    """An item's headline figures, as one line of text, from its run's tables."""
    if run_id is None:
        return ""
    if kind == "backtest":
        bt = run_table(out, "backtests", run_id)
        if bt is None:
            return ""
        rows = bt.filter(pl.col("model") == "pivotal")
        return "; ".join(f"{r['case']}: AUC {'-' if r['auc'] is None else format(r['auc'], '.3f')}"
                         for r in rows.iter_rows(named=True))
    summary = run_table(out, "summary", run_id)
    if summary is None:
        return ""
    first = summary["scenario_id"][0]
    if kind == "study":
        first = "base" if "base" in summary["scenario_id"].to_list() else first
    rows = {r["metric"]: r for r in summary.filter(pl.col("scenario_id") == first).iter_rows(named=True)}
    parts = []
    if "success" in rows:
        parts.append(f"success {rows['success']['mean']:.1%} (se {rows['success']['se'] or 0:.1%})")
    if "size" in rows:
        parts.append(f"size {rows['size']['mean']:.2f}")
    if "capacity" in rows:
        parts.append(f"capacity {rows['capacity']['mean']:,.0f}")
    n = summary["scenario_id"].n_unique()
    prefix = f"{first}: " if kind == "study" else ""
    suffix = f" ({n:,} scenarios)" if kind == "study" else ""
    return prefix + ", ".join(parts) + suffix


def index_html(suite: str, rows: pl.DataFrame, drift: pl.DataFrame | None,
               previous: pl.DataFrame | None, out) -> str:
    """The page of one suite run (`rows`: its `suite_runs` rows; `previous`: those of the
    previous complete suite run of the same suite, or None)."""
    sid = rows["suite_run_id"][0]
    counts = {s: int((rows["status"] == s).sum()) for s in ("complete", "reused", "failed")}
    when = rows["suite_finished_at"][0]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(suite)} {_e(sid)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Suite {_e(suite)}: run {_e(sid)}</h1>",
             f"<p>finished {when:%Y-%m-%d %H:%M:%S} UTC; {len(rows)} items: {counts['complete']} run, "
             f"{counts['reused']} reused, {counts['failed']} failed. Forecast directory: {_e(Path(out))}</p>"]
    failed = rows.filter(pl.col("status") == "failed")
    parts.append(f"<h2 id='failures'>Failures ({failed.height})</h2>")
    if failed.height:
        parts.append("<table><tr><th>item</th><th>kind</th><th>error</th></tr>" + "".join(
            f"<tr class='failed'><td>{_e(r['item'])}</td><td>{_e(r['kind'])}</td><td>{_e(r['error'])}</td></tr>"
            for r in failed.iter_rows(named=True)) + "</table>")
    else:
        parts.append("<p>none</p>")
    parts += _changes(rows, previous)
    parts.append("<h2 id='items'>Every item</h2><table><tr><th>item</th><th>kind</th><th>status</th>"
                 "<th>run</th><th>seconds</th><th>headline figures</th><th>drift</th></tr>")
    ordered = rows.with_columns(pl.col("status").replace_strict({"failed": 0, "complete": 1, "reused": 2},
                                                                default=3).alias("_o")).sort(["_o", "position"])
    for r in ordered.iter_rows(named=True):
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        flags = "<br>".join(f"<span class='flag'>{_e(f)}</span>" for f in (r["drift_flags"] or []))
        head = "" if r["status"] == "failed" else headline(out, r["kind"], r["run_id"])
        parts.append(f"<tr class='{_e(r['status'])}'><td>{_e(r['item'])}</td><td>{_e(r['kind'])}</td>"
                     f"<td>{_e(r['status'])}</td><td>{_e(r['run_id'])}</td><td class='num'>{seconds}</td>"
                     f"<td>{_e(head) if head else _e(r['error'])}</td><td>{flags}</td></tr>")
    parts.append("</table>")
    if drift is not None and drift.height:
        parts.append(f"<p>{drift.height} figures compared with the previous night; "
                     f"{int(drift['flagged'].sum())} flagged (significant after a Bonferroni correction "
                     "per scenario and larger than the stated minimum; docs/NIGHTLY.md).</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _changes(rows: pl.DataFrame, previous: pl.DataFrame | None) -> list[str]:
    if previous is None:
        return ["<h2 id='changes'>Changes since the previous suite run</h2><p>no previous complete run of "
                "this suite: nothing to compare</p>"]
    before = {r["item"]: r for r in previous.iter_rows(named=True)}
    lines = []
    for r in rows.iter_rows(named=True):
        prev = before.get(r["item"])
        what = []
        if prev is None:
            what.append("new item")
        elif prev["status"] != r["status"] and "failed" in (prev["status"], r["status"]):
            what.append(f"{prev['status']} before, {r['status']} now")
        if r["status"] == "complete" and r["cause"]:
            what.append(f"ran again: {r['cause']}")
        what += [f"drift: {f}" for f in (r["drift_flags"] or [])]
        if what:
            lines.append(f"<tr><td>{_e(r['item'])}</td><td>{'<br>'.join(_e(w) for w in what)}</td></tr>")
    gone = [name for name in before if name not in set(rows["item"].to_list())]
    lines += [f"<tr><td>{_e(name)}</td><td>not in this run</td></tr>" for name in gone]
    head = (f"<h2 id='changes'>Changes since the previous suite run {_e(previous['suite_run_id'][0])}</h2>")
    if not lines:
        return [head, "<p>nothing changed: every item was reused</p>"]
    return [head, "<table><tr><th>item</th><th>what changed</th></tr>", *lines, "</table>"]
