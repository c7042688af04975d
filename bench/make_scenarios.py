"""Write the synthetic benchmark scenarios in bench/scenarios/ (deterministic; rerun to regenerate).

    python bench/make_scenarios.py              # the 30- and 120-candidate scenarios
    python bench/make_scenarios.py --candidates 500 --institutions 10 --ties 1250

All mechanisms are on; values are synthetic (assumptions), scaled so that a
part of the candidates join by the deadline and the venues matter.
"""
import argparse
from pathlib import Path

import numpy as np


def scenario_toml(n: int, n_institutions: int, n_ties: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    ids = [f"S{i:03d}" for i in range(n)]
    low = rng.uniform(100, 1000, n).round()
    mode = (low + rng.uniform(0, 1500, n)).round()
    high = (mode + rng.uniform(0, 2000, n)).round()
    lines = [
        f'name = "Synthetic benchmark, {n} candidates"', 'pivot = "PIV"', "deadline_days = 180",
        f"requirement = {round(float(mode.sum()) * 0.4)}", f"min_partners = {n // 5}",
        f"budget = {10 * n}", 'capacity_unit = "troops"', 'payment_unit = "USD million"',
        'sources = ["assumption: synthetic benchmark scenario (bench/make_scenarios.py)"]',
        "", "[parameters]", "info_noise = 15.0", "credibility_floor = 0.4", "linkage = 1.0",
        "holdout = 5.0", "peer_weight = 8.0", "bandwidth = 5", "delay_min_days = 5.0",
        "delay_max_days = 45.0", "max_rounds = 3", "escalation = 0.25", "margin = 0.1",
        "approach_cost = 1.0", "withdrawal_rate = 0.002", "",
    ]
    for i in range(n):
        lines += [
            "[[candidates]]", f'id = "{ids[i]}"',
            f"capacity = {{ low = {low[i]:.0f}, mode = {mode[i]:.0f}, high = {high[i]:.0f} }}",
            f"preference = {{ mean = {rng.uniform(-25, 10):.2f}, sd = {rng.uniform(5, 20):.2f} }}",
            f"tie = {{ mean = {rng.uniform(0.05, 0.95):.2f}, concentration = {rng.uniform(5, 30):.1f} }}",
        ]
    pairs = set()
    while len(pairs) < n_ties:
        a, b = sorted(rng.choice(n, 2, replace=False))
        pairs.add((int(a), int(b)))
    for a, b in sorted(pairs):
        lines += ["[[ties]]", f'a = "{ids[a]}"', f'b = "{ids[b]}"',
                  f"mean = {rng.uniform(0.1, 0.9):.2f}", f"concentration = {rng.uniform(5, 20):.1f}"]
    for k in range(n_institutions):
        members = sorted(rng.choice(n, max(2, n // 3), replace=False))
        lines += ["[[institutions]]", f'id = "INST{k}"',
                  "members = [" + ", ".join(f'"{ids[j]}"' for j in members) + "]",
                  "pivot_member = true", f"broker = {rng.uniform(0.2, 0.6):.2f}",
                  f"venue_day = {30 + 40 * k % 150}", f"venue_bonus = {rng.uniform(5, 15):.1f}"]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int)
    p.add_argument("--institutions", type=int, default=3)
    p.add_argument("--ties", type=int, default=60)
    p.add_argument("--out", default=str(Path(__file__).parent / "scenarios"))
    args = p.parse_args()
    todo = ([(args.candidates, args.institutions, args.ties)] if args.candidates
            else [(30, 3, 60), (120, 6, 300)])
    for n, k, t in todo:
        path = Path(args.out) / f"synthetic_{n}.toml"
        path.write_text(scenario_toml(n, k, t))
        print(path)


if __name__ == "__main__":
    main()
