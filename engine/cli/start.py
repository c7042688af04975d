"""The `pivotal` command's entry point.

Its first act is to handle Ctrl-C and SIGTERM, so a signal while the engine loads
ends the command with one line, never a traceback; engine/cli/main.py's handlers stop a
command cleanly from there on. Only what Python does before this module runs (its
start-up and `site`, about 20 ms) is left to Python's default.

A run that may use Ray is *supervised*: the command runs in a child process (the
driver) and this process waits for it. Ray's C++ core ends a driver at once, with no
Python code run, when its node fails (a Ray process killed, out of memory); the
supervisor then says so in one line with the --resume hint, and stops the Ray
processes the driver had started, which Ray would leave running for about a minute.
The driver tells the supervisor what it needs through a pipe (`report`).
"""
import os
import sys

import _signal  # the C module behind `signal`: `import signal` alone takes milliseconds

STATUS_FD = "PIVOTAL_STATUS_FD"  # the driver's end of the pipe to its supervisor
RUN_COMMANDS = ("run", "study", "ablate")


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
    if _status_fd is None and _may_use_ray(argv):
        return supervise(argv)
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


def supervise(argv) -> int:
    """Run the command in a child process and report how it ended if it could not."""
    import subprocess

    read_end, write_end = os.pipe()
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # Ctrl-C reaches the driver too: it stops cleanly
    driver = subprocess.Popen([sys.executable, "-m", "engine.cli.main", *argv], pass_fds=(write_end,),
                              env={**os.environ, STATUS_FD: str(write_end)}, preexec_fn=_as_driver)
    os.close(write_end)
    _signal.signal(_signal.SIGTERM, lambda signum, frame: driver.send_signal(signum))
    code = driver.wait()
    os.set_blocking(read_end, False)
    status = _read_all(read_end).decode(errors="replace").splitlines()
    if "end" in status:  # the driver finished in Python: it said what happened itself
        return code
    runs = [line.split("\t")[1:] for line in status if line.startswith("run\t")]
    stopped = _stop_ray([line.split("\t")[1:] for line in status if line.startswith("ray\t")])
    how = (f"was killed by signal {-code}" if code < 0 else
           f"was ended by Ray (exit code {code}; a Ray process of its node failed: killed, or out "
           "of memory)")
    print(f"pivotal: run failed: the driver process {how}{stopped}; {_left(runs)}", file=sys.stderr)
    return 1


def _as_driver() -> None:
    """In the driver, before it starts: Ctrl-C as usual, and end with the supervisor."""
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: never outlive the command
    except (OSError, AttributeError):  # not Linux: the driver may outlive a killed supervisor
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(fd)
    return b"".join(chunks)


def _left(runs) -> str:
    """What the run left behind, from its staging directory (nothing is imported for it)."""
    if not runs:
        return "nothing was written"
    run_id, staging = runs[-1]
    try:
        chunks = sum(name.endswith(".npz") for name in os.listdir(os.path.join(staging, "chunks")))
    except OSError:
        return f"nothing of run {run_id} was written: run it again"
    return (f"{chunks} finished chunk(s) of run {run_id} are kept: finish it with the same command "
            f"and --resume --run-id {run_id}")


def _stop_ray(processes) -> str:
    """Stop the Ray processes the driver started that are still running (a process is known by
    its pid and start time, so a reused pid is never touched)."""
    try:
        import psutil
    except ImportError:
        return ""
    stopped = 0
    for pid, started in processes:
        try:
            process = psutil.Process(int(pid))
            if abs(process.create_time() - float(started)) < 1e-3:
                process.kill()
                stopped += 1
        except (psutil.Error, ValueError):
            continue
    return f"; {stopped} leftover Ray process(es) it started were stopped" if stopped else ""


def supervised() -> bool:
    """Whether this process is a driver with a supervisor to `report` to."""
    return _status_fd is not None


def report(*fields) -> None:
    """Tell the supervisor (if any) one fact: `run <id> <staging>`, `ray <pid> <start time>`;
    `end` is sent when the driver exits through Python."""
    fd = _status_fd
    if fd is None:
        return
    if not _reported:
        import atexit
        atexit.register(_end)  # registered before Ray's own shutdown, so it runs after it
        _reported.append(True)
    try:
        os.write(int(fd), ("\t".join(map(str, fields)) + "\n").encode())
    except OSError:  # the supervisor is gone
        pass


_reported: list = []
_status_fd = os.environ.pop(STATUS_FD, None)  # (not inherited by the processes Ray starts)


def _end() -> None:
    report("end")


if __name__ == "__main__":  # python -m engine.cli.start ...: the command, as installed
    sys.exit(main())
