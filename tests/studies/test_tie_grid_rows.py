"""A study row that varies a tie shape has the same numbers whatever else the run holds: alone
after its base, or among many rows in other groups and chunkings."""
import dataclasses

import polars as pl
from polars.testing import assert_frame_equal

from engine.forecast import plan_run, run_plan
from engine.model.arrays import TieShapes
from engine.model.scenario import load_scenario
from study_fixtures import TUTORIAL


def _rows(n):
    base = dataclasses.replace(load_scenario(TUTORIAL), id="base")
    rows = []
    for r in range(n):
        c = base.candidates[r % len(base.candidates)]
        tie = (min(0.95, c.tie[0] * (0.7 + 0.003 * r)), c.tie[1] * (1 + 0.01 * (r % 3)))
        cands = tuple(dataclasses.replace(x, tie=tie) if x.id == c.id else x for x in base.candidates)
        rows.append(dataclasses.replace(base, id=f"row-{r:06d}", candidates=cands))
    return base, rows


def _summary(items, base, chunk_size, key):
    plan = plan_run(items, episodes=2000, seed=9, chunk_size=chunk_size, grid_rows=(1, TieShapes.of(base)))
    s = run_plan(plan, progress=False).tables["summary"]
    return s.filter(pl.col("scenario_id") == key).drop("run_id")


def test_a_row_is_the_same_in_a_small_and_a_large_run():
    base, rows = _rows(150)
    small = _summary([base, rows[7]], base, 2000, "row-000007")
    large = _summary([base, *rows], base, 700, "row-000007")
    assert_frame_equal(small, large, check_exact=True)
    plain = _summary([base], base, 2000, "base")  # and the base is its plain run's
    assert_frame_equal(plain, _summary([base, *rows[:3]], base, 2000, "base"), check_exact=True)
