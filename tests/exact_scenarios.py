"""Random scenarios for the episode-by-episode comparison with the SimPy model.

Unlike random_scenarios.py (small, often budget 0 and no withdrawals), every
scenario here exercises every rule at once: positive budgets (sometimes tight),
escalation over several rounds, withdrawals at rates that make them happen,
peer ties with beta > 0, venues (some after the target is met), brokers and
hold-outs; mechanisms are switched off now and then; capacities, tie means and
priorities repeat (ties in P's list, tie means of exactly 0 and 1, preference
sd 0, constant contributions); `large=True` gives more than 48 candidates
(the kernel's merge-sort path for P's list).
"""
import numpy as np

MECHANISMS = ("information", "linkage", "credibility", "brokers", "venues", "peers", "withdrawals")


CHANNELS = ("tie_information", "tie_linkage", "tie_credibility")


def exact_scenario_doc(seed: int, large: bool = False, all_mechanisms: bool = False,
                       channels: bool = False) -> dict:
    """A scenario document (the parsed TOML) that exercises every rule of REM-1; with `channels`,
    most candidates also get some per-mechanism ties (revision 2026-12-04), drawn from a stream
    of their own so the rest of the document is the same with or without them."""
    r = np.random.default_rng(seed)
    n = int(r.integers(49, 61)) if large else int(r.integers(3, 13))
    ids = [f"C{i:02d}" for i in range(n)]
    deadline = float(r.uniform(80, 300))
    no_delay = r.random() < 0.06  # every response at the time of its offer: ordering of equal times
    d_min = 0.0 if (no_delay or r.random() < 0.3) else float(r.uniform(0, 5))
    d_max = d_min if no_delay else d_min + float(r.uniform(2, 40))
    params = {
        "info_noise": float(r.choice([0.0, r.uniform(0, 8)])),
        "credibility_floor": float(r.uniform(0.1, 0.9)),
        "linkage": float(r.uniform(0, 2)),
        "holdout": float(r.uniform(0.5, 10)),
        "peer_weight": float(r.uniform(1, 15)),
        "bandwidth": int(r.integers(2, 9)) if large else int(r.integers(1, 5)),
        "delay_min_days": d_min,
        "delay_max_days": d_max,
        "max_rounds": int(r.integers(2, 7)),
        "escalation": float(r.uniform(0.05, 0.6)),
        "margin": float(r.uniform(0, 0.3)) if r.random() > 0.2 else 0.0,
        "approach_cost": float(r.uniform(0.5, 2)),
        "withdrawal_rate": float(r.uniform(1, 6) / deadline),
    }
    mechanisms = {m: bool(all_mechanisms or r.random() > 0.15) for m in MECHANISMS}
    if all_mechanisms:
        params["margin"] = max(params["margin"], 0.05)

    candidates, expected, gaps = [], [], []
    lows = r.choice([0.0, 50.0, 100.0, 200.0], n)  # repeated triples: equal priorities
    for cid, low in zip(ids, lows):
        kind = r.random()
        if kind < 0.15:
            cap = (low, low, low)  # constant contribution (0 for some)
        elif kind < 0.5:
            cap = (low, low + 100.0, low + 200.0)
        else:
            mode = low + float(r.uniform(0, 300))
            cap = (low, mode, mode + float(r.uniform(0, 300)))
        mean = float(r.uniform(-12, 4))
        sd = float(r.choice([0.0, r.uniform(0.5, 6)]))
        tie = float(r.choice([0.0, 1.0, r.uniform(0.05, 0.95), r.uniform(0.05, 0.95)]))
        candidates.append({
            "id": cid, "capacity": {"low": cap[0], "mode": cap[1], "high": cap[2]},
            "preference": {"mean": mean, "sd": sd},
            "tie": {"mean": tie, "concentration": float(r.uniform(0.3, 30))}})
        expected.append(sum(cap) / 3)
        gaps.append(max(0.0, params["holdout"] - mean) + sd)

    ties, pairs = [], set()
    for _ in range(int(r.integers(n, 2 * n + 1))):
        a, b = sorted(int(x) for x in r.choice(n, 2, replace=False))
        if (a, b) not in pairs:
            pairs.add((a, b))
            ties.append({"a": ids[a], "b": ids[b],
                         "mean": float(r.choice([0.0, 1.0, r.uniform(0.05, 0.95), r.uniform(0.05, 0.95)])),
                         "concentration": float(r.uniform(0.5, 20))})

    institutions = []
    for k in range(int(r.integers(1, 4))):
        size = int(r.integers(2, n + 1))
        members = [ids[j] for j in sorted(r.choice(n, size, replace=False))]
        institution = {"id": f"I{k}", "members": members, "pivot_member": bool(r.random() < 0.7),
                       "broker": float(r.uniform(0, 1)), "venue_bonus": float(r.uniform(2, 25))}
        if r.random() > 0.1:  # else no venue
            institution["venue_day"] = float(r.uniform(0, 1.1 * deadline))
        institutions.append(institution)

    total = sum(expected)
    # a low target is often met before a venue day (venues after success)
    requirement = float(total * (r.uniform(0.02, 0.2) if r.random() < 0.4 else r.uniform(0.2, 0.9)))
    budget = float(sum(gaps) * r.uniform(0.2, 1.5) + r.uniform(0.5, 5))
    if channels:
        rc = np.random.default_rng([seed, 2026, 12, 4])
        for c in candidates:
            for key in CHANNELS:
                if rc.random() < 0.6:
                    c[key] = {"mean": float(rc.choice([0.0, 1.0, rc.uniform(0.05, 0.95), rc.uniform(0.05, 0.95)])),
                              "concentration": float(rc.uniform(0.3, 30))}
    return {"name": f"exact {seed}", "pivot": "P", "deadline_days": deadline,
            "requirement": requirement, "min_partners": int(r.integers(0, max(2, n // 3))),
            "budget": budget, "parameters": params, "mechanisms": mechanisms,
            "candidates": candidates, "ties": ties, "institutions": institutions}
