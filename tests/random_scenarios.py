"""Random small scenarios that exercise every rule of REM-1 (budgets, noise, hold-out,
peers, venues, withdrawals, switches, tie means of exactly 0 and 1, sd 0)."""
import numpy as np

MECHANISMS = ("information", "linkage", "credibility", "brokers", "venues", "peers", "withdrawals")


def random_scenario_toml(seed: int, all_mechanisms: bool = False) -> str:
    r = np.random.default_rng(seed)
    n = int(r.integers(3, 10))
    ids = [f"C{i}" for i in range(n)]
    lines = [
        f'name = "random {seed}"', 'pivot = "P"',
        f"deadline_days = {r.uniform(30, 200):.1f}",
        f"requirement = {r.uniform(0, 1000 * n):.0f}",
        f"min_partners = {int(r.integers(0, n))}",
        f"budget = {r.choice([0.0, r.uniform(1, 100)]):.2f}",
        "[parameters]",
        f"info_noise = {r.uniform(0, 20):.2f}",
        f"credibility_floor = {r.uniform(0, 1):.2f}",
        f"linkage = {r.uniform(0, 2):.2f}",
        f"holdout = {r.uniform(0, 10):.2f}",
        f"peer_weight = {r.uniform(0, 20):.2f}",
        f"bandwidth = {int(r.integers(1, 4))}",
        f"delay_min_days = {r.uniform(0, 10):.1f}",
        f"delay_max_days = {r.uniform(10, 60):.1f}",
        f"max_rounds = {int(r.integers(1, 5))}",
        f"escalation = {r.uniform(0, 0.5):.2f}",
        f"margin = {r.uniform(0, 0.3):.2f}",
        f"approach_cost = {r.uniform(0.5, 2):.2f}",
        f"withdrawal_rate = {r.choice([0.0, r.uniform(0, 0.01)]):.4f}",
        "[mechanisms]",
        *(f'{m} = {"true" if all_mechanisms or r.random() < 0.8 else "false"}' for m in MECHANISMS),
    ]
    for cid in ids:
        low = r.uniform(0, 1000)
        mode = low + r.uniform(0, 1000)
        high = mode + r.uniform(0, 1000)
        lines += ["[[candidates]]", f'id = "{cid}"',
                  f"capacity = {{ low = {low:.0f}, mode = {mode:.0f}, high = {high:.0f} }}",
                  f"preference = {{ mean = {r.uniform(-20, 10):.2f}, sd = {r.choice([0.0, r.uniform(1, 20)]):.2f} }}",
                  f"tie = {{ mean = {r.choice([0.0, 1.0, r.uniform(0, 1)]):.2f}, "
                  f"concentration = {r.uniform(0.5, 30):.2f} }}"]
    pairs = set()
    for _ in range(int(r.integers(0, n))):
        a, b = sorted(int(x) for x in r.choice(n, 2, replace=False))
        if (a, b) not in pairs:
            pairs.add((a, b))
            lines += ["[[ties]]", f'a = "{ids[a]}"', f'b = "{ids[b]}"',
                      f"mean = {r.uniform(0, 1):.2f}", f"concentration = {r.uniform(1, 20):.1f}"]
    for k in range(int(r.integers(0, 3))):
        members = [ids[j] for j in sorted(r.choice(n, int(r.integers(1, n + 1)), replace=False))]
        lines += ["[[institutions]]", f'id = "I{k}"',
                  "members = [" + ", ".join(f'"{m}"' for m in members) + "]",
                  f'pivot_member = {"true" if r.random() < 0.7 else "false"}',
                  f"broker = {r.uniform(0, 1):.2f}", f"venue_day = {r.uniform(0, 120):.1f}",
                  f"venue_bonus = {r.uniform(0, 20):.2f}"]
    return "\n".join(lines) + "\n"
