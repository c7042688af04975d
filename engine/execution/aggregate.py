"""Chunk aggregates: what a chunk returns, how chunks merge, how they are checkpointed.

All fields are integers (or min/max), so merging is exact and the merged
result is the same for any chunking; totals that could pass 2**63 over a
long run (quantised sums) are kept as Python integers after a merge.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field, fields

import numpy as np


@dataclass
class Aggregate:
    """Exact summary of a set of episodes of one scenario."""
    episodes: int
    size_hist: np.ndarray          # (N + 1,) episodes by coalition size at T
    offers_hist: np.ndarray        # (max_offers + 1,) by bilateral offers made
    venue_hist: np.ndarray         # (N + 1,) by venue joins
    withdrawal_hist: np.ndarray    # (N + 1,) by withdrawals
    value_hist: np.ndarray         # (3, bins) capacity, spent, time to success
    day_hist: np.ndarray           # (days + 1,) by ceil(time to success)
    q_sum: np.ndarray              # (3,) sums on the 2**-32 grid of each range
    q_sumsq: np.ndarray            # (3,) sums of squares, same grid squared
    lowest: np.ndarray             # (3,) min
    highest: np.ndarray            # (3,) max
    successes: int                 # success at T
    reached: int                   # success reached before T (time_to_success defined)
    cand_counts: np.ndarray        # (3, N) member at T, ever joined, joined at a venue
    cand_pay: np.ndarray           # (N,) payments received, on the spent grid
    kept: np.ndarray               # (k, 8) leading episodes' outcomes (kernels.layout order)
    kept_members: np.ndarray       # (k, N) member at T, per kept episode
    # (4,) sums over episodes of this scenario's outcome times its paired base's (success,
    # size, capacity, spent; engine/studies/comparisons.py), then (N,) episodes each candidate is
    # a member at T in both (engine/execution/pairs.py); zeros(4) outside a paired group
    paired: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))

    @classmethod
    def from_slices(cls, episodes, slices) -> "Aggregate":
        """Combine `kernels.chunk.simulate_chunk` results of consecutive slices of a chunk
        (each optionally followed by its paired cross sums)."""
        columns = list(zip(*slices))
        (size_hist, offers_hist, venue_hist, withdrawal_hist, value_hist, day_hist, q_sum,
         q_sumsq, lowest, highest, successes, reached, cand_counts, cand_pay, kept,
         kept_members) = columns[:16]
        total = lambda parts: np.sum(parts, axis=0)  # noqa: E731 - int64: a chunk cannot overflow
        paired = total(columns[16]) if len(columns) > 16 else np.zeros(4, np.int64)
        return cls(episodes, total(size_hist), total(offers_hist), total(venue_hist),
                   total(withdrawal_hist), total(value_hist), total(day_hist), total(q_sum),
                   total(q_sumsq), np.min(lowest, axis=0), np.max(highest, axis=0),
                   int(sum(successes)), int(sum(reached)), total(cand_counts), total(cand_pay),
                   np.concatenate(kept), np.concatenate(kept_members), paired)

    def merge(self, later: "Aggregate") -> "Aggregate":
        """Add the aggregate of the chunk that follows this one (chunk order matters for `kept`)."""
        big = lambda a, b: a.astype(object) + b.astype(object)  # noqa: E731 - exact, unbounded
        return Aggregate(
            self.episodes + later.episodes,
            self.size_hist + later.size_hist, self.offers_hist + later.offers_hist,
            self.venue_hist + later.venue_hist, self.withdrawal_hist + later.withdrawal_hist,
            self.value_hist + later.value_hist, self.day_hist + later.day_hist,
            big(self.q_sum, later.q_sum), big(self.q_sumsq, later.q_sumsq),
            np.minimum(self.lowest, later.lowest), np.maximum(self.highest, later.highest),
            self.successes + later.successes, self.reached + later.reached,
            self.cand_counts + later.cand_counts, big(self.cand_pay, later.cand_pay),
            np.concatenate([self.kept, later.kept]) if len(later.kept) else self.kept,
            np.concatenate([self.kept_members, later.kept_members]) if len(later.kept) else self.kept_members,
            big(self.paired, later.paired),
        )



def _chunk_arrays(aggregates: list[Aggregate] | np.ndarray) -> dict[str, np.ndarray]:
    """Each field of all aggregates as one array (their flattened values end to end) plus their
    shapes: a group of many scenarios is a handful of arrays, not a handful per scenario. A
    block of compact design rows returns its rows' figures, one array."""
    if isinstance(aggregates, np.ndarray):
        return {"row_figures": aggregates}
    arrays = {}
    for f in fields(Aggregate):
        parts = [np.asarray(getattr(agg, f.name)) for agg in aggregates]
        arrays[f.name] = np.concatenate([p.ravel() for p in parts])
        arrays[f"{f.name}.shape"] = np.array([p.shape for p in parts], np.int64).reshape(len(parts), -1)
    return arrays


CHUNK_MAGIC = b"PVC1"  # a checkpoint payload: magic, header length, header, arrays, CRC-32


def encode_chunk(aggregates: list[Aggregate] | np.ndarray) -> bytes:
    """A chunk's aggregates (one per scenario of its group), or a block of design rows'
    figures, as a checkpoint's payload (a journal record on local disk, one object on object
    storage): a JSON header naming each array's dtype and shape, the arrays' bytes end to end,
    and a CRC-32 of all of it, so a torn or damaged payload is refused when it is decoded."""
    arrays = _chunk_arrays(aggregates)
    header = json.dumps([[name, a.dtype.str, a.shape] for name, a in arrays.items()]).encode()
    body = b"".join([CHUNK_MAGIC, struct.pack("<I", len(header)), header,
                     *(np.ascontiguousarray(a).tobytes() for a in arrays.values())])
    return body + struct.pack("<I", zlib.crc32(body))


def decode_chunk(payload: bytes) -> list[Aggregate] | np.ndarray:
    """What `encode_chunk` encoded; ValueError if the payload is torn, damaged or foreign."""
    body = memoryview(payload)[:-4]
    if (len(payload) < 12 or payload[:4] != CHUNK_MAGIC
            or struct.unpack("<I", payload[-4:])[0] != zlib.crc32(body)):
        raise ValueError("not a whole checkpoint")
    (length,) = struct.unpack_from("<I", payload, 4)
    offset, z = 8 + length, {}
    for name, dtype, shape in json.loads(bytes(body[8:offset])):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        z[name] = np.frombuffer(body[offset:offset + n], dtype).reshape(shape).copy()
        offset += n
    if offset != len(body):
        raise ValueError("not a whole checkpoint")
    if "row_figures" in z:
        return z["row_figures"]
    columns = {}
    for f in fields(Aggregate):
        flat, shapes = z[f.name], z[f"{f.name}.shape"]
        ends = np.cumsum([int(np.prod(shape)) for shape in shapes])
        columns[f.name] = [part.reshape(shape) for part, shape in
                           zip(np.split(flat, ends[:-1]), shapes)]
    out = []
    for k in range(len(columns["episodes"])):
        values = {name: parts[k] for name, parts in columns.items()}
        for name in ("episodes", "successes", "reached"):
            values[name] = int(values[name])
        out.append(Aggregate(**values))
    return out
