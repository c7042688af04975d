"""One REM-1 recruitment episode (docs/MODEL.md), as an event loop.

`run_episode` draws the episode's variates and fixed quantities (`_start`),
then runs one function per event of MODEL.md: `_open`, `_respond`, `_venue`,
`_withdraw`; the rules they share are written once (`_utility`, `_delay`,
`_join`). The event queue is a binary heap ordered by (time, scheduling
sequence), so events at the same time run in the order they were scheduled;
venues are scheduled first, in institution order.

The helpers are inlined, and `run_episode` is compiled without Numba's
reference counting (it allocates nothing): otherwise every array handed to an
inlined helper with a loop costs an atomic increment and decrement per call,
which cost more than the model (bench/README.md, "Where the time goes").
"""
import math

import numpy as np
from numba import njit

from kernels import rng
from kernels.layout import (
    APPROACH_COST, BANDWIDTH, BROKER_TIE, BUDGET, CAPACITY, CREDIBILITY_FLOOR, CRED_ROW, DEADLINE,
    DELAY_MAX, DELAY_MIN, DEMAND, ESCALATION, EXPECTED, HIGH, INFO_NOISE, INFO_ROW, KEY, LINKAGE,
    LINK_ROW, LOW,
    MARGIN, MAX_ROUNDS, MEMBER, MIN_PARTNERS, MODE, N_MEMBERS, N_OUTCOMES, NEGOTIATING,
    OFFERS, PASSED, PEER_WEIGHT, PIVOT_MEMBER, PREF_MEAN, PREF_SD, REFUSED, REQUIREMENT,
    SIZE, SPENT, SUCCESS, TIE_KEY, TIME_TO_SUCCESS, UNTOUCHED, USE_CREDIBILITY,
    USE_INFORMATION, USE_LINKAGE, VENUE_BONUS, VENUE_DAY, VENUE_JOINS, WITHDRAWAL_RATE,
    WITHDRAWALS, WITHDRAWN,
)

# event kinds
RESPONSE, WITHDRAW, VENUE = 0, 1, 2

# per-candidate float workspace rows
(TIE, THETA, VALUE, PLANNED, PRIORITY, CONTRIBUTION, PAYMENT, CREDIBILITY_TIE,
 PEER_TOTAL, PEER_INSIDE, PEER_MEMBERS, VENUE_OFFER, SORT_KEY, SORT_SPARE, OFFER, ROUND, FIRST_DELAY,
 U_PREFERENCE, U_ESTIMATE, Z_PREFERENCE, Z_ESTIMATE, U_CAPACITY, U_STAY, INFORMATION_TIE) = range(24)
N_WORK_ROWS = 24
# event record columns (one float row per pending event)
EVENT_TIME, EVENT_SEQ, EVENT_ITEM = 0, 1, 2


@njit(cache=True)
def new_workspace(n_candidates, n_ties, n_institutions):
    """Preallocated per-thread arrays for `run_episode`, reused across episodes."""
    n = n_candidates
    return (
        np.zeros((N_WORK_ROWS, n)),                  # work: float rows above
        np.zeros(n, np.int8),                        # status
        np.zeros(n, np.int8),                        # joined at a venue
        np.zeros(n, np.int64),                       # order: P's list
        np.zeros(n, np.int64),                       # eligible at a venue, in list order; the sort's spare
        np.zeros(max(n_ties, 1)),                    # peer tie strengths
        np.zeros((2 * n + n_institutions + 1, 3)),   # event heap: time, sequence, kind + 4 * index
        np.zeros(N_OUTCOMES),                        # outcomes
    )


@njit(cache=True, inline="always")
def _earlier(time_a, seq_a, time_b, seq_b):
    return time_a < time_b or (time_a == time_b and seq_a < seq_b)


@njit(cache=True, inline="always")
def _schedule(events, size, seq, time, deadline, item):
    """Push an event unless it falls at or after the deadline (it would never run).

    Returns the new heap size and the next sequence number."""
    if not time < deadline:
        return size, seq
    events[size, EVENT_TIME] = time
    events[size, EVENT_SEQ] = seq
    events[size, EVENT_ITEM] = item
    child = size
    while child > 0:
        parent = (child - 1) >> 1
        if not _earlier(events[child, 0], events[child, 1], events[parent, 0], events[parent, 1]):
            break
        for c in range(3):
            events[child, c], events[parent, c] = events[parent, c], events[child, c]
        child = parent
    return size + 1, seq + 1


@njit(cache=True, inline="always")
def _pop(events, size):
    """Move the earliest event to row `size - 1` and restore the heap on the rest."""
    last = size - 1
    for c in range(3):
        events[0, c], events[last, c] = events[last, c], events[0, c]
    parent = 0
    while True:
        child = 2 * parent + 1
        if child >= last:
            break
        if child + 1 < last and _earlier(events[child + 1, 0], events[child + 1, 1],
                                         events[child, 0], events[child, 1]):
            child += 1
        if not _earlier(events[child, 0], events[child, 1], events[parent, 0], events[parent, 1]):
            break
        for c in range(3):
            events[child, c], events[parent, c] = events[parent, c], events[child, c]
        parent = child
    return last


SORT_RANKED = 200  # P's list: up to this many candidates placed by their counted rank, more
SORT_RUN = 32     # sorted in runs of this many by insertion, then merged


@njit(cache=True)
def _sort_by_priority(work, order, spare):
    """P's list: candidates by priority descending, equal priorities by index (stable).

    Short lists: each candidate's rank is the number of candidates before it.
    Long lists: insertion sort of runs of SORT_RUN, then bottom-up merges between
    (order, SORT_KEY) and (spare, SORT_SPARE). No allocation.
    """
    n = order.shape[0]
    if n <= SORT_RANKED:  # each candidate's rank, counted: branch-free, so the CPU counts in SIMD
        for i in range(n):
            key = work[PRIORITY, i]
            rank = 0
            for j in range(n):
                other = work[PRIORITY, j]
                rank += (other > key) + ((other == key) & (j < i))
            order[rank] = i
        return
    for lo in range(0, n, SORT_RUN):
        for i in range(lo, min(lo + SORT_RUN, n)):
            cur = work[PRIORITY, i]
            j = i - 1
            while j >= lo and work[SORT_KEY, j] < cur:
                work[SORT_KEY, j + 1] = work[SORT_KEY, j]
                order[j + 1] = order[j]
                j -= 1
            work[SORT_KEY, j + 1] = cur
            order[j + 1] = i
    source, target = order, spare
    source_key, target_key = SORT_KEY, SORT_SPARE
    width = SORT_RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a, b = lo, mid
            for d in range(lo, hi):
                if b >= hi or (a < mid and work[source_key, b] <= work[source_key, a]):  # ties: left first
                    target[d] = source[a]
                    work[target_key, d] = work[source_key, a]
                    a += 1
                else:
                    target[d] = source[b]
                    work[target_key, d] = work[source_key, b]
                    b += 1
        source, target = target, source
        source_key, target_key = target_key, source_key
        width *= 2
    if source_key != SORT_KEY:  # the last merge went into the spare
        for d in range(n):
            order[d] = spare[d]


@njit(cache=True, inline="always")
def _peer_share(members, inside, total):
    """Share of a candidate's tie strength inside the coalition (0 without tied members)."""
    if members == 0.0 or total <= 0.0:
        return 0.0
    return inside / total


@njit(cache=True, inline="always")
def _move_peer_sums(j, sign, work, adj_ptr, adj_cand, adj_tie, peer_w):
    """j joined (sign +1) or left (-1): add its tie to its tied candidates' inside sums."""
    for e in range(adj_ptr[j], adj_ptr[j + 1]):
        k = adj_cand[e]
        work[PEER_MEMBERS, k] += sign
        work[PEER_INSIDE, k] = work[PEER_INSIDE, k] + sign * peer_w[adj_tie[e]] if work[PEER_MEMBERS, k] > 0.0 else 0.0


@njit(cache=True, inline="always")
def _peer_sums_after_leaving(j, work, status, adj_ptr, adj_cand, adj_tie, peer_w):
    """j left: its tied candidates' inside sums, summed afresh over their tied members (a running
    difference would leave rounding residue, ~1e-17, where the share must be exactly 0)."""
    for e in range(adj_ptr[j], adj_ptr[j + 1]):
        k = adj_cand[e]
        work[PEER_MEMBERS, k] -= 1.0
        inside = 0.0
        for f in range(adj_ptr[k], adj_ptr[k + 1]):  # (adding 0.0 for non-members changes no bit)
            inside += peer_w[adj_tie[f]] * (status[adj_cand[f]] == MEMBER)
        work[PEER_INSIDE, k] = inside


@njit(cache=True, inline="always")
def _eligible(st):
    """A venue can recruit candidates not in talks, not members and never withdrawn."""
    return st == UNTOUCHED or st == PASSED or st == REFUSED


@njit(cache=True, inline="always")
def _utility(theta, value, offer, bonus, demand, beta, members, inside, total):
    """u_i = theta_i + v_i * s + V - q_i + beta * peer_i: i accepts iff u_i >= 0 (V = 0 outside venues)."""
    return theta + value * offer + bonus - demand + beta * _peer_share(members, inside, total)


@njit(cache=True, inline="always")
def _delay(i, rnd, scal, cand, work, seed, episode):
    """Response delay of round rnd: D = m_i * Exp(1), m_i = d_min + (d_max - d_min) * (1 - wInf_i), the
    information tie read as 0 when `information` is off. Round 1 takes its Exp(1) from the
    candidate's block (drawn with its tie), round r >= 2 from DELAY block r."""
    if rnd == 1:
        e = -math.log(work[FIRST_DELAY, i])
    else:
        e = rng.exponential(seed, episode, np.int64(cand[i, KEY]), rng.DELAY, rnd)
    d_min = scal[DELAY_MIN]
    return (d_min + (scal[DELAY_MAX] - d_min) * (1.0 - work[INFORMATION_TIE, i])) * e


@njit(cache=True, inline="always")
def _join(i, payment, t, heap, seq, scal, cand, work, status, events, adj_ptr, adj_cand, adj_tie, peer_w,
          seed, episode):
    """i becomes a member paid `payment` (a Response or a venue): its contribution a_i and time to
    withdraw, X ~ Exponential(rate h * (1 - wC_i)), come from its JOIN block; its peers' inside sums
    grow; Withdraw(i) is scheduled at t + X (never at rate 0). Returns (a_i, heap size, sequence)."""
    status[i] = MEMBER
    work[PAYMENT, i] = payment
    u_capacity, u_stay = work[U_CAPACITY, i], work[U_STAY, i]
    a = rng.triangular(cand[i, LOW], cand[i, MODE], cand[i, HIGH], u_capacity)
    work[CONTRIBUTION, i] = a
    if scal[PEER_WEIGHT] > 0.0:
        _move_peer_sums(i, 1.0, work, adj_ptr, adj_cand, adj_tie, peer_w)
    rate = scal[WITHDRAWAL_RATE] * (1.0 - work[CREDIBILITY_TIE, i])
    # -log u >= 1 - u (by far more than rounding), so a stay that reaches T even at that bound
    # needs no log: it would not be scheduled either way
    if rate > 0.0 and t + (1.0 - u_stay) / rate < scal[DEADLINE]:
        heap, seq = _schedule(events, heap, seq, t + -math.log(u_stay) / rate, scal[DEADLINE], WITHDRAW + 4 * i)
    return a, heap, seq


@njit(cache=True, inline="always")
def _start(seed, episode, cand, scal, tie_ends, tie_tables, tie_mix, work, status, at_venue, order, eligible, peer_w):
    """The episode's draws and the quantities fixed for it (MODEL.md, section 3), and P's list."""
    n = cand.shape[0]
    rho = scal[CREDIBILITY_FLOOR]
    # Each loop below does one thing: the generator's loops then run several blocks at once (SIMD).
    for i in range(n):
        u_theta, u_estimate, u_tie, u_delay = rng.uniforms(seed, episode, np.int64(cand[i, KEY]), rng.CANDIDATE, 0)
        work[U_PREFERENCE, i] = u_theta
        work[U_ESTIMATE, i] = u_estimate
        work[TIE, i] = u_tie
        work[FIRST_DELAY, i] = u_delay
    for i in range(n):  # every candidate's JOIN block: cheaper together than one by one at the joins
        work[U_CAPACITY, i], work[U_STAY, i], _, _ = rng.uniforms(seed, episode, np.int64(cand[i, KEY]), rng.JOIN, 0)
    for i in range(n):  # the normals by AS 241's central formula; the few in its tails are redone below
        work[Z_PREFERENCE, i] = rng.normal_central(work[U_PREFERENCE, i])
        work[Z_ESTIMATE, i] = rng.normal_central(work[U_ESTIMATE, i])
    for i in range(n):
        if abs(work[U_PREFERENCE, i] - 0.5) > rng.NORMAL_CENTRAL:
            work[Z_PREFERENCE, i] = rng.normal_tail(work[U_PREFERENCE, i])
        if abs(work[U_ESTIMATE, i] - 0.5) > rng.NORMAL_CENTRAL:
            work[Z_ESTIMATE, i] = rng.normal_tail(work[U_ESTIMATE, i])
    for i in range(n):
        w = rng.tie_draw(tie_tables, tie_mix, i, work[TIE, i])
        w_inf, w_lnk, w_crd = w, w, w  # a channel not given is the tie itself
        if cand[i, INFO_ROW] >= 0.0 or cand[i, LINK_ROW] >= 0.0 or cand[i, CRED_ROW] >= 0.0:
            u_inf, u_lnk, u_crd, _ = rng.uniforms(seed, episode, np.int64(cand[i, KEY]), rng.CHANNEL, 0)
            if cand[i, INFO_ROW] >= 0.0:
                w_inf = rng.tie_draw(tie_tables, tie_mix, int(cand[i, INFO_ROW]), u_inf)
            if cand[i, LINK_ROW] >= 0.0:
                w_lnk = rng.tie_draw(tie_tables, tie_mix, int(cand[i, LINK_ROW]), u_lnk)
            if cand[i, CRED_ROW] >= 0.0:
                w_crd = rng.tie_draw(tie_tables, tie_mix, int(cand[i, CRED_ROW]), u_crd)
        w_inf = w_inf * scal[USE_INFORMATION]
        theta = cand[i, PREF_MEAN] + cand[i, PREF_SD] * work[Z_PREFERENCE, i]
        w_info = max(w_inf, cand[i, BROKER_TIE])
        estimate = theta + scal[INFO_NOISE] * (1.0 - w_info) * work[Z_ESTIMATE, i]
        w_cred = w_crd * scal[USE_CREDIBILITY]
        value = (rho + (1.0 - rho) * w_cred) * (1.0 + scal[LINKAGE] * w_lnk * scal[USE_LINKAGE])
        demand = cand[i, DEMAND]
        if estimate >= demand:
            planned = 0.0
        elif value > 0.0:
            planned = (demand - estimate) / value * (1.0 + scal[MARGIN])
        else:
            planned = math.inf
        work[TIE, i] = w
        work[THETA, i] = theta
        work[VALUE, i] = value
        work[PLANNED, i] = planned
        work[PRIORITY, i] = 0.0 if planned == math.inf else cand[i, EXPECTED] / (scal[APPROACH_COST] + planned)
        work[CREDIBILITY_TIE, i] = w_cred
        work[INFORMATION_TIE, i] = w_inf
        work[PAYMENT, i] = 0.0
        work[PEER_TOTAL, i] = 0.0
        work[PEER_INSIDE, i] = 0.0
        work[PEER_MEMBERS, i] = 0.0
        status[i] = UNTOUCHED
        at_venue[i] = 0
    if scal[PEER_WEIGHT] > 0.0:  # peer ties matter only then (their draws are keyed: skipping changes nothing else)
        n_ties = tie_ends.shape[0]
        for e in range(n_ties):
            peer_w[e], _, _, _ = rng.uniforms(seed, episode, tie_ends[e, TIE_KEY], rng.PEER_TIE, 0)
        for e in range(n_ties):
            peer_w[e] = rng.tie_draw(tie_tables, tie_mix, n + e, peer_w[e])
        for e in range(n_ties):
            work[PEER_TOTAL, tie_ends[e, 0]] += peer_w[e]
            work[PEER_TOTAL, tie_ends[e, 1]] += peer_w[e]
    _sort_by_priority(work, order, eligible)


@njit(cache=True, inline="always")
def _open(t, free, open_talks, offers, next_on_list, heap, seq, scal, cand, work, status, order, events,
          seed, episode):
    """Open: while fewer than W talks are open and the list goes on, approach the next untouched
    candidate with its planned offer, or mark it passed when the free budget is short.
    Returns (free, open talks, offers, next on list, heap size, sequence)."""
    n = order.shape[0]
    while open_talks < scal[BANDWIDTH] and next_on_list < n:
        i = order[next_on_list]
        next_on_list += 1
        if status[i] != UNTOUCHED:
            continue
        s = work[PLANNED, i]
        if s > free:
            status[i] = PASSED
            continue
        free -= s
        status[i] = NEGOTIATING
        open_talks += 1
        offers += 1
        work[OFFER, i] = s
        work[ROUND, i] = 1.0
        heap, seq = _schedule(events, heap, seq, t + _delay(i, 1, scal, cand, work, seed, episode),
                              scal[DEADLINE], RESPONSE + 4 * i)
    return free, open_talks, offers, next_on_list, heap, seq


@njit(cache=True, inline="always")
def _respond(i, t, free, spent, capacity, size, open_talks, offers, heap, seq, scal, cand, work, status,
             events, adj_ptr, adj_cand, adj_tie, peer_w, seed, episode):
    """Response(i, s, r): release s; accept, re-offer s' = (1 + eps) s + eps sd_i in round r + 1, or refuse.
    Returns (free, spent, capacity, size, open talks, offers, heap size, sequence)."""
    s = work[OFFER, i]
    rnd = int(work[ROUND, i])
    free += s
    eps = scal[ESCALATION]
    s_next = (1.0 + eps) * s + eps * cand[i, PREF_SD]
    if _utility(work[THETA, i], work[VALUE, i], s, 0.0, cand[i, DEMAND], scal[PEER_WEIGHT],
                work[PEER_MEMBERS, i], work[PEER_INSIDE, i], work[PEER_TOTAL, i]) >= 0.0:
        open_talks -= 1
        free -= s
        spent += s
        a, heap, seq = _join(i, s, t, heap, seq, scal, cand, work, status, events, adj_ptr, adj_cand, adj_tie,
                             peer_w, seed, episode)
        capacity += a
        size += 1
    elif rnd < scal[MAX_ROUNDS] and s_next <= free:
        free -= s_next
        offers += 1
        work[OFFER, i] = s_next
        work[ROUND, i] = rnd + 1
        heap, seq = _schedule(events, heap, seq, t + _delay(i, rnd + 1, scal, cand, work, seed, episode),
                              scal[DEADLINE], RESPONSE + 4 * i)
    else:
        status[i] = REFUSED
        open_talks -= 1
    return free, spent, capacity, size, open_talks, offers, heap, seq


@njit(cache=True, inline="always")
def _venue(k, t, free, spent, capacity, size, venue_joins, heap, seq, scal, cand, inst, inst_members, work,
           status, at_venue, order, eligible, events, adj_ptr, adj_cand, adj_tie, peer_w, seed, episode):
    """Venue(k): reserve offers for k's eligible members in list order (0 once the target is met),
    then whole passes until one adds no one; the rest get their reservation back.
    Returns (free, spent, capacity, size, venue joins, heap size, sequence)."""
    members_in = inst[k, PIVOT_MEMBER]
    seats = inst[k, N_MEMBERS] + inst[k, PIVOT_MEMBER]
    paying = not (capacity >= scal[REQUIREMENT] and size >= scal[MIN_PARTNERS])  # P still recruiting
    n_eligible = 0
    for p in range(order.shape[0]):  # k's members in list order: count those inside, list the eligible
        j = order[p]
        in_k = inst_members[k, j] != 0
        members_in += in_k & (status[j] == MEMBER)
        eligible[n_eligible] = j
        n_eligible += in_k & _eligible(status[j])  # (branch-free: membership is a coin flip to the CPU)
    for p in range(n_eligible):  # reserve offers for the eligible, in list order
        j = eligible[p]
        offer = work[PLANNED, j] if (paying and work[PLANNED, j] <= free) else 0.0
        free -= offer
        work[VENUE_OFFER, j] = offer
    # Whole passes over the eligible in list order until one adds no one. Only joins change a
    # utility, so the passes stop as soon as every candidate has been asked since the last join
    # (the rest of the last pass would only repeat refusals).
    bonus = inst[k, VENUE_BONUS] * members_in / seats if seats > 0.0 else 0.0
    asked = 0  # candidates asked since the last join
    p = 0
    while asked < n_eligible:
        j = eligible[p]
        p = p + 1 if p + 1 < n_eligible else 0
        asked += 1
        if status[j] == MEMBER:
            continue
        offer = work[VENUE_OFFER, j]
        if _utility(work[THETA, j], work[VALUE, j], offer, bonus, cand[j, DEMAND], scal[PEER_WEIGHT],
                    work[PEER_MEMBERS, j], work[PEER_INSIDE, j], work[PEER_TOTAL, j]) >= 0.0:  # joins
            spent += offer
            a, heap, seq = _join(j, offer, t, heap, seq, scal, cand, work, status, events, adj_ptr,
                                 adj_cand, adj_tie, peer_w, seed, episode)
            capacity += a
            at_venue[j] = 1
            size += 1
            venue_joins += 1
            members_in += 1.0
            bonus = inst[k, VENUE_BONUS] * members_in / seats if seats > 0.0 else 0.0
            asked = 0  # a join: everyone may now accept
    for p in range(n_eligible):  # the rest get their reservation back
        j = eligible[p]
        if status[j] != MEMBER:
            free += work[VENUE_OFFER, j]
    return free, spent, capacity, size, venue_joins, heap, seq


@njit(cache=True, inline="always")
def _withdraw(i, capacity, scal, work, status, adj_ptr, adj_cand, adj_tie, peer_w):
    """Withdraw(i): i leaves; returns the capacity A summed afresh over the remaining members."""
    status[i] = WITHDRAWN
    capacity = 0.0  # summed afresh, so no rounding residue is left behind (-1e-17 < R = 0)
    for j in range(status.shape[0]):  # (adding 0.0 for non-members changes no bit)
        capacity += work[CONTRIBUTION, j] * (status[j] == MEMBER)
    if scal[PEER_WEIGHT] > 0.0:
        _peer_sums_after_leaving(i, work, status, adj_ptr, adj_cand, adj_tie, peer_w)
    return capacity


@njit(cache=True, _nrt=False, error_model="numpy")
def run_episode(seed, episode, cand, scal, tie_ends, tie_tables, tie_mix, adj_ptr, adj_cand, adj_tie,
                inst, inst_members, work, status, at_venue, order, eligible, peer_w, events, out):
    """Run one episode; outcomes go to `out`, per-candidate results stay in the workspace.

    After the call, for candidate i: status MEMBER = member at T; MEMBER or
    WITHDRAWN = ever joined; at_venue[i] = joined at a venue; work[PAYMENT, i]
    = payment received (0 if it never joined).
    """
    _start(seed, episode, cand, scal, tie_ends, tie_tables, tie_mix, work, status, at_venue, order, eligible, peer_w)
    requirement = scal[REQUIREMENT]
    min_partners = scal[MIN_PARTNERS]
    capacity = 0.0
    size = 0
    free = scal[BUDGET]
    spent = 0.0
    offers = 0
    venue_joins = 0
    withdrawals = 0
    open_talks = 0
    next_on_list = 0
    time_to_success = math.nan
    heap = 0
    seq = 0
    for k in range(inst.shape[0]):  # NaN venue day (no venue) is never < deadline
        heap, seq = _schedule(events, heap, seq, inst[k, VENUE_DAY], scal[DEADLINE], VENUE + 4 * k)

    t = 0.0
    while True:
        # success bookkeeping, then Open (at t = 0 and after every event)
        recruiting = not (capacity >= requirement and size >= min_partners)
        if not recruiting and math.isnan(time_to_success):
            time_to_success = t
        if recruiting:
            free, open_talks, offers, next_on_list, heap, seq = _open(
                t, free, open_talks, offers, next_on_list, heap, seq, scal, cand, work, status, order, events,
                seed, episode)
        if heap == 0:
            break
        heap = _pop(events, heap)
        t = events[heap, EVENT_TIME]
        item = int(events[heap, EVENT_ITEM])
        kind = item & 3
        i = item >> 2
        if kind == RESPONSE:
            free, spent, capacity, size, open_talks, offers, heap, seq = _respond(
                i, t, free, spent, capacity, size, open_talks, offers, heap, seq, scal, cand, work, status,
                events, adj_ptr, adj_cand, adj_tie, peer_w, seed, episode)
        elif kind == WITHDRAW:
            capacity = _withdraw(i, capacity, scal, work, status, adj_ptr, adj_cand, adj_tie, peer_w)
            size -= 1
            withdrawals += 1
        else:  # VENUE of institution i
            free, spent, capacity, size, venue_joins, heap, seq = _venue(
                i, t, free, spent, capacity, size, venue_joins, heap, seq, scal, cand, inst, inst_members, work,
                status, at_venue, order, eligible, events, adj_ptr, adj_cand, adj_tie, peer_w, seed, episode)

    out[SIZE] = size
    out[CAPACITY] = capacity
    out[SPENT] = spent
    out[SUCCESS] = 1.0 if (capacity >= requirement and size >= min_partners) else 0.0
    out[TIME_TO_SUCCESS] = time_to_success
    out[OFFERS] = offers
    out[VENUE_JOINS] = venue_joins
    out[WITHDRAWALS] = withdrawals
