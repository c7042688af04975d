"""The progress bar of a run: tqdm's when it is installed (`pivotal[progress]`), else a plain
line on stderr every few seconds, as emcee falls back when its optional backends are missing."""
from __future__ import annotations

import sys
import time


class PlainProgress:
    """A tqdm-like counter that prints `episodes: done/total (pct)` at most every `every` s."""

    def __init__(self, total: int, initial: int = 0, disable: bool = False, every: float = 5.0, **_):
        self.total, self.n, self.disable, self.every = total, initial, disable, every
        self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.n += n
        if not self.disable and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            print(f"episodes: {self.n:,}/{self.total:,} ({self.n / max(self.total, 1):.0%})",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, initial: int, disable: bool):
    """A progress bar over `total` episodes, `initial` of them done already (a resume)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, initial, disable)
    return tqdm(total=total, initial=initial, unit="episodes", unit_scale=True, delay=2.0,
                disable=disable, leave=False, desc="episodes")
