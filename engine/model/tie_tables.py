"""Inverse-CDF tables of the Beta tie strengths (docs/MODEL.md, section 8).

Each tie's Beta(mean * conc, (1 - mean) * conc) is fixed for a scenario, so
its quantile function is tabulated once here (SciPy's `betaincinv`) and the
kernels draw a tie with one uniform and an interpolation
(`kernels.rng.beta_quantile`). Tables are built where chunks run
(`ModelArrays.kernel_args`) and cached by (mean, concentration): the rows of
a study mostly share their ties, and memory stays bounded however many rows
a study has.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

from kernels import rng

# the most negative log value stored: exp(-746.0) is exactly 0.0
_LOG_ZERO = -746.0
CACHED_TABLES = 2048  # tables kept (25 KB each), least recently used dropped first


def _build(mean: float, concentration: float) -> np.ndarray:
    """One row of `rng.BETA_ROW` floats: Beta(mean * conc, (1 - mean) * conc)'s quantile on
    the grid `kernels.rng.beta_quantile` reads. Mean 0 (1) gives a table that yields
    exactly 0 (1) at every u. The array is read-only (it is shared through the cache)."""
    row = np.empty(rng.BETA_ROW)
    body = slice(0, rng.BETA_LOWER)
    lower = slice(rng.BETA_LOWER, rng.BETA_UPPER)
    upper = slice(rng.BETA_UPPER, rng.BETA_ROW)
    if mean <= 0.0 or mean >= 1.0:
        value = 0.0 if mean <= 0.0 else 1.0
        row[body] = value
        row[lower] = np.log(value) if value > 0.0 else _LOG_ZERO
        row[upper] = _LOG_ZERO if value > 0.0 else 0.0
    else:
        from scipy.special import betaincinv

        a, b = mean * concentration, (1.0 - mean) * concentration
        row[body] = betaincinv(a, b, np.arange(rng.BETA_CELLS + 1) / rng.BETA_CELLS)
        tail_u = np.exp(np.linspace(rng.LOG_U_MIN, np.log(1.0 / rng.BETA_TAIL), rng.BETA_TAIL_NODES + 1))
        with np.errstate(divide="ignore"):
            row[lower] = np.maximum(np.log(betaincinv(a, b, tail_u)), _LOG_ZERO)
            # 1 - Q(1 - v) of Beta(a, b) is Q(v) of Beta(b, a), without the cancellation
            row[upper] = np.maximum(np.log(betaincinv(b, a, tail_u)), _LOG_ZERO)
        for part in (body, lower, upper):  # monotone nodes (betaincinv is not, by an ulp, or below 1e-300)
            row[part] = np.maximum.accumulate(row[part])
        if not np.isfinite(row).all():
            raise ValueError(f"no Beta quantile table for tie mean {mean}, concentration {concentration}")
    row.setflags(write=False)
    return row


_lock = threading.Lock()
_ready: OrderedDict = OrderedDict()     # (mean, concentration) -> table
_building: dict = {}                    # (mean, concentration) -> Event set when it is ready


def beta_tables(ties: list[tuple[float, float]]) -> np.ndarray:
    """(len(ties), rng.BETA_ROW) tables, one row per (mean, concentration).

    Tables are cached. Threads that ask for the same shapes at once (the thread slices of
    one chunk) share the work: each builds the shapes nobody is building yet and then waits
    for the others', so a shape is built once and distinct shapes in parallel
    (`betaincinv` releases the GIL). A table is the same whoever builds it."""
    if not ties:
        return np.zeros((0, rng.BETA_ROW))
    keys = [(float(m), float(c)) for m, c in ties]
    got, waiting = {}, []
    for key in dict.fromkeys(keys):
        with _lock:
            if key in _ready:
                _ready.move_to_end(key)
                got[key] = _ready[key]
                continue
            event = _building.get(key)
            mine = event is None
            if mine:
                event = _building[key] = threading.Event()
        if not mine:
            waiting.append((key, event))
            continue
        try:
            got[key] = _build(*key)
        finally:
            with _lock:
                if key in got:
                    _ready[key] = got[key]
                    while len(_ready) > CACHED_TABLES:
                        _ready.popitem(last=False)
                del _building[key]
            event.set()
    for key, event in waiting:
        event.wait()
        with _lock:
            table = _ready.get(key)
        got[key] = table if table is not None else _build(*key)  # dropped meanwhile, or failed
    return np.stack([got[k] for k in keys])


@contextmanager
def cache_at_least(tables: int):
    """Keep at least `tables` tables in this process while the block runs (a fit that reruns
    the same cases at many grid points builds each tie's table once); the usual bound after."""
    global CACHED_TABLES
    before = CACHED_TABLES
    CACHED_TABLES = max(before, int(tables))
    try:
        yield
    finally:
        with _lock:
            CACHED_TABLES = before
            while len(_ready) > CACHED_TABLES:
                _ready.popitem(last=False)


@lru_cache(maxsize=4)
def _stacked(shapes: bytes) -> np.ndarray:
    tables = beta_tables(np.frombuffer(shapes).reshape(-1, 2).tolist())
    tables.setflags(write=False)
    return tables


def stacked_beta_tables(shapes: np.ndarray) -> np.ndarray:
    """The tables of an (n, 2) array of (mean, concentration), as `beta_tables`; the last few
    stacks are kept, so the chunks of one scenario build theirs once."""
    return _stacked(np.ascontiguousarray(shapes, np.float64).tobytes())


# The shape grid (docs/MODEL.md, section 8): a study row's tie whose shape is not one of its base
# scenario's is drawn from the tables of the grid shapes around it, weighted linearly in the mean
# (nodes k / GRID_MEANS) and, when its concentration is not one of the base's either, in
# log2 of the concentration (nodes 2 ** (k / GRID_CONCENTRATIONS)).
GRID_MEANS = 512
GRID_CONCENTRATIONS = 16
ARENA_TABLES = 8192  # tables a process keeps for the shape grid (25 KB each) before starting afresh


def grid_parts(mean: float, concentration: float, exact_concentration: bool) -> list[tuple[tuple, float]]:
    """The grid tables ((mean, concentration) keys) and weights that draw a tie of this shape."""
    x = min(max(mean, 0.0), 1.0) * GRID_MEANS
    j = min(int(math.floor(x)), GRID_MEANS - 1)
    fm = x - j
    means = [(j / GRID_MEANS, 1.0 - fm), ((j + 1) / GRID_MEANS, fm)]
    if exact_concentration:
        concs = [(concentration, 1.0)]
    else:
        y = math.log2(concentration) * GRID_CONCENTRATIONS
        k = math.floor(y)
        fc = y - k
        concs = [(2.0 ** (k / GRID_CONCENTRATIONS), 1.0 - fc), (2.0 ** ((k + 1) / GRID_CONCENTRATIONS), fc)]
    return [((m, c), wm * wc) for m, wm in means for c, wc in concs if wm * wc > 0.0]


class _Arena:
    """One growing array of tables for the shape grid, shared by every row of a study: a row's
    mix names rows of it, so a row costs a few lookups, not a copy of its tables."""

    def __init__(self):
        self.array = np.zeros((0, rng.BETA_ROW))
        self.index: dict = {}
        self.lock = threading.Lock()

    def rows(self, keys: list) -> tuple[np.ndarray, list[int]]:
        """(the array, the row of each key), adding the tables it lacks (built once: threads
        asking at once wait for the first)."""
        with self.lock:
            new = [k for k in dict.fromkeys(keys) if k not in self.index]
            if new:
                if len(self.index) + len(new) > ARENA_TABLES:  # afresh (chunks running keep the old array)
                    self.array, self.index = np.zeros((0, rng.BETA_ROW)), {}
                    new = list(dict.fromkeys(keys))
                built = beta_tables(new)
                n = len(self.index)
                if n + len(new) > len(self.array):
                    grown = np.empty((max(2 * len(self.array), n + len(new), 64), rng.BETA_ROW))
                    grown[:n] = self.array[:n]
                    self.array = grown
                self.array[n:n + len(new)] = built
                self.index.update({k: n + r for r, k in enumerate(new)})
            return self.array, [self.index[k] for k in keys]


_arena = _Arena()


@lru_cache(maxsize=64)
def _identity_mix(n: int) -> np.ndarray:
    mix = np.zeros((n, 2 * rng.MIX_PARTS))
    mix[:, 1:rng.MIX_PARTS] = -1.0
    mix[:, 0] = np.arange(n)
    mix[:, rng.MIX_PARTS] = 1.0
    mix.setflags(write=False)
    return mix


def kernel_tables(shapes: np.ndarray, grid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The tables and the mix (kernels.rng.tie_draw) of an (n, 2) array of tie shapes. `grid[s]`
    is 0 for a shape drawn from its own table, 1 for one drawn from the shape grid in the mean
    (its concentration exact), 2 in both; None: every shape from its own table (a plain run)."""
    if grid is None or not grid.any():
        return stacked_beta_tables(shapes), _identity_mix(len(shapes))
    parts = []
    for (mean, conc), how in zip(shapes.tolist(), grid.tolist()):
        parts.append([((mean, conc), 1.0)] if how == 0 else grid_parts(mean, conc, how == 1))
    array, rows = _arena.rows([key for p in parts for key, _ in p])
    mix = np.empty((len(shapes), 2 * rng.MIX_PARTS))
    _fill_mix(mix, enumerate(parts), rows, 0)
    return array, mix


def _fill_mix(mix: np.ndarray, entries, table_rows, at: int) -> int:
    """Write each (shape, parts) of `entries` into its row of `mix`: the table rows of its parts
    (from `table_rows[at]` on, in order) and their weights, unused columns -1 and 0. Returns the
    next unread position of `table_rows`."""
    for s, p in entries:
        mix[s, :rng.MIX_PARTS] = -1.0
        mix[s, rng.MIX_PARTS:] = 0.0
        for k, (_, weight) in enumerate(p):
            mix[s, k], mix[s, rng.MIX_PARTS + k] = table_rows[at], weight
            at += 1
    return at


def block_tables(shapes: np.ndarray, base: np.ndarray, exact) -> tuple[np.ndarray, np.ndarray]:
    """The tables and the mixes, (R, n, 2 * MIX_PARTS), of a block of R study rows whose tie shapes
    are `shapes` (R, n, 2): each tie drawn as `kernel_tables` draws a row's (a shape of the base,
    `exact`, from its own table; any other from the shape grid, with the same parts and weights
    as `grid_parts`). Rows whose shapes are all the base's (`base`, (n, 2)) share its tables."""
    rows, n = shapes.shape[0], shapes.shape[1]
    if np.array_equal(shapes, np.broadcast_to(base, shapes.shape)):
        mix = np.broadcast_to(_identity_mix(n), (rows, n, 2 * rng.MIX_PARTS))
        return stacked_beta_tables(base), mix
    flat = shapes.reshape(-1, 2)
    changed = np.flatnonzero(np.any(flat != np.tile(base, (rows, 1)), axis=1))
    mean, conc = flat[changed, 0], flat[changed, 1]
    on_grid = np.array([c in exact.concentrations and (m, c) not in exact.shapes
                        for m, c in zip(mean.tolist(), conc.tolist())], bool)
    # the mean grid (the concentration one of the base's), vectorised as grid_parts computes it
    x = np.clip(mean[on_grid], 0.0, 1.0) * GRID_MEANS
    j = np.minimum(np.floor(x), GRID_MEANS - 1)
    fm = x - j
    c = conc[on_grid]
    keys = [tuple(shape) for shape in base.tolist()]
    lower = list(zip((j / GRID_MEANS).tolist(), c.tolist()))
    upper = list(zip(((j + 1) / GRID_MEANS).tolist(), c.tolist()))
    others = [(s, [((m, cc), 1.0)] if (m, cc) in exact.shapes else grid_parts(m, cc, cc in exact.concentrations))
              for s, m, cc in zip(changed[~on_grid].tolist(), mean[~on_grid].tolist(), conc[~on_grid].tolist())]
    array, table_rows = _arena.rows(keys + lower + upper + [key for _, p in others for key, _ in p])
    table_rows = np.array(table_rows, np.float64)
    mix = np.full((rows * n, 2 * rng.MIX_PARTS), -1.0)
    mix[:, rng.MIX_PARTS:] = 0.0
    mix[:, 0] = np.tile(table_rows[:n], rows)
    mix[:, rng.MIX_PARTS] = 1.0
    g = changed[on_grid]
    m = len(g)
    low_rows, high_rows = table_rows[n:n + m], table_rows[n + m:n + 2 * m]
    both = (1.0 - fm > 0.0) & (fm > 0.0)
    mix[g, 0] = np.where(1.0 - fm > 0.0, low_rows, high_rows)
    mix[g, rng.MIX_PARTS] = np.where(1.0 - fm > 0.0, 1.0 - fm, fm)
    mix[g, 1] = np.where(both, high_rows, -1.0)
    mix[g, rng.MIX_PARTS + 1] = np.where(both, fm, 0.0)
    _fill_mix(mix, others, table_rows, n + 2 * m)
    return array, mix.reshape(rows, n, 2 * rng.MIX_PARTS)
