"""The driver's merge rate (issue 21): chunk results merged per second, with tiny chunks.

A fake executor hands the driver (engine/execution/execute.py: `execute`) precomputed results
of one-episode chunks as fast as it asks, so what is timed is the driver alone: the in-order
merge, the checkpoint of each chunk (with `--out`) and the progress bookkeeping; a cluster of W
workers each finishing a chunk every C seconds needs W / C below this rate.

Run alone: `python -m bench.merge [--chunks N]`.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SYRIA = ROOT / "configs" / "scenarios" / "syria_safe_zone_2019.toml"


class Replay:
    """An executor whose every chunk result is one precomputed result (the driver's work only)."""
    name, workers = "replay", 1

    def __init__(self, result):
        self.result = result

    def map(self, job, chunks):
        for chunk in chunks:
            yield chunk, self.result


def merge_rate(path: Path, chunks: int, out: bool) -> float:
    """Chunks per second the driver merges (and checkpoints, with `out`) for a scenario."""
    from engine.execution.executors import Job, run_chunk
    from engine.execution.execute import execute
    from engine.execution.plan import Chunk, plan_run
    from engine.model.arrays import build_model_arrays, outcome_ranges
    from engine.outputs.publish import Publisher

    plan = plan_run([path], episodes=chunks, chunk_size=1, seed=1, executor="local")
    s = plan.scenarios[0]
    result = run_chunk(Job(1, 0, (build_model_arrays(s),), (outcome_ranges(s),)), Chunk(0, 0, 0, 0, 1))
    with tempfile.TemporaryDirectory() as tmp:
        publisher = Publisher(plan, Path(tmp) if out else None)
        started = time.perf_counter()
        execute(plan, Replay(result), publisher, progress=False)
        return chunks / (time.perf_counter() - started)


def merge_numbers(chunks: int = 5000) -> dict:
    res = {}
    for name, path in (("tutorial", TUTORIAL), ("syria", SYRIA)):
        for out in (False, True):
            rate = merge_rate(path, chunks, out)
            res[f"{name}_{'checkpointed' if out else 'merged'}"] = rate
            print(f"  {name}: {rate:,.0f} chunks/s {'merged and checkpointed (--out)' if out else 'merged'} "
                  f"(target >= 1,000)")
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=5000)
    merge_numbers(p.parse_args().chunks)
