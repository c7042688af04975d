"""Column indices of the arrays the engine hands to the kernels.

A scenario reaches the kernels as a handful of float and integer arrays (see
engine/model/arrays.py); these names say which column holds what. Mechanism
switches that act through a fixed quantity are applied by the engine before
the arrays are built (brokers -> broker tie, holdout -> demand, peers ->
peer weight, withdrawals -> rate, venues -> venue days); the three that act
on the drawn tie are passed as flags.
"""

# candidate columns (float64, one row per candidate)
# (KEY: the candidate's random-number key, engine/model/keys.py; its tie's Beta table is row i of the
# tie tables, engine/model/tie_tables.py; INFO_ROW, LINK_ROW, CRED_ROW: the row of the Beta table of
# its information, linkage and credibility tie when the scenario gives one, else -1: the channel is
# then the tie itself, MODEL.md revision 2026-12-04)
LOW, MODE, HIGH, PREF_MEAN, PREF_SD, EXPECTED, DEMAND, BROKER_TIE, KEY, INFO_ROW, LINK_ROW, CRED_ROW = range(12)
N_CANDIDATE_COLUMNS = 12

# candidate tie columns (int64, one row per tie; its Beta table is row N + e of the tie tables)
TIE_A, TIE_B, TIE_KEY = range(3)

# scenario scalars (float64 vector)
(DEADLINE, REQUIREMENT, MIN_PARTNERS, BUDGET, INFO_NOISE, CREDIBILITY_FLOOR,
 LINKAGE, PEER_WEIGHT, BANDWIDTH, DELAY_MIN, DELAY_MAX, MAX_ROUNDS, ESCALATION,
 MARGIN, APPROACH_COST, WITHDRAWAL_RATE, USE_INFORMATION, USE_LINKAGE,
 USE_CREDIBILITY) = range(19)
N_SCALARS = 19

# institution columns (float64, one row per institution); VENUE_DAY is NaN without a venue
VENUE_DAY, VENUE_BONUS, PIVOT_MEMBER, N_MEMBERS = range(4)
N_INSTITUTION_COLUMNS = 4

# candidate status during an episode
UNTOUCHED, NEGOTIATING, MEMBER, REFUSED, PASSED, WITHDRAWN = range(6)

# per-episode outcomes (float64 vector returned by one episode)
SIZE, CAPACITY, SPENT, SUCCESS, TIME_TO_SUCCESS, OFFERS, VENUE_JOINS, WITHDRAWALS = range(8)
N_OUTCOMES = 8
