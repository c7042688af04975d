"""Counter-based random variates: Philox4x32-10 keyed by (seed, episode, slot, purpose).

Every draw is a pure function of its key: the 64-bit study seed is the Philox
key, and the 128-bit counter is

    (episode low 32 bits, episode high 32 bits, slot, purpose << 24 | inner)

where *slot* is a candidate or candidate-tie index and *inner* counts the
blocks one variate needs (rejection iterations, negotiation rounds). No
stream state is shared, so episodes can run in any order, on any thread.
"""
import math

import numpy as np
from numba import njit

# Purposes: one per kind of variate (see docs/MODEL.md, "Randomness").
CAPACITY = 1
PREFERENCE = 2
ESTIMATE = 3
TIE_X = 4
TIE_Y = 5
PEER_TIE_X = 6
PEER_TIE_Y = 7
DELAY = 8
WITHDRAWAL = 9

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_TO_UNIT = 1.0 / 4294967296.0
_TWO_PI = 2.0 * math.pi


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


@njit(cache=True, inline="always")
def box_muller(u0, u1):
    """One standard normal variate from two uniforms."""
    return math.sqrt(-2.0 * math.log(u0)) * math.cos(_TWO_PI * u1)


@njit(cache=True)
def normal(seed, episode, slot, purpose):
    u0, u1, _, _ = uniforms(seed, episode, slot, purpose, 0)
    return box_muller(u0, u1)


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


@njit(cache=True)
def log_gamma_variate(shape, seed, episode, slot, purpose):
    """log of a Gamma(shape, 1) variate (Marsaglia-Tsang; shape < 1 boosted).

    Working on the log scale keeps tiny shapes (Beta with a mean near 0 or 1)
    from underflowing to zero.
    """
    boost = 0.0
    d = shape - 1.0 / 3.0
    if shape < 1.0:
        d = shape + 2.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    inner = 0
    while True:
        u0, u1, u2, u3 = uniforms(seed, episode, slot, purpose, inner)
        if inner == 0 and shape < 1.0:
            boost = math.log(u3) / shape
        inner += 1
        x = box_muller(u0, u1)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        if math.log(u2) < 0.5 * x * x + d - d * v + d * math.log(v):
            return math.log(d * v) + boost


@njit(cache=True)
def beta_variate(mean, concentration, seed, episode, slot, purpose_x, purpose_y):
    """Beta(mean * conc, (1 - mean) * conc); mean 0 or 1 gives that value exactly."""
    if mean <= 0.0:
        return 0.0
    if mean >= 1.0:
        return 1.0
    lx = log_gamma_variate(mean * concentration, seed, episode, slot, purpose_x)
    ly = log_gamma_variate((1.0 - mean) * concentration, seed, episode, slot, purpose_y)
    return 1.0 / (1.0 + math.exp(ly - lx))
