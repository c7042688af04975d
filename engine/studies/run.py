"""Running a study or a mechanism ablation: one run over many scenarios with common random
numbers, plus the `design`, `sensitivity`, `sensitivity_s2` and `comparisons` tables.

Each is the run's three steps (engine/forecast.py) with the study's tables added to
the publishing step: `study_plan` / `run_study`, `ablation_plan` / `run_ablation`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import numpy as np
import pyarrow as pa

from engine.execution.execute import Execution
from engine.execution.plan import RunPlan, plan_run
from engine.forecast import execute_plan
from engine.model.arrays import TieShapes, outcome_ranges
from engine.model.scenario import MECHANISMS, Scenario, load_scenario
from engine.outputs.publish import Forecast
from engine.studies.comparisons import OUTPUTS, comparisons_table
from engine.studies.designs import preload_analysis, sensitivity_tables
from engine.studies.rows import row_design
from engine.studies.study import Study, design_table_rows, load_study, row_id

DESIGN_SCHEMA = pa.schema([("run_id", pa.string()), ("scenario_id", pa.string()), ("row", pa.int64()),
                           ("input", pa.string()), ("value", pa.float64())])
ROW_OUTPUTS_SCHEMA = pa.schema([("run_id", pa.string()), ("scenario_id", pa.string()), ("row", pa.int64()),
                                 ("output", pa.string()), ("value", pa.float64())])
NO_TIES = ("information", "linkage", "credibility", "brokers")
PROBABILITIES = ("success", "success.mean")


def _comparisons(plan: RunPlan, execution: Execution, names, outputs=OUTPUTS, values=None):
    items, merged = plan.scenarios, execution.aggregates
    base = (merged[0], outcome_ranges(items[0]).top, [c.id for c in items[0].candidates])
    variants = [(name, items[k].id, merged[k], outcome_ranges(items[k]).top)
                for k, name in enumerate(names, start=1)]
    values = None if values is None else {s.id: v for s, v in zip(items[:1 + len(names)], values)}
    return comparisons_table(plan.run_id, base, variants, outputs, values)


def _row_ids(numbers: np.ndarray, repeat: int) -> pa.Array:
    """`row-<rrrrrr>` of each row number, `repeat` times (as `row_id` spells it, built in Arrow)."""
    import pyarrow.compute as pc

    numbers = pa.array(np.repeat(numbers, repeat))
    return pc.binary_join_element_wise("row-", pc.utf8_lpad(pc.cast(numbers, pa.string()), 6, "0"), "")


def row_tables(run_id: str, st: Study, first: int, figures: np.ndarray) -> dict[str, pa.Table]:
    """The `design` and `row_outputs` rows of compact design rows [first, first + len(figures)),
    streamed as each block of rows arrives (the base's and the variants' design rows lead)."""
    numbers = np.arange(first, first + len(figures), dtype=np.int64)
    design = _per_row(run_id, numbers, "input", [i.path for i in st.inputs], st.values[first:first + len(figures)],
                      DESIGN_SCHEMA)
    if first == 0:
        head = pa.Table.from_pylist(design_table_rows(run_id, st, with_rows=False), schema=DESIGN_SCHEMA)
        design = pa.concat_tables([head, design])
    return {"design": design,
            "row_outputs": _per_row(run_id, numbers, "output", list(st.outputs), figures, ROW_OUTPUTS_SCHEMA)}


def _per_row(run_id: str, numbers: np.ndarray, column: str, names: list, values: np.ndarray,
             schema: pa.Schema) -> pa.Table:
    """One table row per design row x name (`column`: input or output), its value from `values`
    (rows x names; NaN written as null)."""
    flat = np.ascontiguousarray(values, np.float64).ravel()
    return pa.table({"run_id": pa.array([run_id] * len(flat), pa.string()),
                     "scenario_id": _row_ids(numbers, len(names)), "row": np.repeat(numbers, len(names)),
                     column: pa.array(names * len(numbers), pa.string()),
                     "value": pa.array(flat, pa.float64(), mask=np.isnan(flat))}, schema=schema)


def study_plan(st: Study, *, episodes: int | None = None, seed: int | None = None, **settings) -> RunPlan:
    """Step one of a study: its base, variants (paired with the base) and design rows as one
    run plan. `episodes` and `seed` default to the study's; other keywords are `plan_run`'s."""
    if st.inputs:
        preload_analysis(st.sampler)
    first_row = 1 + len(st.variants)
    episodes = st.episodes if episodes is None else episodes
    rows = None
    if st.inputs and not st.row_tables:  # compact rows: run in blocks, no scenario per row
        rows = row_design(st.scenarios[0], st.inputs, st.values, st.outputs, episodes)
    return plan_run(st.scenarios, episodes=episodes, seed=st.seed if seed is None else seed,
                    paired=first_row if st.variants else 0, rows=rows,
                    grid_rows=(first_row, TieShapes.of(st.scenarios[0])) if st.inputs and rows is None else None,
                    **settings)


def run_study(st: Study, plan: RunPlan, *, out=None, resume: bool = False, progress: bool | None = None,
              read_back: bool = True) -> Forecast:
    """Steps two and three of a study: execute its plan, publish the run's tables with
    `design`, `sensitivity` (`sensitivity_s2`) and `comparisons`."""
    compact = bool(st.inputs) and not st.row_tables
    execution, publisher = execute_plan(plan, out=out, resume=resume, progress=progress,
                                        kind="study", name=st.name, figures=st.outputs,
                                        row_tables=(lambda first, figures: row_tables(plan.run_id, st, first, figures))
                                        if compact else None)
    tables = {}
    if st.inputs:
        first_row = 1 + len(st.variants)
        if st.row_tables:
            tables["design"] = pa.Table.from_pylist(design_table_rows(plan.run_id, st), schema=DESIGN_SCHEMA)
            values = publisher.values[first_row:]
        else:  # design and row_outputs were streamed block by block
            values = publisher.row_values
        outputs = {o: values[:, k] for k, o in enumerate(st.outputs)}
        tables |= sensitivity_tables(plan.run_id, st.sampler, [i.path for i in st.inputs], st.unit,
                                     outputs, st.second_order, st.seed, st.replicates, st.levels)
    if st.variants:
        tables["comparisons"] = _comparisons(plan, execution, [v.name for v in st.variants], st.outputs,
                                             publisher.values)
    return publisher.publish(execution, tables, read_back)


def study(path, *, episodes: int | None = None, seed: int | None = None, out=None,
          resume: bool = False, progress: bool | None = None, **settings) -> Forecast:
    """Run a study file (STUDY_FORMAT.md) or a `pivotal.Study` and return its tables (a `Forecast`): every run table
    for `base`, `variant-<k>` and `row-<rrrrrr>`, plus `design`, `sensitivity`
    (`sensitivity_s2` with second order) and `comparisons` (with variants).
    `episodes` and `seed` default to the study's; other keywords are `forecast`'s."""
    st = path if isinstance(path, Study) else getattr(path, "checked", None) or load_study(path)
    plan = study_plan(st, episodes=episodes, seed=seed, **settings)
    return run_study(st, plan, out=out, resume=resume, progress=progress)


def ablation_scenarios(scenario) -> tuple[list[Scenario], list[str]]:
    """The standard mechanism ablation of a scenario: base, each mechanism off in turn, and
    information, linkage, credibility and brokers off together ("no ties")."""
    base = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    cases = [(f"{m} off", (m,)) for m in MECHANISMS] + [("no ties", NO_TIES)]
    items = [dataclasses.replace(base, id="base")]
    for k, (name, off) in enumerate(cases, start=1):
        mechanisms = {m: (False if m in off else on) for m, on in base.mechanisms.items()}
        items.append(dataclasses.replace(base, id=f"variant-{k}", name=f"{base.name} [{name}]",
                                         mechanisms=mechanisms))
    return items, [name for name, _ in cases]


def ablation_plan(scenario, **settings) -> tuple[RunPlan, list[str]]:
    """Step one of an ablation: the plan of `ablation_scenarios` (all paired with the base) and
    the ablations' names. Keywords are `plan_run`'s."""
    items, names = ablation_scenarios(scenario)
    return plan_run(items, paired=len(items), **settings), names


def run_ablation(plan: RunPlan, names: list[str], *, out=None, resume: bool = False,
                 progress: bool | None = None, read_back: bool = True) -> Forecast:
    """Steps two and three of an ablation: the run's tables plus `comparisons`. The run's name
    is the ablated scenario's file name (its id), else its name."""
    base = plan.scenarios[0]
    name = Path(base.path).stem if base.path else base.name
    execution, publisher = execute_plan(plan, out=out, resume=resume, progress=progress,
                                        kind="ablate", name=name)
    return publisher.publish(execution, {"comparisons": _comparisons(plan, execution, names)}, read_back)


def ablate(scenario, *, out=None, resume: bool = False, progress: bool | None = None,
           **settings) -> Forecast:
    """Run the mechanism ablation of one scenario (`ablation_scenarios`); the tables of a run
    plus `comparisons` (each ablation against the base). Keywords are `forecast`'s."""
    plan, names = ablation_plan(scenario, **settings)
    return run_ablation(plan, names, out=out, resume=resume, progress=progress)


def _fmt(output, x, sign="+"):
    if x is None:
        return "-"
    if output in PROBABILITIES or output.startswith("success_by_day.") or output.endswith(
            (".member", ".ever_joined", ".venue_join")):
        return f"{x * 100:{sign}.1f} pp" if sign else f"{x:.1%}"
    return f"{x:{sign}.2f}" if abs(x) < 10 else f"{x:{sign},.1f}" if abs(x) < 1000 else f"{x:{sign},.0f}"


def comparisons_text(result) -> str:
    """Each variant's difference from the base, with its 95% interval, per output (of a
    `Forecast`, or of a run's tables as `pivotal show` reads them)."""
    comp = (result if isinstance(result, dict) else result.tables)["comparisons"]
    first = comp.filter(pl.col("variant") == comp["variant"][0])
    outputs = first["output"].to_list()
    rows = [["", *outputs], ["base (value)" if set(outputs) - set(OUTPUTS) else "base (mean)", *(_fmt(o, m, "") for o, m in zip(first["output"], first["base_mean"]))]]
    for name in comp["variant"].unique(maintain_order=True):
        by = {r["output"]: r for r in comp.filter(pl.col("variant") == name).iter_rows(named=True)}
        rows.append([name, *(f"{_fmt(o, by[o]['difference'])} [{_fmt(o, by[o]['difference_low'])}, "
                             f"{_fmt(o, by[o]['difference_high'])}]" for o in outputs)])
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["difference from the base, [95% interval] from paired episodes:"]
    for r in rows:
        lines.append("  " + r[0].ljust(widths[0]) + "".join("  " + c.rjust(w) for c, w in zip(r[1:], widths[1:])))
    return "\n".join(lines)


def study_text(result: Forecast, st: Study) -> str:
    """The printed summary of a study: the run, the base forecast, the variants, and the inputs
    ranked by their total-order (or first-order) effect on each output."""
    from engine.outputs.text import summary_text

    lines = [summary_text(result, max_scenarios=1)]
    if st.variants:
        lines += ["", comparisons_text(result)]
    if st.inputs:
        if st.row_tables:
            summary = result.tables["summary"].filter(pl.col("scenario_id").str.starts_with("row-"))
            ok = summary.filter(pl.col("metric") == "success")["mean"]
        else:
            k = next((k for k, o in enumerate(st.outputs) if o in ("success", "success.mean")), None)
            ok = pl.Series([] if k is None else result.row_figures[:, k]).fill_nan(None).drop_nulls()
        spread = (f"; success over the rows: min {ok.min():.1%}, median {ok.median():.1%}, max {ok.max():.1%}"
                  if len(ok) else "")
        lines += ["", f"design: {st.sampler}, {st.rows:,} rows x {len(st.inputs)} inputs{spread}"
                  + ("" if st.row_tables else " (compact rows: their figures in row_outputs)")]
        basis = (f"over {st.replicates} replicate designs" if st.sampler == "sobol" and st.replicates > 1
                 else "none: 1 replicate" if st.sampler == "sobol" else "bootstrap")
        lines += sensitivity_lines(result.tables["sensitivity"], basis)
    return "\n".join(lines)


def sensitivity_lines(sens: pl.DataFrame, basis: str = "as computed") -> list[str]:
    """Per output, the inputs ranked by their total-order (else first-order; Morris: mu_star)
    index, with the 95% half-width (its `basis`: replicate designs, bootstrap, or none)."""
    lines = []
    for o in sens["output"].unique(maintain_order=True).to_list():
        rows = sens.filter(pl.col("output") == o)
        morris = "mu_star" in rows.columns and rows["mu_star"].null_count() < rows.height
        key = "mu_star" if morris else "ST" if rows["ST"].null_count() < rows.height else "S1"
        if rows[key].null_count() == rows.height:
            lines.append(f"  {o}: the same in every row (no indices)")
            continue
        rows = rows.sort(key, descending=True, nulls_last=True)
        lines.append(f"  {o} ({key}, 95% half-width {basis}):  " + "; ".join(
            f"{r['input']} " + ("-" if r[key] is None else f"{r[key]:.2f}")
            + ("" if r[key + "_conf"] is None else f" ± {r[key + '_conf']:.2f}")
            for r in rows.iter_rows(named=True)))
    return lines


def write_scenarios(st: Study, directory) -> list[Path]:
    """Write every evaluated scenario as DIR/<scenario_id>.toml (runs nothing)."""
    import tomli_w

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    ids = [s.id for s in st.scenarios] + ([] if st.row_tables else [row_id(r) for r in range(st.rows)])
    for sid in ids:
        target = directory / f"{sid}.toml"
        tmp = target.with_suffix(".toml.tmp")
        tmp.write_bytes(tomli_w.dumps(st.scenario_doc(sid)).encode())
        tmp.replace(target)
        written.append(target)
    return written
