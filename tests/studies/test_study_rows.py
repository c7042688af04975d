"""A study's rows are validated once and share what they do not change with their base
(engine/studies/study.py `_scenarios`, engine/model/scenario.py `parse_scenario(..., like=)`)."""
import dataclasses

import pytest

from engine.forecast import forecast
from engine.model.scenario import ScenarioError, load_scenario, parse_scenario, validate_scenario
from engine.studies.study import load_study, row_id
from study_fixtures import SMALL, TUTORIAL, write_study


def test_a_row_is_the_scenario_its_document_makes_and_shares_only_what_it_leaves_unchanged(tmp_path):
    st = load_study(write_study(tmp_path, SMALL))
    base, first_row = st.scenarios[0], 1 + len(st.variants)
    tied = next(k for k, t in enumerate(base.ties) if {t.a, t.b} == {"B", "C"})
    for r in range(st.rows):
        row = st.scenarios[first_row + r]
        assert row == parse_scenario(st._row_doc(r), st.path, scenario_id=row_id(r))  # no sharing
        assert validate_scenario(row) is row  # checked when the study was loaded, not again
        for k, (mine, theirs) in enumerate(zip(row.ties, base.ties)):
            assert (mine is theirs) == (k != tied or mine == theirs)
        assert all(mine is not theirs for mine, theirs in zip(row.candidates, base.candidates)
                   if mine.preference != theirs.preference)
        assert all(mine is theirs for mine, theirs in zip(row.institutions, base.institutions))


def test_a_changed_copy_of_a_checked_scenario_is_checked_again():
    s = load_scenario(TUTORIAL)
    assert validate_scenario(s) is s
    for bad in (dataclasses.replace(s, budget=-1.0),
                dataclasses.replace(s, parameters={**s.parameters, "bandwidth": 0})):
        with pytest.raises(ScenarioError, match="budget|bandwidth"):
            forecast(bad, episodes=10)
    with pytest.raises(ScenarioError, match="requirement"):
        s.with_(requirement=-5.0)


def test_a_checked_scenario_edited_in_place_is_checked_again():
    s = load_scenario(TUTORIAL)
    s.parameters["bandwidth"] = 0      # the two dicts of a frozen Scenario can still be edited
    with pytest.raises(ScenarioError, match="bandwidth"):
        forecast(s, episodes=10)
    s = load_scenario(TUTORIAL)
    s.mechanisms["peers"] = "yes"
    with pytest.raises(ScenarioError, match="peers"):
        validate_scenario(s)
