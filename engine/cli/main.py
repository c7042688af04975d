"""`pivotal` command line: one parser, one module per command family (engine/cli/*.py)."""
from __future__ import annotations

import sys

from engine import __version__
from engine.cli import data, outputs, run, studies, suite
from engine.cli.common import EXIT_USAGE, Parser
from engine.execution import signals
from engine.execution.signals import exit_code, handle_signals, received

COMMANDS = {"validate": run.validate, "warmup": run.warmup, "run": run.run,
            "study": studies.study, "ablate": studies.study, "discover": studies.discover,
            "catalog": outputs.read_outputs, "report": outputs.read_outputs, "show": outputs.read_outputs,
            "scenario": data.scenario_build, "backtest": data.backtest,
            "suite": suite.suite}


def parser() -> Parser:
    p = Parser(prog="pivotal", description="Forecast coalitions built by a pivotal state "
               "(REM-1 Monte Carlo; docs/MODEL.md).")
    p.add_argument("--version", action="version", version=f"pivotal {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for family in (run, studies, outputs, data, suite):
        family.add_parsers(sub)
    return p


def main(argv=None) -> int:
    received.clear()  # signals of an earlier command (main called in one process again)
    handle_signals()
    signals.in_command = True
    try:
        return _main(argv)
    except BaseException as exc:  # an interrupt before or after a command's own handling
        if not (isinstance(exc, KeyboardInterrupt) or received):
            raise
        print("pivotal: interrupted", file=sys.stderr)
        return exit_code()
    finally:
        signals.in_command = False


def _main(argv) -> int:
    from engine.data.cow import DataError
    from engine.model.scenario import ScenarioError

    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ScenarioError, DataError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
