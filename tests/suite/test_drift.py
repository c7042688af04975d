"""Drift detection: z on the difference of two independent estimates, a Bonferroni correction per
scenario, a stated minimum. A seed-only rerun stays within the stated false-alarm rate (over many
seeds), the correction is what keeps it there, and a real change is flagged."""
import math
import re
from pathlib import Path

import pytest

import pivotal
from engine.suite.drift import compare, figures, flag_text, proportion_se
from engine.suite.suitefile import DRIFT_DEFAULTS

TUTORIAL = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "tutorial.toml"
EPISODES = 3000
PAIRS = 40


def headline(seed, scenario=TUTORIAL):
    t = pivotal.forecast(scenario, episodes=EPISODES, seed=seed, progress=False).tables
    return figures(t["summary"], t["candidates"], t["summary"]["scenario_id"][0])


@pytest.fixture(scope="module")
def seed_pairs():
    """PAIRS independent pairs of runs that differ only in their seed (seeds 2k, 2k + 1)."""
    return [(headline(100 + 2 * k), headline(101 + 2 * k)) for k in range(PAIRS)]


def flagged(pairs, **settings):
    """How many pairs flag their scenario (any figure)."""
    s = DRIFT_DEFAULTS | settings
    correct = s.pop("correct", True)
    return sum(any(r["flagged"] for r in compare(a, b, s, correct=correct)) for a, b in pairs)


def test_a_seed_only_rerun_stays_within_the_stated_rate(seed_pairs):
    assert len(seed_pairs[0][0]) == 7  # success, size, capacity and four candidates
    # the stated rate, 1% per scenario, with and without the minimum change: over 40 pairs at most
    # 2 flags (P(Binomial(40, 0.01) >= 3) = 0.8%)
    assert flagged(seed_pairs) <= 2
    assert flagged(seed_pairs, min_success=0, min_membership=0, min_size=0, min_capacity=0) <= 2
    # a looser stated rate is honoured too: 20% -> at most 8 + 2 sd of 40 pairs ...
    loose = dict(alpha=0.2, min_success=0, min_membership=0, min_size=0, min_capacity=0)
    bound = 0.2 * PAIRS + 2 * math.sqrt(PAIRS * 0.2 * 0.8)
    assert flagged(seed_pairs, **loose) <= bound
    # ... and it is the correction that keeps it: testing each figure at 20% flags far more often
    assert flagged(seed_pairs, correct=False, **loose) > bound


def test_a_real_change_is_flagged_with_its_size_and_cause(tmp_path):
    moved = tmp_path / "moved.toml"
    moved.write_text(TUTORIAL.read_text().replace("requirement = 4000", "requirement = 2500"))
    rows = compare(headline(1), headline(2, moved), DRIFT_DEFAULTS)
    success = next(r for r in rows if r["figure"] == "success")
    assert success["flagged"] and success["difference"] > 0.1 and success["z"] > success["z_critical"]
    assert not any(r["flagged"] for r in rows if r["figure"].startswith("member:"))  # who joins is unchanged
    text = flag_text({**success, "scenario_id": "tutorial", "cause": "input changed: moved.toml"})
    assert re.match(r"tutorial success \d+\.\d% -> \d+\.\d% \(z [+-]\d", text) and text.endswith("input changed: moved.toml)")


def test_z_correction_and_minimum():
    previous = {"success": (0.50, 0.01), "size": (3.0, 0.05)}
    current = {"success": (0.54, 0.01), "size": (3.0, 0.05)}
    rows = {r["figure"]: r for r in compare(previous, current, DRIFT_DEFAULTS)}
    assert rows["success"]["z"] == pytest.approx(0.04 / math.sqrt(2e-4))
    # Bonferroni over 2 figures at 1%: z > Phi^-1(1 - 0.01 / 4)
    assert rows["success"]["z_critical"] == pytest.approx(2.807, abs=1e-3)
    assert rows["success"]["significant"] and rows["success"]["flagged"]
    assert not compare(previous, current, DRIFT_DEFAULTS | {"min_success": 0.05})[0]["flagged"]
    assert not rows["size"]["significant"]


def test_an_estimate_of_zero_still_has_an_error():
    assert proportion_se(0.0, 1000) > 0.001
    rows = compare({"member:X": (0.0, proportion_se(0.0, 1000))}, {"member:X": (0.001, proportion_se(0.001, 1000))},
                   DRIFT_DEFAULTS | {"min_membership": 0})
    assert rows[0]["z"] is not None and not rows[0]["flagged"]
