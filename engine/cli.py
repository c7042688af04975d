"""`pivotal` command line: validate scenario files, run forecasts."""
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
    r.add_argument("--out", default="forecasts", help="forecast directory (default ./forecasts)")
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
    _target_options(r)
    _study_parsers(sub)
    return p


def _target_options(p):
    p.add_argument("--target-se", type=float, metavar="X", help="add whole chunks until the success "
                   "probability's standard error is at most X in every scenario")
    p.add_argument("--max-episodes", type=int, help="cap on episodes per scenario with --target-se "
                   "(default 100 x --episodes)")


def _study_parsers(sub):
    """`pivotal study` and `pivotal ablate` (docs/STUDIES.md)."""
    for name, what, help_ in (("study", "STUDY.toml", "run an uncertainty study (docs/STUDIES.md)"),
                              ("ablate", "SCENARIO.toml", "how much each mechanism matters: the "
                               "standard mechanism ablation of a scenario")):
        q = sub.add_parser(name, help=help_)
        q.add_argument("file", metavar=what)
        q.add_argument("--episodes", type=int, help="episodes per scenario (default: the study's; "
                       "ablate: 100,000)")
        q.add_argument("--seed", type=int, help="seed (default: the study's; ablate: 1)")
        q.add_argument("--out", default="forecasts", help="forecast directory (default ./forecasts)")
        q.add_argument("--run-id", help="name of the run (default: generated from the time)")
        q.add_argument("--workers", type=int, help="cores to use (default: all)")
        q.add_argument("--chunk-size", type=int, help="episodes per chunk")
        q.add_argument("--executor", choices=["local", "ray"], help="where chunks run (as for run)")
        q.add_argument("--ray-address", help="Ray cluster to attach to")
        q.add_argument("--resume", action="store_true", help="finish an interrupted run")
        q.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
        _target_options(q)
        if name == "study":
            q.add_argument("--scenarios", metavar="DIR", help="write every evaluated scenario as "
                           "DIR/<scenario_id>.toml and run nothing")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            for f in args.files:
                if _is_study(f):
                    from engine.study import load_study
                    st = load_study(f)
                    print(f"{f}: ok (study: {len(st.inputs)} inputs, {len(st.variants)} variants, "
                          f"{st.rows:,} design rows)")
                    continue
                s = load_scenario(f)
                print(f"{f}: ok ({len(s.candidates)} candidates, {len(s.ties)} ties, "
                      f"{len(s.institutions)} institutions)")
            return 0
        if args.command in ("study", "ablate"):
            return _study(args)
        return _run(args)
    except ScenarioError as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args) -> int:
    from engine.output import RunExistsError
    from engine.report import summary_text
    from engine.run import RunFailedError, RunSettingsError, forecast

    scenarios = [load_scenario(f) for f in args.scenarios]  # every file checked before anything runs
    try:
        result = forecast(scenarios, episodes=args.episodes, seed=args.seed, out=args.out,
                          run_id=args.run_id, workers=args.workers, chunk_size=args.chunk_size,
                          executor=args.executor, ray_address=args.ray_address,
                          keep_episodes=args.keep_episodes,
                          resume=args.resume, progress=False if args.quiet else None,
                          target_se=args.target_se, max_episodes=args.max_episodes,
                          return_tables=False)
    except (RunSettingsError, RunExistsError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailedError as exc:
        print(f"pivotal: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pivotal: interrupted; finished chunks are kept, rerun with --resume", file=sys.stderr)
        return 130
    print(result.run_id)
    if not args.quiet:
        print(summary_text(result, scenarios))
    if result.target:
        print(f"--target-se {result.target}")
    return 0


def _is_study(path) -> bool:
    """A study file names a base `scenario` (and has a design or variants); a scenario file
    names a `pivot`."""
    import tomllib
    try:
        doc = tomllib.loads(open(path, "rb").read().decode("utf-8"))
    except (OSError, ValueError):
        return False  # load_scenario reports it
    return "pivot" not in doc and bool({"scenario", "design", "inputs", "variants"} & set(doc))


def _study(args) -> int:
    from engine.output import RunExistsError
    from engine.run import RunFailedError, RunSettingsError
    from engine.study_run import ablate, comparisons_text, study, study_text, write_scenarios

    run = dict(out=args.out, run_id=args.run_id, workers=args.workers, chunk_size=args.chunk_size,
               executor=args.executor, ray_address=args.ray_address, resume=args.resume,
               progress=False if args.quiet else None, target_se=args.target_se,
               max_episodes=args.max_episodes, seed=args.seed, return_tables=False)
    if args.command == "study":
        from engine.study import load_study
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
    try:
        if args.command == "study":
            result = study(st, episodes=args.episodes, **run)
        else:
            result = ablate(scenario, episodes=args.episodes or 100_000, **run)
    except (RunSettingsError, RunExistsError) as exc:
        print(f"pivotal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailedError as exc:
        print(f"pivotal: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pivotal: interrupted; finished chunks are kept, rerun with --resume", file=sys.stderr)
        return 130
    print(result.run_id)
    if not args.quiet:
        if args.command == "study":
            print(study_text(result, st))
        else:
            from engine.report import summary_text
            import dataclasses
            print(summary_text(result, [dataclasses.replace(scenario, id="base")]))
            print(f"\nhow much each mechanism matters in {scenario.name}:")
            print(comparisons_text(result))
    if result.target:
        print(f"--target-se {result.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
