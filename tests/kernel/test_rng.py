"""The counter-based generator: known answers, purity, and the variates' distributions."""
import math
import statistics

import numpy as np
import pytest
from numba import njit
from scipy import special, stats

from engine.model.tie_tables import beta_tables
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
def _uniform_block(seed, episode, slot, purpose, inner):
    return rng.uniforms(seed, episode, slot, purpose, inner)


@njit
def _quantiles(table, u):
    out = np.empty(u.shape[0])
    for j in range(u.shape[0]):
        out[j] = rng.beta_quantile(table, 0, u[j])
    return out


@njit
def _tie_draws(table, n, slot):
    out = np.empty(n)
    for e in range(n):
        out[e] = rng.beta_quantile(table, 0, rng.uniforms(11, e, slot, rng.CANDIDATE, 0)[2])
    return out


def _table_draws(mean, conc, n, slot):
    """n tie strengths as the kernel draws them: the Beta table at the third uniform of a candidate block."""
    return _tie_draws(beta_tables([(mean, conc)]), n, slot)


# shapes a scenario may give a tie: small and large concentrations, means near 0 and 1
SHAPES = [(m, c) for m in (0.02, 0.1, 0.3, 0.5, 0.85, 0.98) for c in (0.5, 1.0, 2.0, 7.0, 30.0, 300.0)]
QUANTILE_ERROR = 2e-4  # the worst |table - exact quantile| over SHAPES (docs/MODEL.md, section 8)


@pytest.mark.parametrize("mean,conc", [(0.5, 20.0), (0.85, 30.0), (0.1, 5.0), (0.3, 0.7), (0.02, 1.0)])
def test_tabulated_tie_strengths_follow_beta(mean, conc):
    """KS against the exact Beta at 10^6 draws from the engine's own generator; the test has power:
    a 3% shift of the mean is rejected."""
    a, b = mean * conc, (1 - mean) * conc
    x = _table_draws(mean, conc, 1_000_000, 3)
    assert stats.kstest(x, stats.beta(a, b).cdf).pvalue > 1e-4
    assert abs(x.mean() - mean) < 5 * math.sqrt(mean * (1 - mean) / (conc + 1) / len(x))
    shifted = stats.beta(a * 1.03, b - 0.03 * a)  # the same concentration, the mean 3% higher
    assert stats.kstest(x, shifted.cdf).pvalue < 1e-6


def test_the_table_is_within_its_error_bound_of_the_exact_quantile():
    """The worst quantile error over every cell of the body (at its midpoint and at random
    points) and over the log-scale tails down to the smallest uniform, 2**-33."""
    cells = rng.BETA_CELLS
    body = np.concatenate([(np.arange(8 * cells) + 0.5) / (8 * cells),
                           np.random.default_rng(1).random(20_000)])
    tail = np.exp(np.linspace(rng.LOG_U_MIN, math.log(1 / rng.BETA_TAIL), 20_000))
    u = np.clip(np.concatenate([body, tail, 1 - tail]), 2.0**-33, 1 - 2.0**-33)
    worst = 0.0
    for mean, conc in SHAPES:
        error = np.abs(_quantiles(beta_tables([(mean, conc)]), u)
                       - special.betaincinv(mean * conc, (1 - mean) * conc, u))
        worst = max(worst, error.max())
    assert worst < QUANTILE_ERROR, worst
    assert worst > QUANTILE_ERROR / 10  # the bound is not loose: it says what the table does


def test_the_table_is_monotone_in_the_uniform():
    u = np.sort(np.concatenate([np.linspace(2.0**-33, 1 - 2.0**-33, 200_001),
                                np.random.default_rng(2).random(100_000)]))
    for mean, conc in SHAPES:
        assert (np.diff(_quantiles(beta_tables([(mean, conc)]), u)) >= 0).all(), (mean, conc)


def test_beta_extremes_are_exact():
    u = np.random.default_rng(3).random(10_000)
    assert (_quantiles(beta_tables([(0.0, 5.0)]), u) == 0.0).all()
    assert (_quantiles(beta_tables([(1.0, 5.0)]), u) == 1.0).all()
    edge = np.array([2.0**-33, 1 - 2.0**-33, 0.5])
    assert (_quantiles(beta_tables([(0.0, 5.0)]), edge) == 0.0).all()
    assert (_quantiles(beta_tables([(1.0, 5.0)]), edge) == 1.0).all()


def test_draws_are_pure_functions_of_their_key():
    a = _uniform_block(5, 123456789012, 7, rng.DELAY, 2)
    _uniform_block(5, 1, 2, rng.CANDIDATE, 0)  # other draws in between change nothing
    assert _uniform_block(5, 123456789012, 7, rng.DELAY, 2) == a
    # every key component matters
    for other in [(6, 123456789012, 7, rng.DELAY, 2), (5, 123456789013, 7, rng.DELAY, 2),
                  (5, 123456789012, 8, rng.DELAY, 2), (5, 123456789012, 7, rng.JOIN, 2),
                  (5, 123456789012, 7, rng.DELAY, 3)]:
        assert _uniform_block(*other) != a


def test_triangular_inverse_cdf():
    u = np.random.default_rng(0).random(100_000)
    x = np.array([rng.triangular(2.0, 3.0, 7.0, v) for v in u])
    assert stats.kstest(x, stats.triang(c=0.2, loc=2.0, scale=5.0).cdf).pvalue > 1e-4
    assert rng.triangular(4.0, 4.0, 4.0, 0.3) == 4.0


def test_the_normal_split_is_the_inverse_normal():
    """The kernel computes the central formula for every normal and redoes the tails: the same numbers."""
    u = np.concatenate([np.linspace(2.0**-33, 1 - 2.0**-33, 100_001), [0.075, 0.925, 0.5 - 0.425, 0.5 + 0.425]])
    split = np.array([rng.normal_tail(x) if abs(x - 0.5) > rng.NORMAL_CENTRAL else rng.normal_central(x) for x in u])
    assert (split == np.array([rng.inverse_normal(x) for x in u])).all()


def test_threads_asking_for_the_same_tie_tables_build_each_once(monkeypatch):
    """The thread slices of a chunk ask for the same rows' tables at once: each distinct
    shape is built once, whoever builds it, and every thread gets the exact tables."""
    import threading

    from engine.model import tie_tables as bt

    shapes = [(0.31 + k * 1e-3, 17.0 + k) for k in range(12)]
    built = []
    real = bt._build

    def counting(mean, conc):
        built.append((mean, conc))
        return real(mean, conc)

    monkeypatch.setattr(bt, "_build", counting)
    start = threading.Barrier(3)
    results = []

    def ask():
        start.wait()
        results.append(bt.beta_tables(shapes + shapes[:3]))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(built) == sorted(shapes)  # each once, none skipped
    want = np.stack([real(m, c) for m, c in shapes + shapes[:3]])
    assert len(results) == 3 and all(np.array_equal(r, want) for r in results)
    assert bt.beta_tables(shapes[:1]).tobytes() == want[:1].tobytes() and len(built) == 12  # cached
