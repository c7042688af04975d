"""The draw-only floor: an episode's random variates with no event logic (bench/ only).

Draws what `run_episode` draws for a scenario (a tie and a preference pair for
every candidate, every peer tie when peers matter, a delay per offer, a
contribution and a withdrawal time per join) with the same generator, so
that the engine's speed can be compared with the cost of its randomness.
"""
import numpy as np
from numba import njit

from kernels import rng
from kernels.layout import BETA_ROW, KEY, TIE_MEAN


@njit(cache=True)
def draw_floor(seed, first, stop, cand, tie_params, draw_peer_ties, offers, joins):
    """Draw episodes [first, stop)'s variates as the engine does (batched tie draws);
    `offers` and `joins` per episode as measured on the scenario."""
    n = cand.shape[0]
    n_ties = tie_params.shape[0]
    scratch = np.zeros((4, max(n, n_ties, 1)))
    ties = np.zeros(n)
    peer_ties = np.zeros(n_ties)
    total = 0.0
    for ep in range(first, stop):
        rng.beta_variates(cand[:, TIE_MEAN:TIE_MEAN + BETA_ROW], seed, rng.TIE, ep, scratch, ties)
        for i in range(n):
            a, b = rng.normal_pair(seed, ep, np.int64(cand[i, KEY]), rng.PREFERENCE)
            total += ties[i] + a + b
        if draw_peer_ties:
            rng.beta_variates(tie_params, seed, rng.PEER_TIE, ep, scratch, peer_ties)
            total += peer_ties.sum()
        for k in range(offers):
            total += rng.exponential(seed, ep, np.int64(cand[k % n, KEY]), rng.DELAY, 1 + k // n)
        for k in range(joins):
            key = np.int64(cand[k % n, KEY])
            u, _, _, _ = rng.uniforms(seed, ep, key, rng.CAPACITY, 0)
            total += u + rng.exponential(seed, ep, key, rng.WITHDRAWAL, 0)
    return total
