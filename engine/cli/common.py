"""What every command shares: argument types, one-line errors, exit codes, and the guard
around a run (engine/cli/*.py use these)."""
from __future__ import annotations

import argparse
import sys

from engine.execution.signals import exit_code, raise_if_received

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


class Parser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other error (the usage is in --help)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def target_options(p):
    p.add_argument("--target-se", type=float, metavar="X", help="add whole chunks until the success "
                   "probability's standard error is at most X in every scenario")
    p.add_argument("--max-episodes", type=count, help="cap on episodes per scenario with --target-se "
                   "(default 100 x --episodes)")


def guarded(args, start) -> int:
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
        print(f"pivotal: {environment_error(exc, run_id and run_directory(args.out, run_id))}",
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
    from engine.execution.supervisor import report, supervised

    if supervised():
        try:
            report("run", run_id, run_directory(out, run_id).kept_at())
        except Exception:  # noqa: BLE001 - a bad --out is reported by the run itself
            pass


def announce(run_id: str) -> None:
    """The first line of a run, before any work: the id to --resume with, whatever happens next."""
    raise_if_received()  # a Ctrl-C while the engine loaded, whose KeyboardInterrupt was lost
    print(run_id, flush=True)
    print(f"pivotal: run {run_id}", file=sys.stderr, flush=True)


def environment_error(exc: OSError, store) -> str:
    """One line for a file-system failure: the path, the cause, and whether --resume can finish."""
    where = f"{exc.filename}: " if exc.filename else ""
    cause = exc.strerror or str(exc)
    try:
        kept = len(store.finished_chunks()) if store and store.is_staged() else None
    except OSError:  # the checkpoints' object storage failed too: say what is known
        kept = "the"
    if kept is not None:
        then = (f"{kept} finished chunk(s) are kept: fix it and finish with "
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
    if store.is_staged():
        return (f"interrupted; {len(store.finished_chunks())} finished chunk(s) of run {store.run_id} "
                f"are kept: finish it with the same command and --resume --run-id {store.run_id}")
    return f"interrupted before run {store.run_id} started; nothing was written"

