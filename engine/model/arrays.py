"""Scenario -> the arrays the kernels read (column names in kernels/layout.py).

Here the fixed derived quantities of MODEL.md are computed once per scenario
(expected contribution, hold-out demand, broker tie) and the mechanism
switches that act on them are applied.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from engine.model.tie_tables import kernel_tables
from engine.model.keys import candidate_key, tie_key
from engine.model.scenario import MECHANISMS, PARAMETERS, Scenario
from kernels import layout as L


VALUE_BINS = 1024        # histogram bins over each continuous metric's range
MAX_OFFERS_BIN = 100_000  # offers beyond this share the last histogram bin


class Ranges(NamedTuple):
    """Histogram layout of one scenario's outcomes."""
    top: np.ndarray   # upper end of capacity, spent, time to success
    days: int         # last day of the time-to-success table
    max_offers: int   # last offers bin


def outcome_ranges(s: Scenario) -> Ranges:
    """Ranges every outcome of `s` lies in (an empty range is widened to 1)."""
    tops, days, max_offers = ranges_of(np.array([[c.capacity[2] for c in s.candidates]], np.float64).reshape(1, -1),
                                       np.array([s.deadline_days], np.float64), np.array([s.budget], np.float64),
                                       np.array([s.parameters["max_rounds"]], np.float64))
    return Ranges(tops[0], int(days[0]), int(max_offers[0]))


def ranges_of(highs, deadline, budget, max_rounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ranges of R scenarios or design rows from their capacity highs (R, N), deadlines,
    budgets and max_rounds (R,): the tops of capacity, spent and time to success (R, 3), the last
    day (R,) and the last offers bin (R,)."""
    # summed in candidate order, one after another (cumsum does; a pairwise sum's last bit differs)
    capacity_top = np.cumsum(highs, axis=1)[:, -1] if highs.shape[1] else np.zeros(len(deadline))
    tops = np.stack([np.where(capacity_top != 0, capacity_top, 1.0), np.where(budget != 0, budget, 1.0),
                     deadline], axis=1)
    max_offers = np.minimum(highs.shape[1] * max_rounds, MAX_OFFERS_BIN)
    return tops, np.ceil(deadline).astype(np.int64), max_offers.astype(np.int64)


class ModelArrays(NamedTuple):
    cand: np.ndarray          # (N, N_CANDIDATE_COLUMNS) float64
    scal: np.ndarray          # (N_SCALARS,) float64
    tie_ends: np.ndarray      # (n_ties, 3) int64: the two candidate indices and the tie's key
    tie_shapes: np.ndarray    # (N + n_ties, 2) float64: mean and concentration of each candidate's
                              # tie with P, then of each candidate tie (their Beta tables: kernel_args)
    adj_ptr: np.ndarray       # (N + 1,) int64: CSR of each candidate's ties
    adj_cand: np.ndarray      # (2 n_ties,) int64: the tied candidate
    adj_tie: np.ndarray       # (2 n_ties,) int64: the tie's index
    inst: np.ndarray          # (K, N_INSTITUTION_COLUMNS) float64
    inst_members: np.ndarray  # (K, N) uint8
    tie_grid: np.ndarray | None = None  # (N + n_ties + channels,) int8 per tie shape: 0 its own table,
                                        # 1 the shape grid in the mean, 2 in mean and concentration

    def kernel_args(self) -> tuple:
        """The arrays in the order the kernels take them, with the ties' Beta quantile tables and
        their mix (engine/model/tie_tables.py) in place of their shapes. The tables (25 KB a tie)
        are built here, where a chunk runs, not kept with the scenario: a study's rows would
        otherwise hold one set each."""
        tables, mix = kernel_tables(self.tie_shapes, self.tie_grid)
        return (self.cand, self.scal, self.tie_ends, tables, mix, self.adj_ptr,
                self.adj_cand, self.adj_tie, self.inst, self.inst_members)


class Fields(NamedTuple):
    """The values a scenario's kernel arrays are computed from, each with a leading row axis: one
    row for a scenario, one per design row for a study's block of rows (engine/studies/rows.py),
    so both go through the one computation (`value_arrays`)."""
    capacity: np.ndarray      # (R, N, 3) low, mode, high
    preference: np.ndarray    # (R, N, 2) mean, sd
    shapes: np.ndarray        # (R, S, 2) tie shapes (mean, concentration), in `tie_shapes` order
    top: np.ndarray           # (R, 4) deadline_days, requirement, min_partners, budget
    parameters: np.ndarray    # (R, len(PARAMETERS)) in PARAMETERS order
    mechanisms: np.ndarray    # (R, len(MECHANISMS)) 1.0 on, 0.0 off
    institutions: np.ndarray  # (R, K, 3) broker, venue_day (NaN: none), venue_bonus


class Structure(NamedTuple):
    """What a scenario's values do not change: who is who, who is tied to whom, who belongs where."""
    keys: np.ndarray          # (N,) candidate keys
    channel_rows: np.ndarray  # (N, 3) the shape row of each channel given, else -1
    pivot_member: np.ndarray  # (K,) 1.0 if P belongs
    members: np.ndarray       # (K, N) uint8


TOP_FIELDS = ("deadline_days", "requirement", "min_partners", "budget")
PARAMETER_INDEX = {name: k for k, name in enumerate(PARAMETERS)}
MECHANISM_INDEX = {name: k for k, name in enumerate(MECHANISMS)}


def value_arrays(f: Fields, st: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cand, scal, inst) of each row of `f`, with a leading row axis (MODEL.md, section 3: the
    expected contribution, the hold-out demand and the broker tie, with the mechanism switches)."""
    rows, n, k = f.capacity.shape[0], f.capacity.shape[1], f.institutions.shape[1]
    p = lambda name: f.parameters[:, PARAMETER_INDEX[name]]  # noqa: E731
    on = lambda name: f.mechanisms[:, MECHANISM_INDEX[name]] != 0.0  # noqa: E731
    cand = np.zeros((rows, n, L.N_CANDIDATE_COLUMNS))
    cand[:, :, [L.LOW, L.MODE, L.HIGH]] = f.capacity
    cand[:, :, [L.PREF_MEAN, L.PREF_SD]] = f.preference
    cand[:, :, L.KEY] = st.keys
    expected = cand[:, :, [L.LOW, L.MODE, L.HIGH]].sum(axis=2) / 3.0
    cand[:, :, L.EXPECTED] = expected
    requirement = f.top[:, 1:2]
    with np.errstate(divide="ignore", invalid="ignore"):
        criticality = np.where(requirement > 0, np.minimum(1.0, expected / requirement), 0.0)
    cand[:, :, L.DEMAND] = p("holdout")[:, None] * criticality
    brokers = on("brokers")
    for j in range(k):
        if st.pivot_member[j]:
            rows_j = st.members[j].astype(bool)
            raised = np.maximum(cand[:, rows_j, L.BROKER_TIE], f.institutions[:, j, 0:1])
            cand[:, rows_j, L.BROKER_TIE] = np.where(brokers[:, None], raised, cand[:, rows_j, L.BROKER_TIE])
    cand[:, :, [L.INFO_ROW, L.LINK_ROW, L.CRED_ROW]] = st.channel_rows

    inst = np.zeros((rows, k, L.N_INSTITUTION_COLUMNS))
    inst[:, :, 0] = np.where(on("venues")[:, None], f.institutions[:, :, 1], math.nan)
    inst[:, :, 1] = f.institutions[:, :, 2]
    inst[:, :, 2] = st.pivot_member
    inst[:, :, 3] = st.members.sum(axis=1)

    scal = np.zeros((rows, L.N_SCALARS))
    scal[:, L.DEADLINE], scal[:, L.REQUIREMENT], scal[:, L.MIN_PARTNERS], scal[:, L.BUDGET] = f.top.T
    for column, name in ((L.INFO_NOISE, "info_noise"), (L.CREDIBILITY_FLOOR, "credibility_floor"),
                         (L.LINKAGE, "linkage"), (L.BANDWIDTH, "bandwidth"), (L.DELAY_MIN, "delay_min_days"),
                         (L.DELAY_MAX, "delay_max_days"), (L.MAX_ROUNDS, "max_rounds"),
                         (L.ESCALATION, "escalation"), (L.MARGIN, "margin"),
                         (L.APPROACH_COST, "approach_cost")):
        scal[:, column] = p(name)
    scal[:, L.PEER_WEIGHT] = np.where(on("peers"), p("peer_weight"), 0.0)
    scal[:, L.WITHDRAWAL_RATE] = np.where(on("withdrawals"), p("withdrawal_rate"), 0.0)
    scal[:, L.USE_INFORMATION] = on("information")
    scal[:, L.USE_LINKAGE] = on("linkage")
    scal[:, L.USE_CREDIBILITY] = on("credibility")
    return cand, scal, inst


def scenario_fields(s: Scenario) -> tuple[Fields, Structure]:
    """The values (one row) and the structure of `s`."""
    index = {c.id: i for i, c in enumerate(s.candidates)}
    n, k = len(s.candidates), len(s.institutions)
    shapes = [c.tie for c in s.candidates] + [(t.mean, t.concentration) for t in s.ties]
    channel_rows = np.full((n, 3), -1.0)
    for i, c in enumerate(s.candidates):
        for column, shape in enumerate(c.channels):
            if shape is not None:
                channel_rows[i, column] = len(shapes)
                shapes.append(shape)
    members = np.zeros((k, n), np.uint8)
    for j, institution in enumerate(s.institutions):
        for m in institution.members:
            members[j, index[m]] = 1
    fields = Fields(
        np.array([c.capacity for c in s.candidates], np.float64).reshape(1, n, 3),
        np.array([c.preference for c in s.candidates], np.float64).reshape(1, n, 2),
        np.array(shapes, np.float64).reshape(1, -1, 2),
        np.array([[s.deadline_days, s.requirement, s.min_partners, s.budget]], np.float64),
        np.array([[s.parameters[name] for name in PARAMETERS]], np.float64),
        np.array([[float(s.mechanisms[name]) for name in MECHANISMS]]),
        np.array([(i.broker, math.nan if i.venue_day is None else i.venue_day, i.venue_bonus)
                  for i in s.institutions], np.float64).reshape(1, k, 3))
    structure = Structure(np.array([candidate_key(c.id) for c in s.candidates], np.float64), channel_rows,
                          np.array([float(i.pivot_member) for i in s.institutions]), members)
    return fields, structure


def build_model_arrays(s: Scenario, exact_ties: TieShapes | None = None) -> ModelArrays:
    """Compute the fixed quantities of `s` and lay them out for the kernels. With `exact_ties`
    (a study row's: its base scenario's tie shapes) a tie whose shape is not among them is
    drawn from the shape grid (docs/MODEL.md, section 8); without, every tie from its own table."""
    index = {c.id: i for i, c in enumerate(s.candidates)}
    n = len(s.candidates)
    fields, structure = scenario_fields(s)
    cand, scal, inst = (a[0] for a in value_arrays(fields, structure))
    tie_shapes = fields.shapes[0]
    inst_members = structure.members

    ends = [(index[t.a], index[t.b]) for t in s.ties]
    tie_ends = np.array([(a, b, tie_key(t.a, t.b)) for (a, b), t in zip(ends, s.ties)],
                        np.int64).reshape(-1, 3)
    neighbours = [[] for _ in range(n)]
    for e, (a, b) in enumerate(ends):
        neighbours[a].append((b, e))
        neighbours[b].append((a, e))
    adj_ptr = np.zeros(n + 1, np.int64)
    adj_ptr[1:] = np.cumsum([len(x) for x in neighbours])
    flat = [pair for row in neighbours for pair in row]
    adj_cand = np.array([c for c, _ in flat], np.int64)
    adj_tie = np.array([e for _, e in flat], np.int64)
    grid = None
    if exact_ties is not None:
        grid = np.array([0 if shape in exact_ties.shapes else 1 if shape[1] in exact_ties.concentrations else 2
                         for shape in map(tuple, tie_shapes.tolist())], np.int8)
    return ModelArrays(cand, scal, tie_ends, tie_shapes, adj_ptr, adj_cand, adj_tie, inst, inst_members,
                       grid if grid is not None and grid.any() else None)


class TieShapes(NamedTuple):
    """The tie shapes (mean, concentration) drawn from their own tables in a study's rows."""
    shapes: frozenset
    concentrations: frozenset

    @classmethod
    def of(cls, s: Scenario) -> "TieShapes":
        shapes = frozenset(map(tuple, scenario_fields(s)[0].shapes[0].tolist()))
        return cls(shapes, frozenset(c for _, c in shapes))
