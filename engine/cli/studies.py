"""`pivotal study`, `ablate` and `discover` (docs/STUDIES.md)."""
from __future__ import annotations

import sys

from engine.cli.common import EXIT_USAGE, announce, count, guarded, target_options


def add_parsers(sub):
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
        target_options(q)
        if name == "study":
            q.add_argument("--scenarios", metavar="DIR", help="write every evaluated scenario as "
                           "DIR/<scenario_id>.toml and run nothing")
            q.add_argument("--export", nargs=2, metavar=("FORMAT", "DIR"), help="after the run, write "
                           "it for another tool: `ema DIR` writes DIR/<run_id>.tar.gz, EMA Workbench's "
                           "(experiments, outcomes) for load_results (needs pivotal[ema])")
    _discover_parser(sub)


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


def study(args) -> int:
    from engine.model.scenario import load_scenario
    from engine.outputs.text import summary_text
    from engine.studies.run import (ablation_plan, comparisons_text, run_ablation, run_study, study_plan,
                                    study_text, write_scenarios)

    settings = dict(workers=args.workers, chunk_size=args.chunk_size, executor=args.executor,
                    ray_address=args.ray_address, target_se=args.target_se,
                    max_episodes=args.max_episodes)
    run = dict(out=args.out, resume=args.resume, progress=False if args.quiet else None, read_back=False)
    if args.command == "study":
        from engine.studies.study import load_study
        if args.export and args.export[0] != "ema":
            print(f"pivotal: error: --export: unknown format {args.export[0]!r} (known: ema)", file=sys.stderr)
            return EXIT_USAGE
        if args.export:
            try:
                import ema_workbench  # noqa: F401 - refused before the run, not after it
            except ImportError:
                from engine.studies.ema import INSTALL_HINT
                print(f"pivotal: error: --export ema: {INSTALL_HINT}", file=sys.stderr)
                return EXIT_USAGE
        st = load_study(args.file)  # every row and variant checked before anything runs
        if args.export and not st.inputs:
            print(f"pivotal: error: --export ema: {args.file} has no [design] rows to export", file=sys.stderr)
            return EXIT_USAGE
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

    def start(run_id):
        if args.command == "study":
            plan = study_plan(st, episodes=args.episodes, seed=args.seed, run_id=run_id, **settings)
            announce(plan.run_id)
            result = run_study(st, plan, **run)
        else:
            plan, names = ablation_plan(scenario, episodes=100_000 if args.episodes is None else args.episodes,
                                        seed=1 if args.seed is None else args.seed, run_id=run_id,
                                        **settings)
            announce(plan.run_id)
            result = run_ablation(plan, names, **run)
        if not args.quiet:
            if args.command == "study":
                print(study_text(result, st))
            else:
                print(summary_text(result, max_scenarios=1))
                print(f"\nhow much each mechanism matters in {scenario.name}:")
                print(comparisons_text(result))
        if result.target:
            print(f"--target-se {result.target}")
        if args.command == "study" and args.export:
            _export_ema(args.out, result.run_id, args.export[1], args.quiet)
    return guarded(args, start)


def discover(args) -> int:
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



def _export_ema(out, run_id: str, directory, quiet: bool) -> None:
    """EMA Workbench's (experiments, outcomes) of a study run as DIR/<run_id>.tar.gz."""
    from pathlib import Path

    from engine.studies.ema import results

    from ema_workbench import save_results
    Path(directory).mkdir(parents=True, exist_ok=True)
    target = Path(directory) / f"{run_id}.tar.gz"
    tmp = target.with_name(target.name + ".tmp.tar.gz")
    save_results(results(out, run_id), str(tmp))
    tmp.replace(target)
    if not quiet:
        print(f"exported {target} (EMA Workbench: ema_workbench.load_results)")
