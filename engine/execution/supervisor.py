"""The supervisor of a run that may use Ray, and the driver's pipe to it.

A run that may use Ray runs in a child process (the driver) while the `pivotal`
command's process waits for it (engine/cli/start.py). Ray's C++ core ends a driver
at once, with no Python code run, when its node fails (a Ray process killed, out of
memory); the supervisor then says so in one line with the --resume hint, and stops
the Ray processes the driver had started, which Ray would leave running for about a
minute. The driver tells the supervisor what it needs through a pipe (`report`).
"""
import os
import sys

import _signal

STATUS_FD = "PIVOTAL_STATUS_FD"  # the driver's end of the pipe to its supervisor


def supervise(argv) -> int:
    """Run the command in a child process and report how it ended if it could not."""
    import subprocess

    read_end, write_end = os.pipe()
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # Ctrl-C reaches the driver too: it stops cleanly
    driver = subprocess.Popen([sys.executable, "-m", "engine.cli", *argv], pass_fds=(write_end,),
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
    """What the run left behind, from its staging directory (only the journal reader is imported)."""
    if not runs:
        return "nothing was written"
    run_id, staging = runs[-1]
    if "://" in staging:  # checkpoints in object storage (engine/outputs/checkpoints.py)
        return (f"finished chunks of run {run_id}, if any, are kept in {staging}: finish it with the "
                f"same command and --resume --run-id {run_id}")
    if not os.path.isdir(os.path.join(staging, "chunks")):
        return f"nothing of run {run_id} was written: run it again"
    from engine.execution.journal import count  # (standard library only)
    chunks = count(os.path.join(staging, "chunks"))
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
