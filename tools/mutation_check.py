"""Mutation check: plant one-line misreadings of the model in the kernel and show the
tests fail for each.

For every mutation in MUTATIONS, the repository is copied to a temporary directory
(the working tree is never touched), the mutation's text is replaced in its file,
and a fast subset of the suite runs on the copy with its own empty Numba cache
(`PIVOTAL_CACHE_DIR`), so the mutated kernel is compiled afresh. The unmutated copy
runs first: the subset must pass there, or every "caught" below would mean nothing.
A mutation is caught when the subset fails (or hangs past the timeout).

    .venv/bin/python tools/mutation_check.py                # all, ~1-2 min each
    .venv/bin/python tools/mutation_check.py --only venue-pays-after-success
    .venv/bin/python tools/mutation_check.py --markdown results.md

Run by hand (it compiles the kernels once per mutation: 15-50 min in all on two
cores), not in CI; tests/tools/test_mutation_targets.py checks in every CI run that each
mutation's target text still occurs exactly once, so the list cannot rot silently.
Results are in docs/MODEL.md, "How the rules are tested".
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/model/test_exact_model.py", "tests/model/test_edge_cases.py", "tests/model/test_mechanisms.py"]
TIMEOUT = 900  # seconds per mutation (a hang counts as caught)
EPISODE = "kernels/episode.py"


class Mutation(NamedTuple):
    name: str
    misreading: str
    path: str   # file, relative to the repository root
    old: str    # text that must occur exactly once in the file
    new: str


MUTATIONS = [
    # the four that passed the whole suite before the exact comparison
    Mutation("reoffer-before-release",
             "a re-offer is checked against Bfree before the refused offer's reservation is released",
             EPISODE, "elif rnd < scal[MAX_ROUNDS] and s_next <= free:",
             "elif rnd < scal[MAX_ROUNDS] and s_next <= free - s:"),
    Mutation("withdrawn-peers-counted", "withdrawn peers still count in the peer share",
             EPISODE, "_peer_sums_after_leaving(i, work, status, adj_ptr, adj_cand, adj_tie, peer_w)", "pass"),
    Mutation("peer-sums-running-difference",
             "a departure subtracts its tie from the peers' inside sums (rounding residue remains)",
             EPISODE, "_peer_sums_after_leaving(i, work, status, adj_ptr, adj_cand, adj_tie, peer_w)",
             "_move_peer_sums(i, -1.0, work, adj_ptr, adj_cand, adj_tie, peer_w)"),
    Mutation("hazard-raw-tie", "the withdrawal hazard uses the raw tie when `credibility` is off",
             EPISODE, "rate = scal[WITHDRAWAL_RATE] * (1.0 - work[CREDIBILITY_TIE, i])",
             "rate = scal[WITHDRAWAL_RATE] * (1.0 - work[TIE, i])"),
    Mutation("information-off-drops-broker", "`information` off also drops the broker tie",
             EPISODE, "w_info = max(w * scal[USE_INFORMATION], cand[i, BROKER_TIE])",
             "w_info = max(w, cand[i, BROKER_TIE]) * scal[USE_INFORMATION]"),
    # the revision of 2026-11-27 and the keys
    Mutation("venue-pays-after-success", "a venue held after success still reserves planned offers",
             EPISODE, "paying = not (capacity >= scal[REQUIREMENT] and size >= scal[MIN_PARTNERS])", "paying = True"),
    Mutation("preference-keyed-by-position",
             "a candidate's block (preference, P's error, tie, first delay) keyed by list position, not by id",
             EPISODE, "rng.uniforms(seed, episode, np.int64(cand[i, KEY]), rng.CANDIDATE, 0)",
             "rng.uniforms(seed, episode, i, rng.CANDIDATE, 0)"),
    Mutation("capacity-keyed-by-position", "a joiner's block (contribution, withdrawal) keyed by list position",
             EPISODE, "rng.uniforms(seed, episode, np.int64(cand[i, KEY]), rng.JOIN, 0)",
             "rng.uniforms(seed, episode, i, rng.JOIN, 0)"),
    Mutation("reoffer-reuses-round-1-delay", "every round's delay reuses the draw of round 1",
             EPISODE, "_delay(i, rnd + 1, scal", "_delay(i, 1, scal"),
    Mutation("tie-from-preference-uniform", "the tie strength is read at the preference's uniform",
             EPISODE, "w = rng.beta_quantile(tie_tables, i, work[TIE, i])",
             "w = rng.beta_quantile(tie_tables, i, work[U_PREFERENCE, i])"),
    Mutation("withdrawal-bound-too-high", "withdrawals are skipped by a bound that is not a lower bound of the stay",
             EPISODE, "t + (1.0 - u_stay) / rate < scal[DEADLINE]", "t + 2.0 * (1.0 - u_stay) / rate < scal[DEADLINE]"),
    Mutation("withdraw-subtracts", "Withdraw subtracts a_i from the running sum instead of summing afresh",
             EPISODE, "capacity = 0.0  # summed afresh, so no rounding residue is left behind (-1e-17 < R = 0)\n"
             "    for j in range(status.shape[0]):  # (adding 0.0 for non-members changes no bit)\n"
             "        capacity += work[CONTRIBUTION, j] * (status[j] == MEMBER)",
             "capacity -= work[CONTRIBUTION, i]"),
    # peers
    Mutation("peer-share-counts-pivot", "the peer share counts the pivot as a tied member (tie 1)",
             EPISODE, "return inside / total", "return (inside + 1.0) / (total + 1.0)"),
    Mutation("peer-share-counts-non-members", "the peer share counts every tied candidate, member or not",
             EPISODE, "return inside / total", "return 1.0"),
    Mutation("joiners-not-peers", "a joiner (bilateral or at a venue) does not update its peers' sums",
             EPISODE, "_move_peer_sums(i, 1.0, work, adj_ptr, adj_cand, adj_tie, peer_w)", "pass"),
    # negotiation
    Mutation("escalation-without-sd", "escalation without the epsilon * sd_i term",
             EPISODE, "s_next = (1.0 + eps) * s + eps * cand[i, PREF_SD]", "s_next = (1.0 + eps) * s"),
    Mutation("holdout-missing", "the hold-out demand q_i is left out of the utility",
             EPISODE, "return theta + value * offer + bonus - demand + beta", "return theta + value * offer + bonus + beta"),
    Mutation("accept-strictly", "a bilateral offer is accepted only when u > 0 (not u >= 0)",
             EPISODE, "work[PEER_MEMBERS, i], work[PEER_INSIDE, i], work[PEER_TOTAL, i]) >= 0.0:",
             "work[PEER_MEMBERS, i], work[PEER_INSIDE, i], work[PEER_TOTAL, i]) > 0.0:"),
    Mutation("open-revisits-withdrawn", "Open skips only members, so it approaches withdrawn venue joiners",
             EPISODE, "if status[i] != UNTOUCHED:", "if status[i] == MEMBER:"),
    Mutation("passed-uses-a-slot", "a passed candidate takes a negotiation slot",
             EPISODE, "status[i] = PASSED\n", "status[i] = PASSED\n            open_talks += 1\n"),
    Mutation("delay-credibility-tie", "the response delay uses the credibility tie (0 with `credibility` off)",
             EPISODE, "(1.0 - work[TIE, i])) * e", "(1.0 - work[CREDIBILITY_TIE, i])) * e"),
    Mutation("time-to-success-last", "time_to_success is the last time the target was met, not the first",
             EPISODE, "if not recruiting and math.isnan(time_to_success):", "if not recruiting:"),
    # venues
    Mutation("venue-index-order", "a venue reserves offers in index order instead of P's list order",
             EPISODE, "j = order[p]", "j = p"),
    Mutation("venue-one-pass", "a venue makes one pass over the eligible, not passes until none joins",
             EPISODE, "asked = 0  # a join: everyone may now accept", "pass  # (one pass only)"),
    Mutation("venue-share-without-pivot", "the venue share leaves out the pivot's own seat",
             EPISODE, "members_in = inst[k, PIVOT_MEMBER]", "members_in = 0.0"),
    Mutation("venue-keeps-reservations", "reservations of venue candidates who did not join are not given back",
             EPISODE, "free += work[VENUE_OFFER, j]", "free += 0.0"),
    Mutation("venue-takes-negotiating", "candidates in talks are eligible at a venue",
             EPISODE, "return st == UNTOUCHED or st == PASSED or st == REFUSED",
             "return st != MEMBER and st != WITHDRAWN"),
    Mutation("brokers-without-pivot", "an institution brokers even when the pivot is not a member",
             "engine/model/arrays.py", 'if on["brokers"] and institution.pivot_member:', 'if on["brokers"]:'),
]

_IGNORE = shutil.ignore_patterns(".git", ".venv", "forecasts", "__pycache__", ".pytest_cache",
                                 "*.egg-info", "results", "build")


def mutated(mutation: Mutation, root: Path = ROOT) -> str:
    """The mutation's file under `root` with its text replaced (it must occur exactly once)."""
    text = (root / mutation.path).read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: its text occurs {count} times in {mutation.path}, not once")
    return text.replace(mutation.old, mutation.new)


def run_suite(mutation: Mutation | None, tests: list[str], snapshot: Path) -> tuple[bool, list[str], float]:
    """Run `tests` on a mutated copy of `snapshot`; returns (tests failed, failing tests, seconds).
    Only test failures count: a copy that cannot even be collected or imported is an error."""
    with tempfile.TemporaryDirectory(prefix="pivotal-mutant-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(snapshot, copy)
        if mutation is not None:
            (copy / mutation.path).write_text(mutated(mutation, copy))
        env = {**os.environ, "PIVOTAL_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(copy)}
        where = subprocess.run([sys.executable, "-c", "import kernels, engine; print(kernels.__file__)"],
                               cwd=copy, env=env, capture_output=True, text=True, check=True).stdout
        if not where.startswith(str(copy)):
            raise SystemExit(f"the copy imports kernels from {where.strip()}, not from {copy}")
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
                                   *tests], cwd=copy, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return True, [f"(timeout after {TIMEOUT} s)"], time.perf_counter() - start
        failing = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)
        if done.returncode not in (0, 1) or re.search(r"^ERROR ", done.stdout, flags=re.M):
            last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
            raise SystemExit(f"{mutation.name if mutation else 'unmutated'}: the tests did not run "
                             f"cleanly (pytest exit {done.returncode}): {last}")
        return bool(failing), failing, time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only these mutations (names)")
    ap.add_argument("--tests", nargs="*", default=TESTS, help="test files to run on each mutant")
    ap.add_argument("--markdown", help="also write the results table to this file")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutations: {sorted(unknown)}")
    for m in chosen:
        mutated(m)  # every target still occurs once, before anything slow runs

    snapshot_dir = tempfile.TemporaryDirectory(prefix="pivotal-snapshot-")
    snapshot = Path(snapshot_dir.name) / "repo"  # one copy: edits during the check do not leak in
    shutil.copytree(ROOT, snapshot, ignore=_IGNORE)
    failed, failing, seconds = run_suite(None, args.tests, snapshot)
    print(f"unmutated: {'FAILED ' + str(failing) if failed else 'passed'} ({seconds:.0f} s)", flush=True)
    if failed:
        return 1
    rows, survivors = [], []
    for m in chosen:
        failed, failing, seconds = run_suite(m, args.tests, snapshot)
        tests = ", ".join(t.split("::")[-1] for t in failing[:4]) + (" ..." if len(failing) > 4 else "")
        rows.append(f"| `{m.name}` | {m.misreading} | {'yes' if failed else '**NO**'} | "
                    f"{len(failing)}: {tests} |")
        print(rows[-1], f"({seconds:.0f} s)", flush=True)
        if not failed:
            survivors.append(m.name)
    table = "\n".join(["| mutation | misreading | suite fails | failing tests (count: first names) |",
                       "|---|---|---|---|", *rows])
    print("\n" + table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutations caught"
          + (f"; NOT caught: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
