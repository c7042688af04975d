"""A block of a study's design rows -> each row's aggregates, stacked.

A design row is a scenario that differs from its study's base only in values (the
candidates, ties and institutions are the same), so a block of rows is the base's
structure plus a stack of value arrays, one slice per row. Each row runs all its
episodes (0 .. episodes - 1, the same keys as a plain run of the row) through
`kernels.chunk._accumulate`, so a row's aggregates are those a plain run of it gives.
"""
import numpy as np
from numba import njit

from kernels.chunk import GRID, N_CONTINUOUS, Totals, _accumulate
from kernels.episode import new_workspace
from kernels.layout import N_OUTCOMES


@njit(cache=True, nogil=True)
def simulate_rows(seed, episodes, n_bins, tops, n_days, max_offers, cand, scal, tie_ends, tie_tables,
                  tie_mix, adj_ptr, adj_cand, adj_tie, inst, inst_members):
    """Run episodes [0, episodes) of every row r of the stacks (`cand[r]`, `scal[r]`, `tie_mix[r]`,
    `inst[r]`, ranges `tops[r]`) and return the rows' aggregates: the fields of
    `kernels.chunk.Totals` up to `payments`, each with a leading row axis. Histograms are as long
    as the longest row needs (`n_days`, `max_offers`: the block's largest); a row's extra bins
    stay 0. Releases the GIL, so sub-blocks can run on threads at once."""
    rows, n = cand.shape[0], cand.shape[1]
    size = np.zeros((rows, n + 1), np.int64)
    offers = np.zeros((rows, max_offers + 1), np.int64)
    venue_joins = np.zeros((rows, n + 1), np.int64)
    withdrawals = np.zeros((rows, n + 1), np.int64)
    values = np.zeros((rows, N_CONTINUOUS, n_bins), np.int64)
    days = np.zeros((rows, n_days + 1), np.int64)
    q_sum = np.zeros((rows, N_CONTINUOUS), np.int64)
    q_sumsq = np.zeros((rows, N_CONTINUOUS), np.int64)
    lowest = np.full((rows, N_CONTINUOUS), np.inf)
    highest = np.full((rows, N_CONTINUOUS), -np.inf)
    successes = np.zeros((rows, 1), np.int64)
    reached = np.zeros((rows, 1), np.int64)
    candidates = np.zeros((rows, 3, n), np.int64)
    payments = np.zeros((rows, n), np.int64)
    no_kept, no_members = np.zeros((0, N_OUTCOMES)), np.zeros((0, n), np.int8)
    workspace = new_workspace(n, tie_ends.shape[0], inst.shape[1])
    scale = np.empty(N_CONTINUOUS)
    for r in range(rows):
        for m in range(N_CONTINUOUS):
            scale[m] = GRID / tops[r, m]
        totals = Totals(size[r], offers[r], venue_joins[r], withdrawals[r], values[r], days[r], q_sum[r],
                        q_sumsq[r], lowest[r], highest[r], successes[r], reached[r], candidates[r],
                        payments[r], no_kept, no_members)
        model = (cand[r], scal[r], tie_ends, tie_tables, tie_mix[r], adj_ptr, adj_cand, adj_tie, inst[r],
                 inst_members)
        _accumulate(seed, 0, episodes, 0, tops[r], scale, model, workspace, totals)
    return (size, offers, venue_joins, withdrawals, values, days, q_sum, q_sumsq, lowest, highest,
            successes[:, 0], reached[:, 0], candidates, payments)
