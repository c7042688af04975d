"""The draw-only floor: an episode's random variates with no event logic (bench/ only).

Draws what `run_episode` draws for a scenario (a tie and a preference pair for
every candidate, every peer tie when peers matter, a delay per offer, a
contribution and a withdrawal time per join) with the same generator, so
that the engine's speed can be compared with the cost of its randomness.
"""
import numpy as np
from numba import njit

from kernels import rng
from kernels.layout import TIE_CONC, TIE_MEAN


@njit(cache=True)
def draw_floor(seed, first, stop, cand, tie_params, draw_peer_ties, offers, joins):
    """Draw episodes [first, stop)'s variates; `offers`/`joins` per episode as measured."""
    n = cand.shape[0]
    total = 0.0
    for ep in range(first, stop):
        for i in range(n):
            total += rng.beta_variate(cand[i, TIE_MEAN], cand[i, TIE_CONC], seed, ep, i, rng.TIE)
            a, b = rng.normal_pair(seed, ep, i, rng.PREFERENCE)
            total += a + b
        if draw_peer_ties:
            for e in range(tie_params.shape[0]):
                total += rng.beta_variate(tie_params[e, 0], tie_params[e, 1], seed, ep, e, rng.PEER_TIE)
        for k in range(offers):
            total += rng.exponential(seed, ep, k % n, rng.DELAY, 1 + k // n)
        for k in range(joins):
            u, _, _, _ = rng.uniforms(seed, ep, k % n, rng.CAPACITY, 0)
            total += u + rng.exponential(seed, ep, k % n, rng.WITHDRAWAL, 0)
    return total
