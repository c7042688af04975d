"""The draw-only floor: an episode's random variates with no event logic (bench/ only).

Draws what `run_episode` draws for a scenario (a candidate block and a join
block for every candidate: preference, estimate, tie, first delay; every peer
tie when peers matter; a delay per re-offer; a contribution and a withdrawal
time per join) with the same generator, so that the engine's speed can be
compared with the cost of its randomness.
"""
import math

import numpy as np
from numba import njit

from kernels import rng
from kernels.layout import KEY, TIE_KEY


@njit(cache=True)
def draw_floor(seed, first, stop, cand, tie_ends, tie_tables, draw_peer_ties, offers, joins):
    """Draw episodes [first, stop)'s variates as the engine does; `offers` and `joins` per
    episode as measured on the scenario (the first `n` offers take their delay from the
    candidate block)."""
    n = cand.shape[0]
    n_ties = tie_ends.shape[0]
    total = 0.0
    for ep in range(first, stop):
        for i in range(n):
            u0, u1, u2, u3 = rng.uniforms(seed, ep, np.int64(cand[i, KEY]), rng.CANDIDATE, 0)
            c0, c1, _, _ = rng.uniforms(seed, ep, np.int64(cand[i, KEY]), rng.JOIN, 0)
            total += rng.beta_quantile(tie_tables, i, u2) + rng.inverse_normal(u0) + rng.inverse_normal(u1)
            total += c0 + c1
            if i < offers:
                total -= math.log(u3)
        if draw_peer_ties:
            for e in range(n_ties):
                u, _, _, _ = rng.uniforms(seed, ep, tie_ends[e, TIE_KEY], rng.PEER_TIE, 0)
                total += rng.beta_quantile(tie_tables, n + e, u)
        for k in range(n, offers):
            total += rng.exponential(seed, ep, np.int64(cand[k % n, KEY]), rng.DELAY, 1 + k // n)
        for k in range(joins):  # the contribution (triangular) and the time to withdraw of each joiner
            total += rng.triangular(0.0, 0.5, 1.0, (k + 0.5) / joins) - math.log((k + 0.5) / joins)
    return total
