"""Spec edge cases with exact or closed-form answers."""
import math

import numpy as np
import pytest

from conftest import candidate, metric, p_member, run, scenario_doc


def test_no_requirement_succeeds_at_time_zero_without_offers():
    tables = run(scenario_doc(requirement=0.0, min_partners=0), episodes=2000)
    assert metric(tables, "success") == 1.0
    assert metric(tables, "time_to_success", "max") == 0.0
    assert metric(tables, "offers", "max") == 0
    assert tables["time_to_success"]["p_success_by_day"][0] == 1.0


def test_zero_budget_pays_nothing_and_passes_the_unwilling():
    cands = [candidate("WILLING", mean=5.0, sd=0.0), candidate("UNWILLING", mean=-5.0, sd=0.0)]
    tables = run(scenario_doc(candidates=cands, requirement=1e9, budget=0.0, deadline_days=5000.0,
                              parameters={"info_noise": 0.0}), episodes=5000)
    assert metric(tables, "spent", "max") == 0.0
    assert p_member(tables) == {"WILLING": 1.0, "UNWILLING": 0.0}
    assert metric(tables, "offers", "min") == metric(tables, "offers", "max") == 1


def test_bandwidth_one_negotiates_one_at_a_time():
    """Willing partners with tie 1 answer after Exp(d_min) each; with one talk at a time
    the time to recruit all N is a sum of N delays: mean N * d_min (Gamma)."""
    n, d = 4, 3.0
    doc = scenario_doc(candidates=[candidate(f"C{i}", mean=1.0, sd=0.0, tie=1.0) for i in range(n)],
                       min_partners=n, deadline_days=1000.0,
                       parameters={"bandwidth": 1, "delay_min_days": d, "info_noise": 0.0})
    tables = run(doc, episodes=40_000)
    mean, se = metric(tables, "time_to_success"), metric(tables, "time_to_success", "se")
    assert abs(mean - n * d) < 4 * se
    assert abs(metric(tables, "time_to_success", "sd") - math.sqrt(n) * d) < 0.05 * math.sqrt(n) * d
    wide = run({**doc, "parameters": {**doc["parameters"], "bandwidth": n}}, episodes=40_000)
    harmonic = sum(1 / k for k in range(1, n + 1))  # the max of N exponentials
    assert abs(metric(wide, "time_to_success") - d * harmonic) < 4 * metric(wide, "time_to_success", "se")


def cascade_doc(bonus, venue_day=10.0, deadline=100.0):
    """Three reluctant members of one institution with the pivot (share 1/4 + joins / 4).

    Ties of 1 make P's list deterministic: C (largest), B, A. In list order C
    needs V = 3, B V = 2, A V = 1, so with bonus 4 the first pass adds A, the
    second B, the third C: a single-pass venue would stop after A or B."""
    cands = [candidate("C", 900, 1000, 1100, mean=-3.0, sd=0.0, tie=1.0),
             candidate("B", 250, 300, 350, mean=-2.0, sd=0.0, tie=1.0),
             candidate("A", 50, 100, 150, mean=-1.0, sd=0.0, tie=1.0)]
    return scenario_doc(candidates=cands, requirement=1e9, budget=0.0, deadline_days=deadline,
                        parameters={"info_noise": 0.0},
                        institutions=[{"id": "ORG", "members": ["C", "B", "A"], "pivot_member": True,
                                       "venue_day": venue_day, "venue_bonus": bonus}])


def test_venue_cascade_joins_everyone_in_repeated_passes():
    tables = run(cascade_doc(bonus=4.0), episodes=1000)
    assert metric(tables, "size", "min") == 3 and metric(tables, "venue_joins", "min") == 3
    assert tables["candidates"]["p_venue_join"].to_list() == [1.0, 1.0, 1.0]
    # just short of the first join, nobody moves
    assert metric(run(cascade_doc(bonus=3.99), episodes=1000), "size", "max") == 0


def test_events_at_or_after_the_deadline_never_run():
    assert metric(run(cascade_doc(bonus=4.0, venue_day=100.0), episodes=500), "size", "max") == 0
    assert metric(run(cascade_doc(bonus=4.0, venue_day=99.999), episodes=500), "size", "min") == 3
    # responses: with a 1-day deadline and mean delay 60, few answers arrive, none after T
    doc = scenario_doc(candidates=[candidate("C0", mean=5.0, sd=0.0, tie=0.0)], deadline_days=1.0,
                       requirement=1e9)
    tables = run(doc, episodes=40_000)
    p = 1 - math.exp(-1.0 / 60.0)
    assert abs(p_member(tables)["C0"] - p) < 4 * math.sqrt(p * (1 - p) / 40_000)


def test_withdrawals_follow_the_hazard():
    """Joined at t = 0 (no delay) with tie 0: stays to T with probability exp(-h T)."""
    h, T = 0.01, 80.0
    doc = scenario_doc(candidates=[candidate("C0", mean=5.0, sd=0.0, tie=0.0)], deadline_days=T,
                       requirement=1e9, parameters={"delay_min_days": 0.0, "delay_max_days": 0.0,
                                                    "withdrawal_rate": h})
    tables = run(doc, episodes=40_000)
    p = math.exp(-h * T)
    assert abs(p_member(tables)["C0"] - p) < 4 * math.sqrt(p * (1 - p) / 40_000)
    assert tables["candidates"]["p_ever_joined"].item() == 1.0
    assert abs(metric(tables, "withdrawals") - (1 - p)) < 4 * math.sqrt(p * (1 - p) / 40_000)
    # a tie of 1 with credibility on makes members stay
    tied = {**doc, "candidates": [candidate("C0", mean=5.0, sd=0.0, tie=1.0)]}
    assert metric(run(tied, episodes=2000), "withdrawals", "max") == 0


def test_escalating_offers_and_spending_stay_within_budget():
    cands = [candidate(f"C{i}", mean=-4.0, sd=3.0, tie=0.2) for i in range(5)]
    doc = scenario_doc(candidates=cands, budget=7.0, requirement=1e9,
                       parameters={"info_noise": 4.0, "max_rounds": 4, "escalation": 0.5})
    tables = run(doc, episodes=20_000)
    assert metric(tables, "spent", "max") <= 7.0 + 1e-9
    assert metric(tables, "offers", "max") > 5  # re-offers happened
    pay = tables["candidates"]["mean_payment"].to_numpy()
    assert abs(pay.sum() - metric(tables, "spent")) < 1e-6 * max(1.0, pay.sum())


def test_venue_offers_are_reserved_from_the_free_budget():
    """Bandwidth 1: X negotiates from t = 0 (its offer, 0.55, reserved); Y and Z are
    untouched at a venue on day 0 and accept their planned offer 0.55 (u = -1 + 2 * 0.55)
    only if the budget left after X's reservation covers it; otherwise they are offered 0."""
    cands = [candidate(c, 100 * k, 100 * k, 100 * k, mean=-1.0, sd=0.0, tie=1.0)
             for k, c in ((3, "X"), (2, "Y"), (1, "Z"))]
    doc = scenario_doc(candidates=cands, requirement=1e9, deadline_days=1000.0,
                       parameters={"info_noise": 0.0, "bandwidth": 1},
                       institutions=[{"id": "ORG", "members": ["Y", "Z"], "venue_day": 0.0}])
    rich = run({**doc, "budget": 10.0}, episodes=200)
    assert p_member(rich) == {"X": 1.0, "Y": 1.0, "Z": 1.0}
    assert rich["candidates"]["p_venue_join"].to_list() == [0.0, 1.0, 1.0]
    assert rich["candidates"]["mean_payment"].to_numpy() == pytest.approx([0.55] * 3)
    poor = run({**doc, "budget": 1.0}, episodes=200)  # 1.0 - 0.55 < 0.55: venue offers are 0
    assert metric(poor, "venue_joins", "max") == 0
    assert metric(poor, "spent", "max") == pytest.approx(0.55)  # X alone, later, bilaterally


def test_candidate_probabilities_are_consistent():
    tables = run(scenario_doc(candidates=[candidate(f"C{i}", mean=0.5 - i, sd=2.0) for i in range(4)],
                              requirement=1e9, budget=3.0,
                              institutions=[{"id": "ORG", "members": ["C2", "C3"], "pivot_member": True,
                                             "venue_day": 20.0, "venue_bonus": 2.0}]), episodes=20_000)
    c = tables["candidates"]
    assert ((c["p_member_low"] <= c["p_member"]) & (c["p_member"] <= c["p_member_high"])).all()
    assert (c["p_member"] <= c["p_ever_joined"]).all() and (c["p_venue_join"] <= c["p_ever_joined"]).all()
    sizes = tables["size_distribution"]
    assert np.isclose((sizes["size"] * sizes["probability"]).sum(), c["p_member"].sum())
    assert np.isclose(c["p_venue_join"].sum(), metric(tables, "venue_joins"))
    assert np.isclose(c["mean_payment"].sum(), metric(tables, "spent"), rtol=1e-9)
