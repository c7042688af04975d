"""`pivotal scenario build` and `backtest` (engine/data/; docs/BACKTESTS.md)."""
from __future__ import annotations

import sys

from engine.cli.common import EXIT_USAGE, announce, count, guarded


def add_parsers(sub) -> None:
    """`scenario build` and `backtest` (engine/data/builder.py, engine/data/backtest.py; docs/BACKTESTS.md)."""
    from engine.data.backtest import DEFAULT_EPISODES, SEEDS
    from engine.data.fit import FIT_EPISODES, FIT_PRIOR_SD

    sc = sub.add_parser("scenario", help="build scenarios from the Correlates of War data")
    b = sc.add_subparsers(dest="scenario_command", required=True).add_parser(
        "build", help="write a commented scenario TOML for a pivot, year and target")
    b.add_argument("--pivot", required=True, help="COW abbreviation or code (e.g. USA, 2)")
    b.add_argument("--year", required=True, type=int)
    b.add_argument("--target", required=True, help="the state the coalition acts against")
    b.add_argument("--theater", help="state whose capital distances are measured to (default: target)")
    b.add_argument("--candidates", default="all", help="all | region:R | igo:NAME | list:A,B,... "
                   "(default all)")
    b.add_argument("--institutions", help="ID[:DAY],...: COW IGOs to include besides the pivot's security "
                   "organisations, each with the day of a summit (a venue) when given, e.g. NATO:30,WEU")
    b.add_argument("--data", help="COW data directory (default ../shared/data from the repository)")
    b.add_argument("--params", help="builder parameters file (default configs/builder_params.toml)")
    b.add_argument("--requirement", type=float, help="capacity needed (default: the builder's rule)")
    b.add_argument("--deadline-days", type=float, help="deadline (default: the builder's)")
    b.add_argument("--budget", type=float, help="budget in preference-sd units (default: the builder's)")
    b.add_argument("--name", help="the scenario's name (default: pivot against target, year)")
    b.add_argument("-o", "--output", help="write here (default: standard output)")
    bt = sub.add_parser("backtest", help="score built scenarios against coalitions that formed")
    bt.add_argument("cases", nargs="+", metavar="CASE.toml")
    bt.add_argument("--data", help="COW data directory (overrides each case's `data`)")
    bt.add_argument("--params", help="builder parameters file (default configs/builder_params.toml)")
    bt.add_argument("--episodes", type=count, help=f"episodes per case and model (default "
                    f"{DEFAULT_EPISODES:,}; with --fit, per case in each evaluation: {FIT_EPISODES:,})")
    bt.add_argument("--seed", type=count, default=1)
    bt.add_argument("--seeds", type=count, default=SEEDS, help="seeds averaged in the paired differences "
                    "between models (the first one's run is published; default %(default)s)")
    bt.add_argument("--out", default="forecasts", help="forecast directory (default ./forecasts)")
    bt.add_argument("--run-id")
    bt.add_argument("--workers", type=count)
    bt.add_argument("--resume", action="store_true", help="finish an interrupted backtest (same "
                    "arguments; its --run-id, or the latest interrupted run in --out)")
    bt.add_argument("--fit", action="store_true", help="fit the builder's preference coefficients (a "
                    "probit) and process parameters (a small grid on the size) to the cases, with "
                    "leave-one-case-out scores")
    bt.add_argument("--prior-sd", type=float, default=FIT_PRIOR_SD,
                    help="with --fit: sd of the Normal(0, sd) prior on each probit slope "
                    "(default %(default)s; docs/BACKTESTS.md)")
    bt.add_argument("--no-loo", action="store_true", help="with --fit: skip leave-one-case-out")
    bt.add_argument("--params-out", default="builder_params.fitted.toml",
                    help="with --fit: where the fitted parameters go (default %(default)s)")


def _data_columns(command):
    """A data file that reads but lacks a column the builder needs (a damaged or foreign file) is
    one line naming --data and the column (exit 2), not a traceback."""
    import functools

    @functools.wraps(command)
    def checked(args) -> int:
        import polars as pl

        from engine.data.cow import DataError

        try:
            return command(args)
        except (pl.exceptions.ColumnNotFoundError, pl.exceptions.SchemaFieldNotFoundError) as exc:
            column = str(exc).strip().splitlines()[0]
            raise DataError(f"--data {args.data or '(default)'}: a data file has no column {column} (damaged, or not "
                            "the COW/ATOP file its name says); restore it from ../shared/data") from None
    return checked


@_data_columns
def scenario_build(args) -> int:
    import shlex

    import tomllib

    from engine.data import builder, render
    from engine.model.scenario import parse_scenario

    prm = builder.load_params(args.params)
    command = "pivotal scenario build " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in
        (("pivot", args.pivot), ("year", args.year), ("target", args.target), ("theater", args.theater),
         ("candidates", args.candidates), ("institutions", args.institutions), ("params", args.params), ("requirement", args.requirement),
         ("deadline_days", args.deadline_days), ("budget", args.budget), ("name", args.name))
        if v is not None)
    text, _, _ = render.build_file(args.data or builder.DEFAULT_DATA, args.pivot, args.year, args.target,
                                    theater=args.theater, candidates=args.candidates,
                                    institutions=args.institutions, prm=prm,
                                    requirement=args.requirement, deadline_days=args.deadline_days,
                                    budget=args.budget, name=args.name, command=command)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # e.g. a --name with a line break
        print(f"pivotal: error: the built scenario is not valid TOML ({exc}); check --name",
              file=sys.stderr)
        return EXIT_USAGE
    parse_scenario(doc, "the built scenario")  # the project's validator, before anything is written
    if args.output:
        try:
            with open(args.output, "w") as fh:
                fh.write(text)
        except OSError as exc:
            print(f"pivotal: error: -o {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        print(args.output)
    else:
        sys.stdout.write(text)
    return 0


@_data_columns
def backtest(args) -> int:
    from engine.data import backtest, builder
    from engine.data.cow import DataError

    if args.episodes is not None and args.episodes < 1:
        raise DataError(f"--episodes must be >= 1 (got {args.episodes:,})")
    if args.seeds < 1:
        raise DataError(f"--seeds must be >= 1 (got {args.seeds:,})")
    prm = builder.load_params(args.params)
    cases = [backtest.load_case(f, args.data) for f in args.cases]
    backtest.check_distinct(cases)
    prepared = [backtest.prepare(c) for c in cases]
    for line in backtest.notes(prepared):
        print(f"pivotal: note: {line}", file=sys.stderr)
    if args.fit:
        return _fit(args, prepared, prm)

    def start(run_id):
        from engine.execution.plan import plan_run

        plan = plan_run(backtest.backtest_scenarios(prepared, prm, args.seed), episodes=backtest.DEFAULT_EPISODES
                        if args.episodes is None else args.episodes, seed=args.seed, run_id=run_id,
                        workers=args.workers)
        announce(plan.run_id)
        result = backtest.run_backtest_plan(plan, prepared, prm, out=args.out, resume=args.resume,
                                            progress=False, seeds=args.seeds)
        print(backtest.report(result.tables["backtests"], result.tables["backtest_comparisons"]))
    return guarded(args, start)


def _fit(args, prepared, prm) -> int:
    from engine.data import backtest, fit
    from engine.data.cow import DataError

    episodes = fit.FIT_EPISODES if args.episodes is None else args.episodes
    if not args.prior_sd > 0 or args.prior_sd == float("inf"):
        raise DataError(f"--prior-sd must be a positive finite number (got {args.prior_sd})")
    _check_writable(args.params_out)  # before the fit, not after it
    def point_done(n, points):
        print(f"  grid point {n}/{points}", file=sys.stderr, flush=True)

    result = fit.fit(prepared, prm, episodes=episodes, seed=args.seed, prior_sd=args.prior_sd,
                     announce=point_done)
    print(f"fit on {len(prepared)} case(s): probit mean log-likelihood {result.probit_ll:.4f} per scored "
          f"state; process grid of {len(result.grid)} points, {episodes:,} episodes per case and point")
    for name in fit.FIT_NAMES:
        print(f"  {name:20} {getattr(result.params, name):9.4f}")
    for row in result.grid:
        mark = "  <- chosen" if row is result.chosen else ""
        size = "-" if row["size_log_score"] is None else f"{row['size_log_score']:.3f}"
        inside = "-" if row["size_inside"] is None else f"{row['size_inside']:.2f}"
        print("  grid " + ", ".join(f"{k} {row[k]:g}" for k in fit.PROCESS_GRID)
              + f": joint log score {row['joint']:.2f}, log loss {row['log_loss']:.4f}, size log score {size}, "
              f"inside 5-95% {inside}{mark}")
    header = (f"Builder parameters fitted by `pivotal backtest --fit` on {len(prepared)} case(s):\n"
              + "\n".join(f"  {p.case.path}" for p in prepared)
              + f"\nseed {args.seed}, {episodes} episodes per case and grid point, prior sd {args.prior_sd:g}; "
              f"probit mean log-likelihood {result.probit_ll:.4f}; chosen grid point: "
              + ", ".join(f"{k} {result.chosen[k]:g}" for k in fit.PROCESS_GRID))
    try:
        with open(args.params_out, "w") as fh:
            fh.write(fit.params_text(result.params, header))
    except OSError as exc:  # (checked before the fit; the file system may still fail now)
        raise DataError(f"--params-out {args.params_out}: {exc.strerror or exc}") from None
    print(f"fitted parameters written to {args.params_out}")
    if args.no_loo or len(prepared) < 2:
        return 0

    print(f"leave-one-case-out: {len(prepared)} fits, each grid point simulating every fold at once",
          file=sys.stderr, flush=True)
    fits = fit.leave_one_out(prepared, prm, episodes=episodes, seed=args.seed, prior_sd=args.prior_sd,
                             announce=point_done)
    for held, loo in zip(prepared, fits):
        print(f"without {held.case.name}: " + ", ".join(
            f"{n} {getattr(loo.params, n):.3f}" for n in fit.FIT_NAMES), flush=True)
    params = [loo.params for loo in fits]
    # every case scored with the parameters fitted without it, in one run (its logit baseline is
    # leave-one-case-out already)
    from engine.model import tie_tables

    with tie_tables.cache_at_least(len(fit.tie_shapes(prepared, prm)) + 64):
        res = backtest.run_backtests(prepared, params, episodes=backtest.DEFAULT_EPISODES if args.episodes is None
                                     else args.episodes, seed=args.seed, out=args.out, run_id=args.run_id,
                                     progress=False, workers=args.workers, seeds=args.seeds)
    print(f"\nleave-one-case-out, run {res.run_id} (each case scored with parameters fitted on the others):")
    print(backtest.report(res.tables["backtests"], res.tables["backtest_comparisons"]))
    return 0


def _check_writable(path) -> None:
    """Refuse a --params-out that cannot be written, in one line, before any work is done."""
    import os
    from pathlib import Path

    from engine.data.cow import DataError

    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir() or not parent.is_dir():
        raise DataError(f"--params-out {path}: " + ("is a directory" if target.is_dir() else
                        f"{parent} is not a directory") + "; give a file path to write the parameters to")
    if not os.access(target if target.exists() else parent, os.W_OK):
        raise DataError(f"--params-out {path}: not writable; give a file path you can write to")
