"""Counter-based random variates: Philox4x32-10 keyed by (seed, episode, slot, purpose).

Every draw is a pure function of its key: the 64-bit study seed is the Philox
key, and the 128-bit counter is

    (episode low 32 bits, episode high 32 bits, slot, purpose << 24 | inner)

where *slot* is the 32-bit key of a candidate (a hash of its id) or of a
candidate tie (a hash of its pair of ids), never a position in a file
(engine/model/keys.py), and *inner* numbers the blocks of one slot and purpose (negotiation
rounds). No stream state is shared, so episodes can
run in any order, on any thread.
"""
import math

import numpy as np
from numba import njit

# Purposes: one per kind of block (see docs/MODEL.md, "Randomness").
JOIN = 1        # a joiner's block: its contribution (u0) and its time to withdraw (u1)
CANDIDATE = 2   # a candidate's block: preference (u0), P's estimation error (u1), tie (u2), round-1 delay (u3)
PEER_TIE = 5    # a candidate tie's block: its strength (u0)
DELAY = 6       # block r: the delay of round r >= 2 (u0)
CHANNEL = 7     # a candidate's per-mechanism ties: information (u0), linkage (u1), credibility (u2)

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_TO_UNIT = 1.0 / 4294967296.0


@njit(cache=True, inline="always")
def philox4x32(k0, k1, c0, c1, c2, c3):
    """Philox4x32-10 block: 2-word key, 4-word counter -> 4 words (as uint64 < 2**32)."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        hi0 = p0 >> _SHIFT32
        lo0 = p0 & _MASK32
        hi1 = p1 >> _SHIFT32
        lo1 = p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def uniforms(seed, episode, slot, purpose, inner):
    """Four independent U(0, 1) variates (open interval) for one key and block."""
    k0 = np.uint64(seed) & _MASK32
    k1 = np.uint64(seed) >> _SHIFT32
    ep = np.uint64(episode)
    x0, x1, x2, x3 = philox4x32(
        k0, k1, ep & _MASK32, ep >> _SHIFT32,
        np.uint64(slot) & _MASK32,
        (np.uint64(purpose) << np.uint64(24)) | np.uint64(inner),
    )
    return ((x0 + 0.5) * _TO_UNIT, (x1 + 0.5) * _TO_UNIT,
            (x2 + 0.5) * _TO_UNIT, (x3 + 0.5) * _TO_UNIT)


NORMAL_CENTRAL = 0.425  # |u - 0.5| up to this: AS 241's central approximation


@njit(cache=True, inline="always")
def normal_central(u):
    """AS 241's central approximation of the normal quantile (valid for |u - 0.5| <= 0.425);
    branch-free, so a loop of them runs in SIMD."""
    q = u - 0.5
    r = 0.180625 - q * q
    return q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r
                     + 67265.770927008700853) * r + 45921.953931549871457) * r
                   + 13731.693765509461125) * r + 1971.5909503065514427) * r
                 + 133.14166789178437745) * r + 3.387132872796366608) / (
        ((((((5226.495278852854561 * r + 28729.085735721942674) * r
             + 39307.89580009271061) * r + 21213.794301586595867) * r
           + 5394.1960214247511077) * r + 687.1870074920579083) * r
         + 42.313330701600911252) * r + 1.0)


@njit(cache=True, inline="always")
def normal_tail(u):
    """AS 241's intermediate approximation of the normal quantile, for |u - 0.5| > 0.425."""
    q = u - 0.5
    r = math.sqrt(-math.log(u if q < 0.0 else 1.0 - u)) - 1.6
    z = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r
              + 0.24178072517745061177) * r + 1.27045825245236838258) * r
            + 3.64784832476320460504) * r + 5.7694972214606914055) * r
          + 4.6303378461565452959) * r + 1.42343711074968357734) / (
        ((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r
             + 0.0151986665636164571966) * r + 0.14810397642748007459) * r
           + 0.68976733498510000455) * r + 1.6763848301838038494) * r
         + 2.05319162663775882187) * r + 1.0)
    return -z if q < 0.0 else z


@njit(cache=True, inline="always")
def inverse_normal(u):
    """Standard normal quantile at u (Wichura's AS 241, PPND16; relative error ~1e-16).

    The tail branch for sqrt(-log(min(u, 1 - u))) > 5 is left out: our
    uniforms are at least 2**-33 away from 0 and 1, where that value is 4.78.
    """
    if abs(u - 0.5) <= NORMAL_CENTRAL:
        return normal_central(u)
    return normal_tail(u)


@njit(cache=True)
def exponential(seed, episode, slot, purpose, inner):
    """Exponential(1) variate: multiply by the mean (or divide by the rate)."""
    u0, _, _, _ = uniforms(seed, episode, slot, purpose, inner)
    return -math.log(u0)


@njit(cache=True)
def triangular(low, mode, high, u):
    """Inverse CDF of Triangular(low, mode, high) at u."""
    span = high - low
    if span <= 0.0:
        return low
    if u * span < mode - low:
        return low + math.sqrt(u * span * (mode - low))
    return high - math.sqrt((1.0 - u) * span * (high - mode))


# Beta inverse-CDF tables (engine/model/tie_tables.py builds them; docs/MODEL.md, section 8): a row
# holds Q(k / BETA_CELLS), k = 0..BETA_CELLS, the Beta quantile on a uniform grid, then the lower
# and upper tails, u < 1 / BETA_TAIL and u > 1 - 1 / BETA_TAIL, as log Q (resp. log(1 - Q)) at
# BETA_TAIL_NODES + 1 points evenly spaced in log u (resp. log(1 - u)) from log 2**-33, the
# smallest uniform, to log(1 / BETA_TAIL).
BETA_CELLS = 1024
BETA_TAIL = 32
BETA_TAIL_NODES = 1024
BETA_LOWER = BETA_CELLS + 1                      # first column of the lower tail
BETA_UPPER = BETA_LOWER + BETA_TAIL_NODES + 1    # first column of the upper tail
BETA_ROW = BETA_UPPER + BETA_TAIL_NODES + 1      # columns of a table row
LOG_U_MIN = math.log(2.0**-33)
_TAIL_SCALE = BETA_TAIL_NODES / (math.log(1.0 / BETA_TAIL) - LOG_U_MIN)
_FIRST_BODY_CELL = BETA_CELLS // BETA_TAIL
_LAST_BODY_CELL = BETA_CELLS - BETA_CELLS // BETA_TAIL - 1


@njit(cache=True)
def _beta_tail(table, row, u):
    """Tail of `beta_quantile`: log Q linear in log u (log(1 - Q) in log(1 - u) above)."""
    upper = u > 0.5
    s = (math.log(1.0 - u if upper else u) - LOG_U_MIN) * _TAIL_SCALE
    j = min(max(int(s), 0), BETA_TAIL_NODES - 1)
    c = (BETA_UPPER if upper else BETA_LOWER) + j
    lo = table[row, c]
    x = math.exp(lo + (s - j) * (table[row, c + 1] - lo))
    # clamped to the body's end node: 1 - x loses a Q far below 1e-16 to rounding (a tiny shape)
    return max(1.0 - x, table[row, _LAST_BODY_CELL + 1]) if upper else min(x, table[row, _FIRST_BODY_CELL])


@njit(cache=True, inline="always")
def beta_quantile(table, row, u):
    """The Beta quantile of `table[row]` at u: linear interpolation on a grid of 1024 cells,
    in log scale in the tails (u < 1/32 or u > 31/32). Monotone in u."""
    x = u * BETA_CELLS
    k = int(x)
    if _FIRST_BODY_CELL <= k <= _LAST_BODY_CELL:
        lo = table[row, k]
        return lo + (x - k) * (table[row, k + 1] - lo)
    return _beta_tail(table, row, u)


# A tie's mix (engine/model/tie_tables.py: `kernel_tables`; docs/MODEL.md, section 8): row s of the
# (n_shapes, 2 * MIX_PARTS) mix names up to MIX_PARTS rows of the tables (columns 0..3, -1 unused)
# and their weights (columns 4..7). A tie drawn from its own table has one part (column 1 is -1):
# its draw is that table's quantile, nothing else. A study row's tie of a shape no table was built
# for is drawn from the tables of the neighbouring shapes of the shape grid, weighted.
MIX_PARTS = 4


@njit(cache=True, inline="always")
def tie_draw(tables, mix, s, u):
    """Tie strength of shape `s` at u: its table's quantile, or the weighted quantiles of the
    shape-grid tables around it (the same u: monotone in u)."""
    q = beta_quantile(tables, int(mix[s, 0]), u)
    if mix[s, 1] < 0.0:
        return q
    q *= mix[s, MIX_PARTS]
    for k in range(1, MIX_PARTS):
        if mix[s, k] >= 0.0:
            q += mix[s, MIX_PARTS + k] * beta_quantile(tables, int(mix[s, k]), u)
    return q


@njit(cache=True)
def normal_pair(seed, episode, slot, purpose):
    """Two independent standard normals from one block (inverse CDF)."""
    u0, u1, _, _ = uniforms(seed, episode, slot, purpose, 0)
    return inverse_normal(u0), inverse_normal(u1)
