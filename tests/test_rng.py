"""The counter-based generator: known answers, purity, and the variates' distributions."""
import math
import statistics

import numpy as np
import pytest
from numba import njit
from scipy import stats

from engine.keys import candidate_key
from kernels import rng

# Random123 known-answer vectors for Philox4x32-10: counter, key -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    words = [np.uint64(x) for x in (*key, *counter)]
    assert tuple(int(x) for x in rng.philox4x32(*words)) == expected


def test_inverse_normal_matches_reference():
    u = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 20001), [2.0**-33, 1 - 2.0**-33, 0.075, 0.925]])
    ours = np.array([rng.inverse_normal(x) for x in u])
    ref = np.array([statistics.NormalDist().inv_cdf(x) for x in u])
    np.testing.assert_allclose(ours, ref, rtol=1e-14, atol=1e-14)


@njit
def _betas(mean, conc, n, slot):
    out = np.empty(n)
    for e in range(n):
        out[e] = rng.beta_variate(mean, conc, 11, e, slot, rng.TIE)
    return out


@njit
def _uniform_block(seed, episode, slot, purpose, inner):
    return rng.uniforms(seed, episode, slot, purpose, inner)


@pytest.mark.parametrize("mean,conc", [(0.5, 20.0), (0.85, 30.0), (0.1, 5.0), (0.3, 0.7), (0.02, 1.0)])
def test_beta_variates_follow_beta(mean, conc):
    x = _betas(mean, conc, 100_000, 3)
    assert stats.kstest(x, stats.beta(mean * conc, (1 - mean) * conc).cdf).pvalue > 1e-4
    assert abs(x.mean() - mean) < 5 * math.sqrt(mean * (1 - mean) / (conc + 1) / len(x))


def test_beta_extremes_are_exact():
    assert (_betas(0.0, 5.0, 100, 0) == 0.0).all()
    assert (_betas(1.0, 5.0, 100, 0) == 1.0).all()


def test_draws_are_pure_functions_of_their_key():
    a = _uniform_block(5, 123456789012, 7, rng.DELAY, 2)
    _uniform_block(5, 1, 2, rng.TIE, 0)  # other draws in between change nothing
    assert _uniform_block(5, 123456789012, 7, rng.DELAY, 2) == a
    # every key component matters
    for other in [(6, 123456789012, 7, rng.DELAY, 2), (5, 123456789013, 7, rng.DELAY, 2),
                  (5, 123456789012, 8, rng.DELAY, 2), (5, 123456789012, 7, rng.WITHDRAWAL, 2),
                  (5, 123456789012, 7, rng.DELAY, 3)]:
        assert _uniform_block(*other) != a


def test_triangular_inverse_cdf():
    u = np.random.default_rng(0).random(100_000)
    x = np.array([rng.triangular(2.0, 3.0, 7.0, v) for v in u])
    assert stats.kstest(x, stats.triang(c=0.2, loc=2.0, scale=5.0).cdf).pvalue > 1e-4
    assert rng.triangular(4.0, 4.0, 4.0, 0.3) == 4.0


def test_batched_beta_draws_equal_the_scalar_draws():
    pairs = [(0.5, 20.0), (0.85, 30.0), (0.1, 5.0), (0.3, 0.7), (0.0, 3.0), (1.0, 3.0), (0.02, 1.0),
             (0.5, 2.0)] * 8
    keys = [candidate_key(f"C{j}") for j in range(len(pairs))]
    params = np.array([rng.beta_row(m, c, key) for (m, c), key in zip(pairs, keys)])
    scratch, out = np.zeros((4, len(params))), np.zeros(len(params))
    for episode in range(300):
        rng.beta_variates(params, 5, rng.TIE, episode, scratch, out)
        expected = [rng.beta_variate(m, c, 5, episode, key, rng.TIE) for (m, c), key in zip(pairs, keys)]
        assert out.tolist() == expected
