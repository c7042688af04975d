"""Each mechanism switch moves the outcome the way the theory says, on a scenario built to show it."""
import pytest

from conftest import candidate, metric, run, scenario_doc

EPISODES = 20_000


def size_on_off(doc, mechanism):
    on = run(doc, episodes=EPISODES)
    off_doc = {**doc, "mechanisms": {**doc.get("mechanisms", {}), mechanism: False}}
    off = run(off_doc, episodes=EPISODES)
    return on, off


def clearly_greater(a_tables, b_tables, name="size"):
    a, b = metric(a_tables, name), metric(b_tables, name)
    se = (metric(a_tables, name, "se") ** 2 + metric(b_tables, name, "se") ** 2) ** 0.5
    return a - b > 5 * se


def reluctant(n=6, mean=-5.0, sd=2.0, tie=0.9):
    return [candidate(f"C{i}", mean=mean, sd=sd, tie=tie, conc=50.0) for i in range(n)]


@pytest.mark.parametrize("mechanism,parameters", [
    ("information", {"info_noise": 20.0, "credibility_floor": 0.5}),
    ("linkage", {"info_noise": 0.0, "linkage": 2.0}),
    ("credibility", {"info_noise": 0.0, "credibility_floor": 0.1}),
])
def test_tie_mechanisms_buy_more_partners_for_the_same_budget(mechanism, parameters):
    doc = scenario_doc(candidates=reluctant(), budget=30.0, requirement=1e9, deadline_days=365,
                       parameters={"bandwidth": 6, "margin": 0.1, **parameters})
    on, off = size_on_off(doc, mechanism)
    assert clearly_greater(on, off)


def test_brokers_inform_through_institutions():
    doc = scenario_doc(candidates=reluctant(tie=0.0), budget=30.0, requirement=1e9, deadline_days=365,
                       parameters={"info_noise": 20.0, "bandwidth": 6},
                       institutions=[{"id": "ORG", "members": [f"C{i}" for i in range(6)],
                                      "pivot_member": True, "broker": 1.0}])
    on, off = size_on_off(doc, "brokers")
    assert clearly_greater(on, off)


def test_venues_recruit_the_reluctant():
    doc = scenario_doc(candidates=reluctant(mean=-2.0, sd=1.0), requirement=1e9,
                       institutions=[{"id": "ORG", "members": [f"C{i}" for i in range(6)],
                                      "pivot_member": True, "venue_day": 20.0, "venue_bonus": 6.0}])
    on, off = size_on_off(doc, "venues")
    assert clearly_greater(on, off)
    assert metric(off, "venue_joins", "max") == 0 and metric(on, "venue_joins") > 1


def test_peers_pull_in_tied_partners():
    keen = candidate("KEEN", low=900, mode=1000, high=1100, mean=5.0, sd=0.0, tie=1.0)
    shy = candidate("SHY", mean=-1.0, sd=0.5, tie=0.0)  # P misjudges it and offers nothing
    doc = scenario_doc(candidates=[keen, shy], requirement=1e9,
                       parameters={"bandwidth": 1, "peer_weight": 3.0, "info_noise": 5.0},
                       ties=[{"a": "KEEN", "b": "SHY", "mean": 0.8, "concentration": 20.0}])
    on, off = size_on_off(doc, "peers")
    assert clearly_greater(on, off)


def test_withdrawals_shrink_the_coalition():
    doc = scenario_doc(candidates=[candidate(f"C{i}", mean=5.0, sd=1.0, tie=0.3) for i in range(5)],
                       requirement=1e9, parameters={"withdrawal_rate": 0.01})
    on, off = size_on_off(doc, "withdrawals")
    assert clearly_greater(off, on)
    assert metric(off, "withdrawals", "max") == 0 and metric(on, "withdrawals") > 0.5


def test_holdout_makes_critical_partners_expensive():
    base = scenario_doc(candidates=reluctant(mean=1.0, sd=1.0), requirement=1200.0, budget=2.0)
    greedy = {**base, "parameters": {"holdout": 9.0}}
    assert clearly_greater(run(base), run(greedy))
    assert clearly_greater(run(greedy), run(base), "spent")
