"""tools/mutation_check.py runs by hand (it compiles the kernels once per mutation); this
checks on every run that each planted misreading still applies to the current code, so
the check cannot rot silently when the kernel changes."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "tools" / "mutation_check.py")
mutation_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutation_check)
MUTATIONS = mutation_check.MUTATIONS


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_each_mutation_target_occurs_exactly_once(mutation):
    text = (ROOT / mutation.path).read_text()
    assert text.count(mutation.old) == 1, f"update tools/mutation_check.py: {mutation.name}"
    assert mutation_check.mutated(mutation) != text


def test_mutation_names_are_unique_and_cover_the_reviewed_misreadings():
    names = [m.name for m in MUTATIONS]
    assert len(set(names)) == len(names)
    assert {"reoffer-before-release", "withdrawn-peers-counted", "hazard-raw-tie",
            "information-off-drops-broker", "venue-pays-after-success", "withdraw-subtracts",
            "preference-keyed-by-position", "escalation-without-sd", "open-revisits-withdrawn",
            "venue-index-order", "holdout-missing", "delay-raw-tie", "linkage-reads-credibility-channel",
            "quantile-one-bin-off", "paired-se-independent", "target-se-trusts-zero", "delay-reads-broker-tie",
            "absent-channel-reads-zero", "channel-lanes-swapped", "channel-columns-swapped"} <= set(names)
