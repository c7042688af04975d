"""`pivotal validate`, `warmup` and `run`: check scenario and study files, compile the kernels,
run scenarios and print their summary."""
from __future__ import annotations

import sys

from engine.cli.common import EXIT_USAGE, announce, count, guarded, target_options


def add_parsers(sub) -> None:
    from engine.execution.plan import DEFAULT_EPISODES, DEFAULT_SEED

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
    target_options(r)


def validate(args) -> int:
    """Check every file (a scenario or a study), one line each; exit 2 if any is refused."""
    from engine.model.scenario import ScenarioError, load_scenario
    from engine.studies.study import load_study

    refused = 0
    for f in args.files:
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


def run(args) -> int:
    from engine.forecast import plan_run, run_plan
    from engine.model.scenario import load_scenario
    from engine.outputs.text import summary_text

    scenarios = [load_scenario(f) for f in args.scenarios]  # every file checked before anything runs

    def start(run_id):
        plan = plan_run(scenarios, episodes=args.episodes, seed=args.seed, run_id=run_id,
                        workers=args.workers, chunk_size=args.chunk_size, executor=args.executor,
                        ray_address=args.ray_address, keep_episodes=args.keep_episodes,
                        target_se=args.target_se, max_episodes=args.max_episodes)
        announce(plan.run_id)
        result = run_plan(plan, out=args.out, resume=args.resume,
                          progress=False if args.quiet else None, read_back=False)
        if not args.quiet:
            print(summary_text(result))
        if result.target:
            print(f"--target-se {result.target}")
    return guarded(args, start)


def warmup(args) -> int:
    from engine.execution.executors import compile_kernels

    print(f"kernels ready ({compile_kernels():.1f} s)")
    return 0
