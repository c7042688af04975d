"""The `pivotal` command's entry point.

Its first act is to handle Ctrl-C and SIGTERM, so a signal while the engine loads
ends the command with one line, never a traceback; engine/cli/main.py's handlers stop a
command cleanly from there on. Only what Python does before this module runs (its
start-up and `site`, about 20 ms) is left to Python's default.

A run that may use Ray is *supervised*: the command runs in a child process (the
driver) and this process waits for it (engine/execution/supervisor.py).
"""
import os
import sys

import _signal  # the C module behind `signal`: `import signal` alone takes milliseconds

from engine.execution import supervisor  # (imports only os and sys) reads its pipe now, before Ray starts

RUN_COMMANDS = ("run", "study", "ablate", "suite")


def _exit(signum, frame):
    os.write(2, b"pivotal: interrupted before the command started; nothing was written\n")
    os._exit(128 + signum)  # 130 (Ctrl-C) or 143 (SIGTERM), as later on


def exit_at_once() -> None:
    """Until a command installs its own handlers, a signal ends the process at once with one
    line: nothing has been written yet (call from the main thread)."""
    _signal.signal(_signal.SIGINT, _exit)
    _signal.signal(_signal.SIGTERM, _exit)


exit_at_once()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not supervisor.supervised() and _may_use_ray(argv):
        return supervisor.supervise(argv)
    from engine.cli.main import main as run_command

    return exit_now_if_interrupted(run_command(argv))


def exit_now_if_interrupted(code: int) -> int:
    """After Ctrl-C or SIGTERM (130, 143), end the process now, with that code, once the atexit
    handlers ran (run-id locks, Ray's shutdown): an interrupt that surfaced inside code a
    library ran through `PyRun_*` (pyo3, Cython) makes Python's own exit kill the process
    with SIGINT instead, although the command handled it."""
    if code in (130, 143):
        import atexit
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _may_use_ray(argv) -> bool:
    """A run, study or ablation that may use Ray (erring towards yes: supervising a local run
    costs one process start)."""
    return bool(argv) and argv[0] in RUN_COMMANDS and (
        bool(os.environ.get("RAY_ADDRESS")) or any("ray" in a for a in argv[1:] if a.startswith("-"))
        or "ray" in argv)


if __name__ == "__main__":  # python -m engine.cli.start ...: the command, as installed
    sys.exit(main())
