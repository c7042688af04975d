"""A range of episodes -> small exact aggregates.

Every aggregate is an integer (histogram counts, counts, and sums of values
quantised to a fixed grid of 2**-32 of the metric's range) or a min/max, so
summing them over slices and chunks is exact and order-free: the result
never depends on how episodes were split.
"""
import math

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


@njit(cache=True, nogil=True)
def simulate_chunk(seed, first, stop, keep, n_bins, top, n_days, max_offers,
                   cand, scal, tie_ends, tie_tables, adj_ptr, adj_cand, adj_tie, inst, inst_members):
    """Run episodes [first, stop) and return their aggregates (releases the GIL, so
    slices of a chunk can run on threads at once).

    `top[m]` is the upper end of continuous metric m's range (capacity: sum of
    highs; spent: budget; time to success: deadline); `keep` is the number of
    leading episodes of the whole run whose records are kept.
    """
    n = cand.shape[0]
    size_hist = np.zeros(n + 1, np.int64)
    offers_hist = np.zeros(max_offers + 1, np.int64)
    venue_hist = np.zeros(n + 1, np.int64)
    withdrawal_hist = np.zeros(n + 1, np.int64)
    value_hist = np.zeros((N_CONTINUOUS, n_bins), np.int64)
    day_hist = np.zeros(n_days + 1, np.int64)
    q_sum = np.zeros(N_CONTINUOUS, np.int64)
    q_sumsq = np.zeros(N_CONTINUOUS, np.int64)
    lowest = np.full(N_CONTINUOUS, np.inf)
    highest = np.full(N_CONTINUOUS, -np.inf)
    counts = np.zeros(2, np.int64)  # successes, reached
    cand_counts = np.zeros((3, n), np.int64)
    cand_pay = np.zeros(n, np.int64)
    n_kept = max(0, min(stop, keep) - first)
    kept = np.zeros((n_kept, N_OUTCOMES))
    kept_members = np.zeros((n_kept, n), np.int8)
    scale = np.empty(N_CONTINUOUS)
    for m in range(N_CONTINUOUS):
        scale[m] = GRID / top[m]
    work, status, at_venue, order, eligible, peer_w, events, out = new_workspace(
        n, tie_ends.shape[0], inst.shape[0])
    _accumulate(seed, first, stop, keep, n_bins, top, n_days, max_offers, scale, GRID / top[1],
              cand, scal, tie_ends, tie_tables, adj_ptr, adj_cand, adj_tie, inst, inst_members,
              work, status, at_venue, order, eligible, peer_w, events, out,
              size_hist, offers_hist, venue_hist, withdrawal_hist, value_hist, day_hist, q_sum,
              q_sumsq, lowest, highest, counts[0:1], counts[1:2], cand_counts, cand_pay, kept,
              kept_members)
    return (size_hist, offers_hist, venue_hist, withdrawal_hist, value_hist, day_hist, q_sum,
            q_sumsq, lowest, highest, counts[0], counts[1], cand_counts, cand_pay, kept, kept_members)



@njit(cache=True)
def _accumulate(seed, first, stop, keep, n_bins, top, n_days, max_offers, scale, pay_scale,
              cand, scal, tie_ends, tie_tables, adj_ptr, adj_cand, adj_tie, inst, inst_members,
              work, status, at_venue, order, eligible, peer_w, events, out,
              size_hist, offers_hist, venue_hist, withdrawal_hist, value_hist, day_hist, q_sum,
              q_sumsq, lowest, highest, successes, reached, cand_counts, cand_pay, kept, kept_members):
    """Run episodes [first, stop) and add their outcomes to the given accumulators.

    (A function of its own: the loop runs measurably faster here than inlined
    into `simulate_chunk`, where the accumulators are allocated.)"""
    n = cand.shape[0]
    for ep in range(first, stop):
        run_episode(seed, ep, cand, scal, tie_ends, tie_tables, adj_ptr, adj_cand, adj_tie,
                    inst, inst_members, work, status, at_venue, order, eligible, peer_w, events, out)
        size_hist[int(out[SIZE])] += 1
        offers_hist[min(int(out[OFFERS]), max_offers)] += 1
        venue_hist[int(out[VENUE_JOINS])] += 1
        withdrawal_hist[int(out[WITHDRAWALS])] += 1
        successes[0] += int(out[SUCCESS])
        for m in range(N_CONTINUOUS):
            x = out[CAPACITY] if m == 0 else (out[SPENT] if m == 1 else out[TIME_TO_SUCCESS])
            if math.isnan(x):
                continue
            x = max(x, 0.0)
            value_hist[m, _bin(x, top[m], n_bins)] += 1
            q = x * scale[m]
            q_sum[m] += np.int64(q + 0.5)
            q_sumsq[m] += np.int64(q * q / GRID + 0.5)
            lowest[m] = min(lowest[m], x)
            highest[m] = max(highest[m], x)
        tts = out[TIME_TO_SUCCESS]
        if not math.isnan(tts):
            reached[0] += 1
            day_hist[min(int(math.ceil(tts)), n_days)] += 1
        for i in range(n):
            st = status[i]
            if st == MEMBER:
                cand_counts[CAND_MEMBER, i] += 1
            if st == MEMBER or st == WITHDRAWN:
                cand_counts[CAND_EVER, i] += 1
                cand_pay[i] += np.int64(work[PAYMENT, i] * pay_scale + 0.5)
            cand_counts[CAND_VENUE, i] += at_venue[i]
        if ep < keep:
            r = ep - first
            for o in range(N_OUTCOMES):
                kept[r, o] = out[o]
            for i in range(n):
                kept_members[r, i] = 1 if status[i] == MEMBER else 0
