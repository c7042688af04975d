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
from engine.model.scenario import Scenario
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
    capacity_top = sum(c.capacity[2] for c in s.candidates)
    top = np.array([capacity_top or 1.0, s.budget or 1.0, s.deadline_days])
    max_offers = min(len(s.candidates) * s.parameters["max_rounds"], MAX_OFFERS_BIN)
    return Ranges(top, math.ceil(s.deadline_days), max_offers)


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


def build_model_arrays(s: Scenario, exact_ties: TieShapes | None = None) -> ModelArrays:
    """Compute the fixed quantities of `s` and lay them out for the kernels. With `exact_ties`
    (a study row's: its base scenario's tie shapes) a tie whose shape is not among them is
    drawn from the shape grid (docs/MODEL.md, section 8); without, every tie from its own table."""
    p, on = s.parameters, s.mechanisms
    index = {c.id: i for i, c in enumerate(s.candidates)}
    n, k = len(s.candidates), len(s.institutions)

    cand = np.zeros((n, L.N_CANDIDATE_COLUMNS))
    cand[:, [L.LOW, L.MODE, L.HIGH, L.PREF_MEAN, L.PREF_SD, L.KEY]] = np.array(
        [(*c.capacity, *c.preference, candidate_key(c.id)) for c in s.candidates], np.float64).reshape(n, 6)
    expected = cand[:, [L.LOW, L.MODE, L.HIGH]].sum(axis=1) / 3.0
    cand[:, L.EXPECTED] = expected
    criticality = np.minimum(1.0, expected / s.requirement) if s.requirement > 0 else np.zeros(n)
    cand[:, L.DEMAND] = p["holdout"] * criticality

    inst = np.zeros((k, L.N_INSTITUTION_COLUMNS))
    inst_members = np.zeros((k, n), np.uint8)
    for j, institution in enumerate(s.institutions):
        for m in institution.members:
            inst_members[j, index[m]] = 1
        venue = institution.venue_day if (on["venues"] and institution.venue_day is not None) else math.nan
        inst[j] = (venue, institution.venue_bonus, float(institution.pivot_member), len(institution.members))
        if on["brokers"] and institution.pivot_member:
            rows = inst_members[j].astype(bool)
            cand[rows, L.BROKER_TIE] = np.maximum(cand[rows, L.BROKER_TIE], institution.broker)

    scal = np.zeros(L.N_SCALARS)
    scal[L.DEADLINE] = s.deadline_days
    scal[L.REQUIREMENT] = s.requirement
    scal[L.MIN_PARTNERS] = s.min_partners
    scal[L.BUDGET] = s.budget
    scal[L.INFO_NOISE] = p["info_noise"]
    scal[L.CREDIBILITY_FLOOR] = p["credibility_floor"]
    scal[L.LINKAGE] = p["linkage"]
    scal[L.PEER_WEIGHT] = p["peer_weight"] if on["peers"] else 0.0
    scal[L.BANDWIDTH] = p["bandwidth"]
    scal[L.DELAY_MIN] = p["delay_min_days"]
    scal[L.DELAY_MAX] = p["delay_max_days"]
    scal[L.MAX_ROUNDS] = p["max_rounds"]
    scal[L.ESCALATION] = p["escalation"]
    scal[L.MARGIN] = p["margin"]
    scal[L.APPROACH_COST] = p["approach_cost"]
    scal[L.WITHDRAWAL_RATE] = p["withdrawal_rate"] if on["withdrawals"] else 0.0
    scal[L.USE_INFORMATION] = float(on["information"])
    scal[L.USE_LINKAGE] = float(on["linkage"])
    scal[L.USE_CREDIBILITY] = float(on["credibility"])

    ends = [(index[t.a], index[t.b]) for t in s.ties]
    tie_ends = np.array([(a, b, tie_key(t.a, t.b)) for (a, b), t in zip(ends, s.ties)],
                        np.int64).reshape(-1, 3)
    # Beta tables: each candidate's tie with P, each candidate tie, then each channel given
    # (MODEL.md revision 2026-12-04); a channel's row goes in INFO_ROW/LINK_ROW/CRED_ROW, else -1
    shapes = [c.tie for c in s.candidates] + [(t.mean, t.concentration) for t in s.ties]
    cand[:, [L.INFO_ROW, L.LINK_ROW, L.CRED_ROW]] = -1.0
    for i, c in enumerate(s.candidates):
        for column, shape in zip((L.INFO_ROW, L.LINK_ROW, L.CRED_ROW), c.channels):
            if shape is not None:
                cand[i, column] = len(shapes)
                shapes.append(shape)
    tie_shapes = np.array(shapes, np.float64).reshape(-1, 2)
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
        shapes = frozenset(map(tuple, build_model_arrays(s).tie_shapes.tolist()))
        return cls(shapes, frozenset(c for _, c in shapes))
