"""`pivotal catalog`, `report` and `show`: read a forecast directory (docs/OUTPUTS.md)."""
from __future__ import annotations

import sys

from engine.cli.common import EXIT_ENVIRONMENT, EXIT_USAGE, environment_error


def add_parsers(sub) -> None:
    """catalog, report and show: read a forecast directory (docs/OUTPUTS.md)."""
    where = "forecast directory or URI such as s3://bucket/prefix (default ./forecasts)"
    c = sub.add_parser("catalog", help="write a DuckDB catalog of views for dashboards")
    c.add_argument("--out", default="forecasts", help=where)
    c.add_argument("--file", help="where to write the catalog (default OUT/forecasts.duckdb; "
                   "./forecasts.duckdb for object storage)")
    rp = sub.add_parser("report", help="write one run as a self-contained HTML page")
    rp.add_argument("--out", default="forecasts", help=where)
    rp.add_argument("--run-id", help="the run (default: the latest complete run)")
    rp.add_argument("--html", required=True, metavar="FILE", help="the HTML file to write")
    sh = sub.add_parser("show", help="print the latest runs and a run's key figures")
    sh.add_argument("--out", default="forecasts", help=where)
    sh.add_argument("--run-id", help="the run (default: the latest complete run)")


def read_outputs(args) -> int:
    from engine.outputs.storage import StorageError

    try:
        if args.command == "catalog":
            from engine.outputs.catalog import build_catalog
            print(build_catalog(args.out, args.file))
        elif args.command == "report":
            from engine.outputs.html_report import write_report
            run_id = write_report(args.out, args.html, args.run_id)
            print(f"{args.html}: run {run_id}")
        else:
            print(show_text(args.out, args.run_id))
    except StorageError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # pyarrow's ArrowInvalid (a damaged Parquet file) is not one
        print(f"pivotal: {environment_error(exc, None)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # noqa: BLE001 - a file under --out that pyarrow or DuckDB cannot read
        if type(exc).__module__.split(".")[0] not in ("pyarrow", "duckdb", "_duckdb", "polars"):
            raise
        print(f"pivotal: error: a file under {args.out} cannot be read ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}); move it away or rerun the run that wrote it",
              file=sys.stderr)
        return EXIT_ENVIRONMENT
    return 0


def show_text(out, run_id: str | None = None, recent: int = 10, max_scenarios: int = 20) -> str:
    """`pivotal show`: the most recent complete runs of `out`, then the summary of
    `run_id` (default: the latest complete run), as printed at the end of a run."""
    from engine.outputs.storage import StorageError, complete_runs, locate, run_tables
    from engine.outputs.text import tables_text

    location = locate(out)
    runs = complete_runs(location)
    if runs.is_empty():
        raise StorageError(f"no complete run in {location.uri}")
    lines = []
    if run_id is None:
        run_id = runs["run_id"][-1]
        lines.append(f"latest complete runs in {location.uri} (newest last):")
        for r in runs.tail(recent).iter_rows(named=True):
            lines.append(f"  {r['run_id']}  finished {r['finished_at']:%Y-%m-%d %H:%M:%S} UTC  "
                         f"{r['episodes']:,} episodes x {r['scenarios']} scenario(s)  seed {r['seed']}")
        lines.append("")
    elif run_id not in runs["run_id"].to_list():
        raise StorageError(f"run {run_id!r} is not a complete run in {location.uri}")
    tables = run_tables(location, run_id)
    lines.append(tables_text(tables, max_scenarios=max_scenarios))
    lines += study_lines(tables)
    if "backtests" in tables:  # a backtest run: its scores as `pivotal backtest` printed them
        from engine.data.backtest import report as backtest_report
        lines += ["", backtest_report(tables["backtests"], tables.get("backtest_comparisons"))]
    return "\n".join(lines)


def study_lines(tables) -> list[str]:
    """What a study or an ablation printed after its summary: the comparisons with the base, the
    design's spread and the sensitivity indices (`pivotal show` reprints them)."""
    import polars as pl

    from engine.studies.run import comparisons_text, sensitivity_lines

    lines = []
    if "comparisons" in tables and tables["comparisons"].height:
        lines += ["", comparisons_text(tables)]
    if "design" in tables and tables["design"].height:
        rows = tables["design"].filter(pl.col("row") >= 0)["scenario_id"].unique()  # not base, variants
        if tables.get("row_outputs") is not None and tables["row_outputs"].height:  # compact rows
            ok = tables["row_outputs"].filter(pl.col("output").is_in(["success", "success.mean"]))["value"]
        else:
            ok = tables["summary"].filter(pl.col("scenario_id").is_in(rows.implode())
                                          & (pl.col("metric") == "success"))["mean"]
        ok = ok.drop_nulls()
        spread = (f"; success over the rows: min {ok.min():.1%}, median {ok.median():.1%}, max {ok.max():.1%}"
                  if ok.len() else "")
        lines += ["", f"design: {rows.len():,} rows x {tables['design']['input'].n_unique()} inputs{spread}"]
    if "sensitivity" in tables and tables["sensitivity"].height:
        methods = ", ".join(tables["sensitivity"]["method"].unique(maintain_order=True).drop_nulls().to_list())
        lines += ["", f"sensitivity ({methods or 'indices'}):"] + sensitivity_lines(tables["sensitivity"])
    return lines
