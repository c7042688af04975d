"""`pivotal` command line: validate scenario files, run forecasts, catalog/report/show outputs."""
from __future__ import annotations

import argparse
import sys

from engine.scenario import ScenarioError, load_scenario

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    from engine.run import DEFAULT_EPISODES, DEFAULT_SEED

    p = argparse.ArgumentParser(prog="pivotal", description="Forecast coalitions built by a pivotal state "
                                "(REM-1 Monte Carlo; docs/MODEL.md).")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check scenario files against the format")
    v.add_argument("files", nargs="+", metavar="FILE")
    r = sub.add_parser("run", help="run scenarios and publish forecast tables")
    r.add_argument("scenarios", nargs="+", metavar="SCENARIO.toml",
                   help="one or more scenario files; they share random numbers")
    r.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="episodes per scenario "
                   f"(default {DEFAULT_EPISODES:,})")
    r.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"study seed (default {DEFAULT_SEED})")
    r.add_argument("--out", default="forecasts", help="forecast directory or object-storage URI "
                   "such as s3://bucket/prefix (default ./forecasts)")
    r.add_argument("--run-id", help="name of the run (default: generated from the time)")
    r.add_argument("--workers", type=int, help="cores to use (default: all)")
    r.add_argument("--chunk-size", type=int, help="episodes per chunk (default: about 1-2 s of work)")
    r.add_argument("--executor", choices=["local", "ray"], help="where chunks run: this process "
                   "(local) or Ray (default: ray when --ray-address or RAY_ADDRESS is set, else local)")
    r.add_argument("--ray-address", help="Ray cluster to attach to (default: RAY_ADDRESS, or a "
                   "local Ray sized to --workers)")
    r.add_argument("--keep-episodes", type=int, default=0, metavar="K",
                   help="also write the first K episodes' records (table episodes)")
    r.add_argument("--resume", action="store_true", help="finish an interrupted run (same arguments "
                   "and --run-id): only missing chunks are computed")
    r.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    _output_parsers(sub)
    return p


def _output_parsers(sub) -> None:
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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            for f in args.files:
                s = load_scenario(f)
                print(f"{f}: ok ({len(s.candidates)} candidates, {len(s.ties)} ties, "
                      f"{len(s.institutions)} institutions)")
            return 0
        if args.command in ("catalog", "report", "show"):
            return _read_outputs(args)
        return _run(args)
    except ScenarioError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _read_outputs(args) -> int:
    from engine.storage import StorageError

    try:
        if args.command == "catalog":
            from engine.catalog import build_catalog
            print(build_catalog(args.out, args.file))
        elif args.command == "report":
            from engine.html_report import write_report
            run_id = write_report(args.out, args.html, args.run_id)
            print(f"{args.html}: run {run_id}")
        else:
            from engine.report import show_text
            print(show_text(args.out, args.run_id))
    except StorageError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(args) -> int:
    from engine.output import RunExistsError
    from engine.report import summary_text
    from engine.run import RunFailedError, RunSettingsError, forecast
    from engine.storage import StorageError

    scenarios = [load_scenario(f) for f in args.scenarios]  # every file checked before anything runs
    try:
        result = forecast(scenarios, episodes=args.episodes, seed=args.seed, out=args.out,
                          run_id=args.run_id, workers=args.workers, chunk_size=args.chunk_size,
                          executor=args.executor, ray_address=args.ray_address,
                          keep_episodes=args.keep_episodes,
                          resume=args.resume, progress=False if args.quiet else None)
    except (RunSettingsError, RunExistsError, StorageError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailedError as exc:
        print(f"pivotal: run failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pivotal: error: {exc} (finished chunks, if any, are kept: rerun with --resume)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pivotal: interrupted; finished chunks are kept, rerun with --resume", file=sys.stderr)
        return 130
    print(result.run_id)
    if not args.quiet:
        print(summary_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
