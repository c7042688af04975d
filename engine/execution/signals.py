"""Ctrl-C and SIGTERM (what schedulers send) both interrupt a command the same way.

Raising from the handler stops the run wherever it is; the commands catch the
KeyboardInterrupt and say what was left behind. `received` remembers the
signals, so an interrupt that surfaced inside a library as another exception is
still reported as an interrupt, with SIGTERM's exit code 143 or Ctrl-C's 130.
"""
import signal
import sys
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


received: list[int] = []
in_command = False  # a `pivotal` command is running (engine/cli/main.py): every signal in `received` is its own


def _interrupt(signum, frame):
    received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def handle_signals() -> None:
    """Install the handlers (again after a library such as Ray replaced them)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _quiet_interrupts


def _quiet_interrupts(unraisable) -> None:
    """An interrupt Python had to drop (raised in a weakref callback or `__del__`) is not printed
    as a traceback: `received` holds it, and `raise_if_received` raises it again."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def raise_if_received(since: int = 0) -> None:
    """Raise the interrupt of a signal received after the first `since`, in case the handler's
    exception was lost: Python ignores exceptions raised in `__del__` methods and weakref
    callbacks (an import's module lock has one), where a signal can land."""
    if len(received) > since:
        raise Terminated() if received[-1] == signal.SIGTERM else KeyboardInterrupt()


def since_start() -> int:
    """How many signals in `received` came before the work now starting: none inside a command
    (main cleared them), those of earlier calls for the Python API in a long-lived process."""
    return 0 if in_command else len(received)


def exit_code() -> int:
    """143 after SIGTERM, else 130 (Ctrl-C)."""
    return 143 if signal.SIGTERM in received else 130
