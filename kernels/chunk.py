"""A range of episodes -> small exact aggregates.

Every aggregate is an integer (histogram counts, counts, and sums of values
quantised to a fixed grid of 2**-32 of the metric's range) or a min/max, so
summing them over slices and chunks is exact and order-free: the result
never depends on how episodes were split.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from kernels.episode import PAYMENT, new_workspace, run_episode
from kernels.layout import (
    CAPACITY, MEMBER, N_OUTCOMES, OFFERS, SIZE, SPENT, SUCCESS, TIME_TO_SUCCESS,
    VENUE_JOINS, WITHDRAWALS, WITHDRAWN,
)

# continuous metrics, in this order in the continuous accumulators: capacity, spent, time to success
N_CONTINUOUS = 3
# per-candidate counters
CAND_MEMBER, CAND_EVER, CAND_VENUE = 0, 1, 2
GRID = 4294967296.0  # 2**32 steps per metric range


@njit(cache=True, inline="always")
def _bin(x, top, n_bins):
    b = int(x / top * n_bins)
    return min(max(b, 0), n_bins - 1)


class Totals(NamedTuple):
    """A slice's accumulators (MODEL.md, section 11); `simulate_chunk` returns them in this order."""
    size: np.ndarray            # histogram of size, 0..N
    offers: np.ndarray          # histogram of offers, 0..max_offers (the last bin pools the rest)
    venue_joins: np.ndarray     # histogram of venue joins, 0..N
    withdrawals: np.ndarray     # histogram of withdrawals, 0..N
    values: np.ndarray          # (N_CONTINUOUS, bins) histograms of capacity, spent, time to success
    days: np.ndarray            # histogram of ceil(time to success), 0..ceil(T)
    q_sum: np.ndarray           # per continuous metric: sum of values on the 2**-32 grid of its range
    q_sumsq: np.ndarray         # ... and of their squares on the squared grid
    lowest: np.ndarray          # per continuous metric: minimum
    highest: np.ndarray         # ... and maximum
    successes: np.ndarray       # (1,) episodes that succeeded
    reached: np.ndarray         # (1,) episodes that reached the target before T
    candidates: np.ndarray      # (3, N): member at T, ever joined, joined at a venue
    payments: np.ndarray        # (N,) payments on the spent grid
    kept: np.ndarray            # (kept episodes, N_OUTCOMES) outcomes of the kept episodes
    kept_members: np.ndarray    # (kept episodes, N) members at T of the kept episodes


@njit(cache=True, nogil=True)
def simulate_chunk(seed, first, stop, keep, n_bins, top, n_days, max_offers,
                   cand, scal, tie_ends, tie_tables, tie_mix, adj_ptr, adj_cand, adj_tie, inst, inst_members):
    """Run episodes [first, stop) and return their aggregates, the fields of `Totals` in order
    (successes and reached as integers); releases the GIL, so slices of a chunk can run on
    threads at once.

    `top[m]` is the upper end of continuous metric m's range (capacity: sum of
    highs; spent: budget; time to success: deadline); `keep` is the number of
    leading episodes of the whole run whose records are kept.
    """
    n = cand.shape[0]
    n_kept = max(0, min(stop, keep) - first)
    totals = Totals(
        np.zeros(n + 1, np.int64), np.zeros(max_offers + 1, np.int64), np.zeros(n + 1, np.int64),
        np.zeros(n + 1, np.int64), np.zeros((N_CONTINUOUS, n_bins), np.int64), np.zeros(n_days + 1, np.int64),
        np.zeros(N_CONTINUOUS, np.int64), np.zeros(N_CONTINUOUS, np.int64), np.full(N_CONTINUOUS, np.inf),
        np.full(N_CONTINUOUS, -np.inf), np.zeros(1, np.int64), np.zeros(1, np.int64),
        np.zeros((3, n), np.int64), np.zeros(n, np.int64), np.zeros((n_kept, N_OUTCOMES)),
        np.zeros((n_kept, n), np.int8))
    model = (cand, scal, tie_ends, tie_tables, tie_mix, adj_ptr, adj_cand, adj_tie, inst, inst_members)
    scale = np.empty(N_CONTINUOUS)  # per continuous metric: grid steps per unit
    for m in range(N_CONTINUOUS):
        scale[m] = GRID / top[m]
    _accumulate(seed, first, stop, keep, top, scale, model,
                new_workspace(n, tie_ends.shape[0], inst.shape[0]), totals)
    t = totals
    return (t.size, t.offers, t.venue_joins, t.withdrawals, t.values, t.days, t.q_sum, t.q_sumsq, t.lowest,
            t.highest, t.successes[0], t.reached[0], t.candidates, t.payments, t.kept, t.kept_members)


@njit(cache=True, _nrt=False, error_model="numpy")
def _accumulate(seed, first, stop, keep, top, scale, model, workspace, totals):
    """Run episodes [first, stop) and add their outcomes to `totals` (a `Totals`).

    `model` holds the scenario's arrays and `workspace` the arrays of
    `new_workspace`, in `run_episode`'s order. Allocates nothing, so it is compiled
    without Numba's reference counting (as `run_episode` is: kernels/episode.py)."""
    t = totals
    n = model[0].shape[0]
    work, status, at_venue, out = workspace[0], workspace[1], workspace[2], workspace[-1]
    n_bins = t.values.shape[1]
    n_days = t.days.shape[0] - 1
    max_offers = t.offers.shape[0] - 1
    for ep in range(first, stop):
        run_episode(seed, ep, *model, *workspace)
        t.size[int(out[SIZE])] += 1
        t.offers[min(int(out[OFFERS]), max_offers)] += 1
        t.venue_joins[int(out[VENUE_JOINS])] += 1
        t.withdrawals[int(out[WITHDRAWALS])] += 1
        t.successes[0] += int(out[SUCCESS])
        for m in range(N_CONTINUOUS):
            x = out[CAPACITY] if m == 0 else (out[SPENT] if m == 1 else out[TIME_TO_SUCCESS])
            if math.isnan(x):
                continue
            x = max(x, 0.0)
            t.values[m, _bin(x, top[m], n_bins)] += 1
            q = x * scale[m]
            t.q_sum[m] += np.int64(q + 0.5)
            t.q_sumsq[m] += np.int64(q * q / GRID + 0.5)
            t.lowest[m] = min(t.lowest[m], x)
            t.highest[m] = max(t.highest[m], x)
        tts = out[TIME_TO_SUCCESS]
        if not math.isnan(tts):
            t.reached[0] += 1
            t.days[min(int(math.ceil(tts)), n_days)] += 1
        for i in range(n):  # branch-free (statuses are coin flips to the CPU); a payment is 0 unless joined
            st = status[i]
            t.candidates[CAND_MEMBER, i] += st == MEMBER
            t.candidates[CAND_EVER, i] += (st == MEMBER) | (st == WITHDRAWN)
            t.payments[i] += np.int64(work[PAYMENT, i] * scale[1] + 0.5)
            t.candidates[CAND_VENUE, i] += at_venue[i]
        if ep < keep:
            r = ep - first
            for o in range(N_OUTCOMES):
                t.kept[r, o] = out[o]
            for i in range(n):
                t.kept_members[r, i] = 1 if status[i] == MEMBER else 0
