"""Rules at their boundaries, on deterministic scenarios (preference sd 0, ties of mean 1, no
information noise, replies at once), each with the outcome MODEL.md implies (docs/MODEL.md,
"Boundaries")."""
import numpy as np
import polars as pl
import pytest

from conftest import metric, run, scenario_doc

EXACT = {"info_noise": 0.0, "linkage": 0.0, "holdout": 0.0, "margin": 0.0, "escalation": 0.0,
         "max_rounds": 1, "delay_min_days": 0.0, "delay_max_days": 0.0}


def one(mean=-0.5, capacity=100.0, tie=1.0):
    """theta = mean exactly; tie 1 so v = 1 (linkage 0): the planned offer is -mean."""
    return {"id": "A", "capacity": {"low": capacity, "mode": capacity, "high": capacity},
            "preference": {"mean": mean, "sd": 0.0}, "tie": {"mean": tie, "concentration": 5.0}}


def doc(budget, **top):
    return scenario_doc(candidates=[one()], parameters=dict(EXACT), budget=budget, requirement=100.0, **top)


def test_an_offer_equal_to_the_free_budget_is_made_and_an_acceptance_at_zero_utility_counts():
    """shat = 0.5 = Bfree: 'passed' only if shat > Bfree, so the offer is made; u = -0.5 + 0.5 = 0
    and 'i accepts iff u >= 0'. One unit less of budget and it is passed, never offered."""
    t = run(doc(budget=0.5), episodes=50)
    assert metric(t, "size", "min") == 1 and metric(t, "offers", "min") == 1
    assert metric(t, "spent", "min") == pytest.approx(0.5)
    t = run(doc(budget=0.5 - 1e-9), episodes=50)
    assert metric(t, "size", "max") == 0 and metric(t, "offers", "max") == 0 and metric(t, "spent", "max") == 0


def test_a_requirement_of_zero_is_met_at_once_and_nobody_is_approached():
    """R = 0 and L = 0: P is not recruiting at t = 0 (A >= 0 and n >= 0 hold), so no offer is
    made, nothing is spent, success holds with time to success 0; L = 1 makes it recruit."""
    d = scenario_doc(candidates=[one(mean=1.0), one(mean=-0.2) | {"id": "B"}], parameters=dict(EXACT),
                     budget=5.0, requirement=0.0, min_partners=0)
    t = run(d, episodes=50)
    for m in ("offers", "spent", "size"):
        assert metric(t, m, "max") == 0, m
    assert metric(t, "success", "min") == 1 and metric(t, "time_to_success", "max") == 0.0
    assert t["time_to_success"].filter(pl.col("day") == 0)["p_success_by_day"].item() == 1.0
    d["parameters"]["bandwidth"] = 1  # one talk at a time: the willing one (first in P's list) is enough
    t = run(d | {"min_partners": 1}, episodes=50)
    assert metric(t, "size", "min") == metric(t, "size", "max") == 1 and metric(t, "spent", "max") == 0


def test_a_venue_at_the_deadline_never_runs_and_one_just_before_does():
    """'Events at t >= T never run.'"""
    def venue_doc(day):
        return scenario_doc(candidates=[one()], parameters=dict(EXACT), budget=0.0, requirement=100.0,
                            deadline_days=50.0, institutions=[
                                {"id": "ORG", "members": ["A"], "pivot_member": True, "venue_day": day,
                                 "venue_bonus": 2.0}])
    assert metric(run(venue_doc(50.0), episodes=50), "venue_joins", "max") == 0
    assert metric(run(venue_doc(49.999), episodes=50), "venue_joins", "min") == 1


def test_a_success_on_a_fractional_day_counts_from_the_next_whole_day():
    """Success at t = 2.3 (a venue): time_to_success 2.3; the time_to_success table counts it
    from day 3 (day d: time to success <= d)."""
    d = scenario_doc(candidates=[one()], parameters=dict(EXACT), budget=0.0, requirement=100.0,
                     deadline_days=10.0, institutions=[{"id": "ORG", "members": ["A"], "pivot_member": True,
                                                        "venue_day": 2.3, "venue_bonus": 2.0}])
    t = run(d, episodes=20)
    assert metric(t, "time_to_success", "min") == pytest.approx(2.3)
    by_day = dict(zip(t["time_to_success"]["day"], t["time_to_success"]["p_success_by_day"]))
    assert (by_day[2], by_day[3]) == (0.0, 1.0)


def test_two_venues_on_one_day_run_in_institution_order_and_a_state_joins_once():
    """Venues at the same time run in institution order; a state that joined at the first is a
    member, so not eligible at the second: one venue join, size 1."""
    d = scenario_doc(candidates=[one(), one(mean=-5.0) | {"id": "B"}], parameters=dict(EXACT), budget=0.0,
                     requirement=1000.0, institutions=[
                         {"id": "FIRST", "members": ["A", "B"], "pivot_member": True, "venue_day": 5.0,
                          "venue_bonus": 2.0},
                         {"id": "SECOND", "members": ["A"], "pivot_member": True, "venue_day": 5.0,
                          "venue_bonus": 2.0}])
    t = run(d, episodes=20)
    assert metric(t, "venue_joins", "min") == metric(t, "venue_joins", "max") == 1
    assert metric(t, "size", "max") == 1
    c = dict(zip(t["candidates"]["candidate_id"], t["candidates"]["p_venue_join"]))
    assert (c["A"], c["B"]) == (1.0, 0.0)


def test_talks_open_when_the_target_is_met_go_on_and_are_paid_but_venues_then_pay_nothing():
    """Bilateral talks already open when the target is met are not withdrawn: their replies
    come, are paid and may escalate (MODEL.md stops *opening* talks, not the open ones); a
    venue after success offers 0 (revision 2026-11-27). docs/MODEL.md, "Boundaries"."""
    both = [one(mean=-0.5), one(mean=-0.5) | {"id": "B"}]
    d = scenario_doc(candidates=both, parameters=dict(EXACT) | {"bandwidth": 2}, budget=1.0, requirement=100.0)
    t = run(d, episodes=20)  # both offers open at t = 0; A's acceptance meets the target; B's still counts
    assert metric(t, "size", "min") == 2 and metric(t, "spent", "min") == pytest.approx(1.0)
    v = scenario_doc(candidates=both, parameters=dict(EXACT) | {"bandwidth": 1}, budget=1.0, requirement=100.0,
                     institutions=[{"id": "ORG", "members": ["B"], "pivot_member": True, "venue_day": 5.0,
                                    "venue_bonus": 2.0}])
    t = run(v, episodes=20)  # A joins at t = 0 (target met); B joins at the venue for nothing
    assert metric(t, "size", "min") == 2 and metric(t, "spent", "max") == pytest.approx(0.5)
    assert np.allclose(t["candidates"].sort("candidate_id")["mean_payment"].to_numpy(), [0.5, 0.0])
