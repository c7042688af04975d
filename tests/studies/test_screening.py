"""Morris and FAST designs (docs/STUDIES.md): indices against closed forms and against SALib's
own analysis on the same samples; refusals; a study end to end."""
import numpy as np
import polars as pl
import pytest
from SALib.analyze import fast as salib_fast, morris as salib_morris
from SALib.test_functions import Ishigami

import pivotal
from engine.cli.main import main
from engine.studies.designs import design_rows, sensitivity_tables, unit_sample
from study_fixtures import TUTORIAL, write_study

NAMES = ["x1", "x2", "x3"]
REAL = {"num_vars": 3, "names": NAMES, "bounds": [[-np.pi, np.pi]] * 3}


def _table(sampler, unit, y, levels=4, seed=11):
    t = sensitivity_tables("r", sampler, NAMES, unit, {"y": y}, False, seed, levels=levels)["sensitivity"]
    return pl.from_arrow(t)


def test_morris_linear_function_closed_form():
    unit = unit_sample("morris", NAMES, 20, False, 4, seed=3)
    assert unit.shape == (design_rows("morris", 3, 20, False, 4), 3) == (80, 3)
    y = 3.0 * unit[:, 0] - 2.0 * unit[:, 1] + 0.0 * unit[:, 2]
    t = _table("morris", unit, y)
    # every elementary effect of a linear function is its coefficient (per unit of the coordinate)
    assert t["mu"].to_list() == pytest.approx([3.0, -2.0, 0.0], abs=1e-9)
    assert t["mu_star"].to_list() == pytest.approx([3.0, 2.0, 0.0], abs=1e-9)
    assert t["sigma"].to_list() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert t["method"].unique().to_list() == ["morris"] and t["S1"].null_count() == 3


def test_morris_equals_salib_on_ishigami():
    unit = unit_sample("morris", NAMES, 50, False, 6, seed=5)
    y = Ishigami.evaluate(-np.pi + 2 * np.pi * unit)
    t = _table("morris", unit, y, levels=6)
    ref = salib_morris.analyze(REAL, -np.pi + 2 * np.pi * unit, y, num_resamples=100, conf_level=0.95,
                               num_levels=6, seed=12)
    # SALib's elementary effects are dy / delta with delta a step of the unit grid, whatever the
    # bounds: the same numbers as ours on the unit coordinates
    assert t["mu_star"].to_list() == pytest.approx(list(ref["mu_star"]), rel=1e-9)
    assert t["mu"].to_list() == pytest.approx(list(ref["mu"]), rel=1e-9, abs=1e-9)
    assert t["sigma"].to_list() == pytest.approx(list(ref["sigma"]), rel=1e-9)
    assert t["mu_star_conf"].to_list() == pytest.approx(list(ref["mu_star_conf"]), rel=1e-9)


def test_fast_equals_salib_and_the_ishigami_closed_form():
    unit = unit_sample("fast", NAMES, 1000, False, 5, seed=8)
    assert unit.shape == (3000, 3)
    y = Ishigami.evaluate(-np.pi + 2 * np.pi * unit)
    t = _table("fast", unit, y)
    ref = salib_fast.analyze(REAL, y, M=4, num_resamples=100, conf_level=0.95, seed=12)
    assert t["S1"].to_list() == pytest.approx(list(ref["S1"]), rel=1e-12)
    assert t["ST"].to_list() == pytest.approx(list(ref["ST"]), rel=1e-12)
    assert t["S1_conf"].to_list() == pytest.approx(list(ref["S1_conf"]), rel=1e-12)
    # Ishigami (a = 7, b = 0.1): S1 = 0.314, 0.442, 0; ST = 0.558, 0.442, 0.244
    assert t["S1"].to_list() == pytest.approx([0.314, 0.442, 0.0], abs=0.03)
    assert t["ST"].to_list() == pytest.approx([0.558, 0.442, 0.244], abs=0.05)


def test_constant_or_missing_output_has_null_indices():
    unit = unit_sample("morris", NAMES, 4, False, 4, seed=1)
    for y in (np.ones(len(unit)), np.where(np.arange(len(unit)) == 2, np.nan, unit[:, 0])):
        t = _table("morris", unit, y)
        assert t["mu_star"].null_count() == 3


@pytest.mark.parametrize("design, rule", [
    ('sampler = "fast"\nsamples = 64', "design.samples: must be above 64 for fast"),
    ('sampler = "morris"\nsamples = 4\nlevels = 5', "design.levels: must be an even number"),
])
def test_refusals(tmp_path, capsys, design, rule):
    path = write_study(tmp_path, f'[design]\n{design}\n[[inputs]]\npath = "budget"\nlow = 50\nhigh = 600\n')
    assert main(["validate", str(path)]) == 2
    assert rule in capsys.readouterr().err


def test_morris_study_ranks_the_budget_first(tmp_path):
    st = pivotal.Study("screen", TUTORIAL, episodes=600, seed=4, design={"sampler": "morris", "samples": 6},
                       inputs=[{"path": "budget", "low": 20, "high": 600},
                               {"path": "institutions.REG.broker", "low": 0.0, "high": 0.01}])
    assert st.checked.rows == 6 * 3
    sens = pivotal.study(st, progress=False).tables["sensitivity"].filter(pl.col("output") == "success")
    mu = dict(zip(sens["input"], sens["mu_star"]))
    assert mu["budget"] > 0.1 and mu["budget"] > 5 * mu["institutions.REG.broker"]
