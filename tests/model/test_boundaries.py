"""Rules at their boundaries (docs/MODEL.md section 10, readings (p)-(u)), each pinned by a
deterministic scenario: preference sd 0, P's error 0, ties of exactly 0 or 1, the value of a
payment unit exactly 1 (credibility off with floor 1, linkage 0) and no margin, so a planned
offer is exactly -theta and equality is reachable in floating point."""
import math

import pivotal
from conftest import build, candidate, metric, p_member, scenario_doc

EXACT = {"info_noise": 0.0, "credibility_floor": 1.0, "linkage": 0.0, "margin": 0.0, "holdout": 0.0,
         "delay_min_days": 1.0, "delay_max_days": 1.0}
NO_CREDIBILITY = {"credibility": False, "withdrawals": False, "peers": False}


def fixed(cid, capacity, mean, tie=1.0):
    """A candidate whose contribution is `capacity` and whose preference is `mean` exactly."""
    return candidate(cid, capacity, capacity, capacity, mean=mean, sd=0.0, tie=tie)


def doc(cands, parameters=None, mechanisms=None, **top):
    top = {"requirement": 1e9, "deadline_days": 1000.0, **top}
    return scenario_doc(candidates=cands, parameters={**EXACT, **(parameters or {})},
                        mechanisms={**NO_CREDIBILITY, **(mechanisms or {})}, **top)


def forecast(d, episodes=1, seed=1):
    """The tables of a run keeping every episode."""
    return pivotal.forecast(build(d), episodes=episodes, seed=seed, keep_episodes=episodes,
                            progress=False).tables


def episode(d, seed=1):
    """The one episode of a one-episode run: its row of the `episodes` table."""
    return forecast(d, seed=seed)["episodes"].row(0, named=True)


def below(x):
    return math.nextafter(x, -math.inf)


# ------------------------------------------------------------ an offer equal to the free budget

def test_a_planned_offer_equal_to_the_free_budget_is_made():
    """Open marks i passed only when shat_i > Bfree: shat = 1 with Bfree = 1 is offered (and,
    u = -1 + 1 = 0 being acceptance, paid); one ulp less of budget and it is passed."""
    d = doc([fixed("C", 100.0, -1.0)], budget=1.0)
    exact = episode(d)
    assert (exact["offers"], exact["size"], exact["spent"]) == (1, 1, 1.0)
    short = episode({**d, "budget": below(1.0)})
    assert (short["offers"], short["size"], short["spent"]) == (0, 0, 0.0)


def test_the_free_budget_is_what_open_reservations_leave():
    """Bfree counts reservations: A (first on P's list) reserves 1 at t = 0, leaving exactly B's
    planned 0.5 of a budget of 1.5, so B is approached too; with a budget of 1.0 B is passed
    although nothing has been spent yet when its turn comes."""
    cands = [fixed("A", 1000.0, -1.0), fixed("B", 100.0, -0.5)]
    both = forecast(doc(cands, parameters={"bandwidth": 2}, budget=1.5), episodes=20)
    assert metric(both, "offers", "min") == 2 and metric(both, "spent", "min") == 1.5
    assert p_member(both) == {"A": 1.0, "B": 1.0}
    one = forecast(doc(cands, parameters={"bandwidth": 2}, budget=1.0), episodes=20)
    assert metric(one, "offers", "max") == 1 and metric(one, "spent", "max") == 1.0
    assert p_member(one) == {"A": 1.0, "B": 0.0}


def test_a_re_offer_equal_to_the_free_budget_is_made():
    """Re-offer iff s' <= Bfree (after the refused offer's reservation is released). P
    underestimates C (P's error, tie 0), offers s < 1, is refused and re-offers s' = 2s
    (escalation 1, sd 0). With a budget of exactly s' the re-offer is made and accepted; one
    ulp less and C is refused after one offer."""
    base = doc([fixed("C", 100.0, -1.0, tie=0.0)], budget=100.0,
               parameters={"info_noise": 1.0, "escalation": 1.0, "max_rounds": 2})
    # an episode (found by seed) where C refuses s and accepts s' = 2s: it was paid s'
    seed, s_next = next((s, e["spent"]) for s in range(1, 100) for e in [episode(base, s)]
                        if e["offers"] == 2 and e["size"] == 1)
    # with B = s', Bfree after the release is (s' - s) + s = s' exactly in floating point
    exact = episode({**base, "budget": s_next}, seed)
    assert (exact["offers"], exact["size"], exact["spent"]) == (2, 1, s_next)
    short = episode({**base, "budget": below(s_next)}, seed)
    assert (short["offers"], short["size"], short["spent"]) == (1, 0, 0.0)


def test_a_venue_offer_equal_to_the_free_budget_is_reserved_and_paid():
    """At a venue offer_j = shat_j if shat_j <= Bfree, else 0. D (first on the list, planned 0,
    slow to answer) holds the only slot, so V is untouched at the day-0 venue; its planned 1
    equals the budget: offered, it joins and is paid 1. One ulp less: offered 0, it refuses."""
    cands = [fixed("D", 1.0, 1.0), fixed("V", 100.0, -1.0)]
    venue = [{"id": "ORG", "members": ["V"], "pivot_member": True, "venue_day": 0.0, "venue_bonus": 0.0}]
    d = doc(cands, parameters={"bandwidth": 1, "approach_cost": 0.001, "delay_min_days": 1e6,
                               "delay_max_days": 1e6}, institutions=venue, budget=1.0)
    exact = episode(d)
    assert (exact["venue_joins"], exact["spent"], exact["members"]) == (1, 1.0, ["V"])
    short = episode({**d, "budget": below(1.0)})
    assert (short["venue_joins"], short["spent"], short["members"]) == (0, 0.0, [])


# ------------------------------------------------------------ a requirement of 0

def test_a_requirement_of_zero_with_no_partners_needed_succeeds_at_once_and_pays_nobody():
    """R = 0 and L = 0: the target holds at t = 0, P never recruits (no offer), and a venue then
    offers 0 to everyone: states join for its pull alone, and spent is 0 whatever the budget."""
    cands = [fixed("A", 100.0, -0.5), fixed("B", 100.0, -0.5)]
    venue = [{"id": "ORG", "members": ["A", "B"], "pivot_member": True, "venue_day": 5.0, "venue_bonus": 2.0}]
    t = forecast(doc(cands, requirement=0.0, min_partners=0, budget=10.0, institutions=venue), episodes=50)
    assert metric(t, "success", "min") == 1.0 and metric(t, "time_to_success", "max") == 0.0
    assert metric(t, "offers", "max") == 0 and metric(t, "spent", "max") == 0.0
    assert metric(t, "venue_joins", "min") == 2 and p_member(t) == {"A": 1.0, "B": 1.0}


def test_a_requirement_of_zero_makes_no_candidate_critical():
    """crit_i = 0 when R = 0, so the hold-out demand is 0: with L = 1, a hold-out of 2 and
    C's preference -1, P plans (and pays) exactly 1, not 3, and stops after one partner."""
    cands = [fixed("C", 100.0, -1.0), fixed("D", 50.0, -1.0)]
    t = forecast(doc(cands, requirement=0.0, min_partners=1, budget=10.0,
                     parameters={"holdout": 2.0, "bandwidth": 1}), episodes=50)
    assert metric(t, "spent", "min") == metric(t, "spent", "max") == 1.0
    assert metric(t, "success", "min") == 1.0 and metric(t, "size", "max") == 1
    assert metric(t, "offers", "max") == 1 and p_member(t) == {"C": 1.0, "D": 0.0}


# ------------------------------------------------------------ the deadline and fractional days

def test_a_response_exactly_at_the_deadline_never_runs():
    """Events at t >= T never run: C answers after D days (a willing partner, tie 1); with T = D
    the offer is made (and counted) but the answer never comes; with T one ulp above D it joins."""
    d = doc([fixed("C", 100.0, 1.0)], requirement=100.0, parameters={"delay_min_days": 5.0, "delay_max_days": 5.0})
    answer = episode(d)["time_to_success"]
    assert answer > 0 and answer != round(answer)
    at = episode({**d, "deadline_days": answer})
    assert (at["offers"], at["size"], at["success"], at["time_to_success"]) == (1, 0, False, None)
    after = episode({**d, "deadline_days": math.nextafter(answer, math.inf)})
    assert (after["size"], after["success"], after["time_to_success"]) == (1, True, answer)


def test_a_venue_on_the_deadline_never_runs():
    cands = [fixed("V", 100.0, -0.5)]
    venue = lambda day: [{"id": "ORG", "members": ["V"], "pivot_member": True, "venue_day": day,  # noqa: E731
                          "venue_bonus": 2.0}]
    d = doc(cands, deadline_days=10.0, parameters={"delay_min_days": 1e6, "delay_max_days": 1e6})
    assert episode({**d, "institutions": venue(10.0)})["venue_joins"] == 0
    assert episode({**d, "institutions": venue(below(10.0))})["venue_joins"] == 1


def test_a_success_on_a_fractional_day_counts_from_the_next_whole_day():
    """time_to_success keeps the exact time; the time_to_success table counts a success at
    t by day ceil(t) (time_to_success <= day): at t = 3.4 from day 4, at t = 3.0 from day 3."""
    d = doc([fixed("C", 100.0, 1.0)], requirement=100.0, deadline_days=20.0)
    answer = episode(d)["time_to_success"]
    t = forecast({**d, "parameters": {**d["parameters"], "delay_min_days": 3.4 / answer,
                                      "delay_max_days": 3.4 / answer}})
    tts = t["episodes"]["time_to_success"].item()
    assert 3 < tts < 4 and abs(metric(t, "time_to_success") - tts) < 1e-6  # the summary's grid
    by_day = dict(zip(t["time_to_success"]["day"], t["time_to_success"]["episodes_succeeded_by_day"]))
    assert (by_day[3], by_day[4]) == (0, 1)
    venue = [{"id": "ORG", "members": ["V"], "pivot_member": True, "venue_day": 3.0, "venue_bonus": 2.0}]
    t = forecast(doc([fixed("V", 100.0, -0.5)], requirement=100.0, deadline_days=20.0, institutions=venue,
                     parameters={"delay_min_days": 1e6, "delay_max_days": 1e6}))
    assert t["episodes"]["time_to_success"].item() == 3.0
    by_day = dict(zip(t["time_to_success"]["day"], t["time_to_success"]["episodes_succeeded_by_day"]))
    assert (by_day[2], by_day[3]) == (0, 1)


# ------------------------------------------------------------ venues on the same day

def same_day_venues(first):
    """V1 (in X) and V2 (in Y) each need a payment of 1 (budget 2) and either meets R alone;
    both venues are on day 0, after the initial Open gave the one slot to the decoy D."""
    cands = [fixed("D", 1.0, 1.0), fixed("V2", 200.0, -1.0), fixed("V1", 100.0, -1.0)]  # P's list: D, V2, V1
    inst = {"X": {"id": "X", "members": ["V1"], "pivot_member": True, "venue_day": 0.0, "venue_bonus": 0.0},
            "Y": {"id": "Y", "members": ["V2"], "pivot_member": True, "venue_day": 0.0, "venue_bonus": 0.0}}
    order = [inst[first], inst["Y" if first == "X" else "X"]]
    return doc(cands, requirement=100.0, budget=2.0, institutions=order,
               parameters={"bandwidth": 1, "approach_cost": 0.001, "delay_min_days": 1e6,
                           "delay_max_days": 1e6})


def test_venues_on_the_same_day_run_in_institution_order():
    """The first institution's venue pays its member and meets the target; the second, held
    when P no longer recruits, offers 0 and its member refuses. P's list order (V2 before V1)
    does not decide which venue comes first; the order of the institutions in the file does."""
    for first, joiner, other in (("X", "V1", "V2"), ("Y", "V2", "V1")):
        e = episode(same_day_venues(first))
        assert (e["venue_joins"], e["spent"], e["members"]) == (1, 1.0, [joiner]), first
        assert other not in e["members"]


# ------------------------------------------------------------ talks open when the target is met

def talks_at_success(**parameters):
    """A (tie 1: answers within about 0.001 day) meets R alone; B (tie 0: about 10 days) is
    approached at t = 0 too, so its talk is still open when the target is met."""
    cands = [fixed("A", 100.0, -1.0, tie=1.0), fixed("B", 100.0, -0.5, tie=0.0)]
    return doc(cands, requirement=100.0, budget=10.0, deadline_days=10_000.0,
               parameters={"bandwidth": 2, "delay_min_days": 0.001, "delay_max_days": 10.0, **parameters})


def test_talks_open_when_the_target_is_met_go_on_and_are_paid():
    t = forecast(talks_at_success(), episodes=200)
    e = t["episodes"]
    assert (e["size"] == 2).all() and (e["spent"] == 1.5).all()
    assert (e["time_to_success"] < 1).mean() > 0.95  # A alone met the target, B came later


def test_talks_open_when_the_target_is_met_escalate():
    """P's error about B (tie 0) makes it underpay B in about half the episodes: B refuses after
    the target is met and P re-offers (escalation 1, up to 3 rounds), paying what it takes."""
    t = forecast(talks_at_success(info_noise=1.0, escalation=1.0, max_rounds=3), episodes=400)
    e = t["episodes"]
    after_success = e["time_to_success"] < 1
    reoffered = (e["offers"] >= 3) & after_success
    assert 0.3 < reoffered.mean() < 0.7
    assert ((e["spent"] > 1.5) & (e["size"] == 2)).any()  # an escalated offer accepted and paid


def test_a_venue_after_success_pays_nobody():
    """A meets the target within a day; C (untouched: one slot) joins at the day-50 venue for
    its pull alone (V = 2 x 1/2 = 1 > 0.5) and is paid 0 though its planned 0.5 is affordable."""
    cands = [fixed("A", 100.0, -1.0), fixed("C", 10.0, -0.5)]
    venue = [{"id": "ORG", "members": ["C"], "pivot_member": True, "venue_day": 50.0, "venue_bonus": 2.0}]
    t = forecast(doc(cands, requirement=100.0, budget=10.0, institutions=venue,
                     parameters={"bandwidth": 1, "delay_min_days": 0.01, "delay_max_days": 0.01}), episodes=100)
    e = t["episodes"]
    assert (e["venue_joins"] == 1).all() and (e["spent"] == 1.0).all()
    assert p_member(t) == {"A": 1.0, "C": 1.0}
