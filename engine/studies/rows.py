"""A study's design rows evaluated in blocks: each row's figures, with no scenario per row.

A design row differs from its study's base only in the values its inputs set, so a block of
rows is the base's fields (engine/model/arrays.py: `Fields`) repeated, the inputs' values
written into them, and one `value_arrays` call for the block; the kernel
(kernels/rows.py) runs every row's episodes and the block's figures come back as a
(rows, figures) array. What a row costs beyond its episodes is a few array writes and,
when it varies a tie shape, its tie mix (engine/model/tie_tables.py: `block_tables`).

A row's numbers are those of a plain run of its scenario (the same episode keys, the same
aggregates, the same figure formulas), its ties drawn as a study row's are (the shape grid
for shapes its base lacks: docs/MODEL.md, section 8).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from engine.execution.aggregate import Aggregate
from engine.model.arrays import (
    MECHANISM_INDEX, PARAMETER_INDEX, TOP_FIELDS, VALUE_BINS, Fields, ModelArrays,
    Structure, TieShapes, build_model_arrays, ranges_of, scenario_fields, value_arrays,
)
from engine.model.scenario import CHANNELS, Scenario
from engine.outputs.figures import MEANS, figures_of, parse_figure
from kernels.chunk import GRID

CAPACITY_SUBS, PREFERENCE_SUBS, PAIR_SUBS = ("low", "mode", "high"), ("mean", "sd"), ("mean", "concentration")
INSTITUTION_SUBS = ("broker", "venue_day", "venue_bonus")


@dataclass(frozen=True)
class Slot:
    """Where one input writes one value in the fields: `field`[:, *index]."""
    field: str
    index: tuple
    base: float | None
    apply: str
    integer: bool


@dataclass(frozen=True)
class RowDesign:
    """What a worker needs to evaluate any block of a study's rows: the base's fields and
    structure, each input's slots, the rows' drawn values and the figures wanted (a few
    arrays: the values are rows x inputs floats, shipped once)."""
    fields: Fields
    structure: Structure
    base: ModelArrays
    exact: TieShapes
    slots: tuple            # per input, a tuple of Slot
    values: np.ndarray      # (rows, inputs) drawn values (a mechanism's true/false as 1.0/0.0)
    figures: tuple
    ids: tuple              # candidate ids
    episodes: int

    @property
    def rows(self) -> int:
        return len(self.values)

    def run(self, seed: int, first: int, stop: int) -> np.ndarray:
        """The figures of rows [first, stop): (rows, figures) floats (what a row-block chunk returns)."""
        return run_rows(self, seed, first, stop)

    def digest(self) -> str:
        """What the rows are, for the run's config hash: the inputs' slots, values and figures."""
        h = hashlib.sha256(repr((self.slots, self.figures, self.episodes)).encode())
        h.update(np.ascontiguousarray(self.values).tobytes())
        return h.hexdigest()

    def block_fields(self, first: int, stop: int) -> Fields:
        """The fields of rows [first, stop)."""
        rows = stop - first
        f = Fields(*(np.repeat(a, rows, axis=0) for a in self.fields))
        for j, slots in enumerate(self.slots):
            v = self.values[first:stop, j]
            for slot in slots:
                x = v if slot.apply == "set" else slot.base + v if slot.apply == "shift" else slot.base * v
                if slot.integer:
                    x = np.floor(x + 0.5)
                getattr(f, slot.field)[(slice(None), *slot.index)] = x
        return f


def row_design(base: Scenario, inputs, values, figures, episodes: int) -> RowDesign:
    """The `RowDesign` of a study's base scenario, its inputs (engine/studies/study.py: Input)
    and their drawn values (rows x inputs)."""
    fields, structure = scenario_fields(base)
    n = len(base.candidates)
    slots = tuple(tuple(_slot(loc, inp.apply, structure, n) for loc in inp.locations) for inp in inputs)
    values = np.array(values, np.float64).reshape(-1, len(inputs))
    return RowDesign(fields, structure, build_model_arrays(base), TieShapes.of(base), slots, values,
                     tuple(figures), tuple(c.id for c in base.candidates), episodes)


def _slot(loc, apply: str, structure: Structure, n: int) -> Slot:
    keys, integer = loc.keys, loc.kind == "integer"
    base = None if loc.base is None else float(loc.base)
    head = keys[0]
    if head in TOP_FIELDS:
        return Slot("top", (TOP_FIELDS.index(head),), base, apply, integer)
    if head == "parameters":
        return Slot("parameters", (PARAMETER_INDEX[keys[1]],), base, apply, integer)
    if head == "mechanisms":
        return Slot("mechanisms", (MECHANISM_INDEX[keys[1]],), base, apply, False)
    if head == "ties":
        return Slot("shapes", (n + keys[1], PAIR_SUBS.index(keys[2])), base, apply, integer)
    if head == "institutions":
        return Slot("institutions", (keys[1], INSTITUTION_SUBS.index(keys[2])), base, apply, integer)
    i, fld, sub = keys[1:]
    if fld == "capacity":
        return Slot("capacity", (i, CAPACITY_SUBS.index(sub)), base, apply, integer)
    if fld == "preference":
        return Slot("preference", (i, PREFERENCE_SUBS.index(sub)), base, apply, integer)
    row = i if fld == "tie" else int(structure.channel_rows[i, CHANNELS.index(fld)])
    return Slot("shapes", (row, PAIR_SUBS.index(sub)), base, apply, integer)


def _needs_histograms(figures) -> bool:
    """Whether a figure reads the continuous histograms (quantiles of capacity, spent, time)."""
    return any(kind == "summary" and metric in ("capacity", "spent", "time_to_success") and stat.startswith("p")
               for kind, metric, stat in map(parse_figure, figures))


def run_rows(design: RowDesign, seed: int, first: int, stop: int) -> np.ndarray:
    """The figures of rows [first, stop): a (rows, figures) float array (NaN where missing)."""
    from kernels.rows import simulate_rows

    f = design.block_fields(first, stop)
    cand, scal, inst = value_arrays(f, design.structure)
    tables, mix = _block_tables(design, f.shapes)
    tops, days, max_offers = ranges_of(f.capacity[:, :, 2], f.top[:, 0], f.top[:, 3],
                                       f.parameters[:, PARAMETER_INDEX["max_rounds"]])
    b = design.base
    n_bins = VALUE_BINS if _needs_histograms(design.figures) else 1
    totals = simulate_rows(seed, design.episodes, n_bins, tops, int(days.max()), int(max_offers.max()),
                           cand, scal, b.tie_ends, tables, np.ascontiguousarray(mix), b.adj_ptr, b.adj_cand,
                           b.adj_tie, inst, b.inst_members)
    return block_figures(design.figures, design.ids, design.episodes, tops, totals)


def _block_tables(design: RowDesign, shapes: np.ndarray):
    from engine.model.tie_tables import block_tables

    return block_tables(shapes, design.fields.shapes[0], design.exact)


def block_figures(figures, ids, episodes: int, tops: np.ndarray, totals) -> np.ndarray:
    """Each row's figures from the stacked aggregates `simulate_rows` returned: the four means,
    candidates' figures and success by day at once for the block, other figures row by row
    through `figures_of` (the formulas of the tables), so both give a plain run's numbers."""
    (size, offers, venue, withdrawals, values, days, q_sum, q_sumsq, lowest, highest, successes,
     reached, candidates, payments) = totals
    n = episodes
    rows = len(tops)
    out = np.empty((rows, len(figures)))
    per_row = []
    for k, path in enumerate(figures):
        kind, a, b = parse_figure(path)
        if path in MEANS or (kind == "summary" and b == "mean" and a in MEANS):
            metric = a if kind == "summary" else path
            if metric == "success":
                out[:, k] = successes / n
            elif metric == "size":
                out[:, k] = (np.arange(size.shape[1]) * size).sum(axis=1) / n
            else:
                m = 0 if metric == "capacity" else 1
                out[:, k] = q_sum[:, m].astype(np.float64) / GRID * tops[:, m] / n
        elif kind == "candidate":
            j = ids.index(a)
            if b == "mean_payment":
                out[:, k] = payments[:, j].astype(np.float64) / GRID * tops[:, 1] / n
            else:
                out[:, k] = candidates[:, {"p_member": 0, "p_ever_joined": 1, "p_venue_join": 2}[b], j] / n
        elif kind == "by_day":
            out[:, k] = np.cumsum(days, axis=1)[:, a] / n
        else:
            per_row.append(k)
    if per_row:
        paths = [figures[k] for k in per_row]
        for r in range(rows):
            agg = Aggregate(n, size[r], offers[r], venue[r], withdrawals[r], values[r], days[r], q_sum[r],
                            q_sumsq[r], lowest[r], highest[r], int(successes[r]), int(reached[r]),
                            candidates[r], payments[r], np.zeros((0, 8)), np.zeros((0, len(ids)), np.int8))
            out[r, per_row] = figures_of(paths, ids, tops[r], agg)
    return out
