"""Study speed (issues 8 and 21): per-row cost and driver memory of `pivotal study`.

- rows: 512 rows x 4,000 episodes of the Northern Syria scenario, rows with their own run
  tables (`row_tables = true`), against one 2,048,000-episode run (target >= 85%).
- compact: a 131,072-row sobol study (2^15 samples x 2 inputs) at 100 episodes a row whose
  rows vary the tie means, and one whose rows vary no tie (requirement and budget within 3%
  and 1%), against one run of the same 13,107,200 episodes, side by side (targets: >= 50%
  and >= 90% of the run's episodes/s). Each is the whole command in a child process
  (start-up, study checks, the sobol analysis and the Parquet tables included).
- memory: peak RSS of the child at 2^12, 2^15 (and with --scale 2^18) sobol samples over
  the same 2 inputs (16,384, 131,072 and 1,048,576 compact rows at 100 episodes a row).
- --scale: the 1,048,576-row study (10^8 episodes) against one run of the same episodes.

Run alone: `python -m bench.study [--quick] [--scale]`; `make bench` runs it too.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SYRIA = ROOT / "configs" / "scenarios" / "syria_safe_zone_2019.toml"

INPUTS = '''
[[inputs]]
path = "budget"
low = 0.25
high = 4.0
apply = "scale"
[[inputs]]
path = "requirement"
low = 0.5
high = 1.33
apply = "scale"
[[inputs]]
path = "candidates.FRN.preference.mean"
low = 0.25
high = 1.5
apply = "scale"
[[inputs]]
path = "candidates.UKG.preference.mean"
low = 0.25
high = 1.5
apply = "scale"
[[inputs]]
path = "candidates.ITA.preference.mean"
low = 0.25
high = 1.5
apply = "scale"
[[inputs]]
path = "candidates.*.tie.mean"
low = 0.6
high = 1.05
apply = "scale"
'''


def _child(args):
    """Run a pivotal command in a child; (seconds, peak RSS MiB of that child alone)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "engine.cli", *args, "--quiet"], cwd=ROOT,
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, args
    return time.perf_counter() - start, usage.ru_maxrss / 1024


# rows that cost what the base scenario costs per episode (the overhead comparison must not
# be moved by inputs that make episodes cheaper or dearer): narrow ranges around the base
NEAR_BASE = '''
[[inputs]]
path = "requirement"
low = 0.97
high = 1.03
apply = "scale"
[[inputs]]
path = "budget"
low = 0.99
high = 1.01
apply = "scale"
'''


TIE_MEANS = NEAR_BASE.replace('path = "budget"\nlow = 0.99\nhigh = 1.01',
                               'path = "candidates.*.tie.mean"\nlow = 0.6\nhigh = 1.05')


def _study_file(tmp, sampler, samples, episodes, inputs=INPUTS, row_tables=None, name="bench"):
    path = Path(tmp) / f"{name}_{sampler}_{samples}.toml"
    tables = "" if row_tables is None else f"row_tables = {str(row_tables).lower()}\n"
    path.write_text(f'name = "{name}"\nscenario = "{SYRIA}"\nepisodes = {episodes}\nseed = 1\n'
                    f'[design]\nsampler = "{sampler}"\nsamples = {samples}\n{tables}' + inputs)
    return path


def rows(quick: bool) -> dict:
    n_rows, per_row = (64, 4000) if quick else (512, 4000)
    total = n_rows * per_row
    best = {"run": 0.0, "study": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        study = _study_file(tmp, "random", n_rows, per_row, NEAR_BASE, row_tables=True)
        _child(["run", str(SYRIA), "--episodes", "1000", "--out", tmp])  # warm the kernel cache
        for k in range(3):  # interleaved, best of three: the machine is shared
            seconds, _ = _child(["run", str(SYRIA), "--episodes", str(total), "--out", tmp])
            best["run"] = max(best["run"], total / seconds)
            seconds, _ = _child(["study", str(study), "--out", tmp])
            best["study"] = max(best["study"], total / seconds)
    share = best["study"] / best["run"]
    print(f"  {n_rows} rows x {per_row:,} episodes: {best['study']:,.0f} episodes/s; one run of "
          f"{total:,}: {best['run']:,.0f} episodes/s; study = {share:.0%} of the run (target >= 85%)")
    return {"rows": n_rows, "episodes_per_row": per_row, "study_eps": best["study"],
            "run_eps": best["run"], "share": share}


def compact(quick: bool, scale: bool = False) -> dict:
    """Compact rows at 100 episodes a row, varying tie means or no tie, against one plain run of
    as many episodes (best of two, interleaved); with `scale` the 2^18-sample design."""
    samples = 2 ** (10 if quick else 18 if scale else 15)
    per_row, n_rows = 100, samples * 4
    total = n_rows * per_row
    best = {"run": 0.0, "ties": 0.0, "no_ties": 0.0}
    rss = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"ties": _study_file(tmp, "sobol", samples, per_row, TIE_MEANS, False, "ties"),
                 "no_ties": _study_file(tmp, "sobol", samples, per_row, NEAR_BASE, False, "no_ties")}
        _child(["study", str(_study_file(tmp, "sobol", 16, per_row, TIE_MEANS, False, "warm")), "--out", tmp])
        for _ in range(1 if scale else 2):
            seconds, rss["run"] = _child(["run", str(SYRIA), "--episodes", str(total), "--out", tmp])
            best["run"] = max(best["run"], total / seconds)
            for kind, path in files.items():
                seconds, rss[kind] = _child(["study", str(path), "--out", tmp])
                best[kind] = max(best[kind], total / seconds)
    res = {"rows": n_rows, "episodes_per_row": per_row, **{f"{k}_eps": v for k, v in best.items()},
           **{f"{k}_rss_mib": v for k, v in rss.items()}}
    print(f"  {n_rows:,} compact rows x {per_row} episodes: tie means varied {best['ties']:,.0f} episodes/s "
          f"({best['ties'] / best['run']:.0%}, target >= 50%), no tie varied {best['no_ties']:,.0f} "
          f"({best['no_ties'] / best['run']:.0%}, target >= 90%); one run of {total:,}: {best['run']:,.0f} "
          f"episodes/s; peak RSS {rss['ties']:,.0f} / {rss['no_ties']:,.0f} / {rss['run']:,.0f} MiB")
    return res


def memory(quick: bool, scale: bool) -> list[dict]:
    """Peak RSS of compact sobol studies of growing rows (100 episodes a row)."""
    exponents = [8, 10] if quick else [12, 15] + ([18] if scale else [])
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for e in exponents:
            study = _study_file(tmp, "sobol", 2 ** e, 100, NEAR_BASE, False)
            n_rows = 4 * 2 ** e
            seconds, rss = _child(["study", str(study), "--out", tmp])
            out.append({"rows": n_rows, "episodes_per_row": 100, "seconds": seconds, "peak_rss_mib": rss,
                        "eps": n_rows * 100 / seconds})
            print(f"  sobol 2^{e} x 2 inputs = {n_rows:,} compact rows x 100 episodes: {seconds:,.0f} s "
                  f"({n_rows * 100 / seconds:,.0f} episodes/s), peak RSS {rss:,.0f} MiB")
    return out


def study_numbers(quick: bool, full: bool = False, scale: bool = False) -> dict:
    res = {"rows": rows(quick), "compact": compact(quick), "memory": memory(quick, scale)}
    if scale:
        res["scale"] = compact(quick, scale=True)
    return res


def markdown(res: dict) -> list[str]:
    r = res["rows"]
    lines = [f"| study: {r['rows']} rows x {r['episodes_per_row']:,} episodes vs one run of "
             f"{r['rows'] * r['episodes_per_row']:,} (Syria) | {r['study_eps']:,.0f} vs {r['run_eps']:,.0f} "
             f"episodes/s ({r['share']:.0%}; target >= 85%) |"]
    for c in [res.get("compact"), res.get("scale")]:
        if c:
            lines.append(f"| study: {c['rows']:,} compact rows x 100 episodes, tie means / no tie varied, vs one "
                         f"run | {c['ties_eps']:,.0f} / {c['no_ties_eps']:,.0f} vs {c['run_eps']:,.0f} episodes/s "
                         f"({c['ties_eps'] / c['run_eps']:.0%} / {c['no_ties_eps'] / c['run_eps']:.0%}; targets "
                         f">= 50% / >= 90%) |")
    for m in res["memory"]:
        lines.append(f"| study: sobol {m['rows']:,} compact rows x {m['episodes_per_row']:,} episodes | "
                     f"{m['seconds']:,.0f} s, peak RSS {m['peak_rss_mib']:,.0f} MiB |")
    return lines


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--full", action="store_true")
    p.add_argument("--scale", action="store_true", help="also 2^18 x 4 = 1,048,576 rows (10^8 episodes)")
    a = p.parse_args()
    study_numbers(a.quick, a.full, a.scale)
