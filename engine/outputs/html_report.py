"""`pivotal report --html FILE`: one self-contained HTML page of a published run.

Charts are drawn by Matplotlib as inline SVG: the page has no script, no
stylesheet or font to fetch, and makes no network request. Each chart is a
`<figure class="chart" data-chart="KIND">`; tests/outputs/test_report.py checks them in
headless Chromium.
"""
from __future__ import annotations

import datetime as dt
import html
import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from engine.outputs.storage import StorageError, complete_runs, locate, run_tables  # noqa: E402
from engine.outputs.tables import wilson  # noqa: E402
from engine.outputs.text import scenario_lines  # noqa: E402

MAX_SCENARIO_SECTIONS = 12  # a study has hundreds of design rows: base and variants come first
CAPACITY_BINS = 64          # the report's capacity histogram (the table has 1024 bins)
BLUE, ORANGE, GREY, RED = "#1f77b4", "#ff7f0e", "#7f7f7f", "#d62728"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure.chart { margin: 0; } figure.chart svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.8em; color: #555; max-width: 520px; }
.note { font-size: 0.85em; color: #555; }
ul.figures { font-family: ui-monospace, monospace; font-size: 0.85em; list-style: none; padding-left: 0; }
"""


def write_report(out, html_file, run_id: str | None = None) -> str:
    """Write the report of run `run_id` (default: the latest complete run) of forecast
    directory `out` to `html_file`; return the run id."""
    location = locate(out)
    runs = complete_runs(location)
    if runs.is_empty():
        raise StorageError(f"no complete run in {location.uri}")
    if run_id is None:
        run_id = runs["run_id"][-1]
    elif run_id not in runs["run_id"].to_list():
        raise StorageError(f"run {run_id!r} is not a complete run in {location.uri} "
                           "(pivotal show lists the runs)")
    page = render(run_tables(location, run_id))
    Path(html_file).write_text(page, encoding="utf-8")
    return run_id


def render(tables: dict[str, pl.DataFrame]) -> str:
    """The HTML page of one run's tables (names shown literally: a '$' in a scenario or candidate
    name is text, not Matplotlib mathtext)."""
    with matplotlib.rc_context({"text.parse_math": False}):
        return _render(tables)


def _render(tables: dict[str, pl.DataFrame]) -> str:
    run = tables["runs"].row(0, named=True)
    scenarios = tables["scenarios"]
    study = "design" in tables or "sensitivity" in tables
    rows = [i for i in scenarios["scenario_id"].to_list() if study and i.startswith("row-")]
    if study and tables.get("row_outputs") is not None and tables["row_outputs"].height:  # compact rows
        rows = tables["row_outputs"]["scenario_id"].unique(maintain_order=True).to_list()
    shown = _scenarios_shown([i for i in scenarios["scenario_id"].to_list() if i not in set(rows)])
    kind = run.get("kind") or "run"
    title = {"study": "study", "ablate": "mechanism ablation", "backtest": "backtest"}.get(kind, "forecast")
    parts = [f"<h1>pivotal {title}: {_e(run.get('name') or run['run_id'])}</h1>"]
    if "backtests" in tables and "backtest_states" in tables:  # the scores first
        parts.append("<h2>Backtest</h2><p class='note'>Observed participants are the states the "
                     "Correlates of War lists as taking part, that is, major contributors, or, for a "
                     "case with its own participants file, the states that file lists.</p>")
        parts.append(_charts(_roc_charts(tables["backtests"], tables["backtest_states"])
                             + _size_calibration(tables["backtests"])))
    if "sensitivity" in tables or "comparisons" in tables:  # the answer first
        parts.append("<h2>What matters</h2>")
        charts = []
        if "sensitivity" in tables:
            charts.append(_sensitivity_chart(tables["sensitivity"]))
        if "comparisons" in tables:
            charts.append(_comparisons_chart(tables["comparisons"]))
        parts.append(_charts(charts))
    parts += [_run_metadata(run, scenarios.filter(pl.col("scenario_id").is_in(shown))),
              "<h2>Scenarios compared</h2>",
              _charts([_success_chart(tables, shown), *_capacity_overlay(tables, shown)])]
    if len(shown) < scenarios.height:
        parts.append(f"<p class='note'>Charts for {len(shown)} of {scenarios.height} scenarios "
                     "(base and variants first); every scenario is in the tables.</p>")
    for sid in shown:
        parts += _scenario_section(tables, scenarios.filter(pl.col("scenario_id") == sid).row(0, named=True))
    if rows:
        parts += _design_section(tables, rows)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<link rel='icon' href='data:,'>"
            f"<title>pivotal run {_e(run['run_id'])}</title><style>{STYLE}</style></head>"
            "<body>" + "\n".join(parts) + "</body></html>\n")


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(_plain(v))}</td>" for v in r.values()) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plain(value):
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, float):
        return f"{value:,.4g}"
    return value


def _run_metadata(run: dict, scenarios: pl.DataFrame) -> str:
    rows = [{"scenario": s["scenario_id"], "name": s["scenario_name"], "pivot": s["pivot"],
             "requirement": f"{s['requirement']:,.0f} {s['capacity_unit']}",
             "min partners": s["min_partners"], "deadline (days)": s["deadline_days"],
             "budget": f"{s['budget']:,.4g} {s['payment_unit']}", "candidates": s["candidates"]}
            for s in scenarios.iter_rows(named=True)]
    return ("<h2>Run</h2>" + _table([{"field": k, "value": v} for k, v in run.items()])
            + "<h2>Scenarios</h2>" + _table(rows))


def _scenarios_shown(ids: list[str]) -> list[str]:
    first = [s for s in ids if not s.startswith("row-")] + [s for s in ids if s.startswith("row-")]
    return first[:MAX_SCENARIO_SECTIONS]


def _charts(figures) -> str:
    return "<div class='charts'>" + "".join(figures) + "</div>"


_ATTRIBUTE = re.compile(r'="([^"]*)"')
_DECIMALS = re.compile(r"(\d\.\d)\d+")  # coordinates to a tenth of a point: half the page, same picture


def _figure(fig, kind: str, caption: str) -> str:
    """A Matplotlib figure as an inline-SVG <figure> (ids salted by kind and caption)."""
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"{kind}:{caption}"}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    svg = _ATTRIBUTE.sub(lambda m: '="' + _DECIMALS.sub(r"\1", m.group(1)) + '"', svg[svg.index("<svg"):])
    return (f"<figure class='chart' data-chart='{_e(kind)}'>{svg}"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _metric(summary: pl.DataFrame, scenario_id: str, metric: str) -> dict:
    return summary.filter((pl.col("scenario_id") == scenario_id) & (pl.col("metric") == metric)).row(0, named=True)


def _success_chart(tables, ids: list[str]) -> str:
    rows = [_metric(tables["summary"], s, "success") for s in ids]
    p = np.array([r["mean"] for r in rows])
    low, high = wilson(np.round(p * [r["n"] for r in rows]), np.array([r["n"] for r in rows], float))
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.35 * len(ids)))
    y = np.arange(len(ids))[::-1]
    ax.errorbar(p, y, xerr=_spread(p, low, high), fmt="o", color=BLUE, capsize=3)
    names = dict(tables["scenarios"].select("scenario_id", "scenario_name").iter_rows())
    ax.set_yticks(y, [f"{names.get(i, i)} [{i}]" for i in ids], fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("P(success at the deadline)")
    ax.grid(axis="x", alpha=0.3)
    return _figure(fig, "success", "Success probability per scenario with its 95% Wilson interval.")


def _thousands(axis) -> None:
    """At most five ticks, written 10,000: large capacities' labels must not run together."""
    axis.set_major_locator(MaxNLocator(5))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))


def _capacity_overlay(tables, ids: list[str]) -> list[str]:
    """Capacity CDFs of the scenarios on one axis (when they share a capacity unit)."""
    scenarios = tables["scenarios"].filter(pl.col("scenario_id").is_in(ids))
    if len(ids) < 2 or scenarios["capacity_unit"].n_unique() != 1:
        return []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for s, color in zip(scenarios.iter_rows(named=True), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 9):
        cap = tables["capacity_distribution"].filter(pl.col("scenario_id") == s["scenario_id"])
        ax.plot(np.r_[0.0, cap["bin_high"].to_numpy()], np.r_[0.0, cap["cdf"].to_numpy()], color=color,
                label=s["scenario_id"])
        ax.axvline(s["requirement"], color=color, linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"capacity at the deadline ({scenarios['capacity_unit'][0]})")
    _thousands(ax.xaxis)
    ax.set_ylabel("P(capacity <= x)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return [_figure(fig, "capacity_overlay", "Capacity distributions of the scenarios (cumulative), "
                    "each scenario's requirement dashed in its colour.")]


def _scenario_section(tables, s: dict) -> list[str]:
    sid = s["scenario_id"]
    pick = lambda t: tables[t].filter(pl.col("scenario_id") == sid)  # noqa: E731
    figures = "".join(f"<li>{_e(line.strip())}</li>" for line in scenario_lines(tables, s, names=True))
    return [f"<h2>{_e(s['scenario_name'])} <small>[{_e(sid)}]</small></h2>",
            f"<ul class='figures' data-scenario='{_e(sid)}'>{figures}</ul>",
            _charts([_size_chart(pick("size_distribution"), sid),
                     _capacity_chart(pick("capacity_distribution"), s),
                     _spent_chart(_metric(tables["summary"], sid, "spent"), s),
                     _time_chart(pick("time_to_success"), s),
                     _candidates_chart(pick("candidates"), s)])]


OUTPUT_METRICS = ("success", "size", "capacity", "spent")
DESIGN_BINS = 8


def _design_section(tables, rows: list[str]) -> list[str]:
    """Design rows summarised, not listed: each output's spread over the rows, and how it varies
    with the input that matters most for it (binned means)."""
    compact = tables.get("row_outputs")
    if compact is not None and compact.height:  # compact rows: the study's outputs only
        means = {m: compact.filter(pl.col("output").is_in([m, f"{m}.mean"])).unique("scenario_id", keep="first")
                 .select("scenario_id", pl.col("value").alias("mean")).drop_nulls() for m in OUTPUT_METRICS}
        where = "compact: their figures in row_outputs"
    else:
        summary = tables["summary"].filter(pl.col("scenario_id").is_in(rows))
        means = {m: summary.filter(pl.col("metric") == m).select("scenario_id", "mean") for m in OUTPUT_METRICS}
        where = "each a scenario of the study's design, in the tables"
    ok = means["success"]["mean"]
    spread = (f": success over the rows min {ok.min():.1%}, median {ok.median():.1%}, max {ok.max():.1%}"
              if ok.len() else "")
    parts = [f"<h2>Design rows</h2><p class='summary'>{len(rows):,} design rows ({where}){spread}.</p>"]
    if "design" in tables and "sensitivity" in tables:
        parts.append(_charts([_binned_chart(tables["design"], tables["sensitivity"], means)]))
    return parts


def _binned_chart(design: pl.DataFrame, sens: pl.DataFrame, means: dict) -> str:
    fig, axes = plt.subplots(1, len(OUTPUT_METRICS), figsize=(13, 2.8), squeeze=False)
    for ax, output in zip(axes[0], OUTPUT_METRICS):
        rows = sens.filter(pl.col("output") == output)
        key = "ST" if rows["ST"].null_count() < rows.height else "S1"
        top = rows.sort(key, descending=True, nulls_last=True)["input"][0] if rows.height else None
        if top is None:
            continue
        xy = (design.filter((pl.col("input") == top) & (pl.col("row") >= 0)).select("scenario_id", "value")
              .join(means[output], on="scenario_id"))
        if xy.height == 0:  # (a compact study without this output)
            continue
        x, y = xy["value"].to_numpy(), xy["mean"].to_numpy()
        edges = np.unique(np.quantile(x, np.linspace(0, 1, DESIGN_BINS + 1)))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        centre = [(edges[k] + edges[k + 1]) / 2 for k in range(len(edges) - 1)]
        stats = [y[which == k] for k in range(len(edges) - 1)]
        ax.fill_between(centre, [v.min() if len(v) else np.nan for v in stats],
                        [v.max() if len(v) else np.nan for v in stats], color=BLUE, alpha=0.2, label="range")
        ax.plot(centre, [v.mean() if len(v) else np.nan for v in stats], "o-", color=BLUE, label="mean")
        ax.set_xlabel(top, fontsize=8)
        ax.set_title(f"{output} ({key} {rows.filter(pl.col('input') == top)[key][0] or 0:.2f})", fontsize=9)
    axes[0][0].legend(fontsize=7)
    return _figure(fig, "design_binned", "How each output varies with the input it depends on most (largest "
                   f"index): the design rows' means in {DESIGN_BINS} bins of equal count, mean and range.")


def _spent_chart(spent: dict, s: dict) -> str:
    """Spending at the deadline: its 5-95% range, quartiles, median and mean, against the budget."""
    fig, ax = plt.subplots(figsize=(5, 1.8))
    ax.hlines(0, spent["p05"], spent["p95"], color=BLUE, linewidth=1.5, label="5-95%")
    ax.barh(0, spent["p75"] - spent["p25"], left=spent["p25"], height=0.4, color=BLUE, alpha=0.5,
            label="25-75%")
    ax.plot([spent["p50"]] * 2, [-0.2, 0.2], color="black", linewidth=2, label="median")
    ax.plot(spent["mean"], 0, "o", color=ORANGE, label="mean")
    ax.axvline(s["budget"], color=RED, linestyle="--", label=f"budget {s['budget']:,.4g}")
    ax.set_xlim(0, 1.05 * max(s["budget"], spent["max"] or 0.0, 1e-9))
    ax.set_yticks([])
    ax.set_xlabel(f"spent by the deadline ({s['payment_unit']})")
    _thousands(ax.xaxis)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.6))
    return _figure(fig, "spent", f"{sid_of(s)}: what the pivot spent, against its budget.")


def sid_of(s: dict) -> str:
    return f"{s['scenario_name']} [{s['scenario_id']}]"


def _size_chart(sizes: pl.DataFrame, sid: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(sizes["size"].to_numpy(), sizes["probability"].to_numpy(), color=BLUE)
    ax.set_xlabel("coalition size at the deadline (states)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("probability")
    return _figure(fig, "size", f"{sid}: distribution of the coalition's size.")


def _capacity_chart(capacity: pl.DataFrame, s: dict) -> str:
    low, high = capacity["bin_low"].to_numpy(), capacity["bin_high"].to_numpy()
    prob = capacity["probability"].to_numpy()
    edges = np.r_[low, high[-1:]]
    if len(prob) % CAPACITY_BINS == 0:  # coarser bins read better; the table's edges stay exact
        prob = prob.reshape(CAPACITY_BINS, -1).sum(axis=1)
        edges = edges[::len(low) // CAPACITY_BINS]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.stairs(prob, edges, fill=True, color=BLUE, alpha=0.8)
    ax.axvline(s["requirement"], color=RED, linestyle="--",
               label=f"requirement {s['requirement']:,.0f}")
    reached = edges[1:][prob > 0]
    ax.set_xlim(0, 1.05 * max(s["requirement"], reached[-1] if len(reached) else edges[-1]))
    ax.set_xlabel(f"capacity at the deadline ({s['capacity_unit']})")
    _thousands(ax.xaxis)
    ax.set_ylabel("probability")
    ax.legend(fontsize=8)
    return _figure(fig, "capacity", f"{s['scenario_id']}: distribution of the coalition's capacity, "
                   "with the requirement marked.")


def _time_chart(time: pl.DataFrame, s: dict) -> str:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.step(time["day"].to_numpy(), time["p_success_by_day"].to_numpy(), where="post", color=BLUE)
    ax.set_xlabel("day")
    ax.set_ylabel("P(target reached by day)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    return _figure(fig, "time_to_success", f"{s['scenario_id']}: share of episodes that reached the "
                   "target by each day (before any withdrawal).")


def _candidates_chart(cands: pl.DataFrame, s: dict) -> str:
    cands = cands.sort(["p_member", "candidate_id"], descending=[False, True])
    y = np.arange(cands.height)
    p = cands["p_member"].to_numpy()
    fig, ax = plt.subplots(figsize=(5.5, 0.8 + 0.25 * cands.height))
    ax.barh(y, p, color=BLUE, label="member at the deadline")
    ax.errorbar(p, y, xerr=_spread(p, cands["p_member_low"].to_numpy(), cands["p_member_high"].to_numpy()),
                fmt="none", ecolor="black", capsize=2, label="95% interval")
    ax.barh(y, cands["p_venue_join"].to_numpy(), height=0.35, color=ORANGE,
            label="joined at a venue (incl. later withdrawn)")
    ax.set_yticks(y, [f"{n} ({c})" if n and n != c else c for n, c in
                      zip(cands["candidate_name"].to_list(), cands["candidate_id"].to_list())], fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("probability")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.5 / fig.get_figheight()), ncol=2)
    return _figure(fig, "candidates", f"{s['scenario_id']}: each candidate's probability of being "
                   "a member at the deadline, sorted, with 95% Wilson intervals; joins at venues in orange.")


def _facets(n: int, height: float):
    fig, axes = plt.subplots(1, n, figsize=(1.5 + 3.2 * n, height), squeeze=False, sharey=True)
    return fig, axes[0]


def _sensitivity_chart(sens: pl.DataFrame) -> str:
    outputs = sens["output"].unique(maintain_order=True).to_list()
    inputs = sens["input"].unique(maintain_order=True).to_list()
    fig, axes = _facets(len(outputs), 1.0 + 0.4 * len(inputs))
    y = np.arange(len(inputs))
    for ax, output in zip(axes, outputs):
        rows = {r["input"]: r for r in sens.filter(pl.col("output") == output).iter_rows(named=True)}
        for offset, index, color in ((0.18, "S1", BLUE), (-0.18, "ST", ORANGE)):
            values = np.array([_num(rows.get(i, {}).get(index)) for i in inputs])
            conf = np.array([_num(rows.get(i, {}).get(f"{index}_conf")) for i in inputs])
            ax.barh(y + offset, values, height=0.34, color=color, label=index)
            ax.errorbar(values, y + offset, xerr=conf, fmt="none", ecolor="black", capsize=2)
        ax.set_yticks(y, inputs, fontsize=8)
        ax.set_title(output)
        ax.axvline(0, color=GREY, linewidth=0.8)
    axes[0].legend(fontsize=8)
    return _figure(fig, "sensitivity", "Sobol sensitivity indices per output: first order (S1) and "
                   "total (ST), with 95% confidence half-widths.")


def _comparisons_chart(comp: pl.DataFrame) -> str:
    outputs = comp["output"].unique(maintain_order=True).to_list()
    variants = comp["variant"].unique(maintain_order=True).to_list()
    fig, axes = _facets(len(outputs), 1.0 + 0.4 * len(variants))
    y = np.arange(len(variants))
    for ax, output in zip(axes, outputs):
        rows = {r["variant"]: r for r in comp.filter(pl.col("output") == output).iter_rows(named=True)}
        d = np.array([_num(rows.get(v, {}).get("difference")) for v in variants])
        lo = np.array([_num(rows.get(v, {}).get("difference_low")) for v in variants])
        hi = np.array([_num(rows.get(v, {}).get("difference_high")) for v in variants])
        ax.errorbar(d, y, xerr=_spread(d, lo, hi), fmt="o", color=BLUE, capsize=3)
        ax.axvline(0, color=GREY, linewidth=0.8)
        ax.set_yticks(y, variants, fontsize=8)
        ax.set_title(output)
        ax.set_xlabel("variant - base")
    return _figure(fig, "comparisons", "Variants against the base scenario: difference of means with "
                   "its 95% interval (common random numbers).")


def _spread(centre, low, high):
    """Error-bar lengths below and above `centre` (rounding can put an end a hair inside)."""
    return [np.maximum(centre - low, 0.0), np.maximum(high - centre, 0.0)]


def _num(value) -> float:
    return np.nan if value is None else float(value)


def roc_curve(score, positive):
    """False- and true-positive rates of ranking by `score` (higher = more likely), ties grouped."""
    score, positive = np.asarray(score, float), np.asarray(positive, bool)
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score) != 0), len(score) - 1]
    tp = np.cumsum(positive)[last_of_tie]
    fp = np.cumsum(~positive)[last_of_tie]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def _size_calibration(backtests: pl.DataFrame) -> list[str]:
    """Per case, the observed coalition size against the forecast's 5-95% size interval and mean
    (cases without an observed size are left out)."""
    need = ("size_observed", "size_p05", "size_p95", "size_mean")
    if any(c not in backtests.columns for c in need):
        return []
    rows = backtests.filter((pl.col("model") == "pivotal") & pl.col("size_observed").is_not_null())
    if rows.is_empty():
        return []
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.35 * rows.height))
    y = np.arange(rows.height)[::-1]
    ax.hlines(y, rows["size_p05"].to_numpy(), rows["size_p95"].to_numpy(), color=BLUE, linewidth=3,
              alpha=0.5, label="forecast 5-95%")
    ax.plot(rows["size_mean"].to_numpy(), y, "|", color=BLUE, markersize=12, label="forecast mean")
    ax.plot(rows["size_observed"].to_numpy(), y, "o", color=RED, label="observed")
    ax.set_yticks(y, rows["case"].to_list(), fontsize=8)
    ax.set_xlabel("coalition size (states)")
    ax.legend(fontsize=7)
    inside = int(((rows["size_observed"] >= rows["size_p05"]) & (rows["size_observed"] <= rows["size_p95"])).sum())
    return [_figure(fig, "size_calibration", f"Size calibration: the observed coalition size inside the "
                    f"forecast's 5-95% interval in {inside} of {rows.height} case(s).")]


def _roc_charts(backtests: pl.DataFrame, states: pl.DataFrame) -> list[str]:
    charts = []
    extra = [c for c in states.columns if c.startswith("p_member_") and c not in ("p_member_low", "p_member_high")]
    for case in states["case"].unique(maintain_order=True).to_list():
        st = states.filter(pl.col("case") == case)
        y = st["participated"].to_numpy().astype(bool)
        if y.all() or not y.any():
            continue
        auc = {r["model"]: r["auc"] for r in backtests.filter(pl.col("case") == case).iter_rows(named=True)}
        scores = {"pivotal": st["p_member"].to_numpy()}
        scores.update({c.removeprefix("p_member_"): st[c].to_numpy() for c in extra})
        scores["capacity"] = -st["capacity_rank"].to_numpy().astype(float)
        scores["base_rate"] = np.zeros(len(y))
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for model, score in scores.items():
            fpr, tpr = roc_curve(score, y)
            label = model + (f" (AUC {auc[model]:.2f})" if auc.get(model) is not None else "")
            ax.plot(fpr, tpr, drawstyle="default", label=label)
        ax.plot([0, 1], [0, 1], color=GREY, linewidth=0.6, linestyle=":")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(case, fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        unscored = ", ".join(f"{m} {a:.2f}" for m, a in auc.items() if m not in scores and a is not None)
        charts.append(_figure(fig, "roc", f"{case}: ROC curves of the forecast's membership "
                              f"probabilities against the baselines ({int(y.sum())} of {len(y)} "
                              "scored states took part)."
                              + (f" AUC of models without per-state scores: {unscored}." if unscored else "")))
    return charts
