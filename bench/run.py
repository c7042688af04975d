"""`make bench`: pivotal's speed, side by side with a plain SimPy implementation and the
draw-only floor, in one run (this machine is shared and noisy: ratios measured
together are what count).

Writes bench/results/<date>-<host>.json and appends a Markdown table to
bench/README.md. `--quick` shrinks every measurement (a smoke run).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIOS = {30: HERE / "scenarios" / "synthetic_30.toml", 120: HERE / "scenarios" / "synthetic_120.toml"}
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - start, out


def engine_rate(path, episodes, workers=1, **kw):
    import pivotal

    pivotal.forecast(path, episodes=1000, workers=workers, progress=False, **kw)  # warm
    seconds, result = timed(pivotal.forecast, path, episodes=episodes, workers=workers,
                            progress=False, **kw)
    return episodes / seconds, result.tables


def simpy_check(path, tables, episodes, bulk_draws):
    """Episodes/s of the SimPy model, and the largest |z| between its means and the engine's."""
    from bench.peers import simpy_rem1

    simpy_rem1.simulate(str(path), 20, 1, bulk_draws)
    seconds, peer = timed(simpy_rem1.simulate, str(path), episodes, 5, bulk_draws)
    summary = {r["metric"]: r for r in tables["summary"].iter_rows(named=True)}
    z = {}
    for m in ("size", "capacity", "spent", "offers", "venue_joins", "withdrawals"):
        x = np.asarray(peer[m], float)
        se = np.hypot(x.std() / np.sqrt(len(x)), summary[m]["se"])
        z[m] = float((summary[m]["mean"] - x.mean()) / se) if se > 0 else 0.0
    return episodes / seconds, z


def floor_rate(path, tables, episodes):
    from engine.model.arrays import build_model_arrays
    from engine.model.scenario import load_scenario
    from kernels.floor import draw_floor

    s = load_scenario(path)
    m = build_model_arrays(s)
    summary = {r["metric"]: r["mean"] for r in tables["summary"].iter_rows(named=True)}
    offers = int(round(summary["offers"]))
    joins = int(round(tables["candidates"]["p_ever_joined"].sum()))
    peers = s.parameters["peer_weight"] > 0 and s.mechanisms["peers"]
    tables = m.kernel_args()[3]
    draw_floor(1, 0, 10, m.cand, m.tie_ends, tables, peers, offers, joins)
    seconds, _ = timed(draw_floor, 1, 0, episodes, m.cand, m.tie_ends, tables, peers, offers, joins)
    return episodes / seconds


def throughput(quick):
    rows = []
    for n, path in SCENARIOS.items():
        episodes = (200_000 if n == 30 else 50_000) // (10 if quick else 1)
        rate, tables = engine_rate(path, episodes)
        peer_episodes = (5000 if n == 30 else 1500) // (5 if quick else 1)
        plain, z_plain = simpy_check(path, tables, peer_episodes, bulk_draws=False)
        tuned, z_tuned = simpy_check(path, tables, peer_episodes, bulk_draws=True)
        worst = max(abs(v) for v in (*z_plain.values(), *z_tuned.values()))
        if worst >= 5:  # a baseline that computes something else has no speed to compare
            print(f"  SimPy DISAGREES with the engine on {path.name} (max |z| {worst:.1f}): "
                  "its times are not reported")
            plain = tuned = float("nan")
        floor = floor_rate(path, tables, episodes)
        rows.append({"candidates": n, "engine_eps_per_core": rate, "simpy_eps": plain,
                     "simpy_bulk_draws_eps": tuned, "floor_eps": floor, "x_simpy": rate / plain,
                     "x_simpy_bulk_draws": rate / tuned, "share_of_floor": rate / floor,
                     "simpy_agrees": worst < 5, "simpy_max_abs_z": worst})
        print(f"  {n:4d} candidates: engine {rate:,.0f}/s/core; SimPy {plain:,.0f}/s ({rate / plain:,.0f}x), "
              f"SimPy with bulk NumPy draws {tuned:,.0f}/s ({rate / tuned:,.0f}x), outcomes agree: "
              f"{worst < 5} (max |z| {worst:.1f}); floor {floor:,.0f}/s ({rate / floor:.0%})")
    return rows


def _rss_run(args):
    """Run `pivotal run` in a child; return (seconds, peak RSS MiB of that child alone)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", *args, "--quiet"], cwd=ROOT,
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def scaling(quick, full):
    out = {"episodes": [], "candidates": [], "threads": {}}
    sizes = [10**5, 10**6] if quick else [10**5, 10**6, 10**7] + ([10**8] if full else [])
    with tempfile.TemporaryDirectory() as tmp:
        for e in sizes:
            seconds, rss = _rss_run([str(SCENARIOS[30]), "--episodes", str(e), "--out", tmp])
            out["episodes"].append({"episodes": e, "seconds": seconds, "peak_rss_mib": rss})
            print(f"  {e:>11,} episodes: {seconds:7.1f} s, peak RSS {rss:,.0f} MiB (child process)")
        from bench.make_scenarios import scenario_toml
        for n in (10, 30, 100, 300, 500):
            path = Path(tmp) / f"synthetic_{n}.toml"
            path.write_text(scenario_toml(n, 3, 2 * n))
            episodes = max(2000, 2_000_000 // n) // (10 if quick else 1)
            rate, _ = engine_rate(path, episodes)
            out["candidates"].append({"candidates": n, "eps_per_core": rate,
                                      "us_per_episode": 1e6 / rate, "us_per_candidate": 1e6 / rate / n})
            print(f"  {n:4d} candidates: {1e6 / rate:8.1f} us/episode, {1e6 / rate / n:.2f} us/candidate")
    episodes = 100_000 if quick else 1_000_000
    for workers in (1, 2):
        rate, _ = engine_rate(SCENARIOS[30], episodes, workers=workers)
        out["threads"][workers] = rate
    out["threads"]["speedup"] = out["threads"][2] / out["threads"][1]
    print(f"  threads: 1 -> {out['threads'][1]:,.0f}/s, 2 -> {out['threads'][2]:,.0f}/s "
          f"({out['threads']['speedup']:.2f}x)")
    return out


def ray_numbers(quick):
    import ray

    import pivotal
    from engine.execution.ray_executor import RayExecutor

    seconds, _ = timed(ray.init, num_cpus=2, include_dashboard=False, log_to_driver=False)
    res = {"startup_seconds": seconds}
    executor_rate = {}
    episodes = 400_000 if quick else 16_000_000  # >= 60 s of work on 2 Ray workers
    for workers in (1, 2):
        pivotal.forecast(SCENARIOS[30], episodes=50_000, workers=workers, executor="ray", progress=False)
        t, _ = timed(pivotal.forecast, SCENARIOS[30], episodes=episodes // (2 if workers == 1 else 1),
                     workers=workers, executor="ray", progress=False)
        executor_rate[workers] = episodes // (2 if workers == 1 else 1) / t
        res[f"ray_{workers}_seconds"] = t
    local, _ = engine_rate(SCENARIOS[30], episodes // 2, workers=2)
    res.update(ray_1_eps=executor_rate[1], ray_2_eps=executor_rate[2], local_2_eps=local,
               ray_2_share_of_local=executor_rate[2] / local)
    # per-task overhead: many one-episode chunks
    from engine.execution.executors import Job
    from engine.model.arrays import build_model_arrays, outcome_ranges
    from engine.execution.plan import plan_chunks
    from engine.model.scenario import load_scenario
    s = load_scenario(SCENARIOS[30])
    job = Job(1, 0, (build_model_arrays(s),), (outcome_ranges(s),))
    tasks = 200 if quick else 1000
    t, _ = timed(lambda: list(RayExecutor(2).map(job, plan_chunks(1, tasks, 1))))
    res["per_task_overhead_ms"] = t / tasks * 2 * 1000  # two workers in parallel
    ray.shutdown()
    print(f"  Ray: start-up {res['startup_seconds']:.1f} s, per-task overhead "
          f"{res['per_task_overhead_ms']:.1f} ms; 1 worker {executor_rate[1]:,.0f}/s, 2 workers "
          f"{executor_rate[2]:,.0f}/s = {res['ray_2_share_of_local']:.0%} of local x2 ({local:,.0f}/s)")
    return res


def startup():
    args = [sys.executable, "-m", "engine.cli", "run", str(TUTORIAL), "--episodes", "1000", "--quiet"]
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PIVOTAL_CACHE_DIR": cache}
        cold, _ = timed(subprocess.run, args + ["--out", out], env=env, check=True, cwd=ROOT,
                        stdout=subprocess.DEVNULL)
        warm, _ = timed(subprocess.run, args + ["--out", out], env=env, check=True, cwd=ROOT,
                        stdout=subprocess.DEVNULL)
    print(f"  start-up: cold (compile) {cold:.1f} s, from cache {warm:.1f} s (whole command)")
    return {"cold_seconds": cold, "cached_seconds": warm}


def output_cost():
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    import pivotal
    tables = pivotal.forecast(SCENARIOS[120], episodes=100_000, keep_episodes=100_000,
                              progress=False).tables
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, df in tables.items():
            table = df.to_arrow()
            p_seconds, _ = timed(pq.write_table, table, f"{tmp}/{name}.parquet", compression="snappy")
            flat = table.drop_columns([c for c in table.column_names if c in ("members", "candidate_ids",
                                                                                 "institution_ids")])
            c_seconds, _ = timed(csv.write_csv, flat, f"{tmp}/{name}.csv")
            rows[name] = {"rows": table.num_rows, "parquet_seconds": p_seconds,
                          "parquet_bytes": os.path.getsize(f"{tmp}/{name}.parquet"),
                          "csv_seconds": c_seconds, "csv_bytes": os.path.getsize(f"{tmp}/{name}.csv")}
    total = {k: sum(r[k] for r in rows.values()) for k in ("parquet_seconds", "parquet_bytes",
                                                           "csv_seconds", "csv_bytes")}
    print(f"  output: Parquet {total['parquet_bytes'] / 1e6:.2f} MB in {total['parquet_seconds']:.2f} s, "
          f"CSV {total['csv_bytes'] / 1e6:.2f} MB in {total['csv_seconds']:.2f} s "
          "(100,000 kept episodes of 120 candidates)")
    return {"tables": rows, "total": total}


def markdown(results) -> str:
    t = {r["candidates"]: r for r in results["throughput"]}
    sc = results["scaling"]
    r = results.get("ray", {})
    lines = [f"\n### {results['date']} {results.get('time', '')} on {results['host']} "
             f"({results['cpus']} CPUs, commit {results.get('commit', '?')})\n",
             "| measure | value |", "|---|---|"]
    for n in (30, 120):
        lines += [f"| {n} candidates: engine, 1 core | {t[n]['engine_eps_per_core']:,.0f} episodes/s |",
                  f"| {n} candidates: SimPy, draws per episode (agrees: {t[n]['simpy_agrees']}) | "
                  f"{t[n]['simpy_eps']:,.0f} episodes/s, engine {t[n]['x_simpy']:,.0f}x |",
                  f"| {n} candidates: SimPy, bulk NumPy draws | {t[n]['simpy_bulk_draws_eps']:,.0f} "
                  f"episodes/s, engine {t[n]['x_simpy_bulk_draws']:,.0f}x |",
                  f"| {n} candidates: draw-only floor | {t[n]['floor_eps']:,.0f} episodes/s, engine "
                  f"{t[n]['share_of_floor']:.0%} of it |"]
    lines.append(f"| threads 1 -> 2 (30 candidates) | {sc['threads']['speedup']:.2f}x |")
    for row in sc["episodes"]:
        lines.append(f"| {row['episodes']:,} episodes (2 threads) | {row['seconds']:.1f} s, peak RSS "
                     f"{row['peak_rss_mib']:,.0f} MiB |")
    for row in sc["candidates"]:
        lines.append(f"| {row['candidates']} candidates | {row['us_per_episode']:.1f} us/episode, "
                     f"{row['us_per_candidate']:.2f} us/candidate |")
    if r:
        lines += [f"| Ray start-up / per-task overhead | {r['startup_seconds']:.1f} s / "
                  f"{r['per_task_overhead_ms']:.1f} ms |",
                  f"| Ray 2 workers vs local 2 threads | {r['ray_2_eps']:,.0f} vs {r['local_2_eps']:,.0f} "
                  f"episodes/s ({r['ray_2_share_of_local']:.0%}) |"]
    s = results["startup"]
    o = results["output"]["total"]
    lines += [f"| start-up: cold compile / cached | {s['cold_seconds']:.1f} s / {s['cached_seconds']:.1f} s |",
              f"| output (100k kept episodes, 120 candidates) | Parquet {o['parquet_bytes'] / 1e6:.1f} MB "
              f"in {o['parquet_seconds']:.2f} s; CSV {o['csv_bytes'] / 1e6:.1f} MB in {o['csv_seconds']:.2f} s |"]
    if "study" in results:
        from bench.study import markdown as study_markdown
        lines += study_markdown(results["study"])
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for figures)")
    p.add_argument("--full", action="store_true", help="also 10^8 episodes")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--scale", action="store_true", help="also the 10^6-row study (bench/study.py)")
    args = p.parse_args()
    os.chdir(ROOT)
    now = dt.datetime.now(dt.timezone.utc)
    results = {"date": now.date().isoformat(), "time": now.strftime("%H:%M UTC"), "host": socket.gethostname(),
               "cpus": os.cpu_count(), "python": platform.python_version(), "quick": args.quick,
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.strip() or "?"}
    print("throughput (one core):")
    results["throughput"] = throughput(args.quick)
    print("scaling:")
    results["scaling"] = scaling(args.quick, args.full)
    if not args.no_ray:
        print("ray:")
        results["ray"] = ray_numbers(args.quick)
    print("start-up:")
    results["startup"] = startup()
    print("output:")
    results["output"] = output_cost()
    print("study:")
    from bench.study import study_numbers
    results["study"] = study_numbers(args.quick, args.full, args.scale)
    out = HERE / "results" / (f"{results['date']}-{now:%H%M}-{results['host']}"
                              f"{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    if not args.quick:
        with open(HERE / "README.md", "a") as fh:
            fh.write(markdown(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
