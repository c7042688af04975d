"""Counter-based random variates: Philox4x32-10 keyed by (seed, episode, slot, purpose).

Every draw is a pure function of its key: the 64-bit study seed is the Philox
key, and the 128-bit counter is

    (episode low 32 bits, episode high 32 bits, slot, purpose << 24 | inner)

where *slot* is the 32-bit key of a candidate (a hash of its id) or of a
candidate tie (a hash of its pair of ids), never a position in a file
(engine/keys.py), and *inner* counts the blocks one variate needs (rejection
iterations, negotiation rounds). No stream state is shared, so episodes can
run in any order, on any thread.
"""
import math

import numpy as np
from numba import njit

# Purposes: one per kind of variate (see docs/MODEL.md, "Randomness").
CAPACITY = 1
PREFERENCE = 2   # one block: the preference draw and P's estimation error (first two uniforms)
TIE = 4
PEER_TIE = 5
DELAY = 6
WITHDRAWAL = 7

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


@njit(cache=True, inline="always")
def inverse_normal(u):
    """Standard normal quantile at u (Wichura's AS 241, PPND16; relative error ~1e-16).

    The tail branch for sqrt(-log(min(u, 1 - u))) > 5 is left out: our
    uniforms are at least 2**-33 away from 0 and 1, where that value is 4.78.
    """
    q = u - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r
                         + 67265.770927008700853) * r + 45921.953931549871457) * r
                       + 13731.693765509461125) * r + 1971.5909503065514427) * r
                     + 133.14166789178437745) * r + 3.387132872796366608) / (
            ((((((5226.495278852854561 * r + 28729.085735721942674) * r
                 + 39307.89580009271061) * r + 21213.794301586595867) * r
               + 5394.1960214247511077) * r + 687.1870074920579083) * r
             + 42.313330701600911252) * r + 1.0)
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


_BOOST_BLOCK = (1 << 24) - 1  # the block reserved for the shape < 1 boosts of a Beta draw


@njit(cache=True, inline="always")
def _gamma_constants(shape):
    """Marsaglia-Tsang constants (d, c) for Gamma(shape); shape < 1 is drawn as Gamma(shape + 1)."""
    d = shape - 1.0 / 3.0 if shape >= 1.0 else shape + 2.0 / 3.0
    return d, 1.0 / math.sqrt(9.0 * d)


@njit(cache=True, inline="always")
def _marsaglia_tsang(d, c, x, u):
    """One Marsaglia-Tsang trial from normal x and uniform u: d * v if accepted, else -1."""
    v = 1.0 + c * x
    if v <= 0.0:
        return -1.0
    v = v * v * v
    x2 = x * x
    if u < 1.0 - 0.0331 * x2 * x2 or math.log(u) < 0.5 * x2 + d - d * v + d * math.log(v):
        return d * v
    return -1.0


@njit(cache=True)
def beta_variate(mean, concentration, seed, episode, slot, purpose):
    """Beta(mean * conc, (1 - mean) * conc) as X / (X + Y) of two Gamma variates.

    mean 0 or 1 gives that value exactly. A shape below 1 is
    boosted, Gamma(a) = Gamma(a + 1) * U**(1/a), with U from a reserved block;
    the ratio is then formed on the log scale so tiny shapes do not underflow.
    Block j of the key feeds trial j of both gammas: normals from its first
    two uniforms (inverse CDF), acceptance uniforms from the last two.
    """
    if mean <= 0.0:
        return 0.0
    if mean >= 1.0:
        return 1.0
    a = mean * concentration
    b = (1.0 - mean) * concentration
    da, ca = _gamma_constants(a)
    db, cb = _gamma_constants(b)
    x = -1.0
    y = -1.0
    block = 0
    while x < 0.0 or y < 0.0:
        u0, u1, u2, u3 = uniforms(seed, episode, slot, purpose, block)
        block += 1
        if x < 0.0:
            x = _marsaglia_tsang(da, ca, inverse_normal(u0), u2)
        if y < 0.0:
            y = _marsaglia_tsang(db, cb, inverse_normal(u1), u3)
    if a >= 1.0 and b >= 1.0:
        return x / (x + y)
    _, _, ua, ub = uniforms(seed, episode, slot, purpose, _BOOST_BLOCK)
    log_x = math.log(x) + (math.log(ua) / a if a < 1.0 else 0.0)
    log_y = math.log(y) + (math.log(ub) / b if b < 1.0 else 0.0)
    return 1.0 / (1.0 + math.exp(log_y - log_x))


@njit(cache=True)
def beta_row(mean, concentration, key):
    """(mean, conc, fast, d_a, c_a, d_b, c_b, key): a row of Beta parameters for
    `beta_variates`; `key` is the slot of the draw (a candidate's or a tie's key)."""
    a = mean * concentration
    b = (1.0 - mean) * concentration
    if 0.0 < mean < 1.0 and a >= 1.0 and b >= 1.0:
        da, ca = _gamma_constants(a)
        db, cb = _gamma_constants(b)
        return mean, concentration, 1.0, da, ca, db, cb, float(key)
    return mean, concentration, 0.0, 0.0, 0.0, 0.0, 0.0, float(key)


@njit(cache=True)
def beta_variates(params, seed, purpose, episode, scratch, out):
    """out[j] = beta_variate(params[j, 0], params[j, 1], seed, episode, params[j, 7], purpose), all j.

    `params` rows come from `beta_row` (mean, concentration, the Gamma
    constants and the draw's key). The same numbers as the scalar draw, in two passes: first
    every row's block 0 (independent work the CPU overlaps), then the
    acceptance tests; the few rows that need another trial or a boost take
    the scalar path. `scratch` is a (4, >= rows) work array.
    """
    n = out.shape[0]
    for j in range(n):
        u0, u1, u2, u3 = uniforms(seed, episode, np.int64(params[j, 7]), purpose, 0)
        scratch[0, j] = inverse_normal(u0)
        scratch[1, j] = inverse_normal(u1)
        scratch[2, j] = u2
        scratch[3, j] = u3
    for j in range(n):
        mean = params[j, 0]
        concentration = params[j, 1]
        if params[j, 2] > 0.0:  # both shapes >= 1, mean in (0, 1): constants precomputed
            da, ca, db, cb = params[j, 3], params[j, 4], params[j, 5], params[j, 6]
            x = _marsaglia_tsang(da, ca, scratch[0, j], scratch[2, j])
            y = _marsaglia_tsang(db, cb, scratch[1, j], scratch[3, j])
            if x >= 0.0 and y >= 0.0:
                out[j] = x / (x + y)
                continue
        out[j] = beta_variate(mean, concentration, seed, episode, np.int64(params[j, 7]), purpose)


@njit(cache=True)
def normal_pair(seed, episode, slot, purpose):
    """Two independent standard normals from one block (inverse CDF)."""
    u0, u1, _, _ = uniforms(seed, episode, slot, purpose, 0)
    return inverse_normal(u0), inverse_normal(u1)
