"""Mutation check: plant one-line misreadings of the model in the kernel, and of the numbers
after it in engine/ (aggregation, intervals, comparisons, designs, stopping, backtest
scoring), and show the tests fail for each.

For every mutation in MUTATIONS, the repository is copied to a temporary directory
(the working tree is never touched), the mutation's text is replaced in its file,
and a fast subset of the suite runs on the copy with its own empty Numba cache
(`PIVOTAL_CACHE_DIR`), so the mutated kernel is compiled afresh. The unmutated copy
runs first: the subset must pass there, or every "caught" below would mean nothing.
A mutation is caught when the subset fails (or hangs past the timeout).

    .venv/bin/python tools/mutation_check.py                # all, ~1-2 min each
    .venv/bin/python tools/mutation_check.py --only venue-pays-after-success
    .venv/bin/python tools/mutation_check.py --markdown results.md

Run by hand in full (it compiles the kernels once per mutation: 30-70 min in all on two
cores); CI runs a sample (`--sample 3`, a different three each day of the year) after the
suite (.ci/run), and tests/tools/test_mutation_targets.py checks in every CI run that
each mutation's target text still occurs exactly once, so the list cannot rot silently.
Kernel mutations run TESTS, engine/ ones ENGINE_TESTS.
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
TESTS = ["tests/model/test_exact_model.py", "tests/model/test_edge_cases.py", "tests/model/test_mechanisms.py",
         "tests/model/test_channels.py"]
TIMEOUT = 900  # seconds per mutation (a hang counts as caught)
ENGINE_TESTS = ["tests/outputs/test_reference.py", "tests/outputs/test_statistics.py",
                "tests/execution/test_target_se.py", "tests/studies/test_integer_inputs.py",
                "tests/data/test_baselines.py", "tests/data/test_backtest.py", "tests/model/test_boundaries.py"]
EPISODE = "kernels/episode.py"
TABLES, COMPARE, DESIGNS = "engine/outputs/tables.py", "engine/studies/comparisons.py", "engine/studies/designs.py"
BACKTEST, BASELINES = "engine/data/backtest.py", "engine/data/baselines.py"


class Mutation(NamedTuple):
    name: str
    misreading: str
    path: str   # file, relative to the repository root
    old: str    # text that must occur exactly once in the file
    new: str
    tests: tuple = ()   # the test files that must catch it (default: TESTS)


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
             EPISODE, "w_info = max(w_inf, cand[i, BROKER_TIE])",
             "w_info = max(w_inf, cand[i, BROKER_TIE]) * scal[USE_INFORMATION]"),
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
             EPISODE, "w = rng.tie_draw(tie_tables, tie_mix, i, work[TIE, i])",
             "w = rng.tie_draw(tie_tables, tie_mix, i, work[U_PREFERENCE, i])"),
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
             EPISODE, "(1.0 - work[INFORMATION_TIE, i])) * e", "(1.0 - work[CREDIBILITY_TIE, i])) * e"),
    # the revision of 2026-12-04: per-mechanism ties
    Mutation("delay-raw-tie", "the response delay reads the raw tie, also when `information` is off",
             EPISODE, "(1.0 - work[INFORMATION_TIE, i])) * e", "(1.0 - work[TIE, i])) * e"),
    Mutation("linkage-reads-credibility-channel", "linkage reads the credibility channel",
             EPISODE, "(1.0 + scal[LINKAGE] * w_lnk * scal[USE_LINKAGE])",
             "(1.0 + scal[LINKAGE] * w_crd * scal[USE_LINKAGE])"),
    Mutation("channel-shares-the-tie-draw", "a channel is read at the tie's uniform, not its own draw",
             EPISODE, "w_crd = rng.tie_draw(tie_tables, tie_mix, int(cand[i, CRED_ROW]), u_crd)",
             "w_crd = rng.tie_draw(tie_tables, tie_mix, int(cand[i, CRED_ROW]), work[TIE, i])"),
    Mutation("delay-reads-broker-tie",
             "the response delay reads the information tie wI = max(wInf, g), so a broker shortens it",
             EPISODE, "work[INFORMATION_TIE, i] = w_inf", "work[INFORMATION_TIE, i] = w_info"),
    Mutation("absent-channel-reads-zero", "a channel not given is read as no tie (0), not as the tie",
             EPISODE, "w_inf, w_lnk, w_crd = w, w, w  #", "w_inf, w_lnk, w_crd = 0.0, 0.0, 0.0  #"),
    Mutation("channel-lanes-swapped", "the information and linkage channels read each other's uniform",
             EPISODE, "u_inf, u_lnk, u_crd, _ = rng.uniforms(", "u_lnk, u_inf, u_crd, _ = rng.uniforms("),
    Mutation("channel-columns-swapped",
             "a scenario's tie_information is used as linkage and its tie_linkage as information",
             "engine/model/arrays.py", "cand[:, :, [L.INFO_ROW, L.LINK_ROW, L.CRED_ROW]] = st.channel_rows",
             "cand[:, :, [L.LINK_ROW, L.INFO_ROW, L.CRED_ROW]] = st.channel_rows"),
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
             "engine/model/arrays.py", "if st.pivot_member[j]:", "if True:"),
]

# compact design rows (issue 21): a block of rows must give each row its own scenario's numbers
ROWS_TESTS = ("tests/studies/test_compact_rows.py",)
MUTATIONS += [
    Mutation("rows-first-row-ranges", "every row of a block is binned on the first row's ranges",
             "kernels/rows.py", "scale[m] = GRID / tops[r, m]", "scale[m] = GRID / tops[0, m]", ROWS_TESTS),
    Mutation("rows-scale-is-shift", "an input applied by scale is added to the base value",
             "engine/studies/rows.py", 'slot.base + v if slot.apply == "shift" else slot.base * v',
             'slot.base + v if slot.apply in ("shift", "scale") else slot.base * v', ROWS_TESTS),
    Mutation("rows-grid-weights-swapped", "a row's tie between two grid means takes the far node's weight",
             "engine/model/tie_tables.py", "mix[g, rng.MIX_PARTS] = np.where(1.0 - fm > 0.0, 1.0 - fm, fm)",
             "mix[g, rng.MIX_PARTS] = np.where(1.0 - fm > 0.0, fm, 1.0 - fm)", ROWS_TESTS),
]

# checkpoints: what a crash or a damaged disk leaves must be read back whole or not at all
JOURNAL_TESTS = ("tests/execution/test_journal.py",)
MUTATIONS += [
    Mutation("journal-first-record-wins", "a chunk computed again keeps its first (damaged) record",
             "engine/execution/journal.py", "records[position] = (path, start, length, crc)",
             "records.setdefault(position, (path, start, length, crc))", JOURNAL_TESTS),
    Mutation("journal-no-magic", "a journal's scan takes any 24 bytes as a record header",
             "engine/execution/journal.py", "if magic != MAGIC or start + length > size:",
             "if start + length > size:", JOURNAL_TESTS),
    Mutation("journal-crc-payload-only", "a record's CRC covers its payload, not its position",
             "engine/execution/journal.py",
             "return zlib.crc32(payload, zlib.crc32(HEADER.pack(MAGIC, position, len(payload), 0)[:-4]))",
             "return zlib.crc32(payload)", JOURNAL_TESTS),
    Mutation("journals-by-name", "journals are read in name order (10000 before 9999)",
             "engine/execution/journal.py",
             "return sorted((int(p.stem), p) for p in directory.glob(f\"*{SUFFIX}\") if p.stem.isdigit())",
             "return sorted(((int(p.stem), p) for p in directory.glob(f\"*{SUFFIX}\") if p.stem.isdigit()), "
             "key=lambda e: e[1].name)", JOURNAL_TESTS),
    Mutation("payload-crc-unchecked", "a checkpoint payload is decoded without checking its CRC",
             "engine/execution/aggregate.py",
             "or struct.unpack(\"<I\", payload[-4:])[0] != zlib.crc32(body)):", "):", JOURNAL_TESTS),
]


def _engine(name, misreading, path, old, new):
    return Mutation(name, misreading, path, old, new, tuple(ENGINE_TESTS))


# after the kernel: what turns aggregates into the numbers a user reads (issue 22)
MUTATIONS += [
    _engine("quantile-strictly-above", "a discrete quantile is the smallest v with CDF(v) > q (not >=)",
            TABLES, "np.searchsorted(cdf, np.array(QUANTILES) - 1e-12)",
            "np.searchsorted(cdf, np.array(QUANTILES), side='right')"),
    _engine("quantile-one-bin-off", "a continuous quantile is read one bin too high",
            TABLES, "np.interp(QUANTILES, cdf, edges)", "np.interp(QUANTILES, cdf, edges + (edges[1] - edges[0]))"),
    _engine("sd-population", "the sd of a discrete metric divides by n, not n - 1",
            TABLES, "var = float(((values - mean) ** 2 * hist).sum() / (n - 1)) if n > 1 else 0.0",
            "var = float(((values - mean) ** 2 * hist).sum() / n) if n > 1 else 0.0"),
    _engine("se-over-n-minus-1", "the standard error divides the sd by sqrt(n - 1)",
            TABLES, '"se": sd / math.sqrt(count) if count else math.nan',
            '"se": sd / math.sqrt(count - 1) if count > 1 else math.nan'),
    _engine("wilson-centre-z", "the Wilson interval's centre adds z / 2n instead of z^2 / 2n",
            TABLES, "centre = (p + z * z / (2 * n)) / (1 + z * z / n)", "centre = (p + z / (2 * n)) / (1 + z * z / n)"),
    _engine("success-by-day-over-reached", "p_success_by_day divides by the episodes that reached success",
            TABLES, '"episodes_succeeded_by_day": by_day, "p_success_by_day": by_day / n}',
            '"episodes_succeeded_by_day": by_day, "p_success_by_day": by_day / max(agg.reached, 1)}'),
    _engine("study-capacity-on-spent-grid", "a study's capacity output is read on the spent range",
            TABLES, '"capacity": int(agg.q_sum[0]) / GRID * top[0] / n,', '"capacity": int(agg.q_sum[0]) / GRID * top[1] / n,'),
    _engine("paired-se-independent", "a paired difference's se from the independent variances",
            COMPARE, "d_se = math.sqrt(max(vd, 0.0) / scale)", "d_se = math.sqrt(max(var_b, 0.0) + max(var_v, 0.0))"),
    _engine("comparison-interval-90", "the comparisons' 95% interval uses 1.645",
            COMPARE, '"difference_low": diff - Z95 * d_se,', '"difference_low": diff - 1.645 * d_se,'),
    _engine("sobol-first-order-analysis", "a second-order Sobol design analysed as first-order",
            DESIGNS, "res = _analyse(lambda: sobol.analyze(problem, y, calc_second_order=second_order,",
            "res = _analyse(lambda: sobol.analyze(problem, y, calc_second_order=False,"),
    _engine("integer-uniform-drops-top", "an integer uniform never draws its upper end",
            DESIGNS, "return [int(lo + min(math.floor(x * (hi - lo + 1)), hi - lo)) for x in u]",
            "return [int(lo + math.floor(x * (hi - lo))) for x in u]"),
    _engine("target-se-first-scenario", "--target-se watches the first scenario, not the worst",
            "engine/execution/execute.py", "worst = max(_success_se(a) for a in merged)", "worst = _success_se(merged[0])"),
    _engine("target-se-trusts-zero", "--target-se trusts the plain standard error of an estimate of 0",
            "engine/execution/execute.py", "return max(math.sqrt(p * (1 - p) / (n - 1)), (high - low) / (2 * Z95))",
            "return math.sqrt(p * (1 - p) / (n - 1))"),
    _engine("auc-ordinal-ranks", "the AUC ranks ties in order instead of by mid-ranks",
            BACKTEST, "stats.rankdata(score)[y]", "stats.rankdata(score, method='ordinal')[y]"),
    _engine("log-loss-clip-wider", "the log loss clips probabilities at 1/n instead of 1/(2n)",
            BACKTEST, "eps = 1.0 / (2 * episodes)", "eps = 1.0 / episodes"),
    _engine("no-ties-keeps-peers", "`no_ties` leaves the peer effect on",
            BACKTEST, '"peers": False}', '"peers": True}'),
    _engine("size-percentile-full-mass", "the size percentile counts P(size = observed) in full",
            BASELINES, '"size_percentile": float(pmf[:observed].sum() + at / 2)',
            '"size_percentile": float(pmf[:observed].sum() + at)'),
    _engine("logit-sees-its-case", "the logit baseline is fitted with the held-out case among the others",
            BACKTEST, "logit = baselines.logit_probabilities(prepared[:k] + prepared[k + 1:], p)",
            "logit = baselines.logit_probabilities(prepared, p)"),
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
    ap.add_argument("--engine", action="store_true", help="only the engine/ mutations (after the kernel)")
    ap.add_argument("--sample", type=int, help="run this many mutations, chosen by --sample-seed")
    ap.add_argument("--sample-seed", type=int, default=0, help="which sample (CI: the day of the year)")
    ap.add_argument("--tests", nargs="*", help="test files to run on each mutant (default: each mutation's)")
    ap.add_argument("--markdown", help="also write the results table to this file")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if (not args.only or m.name in args.only) and (not args.engine or m.tests)]
    unknown = set(args.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutations: {sorted(unknown)}")
    if args.sample:
        import random
        chosen = random.Random(args.sample_seed).sample(chosen, min(args.sample, len(chosen)))
    for m in chosen:
        mutated(m)  # every target still occurs once, before anything slow runs

    snapshot_dir = tempfile.TemporaryDirectory(prefix="pivotal-snapshot-")
    snapshot = Path(snapshot_dir.name) / "repo"  # one copy: edits during the check do not leak in
    shutil.copytree(ROOT, snapshot, ignore=_IGNORE)
    tests_of = {m.name: list(args.tests or m.tests or TESTS) for m in chosen}
    for tests in {tuple(t) for t in tests_of.values()}:
        failed, failing, seconds = run_suite(None, list(tests), snapshot)
        print(f"unmutated ({len(tests)} test files): {'FAILED ' + str(failing) if failed else 'passed'} "
              f"({seconds:.0f} s)", flush=True)
        if failed:
            return 1
    rows, survivors = [], []
    for m in chosen:
        failed, failing, seconds = run_suite(m, tests_of[m.name], snapshot)
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
