"""`pivotal` command line: validate scenario files, run forecasts, catalog/report/show outputs."""
from __future__ import annotations

if __name__ == "__main__":  # `python -m engine.cli.main`: signals first, as engine/cli/start.py does
    import engine.cli.start  # noqa: F401

import argparse  # noqa: E402
import sys  # noqa: E402

from engine import __version__  # noqa: E402
from engine.execution.signals import exit_code, handle_signals, raise_if_received, received  # noqa: E402

EXIT_USAGE = 2        # bad input or arguments; 1: a chunk failed; 130/143: Ctrl-C/SIGTERM
EXIT_ENVIRONMENT = 3  # the file system failed (full, read-only, not a directory, ...)


def count(text: str) -> int:
    """A whole number written as 100000, 100_000 or 1e5 (argparse type)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be a whole number such as 100000, 100_000 or 1e5 "
                                         f"(got {text!r})")
    return int(value)


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other error (the usage is in --help)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from engine.forecast import DEFAULT_EPISODES, DEFAULT_SEED

    p = _Parser(prog="pivotal", description="Forecast coalitions built by a pivotal state "
                                "(REM-1 Monte Carlo; docs/MODEL.md).")
    p.add_argument("--version", action="version", version=f"pivotal {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("warmup", help="compile the kernels into the cache now (make install runs it), "
                   "so the first run starts at once")
    v = sub.add_parser("validate", help="check scenario files against the format")
    v.add_argument("files", nargs="+", metavar="FILE")
    r = sub.add_parser("run", help="run scenarios and publish forecast tables")
    r.add_argument("scenarios", nargs="+", metavar="SCENARIO.toml",
                   help="one or more scenario files; they share random numbers")
    r.add_argument("--episodes", type=count, default=DEFAULT_EPISODES, help="episodes per scenario "
                   f"(default {DEFAULT_EPISODES:,})")
    r.add_argument("--seed", type=count, default=DEFAULT_SEED, help=f"study seed (default {DEFAULT_SEED})")
    r.add_argument("--out", default="forecasts", help="forecast directory or object-storage URI "
                   "such as s3://bucket/prefix (default ./forecasts)")
    r.add_argument("--run-id", help="name of the run (default: generated from the time)")
    r.add_argument("--workers", type=count, help="cores to use (default: all)")
    r.add_argument("--chunk-size", type=count, help="episodes per chunk (default: about 1-2 s of work)")
    r.add_argument("--executor", choices=["local", "ray"], help="where chunks run: this process "
                   "(local) or Ray (default: ray when --ray-address or RAY_ADDRESS is set, else local)")
    r.add_argument("--ray-address", help="Ray cluster to attach to (default: RAY_ADDRESS, or a "
                   "local Ray sized to --workers)")
    r.add_argument("--keep-episodes", type=count, default=0, metavar="K",
                   help="also write the first K episodes' records (table episodes)")
    r.add_argument("--resume", action="store_true", help="finish an interrupted run (same arguments; "
                   "its --run-id, or the latest interrupted run in --out): only missing chunks are "
                   "computed")
    r.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    _target_options(r)
    _study_parsers(sub)
    _output_parsers(sub)
    _discover_parser(sub)
    _data_parsers(sub)
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



def _discover_parser(sub) -> None:
    from engine.studies import discovery as d

    s = sub.add_parser("discover", help="find the input ranges of a study where an output falls "
                       "below/above a threshold (PRIM; needs pivotal[discover])")
    s.add_argument("--out", default="forecasts", help="forecast directory (default ./forecasts)")
    s.add_argument("--run-id", required=True, help="a complete study run")
    s.add_argument("--output", default="success", help="the scenario mean to classify: "
                   f"{', '.join(d.OUTPUTS)} (default success)")
    s.add_argument("--below", type=float, help="rows whose mean is below this are the cases")
    s.add_argument("--above", type=float, help="rows whose mean is above this are the cases")
    s.add_argument("--density", type=float, default=d.DEFAULT_MIN_DENSITY,
                   help=f"least density of a box (default {d.DEFAULT_MIN_DENSITY})")
    s.add_argument("--mass-min", type=float, default=d.DEFAULT_MASS_MIN,
                   help=f"least share of rows in a box (default {d.DEFAULT_MASS_MIN})")
    s.add_argument("--peel-alpha", type=float, default=d.DEFAULT_ALPHA,
                   help=f"share peeled per step (default {d.DEFAULT_ALPHA})")
    s.add_argument("--paste-alpha", type=float, default=d.DEFAULT_ALPHA,
                   help=f"share pasted per step (default {d.DEFAULT_ALPHA})")
    s.add_argument("--max-qp", type=float, default=d.DEFAULT_MAX_QP, help="drop a restriction "
                   f"whose quasi-p value is above this (default {d.DEFAULT_MAX_QP}; 1 keeps all)")
    s.add_argument("--boxes", type=int, default=d.DEFAULT_BOXES,
                   help=f"most boxes to find (default {d.DEFAULT_BOXES})")


def _data_parsers(sub) -> None:
    """`scenario build` and `backtest` (engine/data/builder.py, engine/data/backtest.py; docs/BACKTESTS.md)."""
    from engine.data.backtest import DEFAULT_EPISODES, FIT_EPISODES, FIT_MAX_EVALS, FIT_PRIOR_SD

    sc = sub.add_parser("scenario", help="build scenarios from the Correlates of War data")
    b = sc.add_subparsers(dest="scenario_command", required=True).add_parser(
        "build", help="write a commented scenario TOML for a pivot, year and target")
    b.add_argument("--pivot", required=True, help="COW abbreviation or code (e.g. USA, 2)")
    b.add_argument("--year", required=True, type=int)
    b.add_argument("--target", required=True, help="the state the coalition acts against")
    b.add_argument("--theater", help="state whose capital distances are measured to (default: target)")
    b.add_argument("--candidates", default="all", help="all | region:R | igo:NAME | list:A,B,... "
                   "(default all)")
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
    bt.add_argument("--out", default="forecasts", help="forecast directory (default ./forecasts)")
    bt.add_argument("--run-id")
    bt.add_argument("--workers", type=count)
    bt.add_argument("--resume", action="store_true", help="finish an interrupted backtest (same "
                    "arguments; its --run-id, or the latest interrupted run in --out)")
    bt.add_argument("--fit", action="store_true", help="fit the builder's preference coefficients "
                    "and budget to the cases, with leave-one-case-out scores")
    bt.add_argument("--max-evals", type=int, default=FIT_MAX_EVALS,
                    help=f"objective evaluations per fit (default {FIT_MAX_EVALS})")
    bt.add_argument("--prior-sd", type=float, default=FIT_PRIOR_SD,
                    help="with --fit: sd of the Normal prior around the start on each signed "
                    "coefficient (default %(default)s; docs/BACKTESTS.md)")
    bt.add_argument("--no-loo", action="store_true", help="with --fit: skip leave-one-case-out")
    bt.add_argument("--params-out", default="builder_params.fitted.toml",
                    help="with --fit: where the fitted parameters go (default %(default)s)")


def _target_options(p):
    p.add_argument("--target-se", type=float, metavar="X", help="add whole chunks until the success "
                   "probability's standard error is at most X in every scenario")
    p.add_argument("--max-episodes", type=count, help="cap on episodes per scenario with --target-se "
                   "(default 100 x --episodes)")


def _study_parsers(sub):
    """`pivotal study` and `pivotal ablate` (docs/STUDIES.md)."""
    for name, what, help_ in (("study", "STUDY.toml", "run an uncertainty study (docs/STUDIES.md)"),
                              ("ablate", "SCENARIO.toml", "how much each mechanism matters: the "
                               "standard mechanism ablation of a scenario")):
        q = sub.add_parser(name, help=help_)
        q.add_argument("file", metavar=what)
        q.add_argument("--episodes", type=count, help="episodes per scenario (default: the study's; "
                       "ablate: 100,000)")
        q.add_argument("--seed", type=count, help="seed (default: the study's; ablate: 1)")
        q.add_argument("--out", default="forecasts", help="forecast directory or object-storage URI "
                       "(default ./forecasts)")
        q.add_argument("--run-id", help="name of the run (default: generated from the time)")
        q.add_argument("--workers", type=count, help="cores to use (default: all)")
        q.add_argument("--chunk-size", type=count, help="episodes per chunk")
        q.add_argument("--executor", choices=["local", "ray"], help="where chunks run (as for run)")
        q.add_argument("--ray-address", help="Ray cluster to attach to")
        q.add_argument("--resume", action="store_true", help="finish an interrupted run")
        q.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
        _target_options(q)
        if name == "study":
            q.add_argument("--scenarios", metavar="DIR", help="write every evaluated scenario as "
                           "DIR/<scenario_id>.toml and run nothing")


def main(argv=None) -> int:
    received.clear()  # signals of an earlier command (main called in one process again)
    handle_signals()
    try:
        return _main(argv)
    except BaseException as exc:  # an interrupt before or after a command's own handling
        if not (isinstance(exc, KeyboardInterrupt) or received):
            raise
        print("pivotal: interrupted", file=sys.stderr)
        return exit_code()


def _main(argv) -> int:
    from engine.data.cow import DataError
    from engine.model.scenario import ScenarioError, load_scenario

    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.files)
        if args.command == "warmup":
            from engine.execution.executors import compile_kernels
            print(f"kernels ready ({compile_kernels():.1f} s)")
            return 0
        if args.command in ("catalog", "report", "show"):
            return _read_outputs(args)
        if args.command == "discover":
            return _discover(args)
        if args.command == "scenario":
            return _scenario_build(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command in ("study", "ablate"):
            return _study(args)
        return _run(args)
    except (ScenarioError, DataError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _validate(files) -> int:
    """Check every file (a scenario or a study), one line each; exit 2 if any is refused."""
    from engine.model.scenario import ScenarioError, load_scenario
    from engine.studies.study import load_study

    refused = 0
    for f in files:
        try:
            if _is_study(f):
                st = load_study(f)
                print(f"{f}: ok (study: {len(st.inputs)} inputs, {len(st.variants)} variants, "
                      f"{st.rows:,} design rows)")
            else:
                s = load_scenario(f)
                print(f"{f}: ok ({len(s.candidates)} candidates, {len(s.ties)} ties, "
                      f"{len(s.institutions)} institutions)")
        except ScenarioError as exc:
            print(f"pivotal: error: {exc}", file=sys.stderr)
            refused += 1
    return EXIT_USAGE if refused else 0


def _read_outputs(args) -> int:
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
            from engine.outputs.text import show_text
            print(show_text(args.out, args.run_id))
    except StorageError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # pyarrow's ArrowInvalid (a damaged Parquet file) is not one
        print(f"pivotal: {_environment_error(exc, None)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # noqa: BLE001 - a file under --out that pyarrow or DuckDB cannot read
        if type(exc).__module__.split(".")[0] not in ("pyarrow", "duckdb", "_duckdb", "polars"):
            raise
        print(f"pivotal: error: a file under {args.out} cannot be read ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}); move it away or rerun the run that wrote it",
              file=sys.stderr)
        return EXIT_ENVIRONMENT
    return 0


def _run(args) -> int:
    from engine.outputs.text import summary_text
    from engine.forecast import forecast
    from engine.model.scenario import load_scenario

    scenarios = [load_scenario(f) for f in args.scenarios]  # every file checked before anything runs

    def start(run_id):
        result = forecast(scenarios, episodes=args.episodes, seed=args.seed, out=args.out,
                          run_id=run_id, workers=args.workers, chunk_size=args.chunk_size,
                          executor=args.executor, ray_address=args.ray_address,
                          keep_episodes=args.keep_episodes,
                          resume=args.resume, progress=False if args.quiet else None,
                          announce=_announce, target_se=args.target_se,
                          max_episodes=args.max_episodes, return_tables=False)
        if not args.quiet:
            print(summary_text(result))
        if result.target:
            print(f"--target-se {result.target}")
    return _guarded(args, start)


def _guarded(args, start) -> int:
    """Run `start(run_id)` (a run, study, ablation or backtest) with the errors every run can
    meet turned into one line and a documented exit code (docs/OUTPUTS.md)."""
    from engine.outputs.directory import RunExistsError, latest_interrupted_run, run_directory
    from engine.forecast import RunFailedError, RunSettingsError, new_run_id
    from engine.outputs.storage import StorageError

    run_id = None
    try:
        if args.run_id is not None and not args.run_id.strip():
            raise RunSettingsError("--run-id is empty; give a name, or leave --run-id out for a generated one")
        run_id = args.run_id or (latest_interrupted_run(args.out) if args.resume else new_run_id())
        _tell_supervisor(args.out, run_id)
        start(run_id)
    except (RunSettingsError, RunExistsError, StorageError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailedError as exc:
        print(f"pivotal: run failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pivotal: {_environment_error(exc, run_id and run_directory(args.out, run_id))}",
              file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        state = _interrupted_state(run_directory(args.out, run_id)) if run_id else "interrupted"
        print(f"pivotal: {state}", file=sys.stderr)
        return exit_code()
    return 0


def _tell_supervisor(out, run_id: str) -> None:
    """Where the run's checkpoints go, for the supervisor of a run that may use Ray
    (engine/cli/start.py), to say what is left if Ray ends this process."""
    from engine.outputs.directory import run_directory
    from engine.cli.start import report, supervised

    if supervised():
        try:
            report("run", run_id, run_directory(out, run_id).staging)
        except Exception:  # noqa: BLE001 - a bad --out is reported by the run itself
            pass


def _announce(run_id: str) -> None:
    """The first line of a run, before any work: the id to --resume with, whatever happens next."""
    raise_if_received()  # a Ctrl-C while the engine loaded, whose KeyboardInterrupt was lost
    print(run_id, flush=True)
    print(f"pivotal: run {run_id}", file=sys.stderr, flush=True)


def _environment_error(exc: OSError, store) -> str:
    """One line for a file-system failure: the path, the cause, and whether --resume can finish."""
    where = f"{exc.filename}: " if exc.filename else ""
    cause = exc.strerror or str(exc)
    if store and store.staging.exists():
        then = (f"{len(store.finished_chunks())} finished chunk(s) are kept: fix it and finish with "
                f"--resume --run-id {store.run_id}")
    elif store is None:
        then = "fix it and run again"
    else:
        then = "nothing was claimed: fix it and run again"
    return f"error: {where}{cause}; {then}"


def _interrupted_state(store) -> str:
    """What an interruption left behind, read from the forecast directory."""
    if store.is_complete():
        return f"interrupted after run {store.run_id} was published complete; nothing to resume"
    if store.staging.exists():
        return (f"interrupted; {len(store.finished_chunks())} finished chunk(s) of run {store.run_id} "
                f"are kept: finish it with the same command and --resume --run-id {store.run_id}")
    return f"interrupted before run {store.run_id} started; nothing was written"


def _discover(args) -> int:
    from engine.studies.discovery import DiscoveryError, discover, publish_discovery

    try:
        found = discover(args.out, args.run_id, args.output, below=args.below, above=args.above,
                         min_density=args.density, mass_min=args.mass_min,
                         peel_alpha=args.peel_alpha, paste_alpha=args.paste_alpha,
                         max_qp=args.max_qp, max_boxes=args.boxes)
    except DiscoveryError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    path = publish_discovery(args.out, found)
    print(found.text())
    print(f"written {path}")
    return 0


def _scenario_build(args) -> int:
    import shlex

    import tomllib

    from engine.data import builder
    from engine.model.scenario import parse_scenario

    prm = builder.load_params(args.params)
    command = "pivotal scenario build " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in
        (("pivot", args.pivot), ("year", args.year), ("target", args.target), ("theater", args.theater),
         ("candidates", args.candidates), ("params", args.params), ("requirement", args.requirement),
         ("deadline_days", args.deadline_days), ("budget", args.budget), ("name", args.name))
        if v is not None)
    text, _, _ = builder.build_file(args.data or builder.DEFAULT_DATA, args.pivot, args.year, args.target,
                                    theater=args.theater, candidates=args.candidates, prm=prm,
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


def _backtest(args) -> int:
    from engine.data import backtest, builder
    from engine.data.cow import DataError

    if args.episodes is not None and args.episodes < 1:
        raise DataError(f"--episodes must be >= 1 (got {args.episodes:,})")
    prm = builder.load_params(args.params)
    cases = [backtest.load_case(f, args.data) for f in args.cases]
    backtest.check_distinct(cases)
    prepared = [backtest.prepare(c) for c in cases]
    for line in backtest.notes(prepared):
        print(f"pivotal: note: {line}", file=sys.stderr)
    if args.fit:
        return _fit(args, prepared, prm)

    def start(run_id):
        result = backtest.run_backtests(prepared, prm, episodes=backtest.DEFAULT_EPISODES
                                        if args.episodes is None else args.episodes,
                                        seed=args.seed, out=args.out, run_id=run_id,
                                        workers=args.workers, progress=False, announce=_announce,
                                        resume=args.resume)
        print(backtest.report(result.tables["backtests"]))
    return _guarded(args, start)


def _fit(args, prepared, prm) -> int:
    import polars as pl

    from engine.data import backtest
    from engine.data.cow import DataError

    episodes = backtest.FIT_EPISODES if args.episodes is None else args.episodes
    if args.max_evals < 1:
        raise DataError(f"--max-evals must be >= 1 (got {args.max_evals})")
    if not args.prior_sd > 0 or args.prior_sd == float("inf"):
        raise DataError(f"--prior-sd must be a positive finite number (got {args.prior_sd})")
    prm = prm.replace(**backtest.FIT_START)  # every fit starts from the documented prior
    result = backtest.fit(prepared, prm, episodes=episodes, seed=args.seed, max_evals=args.max_evals,
                           prior_sd=args.prior_sd)
    print(f"fit on {len(prepared)} case(s), {result.evaluations} evaluations of {episodes:,} episodes per "
          f"case: mean log-likelihood {result.start_ll:.4f} (start) -> {result.fitted_ll:.4f} (fitted)")
    for name in backtest.FIT_NAMES:
        print(f"  {name:18} {getattr(prm, name):9.4f} -> {getattr(result.params, name):9.4f}")
    header = (f"Builder parameters fitted by `pivotal backtest --fit` on {len(prepared)} case(s):\n"
              + "\n".join(f"  {p.case.path}" for p in prepared)
              + f"\nseed {args.seed}, {episodes} episodes per case and evaluation, {result.evaluations} "
              f"evaluations, prior sd {args.prior_sd:g}; mean log-likelihood {result.start_ll:.4f} -> "
              f"{result.fitted_ll:.4f}")
    with open(args.params_out, "w") as fh:
        fh.write(backtest.params_text(result.params, header))
    print(f"fitted parameters written to {args.params_out}")
    full = backtest.run_backtests(prepared, result.params, episodes=backtest.DEFAULT_EPISODES,
                                  seed=args.seed, out=args.out, run_id=args.run_id,
                                  workers=args.workers, progress=False)
    print(f"\nin-sample (run {full.run_id}):")
    print(backtest.report(full.tables["backtests"]))
    if args.no_loo or len(prepared) < 2:
        return 0
    rows = []
    for k, held in enumerate(prepared):
        others = prepared[:k] + prepared[k + 1:]
        loo = backtest.fit(others, prm, episodes=episodes, seed=args.seed, max_evals=args.max_evals,
                           prior_sd=args.prior_sd)
        print(f"without {held.case.name}: " + ", ".join(
            f"{n} {getattr(loo.params, n):.3f}" for n in backtest.FIT_NAMES), flush=True)
        res = backtest.run_backtests([held], loo.params, episodes=backtest.DEFAULT_EPISODES,
                                     seed=args.seed, progress=False, workers=args.workers)
        rows.append(res.tables["backtests"])
    print("\nleave-one-case-out (each case scored with parameters fitted on the others):")
    print(backtest.report(pl.concat(rows)))
    return 0


def _is_study(path) -> bool:
    """A study file names a base `scenario` (and has a design or variants); a scenario file
    names a `pivot`."""
    from pathlib import Path

    from engine.model.scenario import read_toml

    def fail(rule):
        raise ValueError(rule)
    try:
        doc, _ = read_toml(Path(path), fail)
    except ValueError:
        return False  # load_scenario reports it
    return "pivot" not in doc and bool({"scenario", "design", "inputs", "variants"} & set(doc))


def _study(args) -> int:
    from engine.outputs.text import summary_text
    from engine.model.scenario import load_scenario
    from engine.studies.run import ablate, comparisons_text, study, study_text, write_scenarios

    run = dict(out=args.out, workers=args.workers, chunk_size=args.chunk_size,
               executor=args.executor, ray_address=args.ray_address, resume=args.resume,
               progress=False if args.quiet else None, target_se=args.target_se,
               max_episodes=args.max_episodes, seed=args.seed, return_tables=False,
               announce=_announce)
    if args.command == "study":
        from engine.studies.study import load_study
        st = load_study(args.file)  # every row and variant checked before anything runs
        if args.scenarios:
            try:
                written = write_scenarios(st, args.scenarios)
            except OSError as exc:
                print(f"pivotal: error: --scenarios {args.scenarios}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_USAGE
            print(f"wrote {len(written):,} scenario files to {args.scenarios}")
            return 0
    else:
        scenario = load_scenario(args.file)
        run["seed"] = 1 if args.seed is None else args.seed

    def start(run_id):
        if args.command == "study":
            result = study(st, episodes=args.episodes, run_id=run_id, **run)
        else:
            result = ablate(scenario, episodes=100_000 if args.episodes is None else args.episodes,
                            run_id=run_id, **run)
        if not args.quiet:
            if args.command == "study":
                print(study_text(result, st))
            else:
                print(summary_text(result, max_scenarios=1))
                print(f"\nhow much each mechanism matters in {scenario.name}:")
                print(comparisons_text(result))
        if result.target:
            print(f"--target-se {result.target}")
    return _guarded(args, start)


if __name__ == "__main__":
    from engine.cli.start import exit_now_if_interrupted
    sys.exit(exit_now_if_interrupted(main()))
