"""Running a suite (`pivotal suite`, `pivotal.suite`): every item as an ordinary run, study or
backtest under one suite run id; reuse, isolation, resumption, drift, catalog, index page, notify.

Item run ids are `<suite run id>.<item>`, so a suite that is run again after an interruption
finishes the same runs (with --resume where a run had started) and publishes the same tables
as an undisturbed one. Docs: docs/NIGHTLY.md.
"""
from __future__ import annotations

import fnmatch
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl
import pyarrow as pa

from engine.execution.plan import new_run_id
from engine.suite import drift as drift_mod
from engine.suite.digest import changes, digest, item_inputs
from engine.suite.index import index_html
from engine.suite.store import SUITE_RUNS_SCHEMA, SuiteStore, now, run_table
from engine.suite.suitefile import Item, Suite, SuiteError, load_suite

EXIT_OK, EXIT_FAILED = 0, 1   # 2: bad suite file or arguments; 3: file system; 130/143: interrupted


@dataclass(frozen=True)
class SuiteResult:
    """A finished suite run: its `suite_runs` rows and compared figures (`suite_drift`) as Polars
    DataFrames, the index page, the catalog, and the exit code the command returns."""
    suite_run_id: str
    out: Path
    rows: pl.DataFrame
    drift: pl.DataFrame
    page: Path | None
    catalog: str | None
    exit_code: int
    resumed: bool = False
    notified: bool = False

    @property
    def failed(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("status") == "failed")

    @property
    def flags(self) -> list[str]:
        return [f for flags in self.rows["drift_flags"].to_list() for f in (flags or [])]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _select(suite: Suite, only) -> list[Item]:
    if not only:
        return list(suite.items)
    patterns = [only] if isinstance(only, str) else list(only)
    chosen = [i for i in suite.items if any(fnmatch.fnmatchcase(i.name, p) for p in patterns)]
    if not chosen:
        raise SuiteError(suite.path, "", f"--only {' '.join(patterns)}: no item of the suite has that name "
                         f"(items: {', '.join(i.name for i in suite.items)})")
    return chosen


def decide(item: Item, inputs: dict, history: pl.DataFrame, out: Path, force: bool) -> dict:
    """Whether an item runs or reuses a run: {'reuse': run id or None, 'reused_from': suite run id,
    'cause': why it runs (or that nothing changed)}."""
    key = digest(inputs)
    mine = history.filter(pl.col("item") == item.name)
    previous = json.loads(mine["inputs"][-1]) if mine.height and mine["inputs"][-1] else None
    why = changes(previous, inputs)
    if not force:
        same = history.filter((pl.col("inputs_sha256") == key) & pl.col("status").is_in(["complete", "reused"]))
        for row in reversed(same.rows(named=True)):
            if (out / "runs" / f"run_id={row['run_id']}").exists():
                origin = row["reused_from"] if row["status"] == "reused" else row["suite_run_id"]
                return {"reuse": row["run_id"], "reused_from": origin, "cause": "unchanged"}
    if not why:
        why = ["forced"] if force else (["previous run failed"] if mine.height and mine["status"][-1] == "failed"
                                        else ["previous run missing"])
    return {"reuse": None, "reused_from": None, "cause": "; ".join(why)}


def run_item(item: Item, run_id: str, out: Path, resume: bool):
    """Run one item as an ordinary run, study or backtest under `out` (its own run id)."""
    s, place = item.settings, item.placement
    common = dict(run_id=run_id, workers=place.get("workers"), chunk_size=place.get("chunk_size"),
                  executor=place.get("executor"), ray_address=place.get("ray_address"),
                  target_se=s.get("target_se"), max_episodes=s.get("max_episodes"))
    if item.kind == "scenario":
        from engine.forecast import plan_run, run_plan
        plan = plan_run([item.files[0]], episodes=s["episodes"], seed=s["seed"],
                        keep_episodes=s.get("keep_episodes", 0), **common)
        return run_plan(plan, out=out, resume=resume, progress=False, read_back=False)
    if item.kind == "study":
        from engine.studies.run import run_study, study_plan
        from engine.studies.study import load_study
        st = load_study(item.files[0])
        plan = study_plan(st, episodes=s["episodes"], seed=s["seed"], **common)
        return run_study(st, plan, out=out, resume=resume, progress=False, read_back=False)
    from engine.data import backtest, builder, cow
    from engine.execution.plan import plan_run
    cow._frames.cache_clear()  # the data files may have changed since this process read them
    prm = builder.load_params(item.params)
    cases = [backtest.load_case(f, item.data) for f in item.files]
    backtest.check_distinct(cases)
    prepared = [backtest.prepare(c) for c in cases]
    plan = plan_run(backtest.backtest_scenarios(prepared, prm, s["seed"]), episodes=s["episodes"],
                    seed=s["seed"], **common)
    return backtest.run_backtest_plan(plan, prepared, prm, out=out, resume=resume, progress=False,
                                      seeds=s.get("seeds", backtest.SEEDS))


def _execute(item: Item, run_id: str, out: Path) -> None:
    """Run the item, finishing a run an interrupted suite had started (same id)."""
    from engine.outputs.directory import RunExistsError, run_directory

    store = run_directory(out, run_id)
    if store.is_complete():  # published before the suite was stopped, not yet recorded
        return
    resume = store.is_staged()
    try:
        run_item(item, run_id, out, resume)
    except RunExistsError:
        if not resume:
            raise
        store.discard()  # the staged run cannot be resumed (its inputs changed): start it afresh
        run_item(item, run_id, out, False)


def _seconds_of(out: Path, run_id: str) -> float | None:
    runs = run_table(out, "runs", run_id)
    if runs is None or not runs.height:
        return None
    return (runs["finished_at"][0] - runs["started_at"][0]).total_seconds()


def suite(path, *, out=None, force: bool = False, only=None, dry_run: bool = False,
          notify: str | None = None, echo: Callable[[str], None] | None = None,
          announce: Callable[[str], None] | None = None) -> SuiteResult | list[dict]:
    """Run a suite file (docs/NIGHTLY.md) and return its `SuiteResult`; with `dry_run`, only what
    each item would do (a list of dicts) and nothing is written. `out` overrides the file's,
    `only` (a name or names, globs allowed) runs some items, `force` reruns unchanged items,
    `notify` is a shell command given a JSON summary on stdin when an item failed or drifted;
    `echo` receives progress lines and `announce` the suite run id before any work."""
    st = load_suite(path)
    out = out if out is not None else (st.out or "forecasts")
    if "://" in str(out):
        raise SuiteError(st.path, "out", f"{out}: a suite writes to a local directory (object storage: run "
                         "the suite into a local directory and copy it, docs/NIGHTLY.md)")
    out = Path(out).resolve()
    say = echo or (lambda line: None)
    items = _select(st, only)
    store = SuiteStore(out)
    history = store.history()
    if dry_run:
        plan = []
        for item in items:
            inputs = item_inputs(item)
            d = decide(item, inputs, history, out, force)
            plan.append({"item": item.name, "kind": item.kind, **d})
            say(f"  {'reuse ' + d['reuse'] if d['reuse'] else 'run'}  {item.name} ({item.kind}): {d['cause']}")
        return plan
    unfinished = store.unfinished(st.name)
    resumed = bool(unfinished)
    if resumed:
        suite_run_id, meta = unfinished[-1]
        force, only = meta.get("force", False), meta.get("only")
        items = _select(st, only)
    else:
        suite_run_id = new_run_id()
        meta = {"suite": st.name, "file": str(st.path), "started_at": now().isoformat(),
                "force": force, "only": only, "out": str(out)}
    store.lock(suite_run_id)
    try:
        if not resumed:
            store.start(suite_run_id, meta)
        if announce:
            announce(suite_run_id)
        if resumed:
            say(f"pivotal: finishing suite run {suite_run_id} (interrupted; started {meta['started_at']})")
        done = store.records(suite_run_id)
        for position, item in enumerate(items):
            if item.name in done:
                continue
            store.record(suite_run_id, _run_one(item, position, suite_run_id, history, out, force, say))
        return _finish(st, store, suite_run_id, meta, items, history, out, notify, say, resumed)
    finally:
        store.unlock(suite_run_id)


def _run_one(item, position, suite_run_id, history, out, force, say) -> dict:
    started = time.perf_counter()
    row = {"item": item.name, "position": position, "kind": item.kind, "run_id": None, "reused_from": None,
           "error": None, "inputs_sha256": None, "inputs": None, "started_at": now().isoformat()}
    try:
        inputs = item_inputs(item)
        row |= {"inputs_sha256": digest(inputs), "inputs": json.dumps(inputs, sort_keys=True)}
        d = decide(item, inputs, history, out, force)
        row["cause"] = d["cause"]
        if d["reuse"]:
            row |= {"status": "reused", "run_id": d["reuse"], "reused_from": d["reused_from"], "seconds": 0.0}
        else:
            run_id = f"{suite_run_id}.{item.name}"
            row["run_id"] = run_id
            _execute(item, run_id, out)
            row |= {"status": "complete", "seconds": _seconds_of(out, run_id)}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - isolation: a failing item never stops the others
        row |= {"status": "failed", "error": _one_line(exc), "seconds": time.perf_counter() - started,
                "cause": row.get("cause")}
        if row["run_id"] and not (out / "_staging" / f"run_id={row['run_id']}").exists():
            row["run_id"] = None  # refused before its run was claimed: there is no run to look at
    row["finished_at"] = now().isoformat()
    detail = {"complete": f"run {row['run_id']} ({row['cause']})", "reused": f"run {row['run_id']}",
              "failed": row["error"]}[row["status"]]
    say(f"  {row['status']:8} {item.name} ({item.kind}): {detail}")
    return row


def _previous_suite(history: pl.DataFrame, suite_name: str, suite_run_id: str) -> str | None:
    earlier = history.filter((pl.col("suite") == suite_name) & (pl.col("suite_run_id") != suite_run_id))
    return earlier["suite_run_id"][-1] if earlier.height else None


def _drift_rows(st: Suite, suite_run_id, records, history, out, previous_id) -> list[dict]:
    if previous_id is None:
        return []
    before = {r["item"]: r for r in history.filter(pl.col("suite_run_id") == previous_id).iter_rows(named=True)}
    rows = []
    for name, rec in records.items():
        prev = before.get(name)
        if (rec["kind"] != "scenario" or rec["status"] != "complete" or prev is None
                or prev["status"] == "failed" or prev["run_id"] == rec["run_id"]):
            continue
        tables = [(run_table(out, "summary", rid), run_table(out, "candidates", rid))
                  for rid in (prev["run_id"], rec["run_id"])]
        if any(t is None for pair in tables for t in pair):
            continue
        old_inputs = json.loads(prev["inputs"]) if prev["inputs"] else None
        cause = drift_mod.drift_cause(changes(old_inputs, json.loads(rec["inputs"])) if old_inputs else [])
        for scenario_id in tables[1][0]["scenario_id"].unique(maintain_order=True).to_list():
            old = drift_mod.figures(*tables[0], scenario_id)
            new = drift_mod.figures(*tables[1], scenario_id)
            for r in drift_mod.compare(old, new, st.drift):
                rows.append({"suite_run_id": suite_run_id, "suite": st.name, "item": name,
                             "scenario_id": scenario_id, "previous_run_id": prev["run_id"],
                             "run_id": rec["run_id"], "cause": cause, **r})
    return rows


def _finish(st, store, suite_run_id, meta, items, history, out, notify, say, resumed) -> SuiteResult:
    """Drift, the tables (suite_runs last), catalog, index page, notification; drop staging."""
    records = store.records(suite_run_id)
    order = {i.name: k for k, i in enumerate(items)}
    records = dict(sorted(((k, v) for k, v in records.items() if k in order), key=lambda kv: order[kv[0]]))
    previous_id = _previous_suite(history, st.name, suite_run_id)
    if not store.is_published(suite_run_id):
        drift_rows = _drift_rows(st, suite_run_id, records, history, out, previous_id)
        flags: dict[str, list[str]] = {}
        for r in drift_rows:
            if r["flagged"]:
                flags.setdefault(r["item"], []).append(drift_mod.flag_text(r))
        finished = now()
        rows = []
        for position, rec in enumerate(records.values()):
            rows.append({**rec, "position": position, "suite_run_id": suite_run_id, "suite": st.name,
                         "drift_flags": flags.get(rec["item"], []),
                         "started_at": _ts(rec["started_at"]), "finished_at": _ts(rec["finished_at"]),
                         "suite_started_at": _ts(meta["started_at"]), "suite_finished_at": finished})
        store.publish(suite_run_id, {
            "suite_runs": pa.Table.from_pylist(rows, schema=SUITE_RUNS_SCHEMA),
            "suite_drift": pa.Table.from_pylist(drift_rows, schema=drift_mod.DRIFT_SCHEMA)})
    table = store.read("suite_runs", suite_run_id)
    drift_table = store.read("suite_drift", suite_run_id)
    catalog = None
    try:
        from engine.outputs.catalog import build_catalog
        catalog = build_catalog(out)
    except Exception as exc:  # noqa: BLE001 - the night's tables stand without a catalog
        say(f"pivotal: warning: the catalog was not refreshed ({_one_line(exc)})")
    previous = store.read("suite_runs", previous_id) if previous_id else None
    page = store.write_page(st.name, suite_run_id, index_html(st.name, table, drift_table, previous, out))
    store.finish(suite_run_id)
    code = EXIT_FAILED if (table["status"] == "failed").any() else EXIT_OK
    result = SuiteResult(suite_run_id, out, table, drift_table, page, catalog, code, resumed)
    if notify and (code != EXIT_OK or result.flags):
        result = _notify(result, notify, st.name, say)
    return result


def _ts(text):
    import datetime as dt
    return None if text is None else dt.datetime.fromisoformat(text)


def summary_json(result: SuiteResult, suite_name: str) -> dict:
    """The JSON `--notify` receives (docs/NIGHTLY.md, "Notification")."""
    rows = result.rows
    return {"suite": suite_name, "suite_run_id": result.suite_run_id, "out": str(result.out),
            "status": "failed" if result.exit_code else "drift", "exit_code": result.exit_code,
            "counts": {s: int((rows["status"] == s).sum()) for s in ("complete", "reused", "failed")},
            "failed": [{"item": r["item"], "kind": r["kind"], "error": r["error"]}
                       for r in rows.filter(pl.col("status") == "failed").iter_rows(named=True)],
            "drift": [{"item": r["item"], "flags": r["drift_flags"]}
                      for r in rows.iter_rows(named=True) if r["drift_flags"]],
            "page": None if result.page is None else str(result.page)}


def _notify(result: SuiteResult, command: str, suite_name: str, say) -> SuiteResult:
    payload = json.dumps(summary_json(result, suite_name), indent=1)
    try:
        done = subprocess.run(command, shell=True, input=payload, text=True, timeout=300,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ok = done.returncode == 0
        why = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, why = False, _one_line(exc)
    if not ok:
        say(f"pivotal: warning: --notify command failed ({why})")
    import dataclasses
    return dataclasses.replace(result, notified=ok)
