"""`pivotal suite`: the night's scenarios, studies and backtests as one unit (docs/NIGHTLY.md)."""
from __future__ import annotations

import sys

from engine.cli.common import EXIT_ENVIRONMENT, EXIT_USAGE, environment_error


def add_parsers(sub) -> None:
    s = sub.add_parser("suite", help="run a suite file: every item as an ordinary run, study or "
                       "backtest; reuse unchanged ones, flag drift (docs/NIGHTLY.md)")
    s.add_argument("file", metavar="SUITE.toml")
    s.add_argument("--out", help="forecast directory (default: the suite file's `out`, else ./forecasts)")
    s.add_argument("--force", action="store_true", help="run every item again, even when unchanged")
    s.add_argument("--only", action="append", metavar="NAME", help="run only this item (a name or a "
                   "glob; repeatable)")
    s.add_argument("--dry-run", action="store_true", help="say what each item would do; write nothing")
    s.add_argument("--notify", metavar="CMD", help="shell command given a JSON summary on stdin when "
                   "an item failed or a forecast drifted")


def announce(suite_run_id: str) -> None:
    """The first line, before any work: the suite run id (its items' run ids start with it)."""
    from engine.execution.signals import raise_if_received

    raise_if_received()
    print(suite_run_id, flush=True)
    print(f"pivotal: suite run {suite_run_id}", file=sys.stderr, flush=True)


def suite(args) -> int:
    from engine.execution.signals import exit_code
    from engine.suite.runner import suite as run_suite
    from engine.suite.store import SuiteBusyError
    from engine.suite.suitefile import SuiteError

    def echo(line):
        print(line, file=sys.stderr if line.startswith("pivotal:") else sys.stdout, flush=True)

    try:
        result = run_suite(args.file, out=args.out, force=args.force, only=args.only,
                           dry_run=args.dry_run, notify=args.notify, echo=echo, announce=announce)
    except (SuiteError, SuiteBusyError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"pivotal: {environment_error(exc, None)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("pivotal: suite interrupted; the same command finishes it (only what is missing runs)",
              file=sys.stderr)
        return exit_code()
    if args.dry_run:
        return 0
    for row in result.failed.iter_rows(named=True):
        print(f"pivotal: item {row['item']} ({row['kind']}) failed: {row['error']}", file=sys.stderr)
    for flag in result.flags:
        print(f"drift: {flag}")
    print(f"suite {result.suite_run_id}: {result.rows.height} items, "
          f"{int((result.rows['status'] == 'complete').sum())} run, "
          f"{int((result.rows['status'] == 'reused').sum())} reused, {result.failed.height} failed; "
          f"page {result.page}")
    return result.exit_code
