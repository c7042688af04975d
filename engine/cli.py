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
    _discover_parser(sub)
    return p


def _discover_parser(sub) -> None:
    from engine import discovery as d

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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            for f in args.files:
                s = load_scenario(f)
                print(f"{f}: ok ({len(s.candidates)} candidates, {len(s.ties)} ties, "
                      f"{len(s.institutions)} institutions)")
            return 0
        if args.command == "discover":
            return _discover(args)
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
                          resume=args.resume, progress=False if args.quiet else None)
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
    return 0


def _discover(args) -> int:
    from engine.discovery import DiscoveryError, discover, publish_discovery

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


if __name__ == "__main__":
    sys.exit(main())
