"""Study inputs that set integers (bandwidth, max_rounds, min_partners): every integer of a
uniform's range equally likely, and the `design` table records the values actually run."""
import collections

import pytest

import pivotal
from engine.model.scenario import ScenarioError
from engine.studies.study import load_study
from study_fixtures import TUTORIAL, write_study

GRID = '''
[design]
sampler = "grid"
levels = 3
[[inputs]]
path = "parameters.bandwidth"
low = 1
high = 4
'''


def test_a_grid_over_an_integer_range_runs_distinct_integers_and_records_them(tmp_path):
    """A 3-level grid over bandwidth 1-4 ran {2, 2, 4} (round half to even of 1.5, 2.5, 3.5)
    while the design table recorded 1.5, 2.5, 3.5."""
    st = load_study(write_study(tmp_path, GRID))
    run = [s.parameters["bandwidth"] for s in st.scenarios if s.id.startswith("row-")]
    assert run == [1, 3, 4]
    res = pivotal.study(st, episodes=200, progress=False)
    design = res.tables["design"].filter(res.tables["design"]["row"] >= 0).sort("row")
    assert design["value"].to_list() == [1.0, 3.0, 4.0]


def test_a_uniform_integer_input_gives_every_integer_the_same_weight(tmp_path):
    st = load_study(write_study(tmp_path, GRID.replace('sampler = "grid"\nlevels = 3',
                                                       'sampler = "random"\nsamples = 8000')))
    counts = collections.Counter(s.parameters["bandwidth"] for s in st.scenarios if s.id.startswith("row-"))
    assert sorted(counts) == [1, 2, 3, 4]
    for k in (1, 2, 3, 4):  # each 1/4: 2,000 +- 4 sd (sd = sqrt(8000 * 3/16) = 39)
        assert abs(counts[k] - 2000) < 160, counts


def test_non_integer_bounds_keep_to_the_integers_inside_and_an_empty_range_is_refused(tmp_path):
    st = load_study(write_study(tmp_path, GRID.replace("low = 1\nhigh = 4", "low = 1.5\nhigh = 3.2")))
    assert {s.parameters["bandwidth"] for s in st.scenarios if s.id.startswith("row-")} <= {2, 3}
    with pytest.raises(ScenarioError, match=r"inputs\[0\].*whole numbers.*holds none"):
        load_study(write_study(tmp_path, GRID.replace("low = 1\nhigh = 4", "low = 1.2\nhigh = 1.8"), name="e.toml"))


def test_shifted_integers_round_half_up(tmp_path):
    body = GRID.replace("low = 1\nhigh = 4", 'apply = "shift"\nlow = 0.5\nhigh = 0.5').replace("levels = 3", "levels = 1")
    st = load_study(write_study(tmp_path, body))
    base = pivotal.load_scenario(TUTORIAL).parameters["bandwidth"]
    assert [s.parameters["bandwidth"] for s in st.scenarios if s.id.startswith("row-")] == [base + 1]
