"""Ctrl-C and SIGTERM (what schedulers send) both interrupt a command the same way.

Raising from the handler stops the run wherever it is; the commands catch the
KeyboardInterrupt and say what was left behind. `received` remembers the
signals, so an interrupt that surfaced inside a library as another exception is
still reported as an interrupt, with SIGTERM's exit code 143 or Ctrl-C's 130.
"""
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


received: list[int] = []


def _interrupt(signum, frame):
    received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def handle_signals() -> None:
    """Install the handlers (again after a library such as Ray replaced them)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)


def exit_code() -> int:
    """143 after SIGTERM, else 130 (Ctrl-C)."""
    return 143 if signal.SIGTERM in received else 130
