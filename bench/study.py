"""Study speed (issue 8): per-row overhead and driver memory of `pivotal study`.

- rows: a 512-row study of the Northern Syria scenario at 4,000 episodes a row
  against one 2,048,000-episode run of the same scenario, each the whole
  command in a child process (start-up, study checks, tables and Parquet
  included); target: the study reaches >= 85% of the run's episodes/s. The
  rows vary the requirement and the budget within 1% and 3% of the base, so
  an episode costs what a base episode costs and only the overhead differs.
- memory: Sobol designs over 6 inputs at 10^4 episodes a row, 128 base
  samples (1,024 rows) and with --full 1,024 base samples (8,192 rows): the
  child's peak RSS should not grow with the rows (tables stream to Parquet).

Run alone: `python -m bench.study [--quick] [--full]`; `make bench` runs it too.
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


def _study_file(tmp, sampler, samples, episodes, inputs=INPUTS):
    path = Path(tmp) / f"{sampler}_{samples}.toml"
    path.write_text(f'name = "bench"\nscenario = "{SYRIA}"\nepisodes = {episodes}\nseed = 1\n'
                    f'[design]\nsampler = "{sampler}"\nsamples = {samples}\n' + inputs)
    return path


def rows(quick: bool) -> dict:
    n_rows, per_row = (64, 4000) if quick else (512, 4000)
    total = n_rows * per_row
    best = {"run": 0.0, "study": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        study = _study_file(tmp, "random", n_rows, per_row, NEAR_BASE)
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


def memory(quick: bool, full: bool) -> list[dict]:
    sizes = [(16, 2000)] if quick else [(128, 10_000)] + ([(1024, 10_000)] if full else [])
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for samples, per_row in sizes:
            study = _study_file(tmp, "sobol", samples, per_row)
            n_rows = samples * 8
            seconds, rss = _child(["study", str(study), "--out", tmp])
            out.append({"rows": n_rows, "episodes_per_row": per_row, "seconds": seconds,
                        "peak_rss_mib": rss, "eps": n_rows * per_row / seconds})
            print(f"  sobol {samples} x 6 inputs = {n_rows:,} rows x {per_row:,} episodes: {seconds:,.0f} s "
                  f"({n_rows * per_row / seconds:,.0f} episodes/s), peak RSS {rss:,.0f} MiB")
    return out


def study_numbers(quick: bool, full: bool = False) -> dict:
    return {"rows": rows(quick), "memory": memory(quick, full)}


def markdown(res: dict) -> list[str]:
    r = res["rows"]
    lines = [f"| study: {r['rows']} rows x {r['episodes_per_row']:,} episodes vs one run of "
             f"{r['rows'] * r['episodes_per_row']:,} (Syria) | {r['study_eps']:,.0f} vs {r['run_eps']:,.0f} "
             f"episodes/s ({r['share']:.0%}; target >= 85%) |"]
    for m in res["memory"]:
        lines.append(f"| study: sobol {m['rows']:,} rows x {m['episodes_per_row']:,} episodes | "
                     f"{m['seconds']:,.0f} s, peak RSS {m['peak_rss_mib']:,.0f} MiB |")
    return lines


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--full", action="store_true")
    a = p.parse_args()
    study_numbers(a.quick, a.full)
