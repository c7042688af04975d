"""Stable, versioned output schema (engine/outputs/schema.py, docs/OUTPUTS.md).

tests/schema_pin.json pins every table's columns and types. A column may be
added (then pin it too), never renamed, removed or retyped: that needs a new
schema version and a note in docs/OUTPUTS.md.
"""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pivotal
from engine.outputs.schema import METADATA_KEY, SCHEMA_VERSION
from conftest import build, candidate, scenario_doc

ROOT = Path(__file__).resolve().parents[2]
PIN = json.loads((ROOT / "tests" / "schema_pin.json").read_text())
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SYRIA = ROOT / "configs" / "scenarios" / "syria_safe_zone_2019.toml"
STATS = ("mean", "sd", "se", "p05", "p25", "p50", "p75", "p95", "min", "max")
# where a value may not exist (docs/OUTPUTS.md): null there, nowhere else
NULLABLE = {
    "runs": ("name",),                              # a plain run has no study, ablation or backtest name
    "summary": STATS + ("success_low", "success_high"),  # time to success never reached; the interval: success row only
    "episodes": ("time_to_success",),              # likewise, per episode
    "backtests": ("auc", "brier", "log_loss",      # a ranking has no probabilities; no AUC without both classes;
                  "size_observed", "size_percentile", "size_log_score", "size_mean", "size_p05",
                  "size_p95",                      # logit needs 3 other cases; size only of a complete case
                  "auc_low", "auc_high", "brier_low", "brier_high", "log_loss_low", "log_loss_high"),
    "backtest_states": ("p_member_shuffled_ties", "p_member_logit"),  # logit: 3 other cases
    "backtest_comparisons": ("difference", "difference_low", "difference_high", "seed_min", "seed_max"),
    "sensitivity": ("S1", "S1_conf", "ST", "ST_conf",  # constant output, design too small, ST of lhs/random/grid
                    "mu", "mu_star", "mu_star_conf", "sigma"),  # morris only
    "sensitivity_s2": ("S2", "S2_conf"),
    "row_outputs": ("value",),                      # a figure a compact row lacks (time to success never reached)
    "comparisons": ("variance_reduction",          # every paired difference 0
                    "difference_se", "difference_low", "difference_high", "independent_se",  # a quantile output
                    "base_mean", "variant_mean", "difference"),  # a time to success no episode reached
    "discovery": ("input", "low", "high", "low_restricted", "high_restricted", "qp_low", "qp_high",
                  "input_min", "input_max"),       # a box that restricts nothing
}


def type_name(t: pa.DataType) -> str:
    """An Arrow type as pinned: list element names (which writers differ on) left out."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{type_name(t.value_type)}>"
    return str(t)


def schema_changes(table: str, schema: pa.Schema) -> list[str]:
    """How a written schema breaks the pin of `table` (empty when it keeps it)."""
    if table not in PIN["tables"]:
        return [f"table {table!r} is not pinned: add it to tests/schema_pin.json"]
    written = {f.name: type_name(f.type) for f in schema}
    problems = []
    for column, kind in PIN["tables"][table]:
        if column not in written:
            problems.append(f"{table}.{column} ({kind}) was removed or renamed")
        elif written[column] != kind:
            problems.append(f"{table}.{column} was retyped: pinned {kind}, written {written[column]}")
    pinned = {c for c, _ in PIN["tables"][table]}
    problems += [f"{table}.{c} ({k}) is new: pin it at the end of its table in tests/schema_pin.json"
                 for c, k in written.items() if c not in pinned]
    return problems


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Several runs, with the edge cases where values go missing."""
    out = tmp_path_factory.mktemp("forecasts")
    run = lambda s, run_id, **kw: pivotal.forecast(s, out=out, run_id=run_id, progress=False,  # noqa: E731
                                                   **{"episodes": 2000, **kw})
    run([TUTORIAL, pivotal.load_scenario(SYRIA).with_(requirement=1e12)], "real",
        keep_episodes=20)  # Syria, made never to reach its requirement
    never = scenario_doc(requirement=1e9, budget=0.0, name="never")
    run(build(never, "never"), "never", keep_episodes=20)
    instant = scenario_doc(requirement=0.0, min_partners=0, budget=0.0,
                           candidates=[candidate("A"), candidate("B", mean=-3.0)])
    run(build(instant, "instant"), "instant", keep_episodes=20)
    run(build(scenario_doc(), "single"), "single", episodes=1, keep_episodes=1)
    _study_backtest_and_discovery(out, tmp_path_factory.mktemp("inputs"))
    return out


def _study_backtest_and_discovery(out, tmp):
    """The tables of the other commands: a second-order Sobol study with a variant, a backtest
    on the COW-format fixtures, and a scenario discovery of the study."""
    from engine.cli.main import main
    from case_fixtures import CASE, FIX

    (tmp / "s.toml").write_text(f'''name = "schema study"
scenario = "{TUTORIAL}"
episodes = 500
[design]
samples = 4
second_order = true
[[inputs]]
path = "budget"
low = 0
high = 600
[[inputs]]
path = "candidates.*.preference.mean"
low = -20
high = 20
apply = "shift"
[[variants]]
name = "no summit"
set = {{ "mechanisms.venues" = false }}
''')
    (tmp / "cow").symlink_to(FIX.resolve())
    (tmp / "case.toml").write_text(CASE)
    common = ["--out", str(out), "--quiet"]
    assert main(["study", str(tmp / "s.toml"), "--run-id", "study", *common]) == 0
    compact = (tmp / "s.toml").read_text().replace("second_order = true", "second_order = true\nrow_tables = false")
    (tmp / "compact.toml").write_text(compact.replace('"schema study"', '"schema compact study"'))
    assert main(["study", str(tmp / "compact.toml"), "--run-id", "compact", *common]) == 0
    assert main(["backtest", str(tmp / "case.toml"), "--episodes", "500", "--run-id", "backtest",
                 "--out", str(out)]) == 0
    assert main(["discover", "--out", str(out), "--run-id", "study", "--below", "0.5"]) == 0


def files(out):
    return sorted(Path(out).glob("*/run_id=*/part-0.parquet"))


def test_every_published_table_keeps_its_pinned_schema(out):
    tables = {p.parts[-3] for p in files(out)}
    assert tables == set(PIN["tables"]), "every table is pinned, every pinned table is written"
    for path in files(out):
        assert schema_changes(path.parts[-3], pq.read_schema(path)) == [], path


def test_the_pin_catches_renamed_removed_retyped_and_unpinned_columns():
    schema = pa.schema([(c, pa.string() if k == "string" else pa.float64() if k == "double"
                         else pa.int64() if k == "int64" else pa.bool_()) for c, k in PIN["tables"]["summary"]])
    assert schema_changes("summary", schema) == []
    renamed = pa.schema([f.with_name("average") if f.name == "mean" else f for f in schema])
    assert any("summary.mean" in p and "removed" in p for p in schema_changes("summary", renamed))
    assert any("average" in p and "new" in p for p in schema_changes("summary", renamed))
    retyped = schema.set(schema.get_field_index("n"), pa.field("n", pa.float64()))
    assert schema_changes("summary", retyped) == ["summary.n was retyped: pinned int64, written double"]
    removed = schema.remove(schema.get_field_index("unit"))
    assert schema_changes("summary", removed) == ["summary.unit (string) was removed or renamed"]
    added = schema.append(pa.field("extra", pa.int64()))
    assert len(schema_changes("summary", added)) == 1
    assert schema_changes("sensitivity_typo", schema)


def test_schema_version_in_runs_and_in_every_file(out):
    assert PIN["schema_version"] == SCHEMA_VERSION
    for path in files(out):
        assert pq.read_schema(path).metadata[METADATA_KEY] == str(SCHEMA_VERSION).encode(), path
    for path in Path(out).glob("runs/*/part-0.parquet"):
        assert pq.read_table(path)["schema_version"].to_pylist() == [SCHEMA_VERSION]


def test_no_nan_anywhere_and_null_only_where_a_value_does_not_exist(out):
    for path in files(out):
        table = pq.read_table(path)
        for name, column in zip(table.column_names, table.columns):
            if pa.types.is_floating(column.type):
                assert not pc.any(pc.is_nan(column)).as_py(), f"NaN in {path}: {name}"
            if name not in NULLABLE.get(path.parts[-3], ()):
                assert column.null_count == 0, f"null in {path}: {name}"
    backtests = pq.read_table(next(Path(out).glob("backtests/*/part-0.parquet"))).to_pylist()
    cases = len({r["case"] for r in backtests})
    no_logit = cases <= 3  # the logit baseline is fitted on 3 or more other cases
    assert all((r["brier"] is None) == (r["model"] == "capacity" or (r["model"] == "logit" and no_logit))
               for r in backtests)
    summary = [row for p in Path(out).glob("summary/*/part-0.parquet") for row in pq.read_table(p).to_pylist()]
    for row in summary:
        missing = [s for s in STATS if row[s] is None]
        if row["metric"] == "time_to_success" and row["n"] == 0:
            assert missing == list(STATS), row  # never reached: no statistic exists
        else:
            assert missing == [], row
    reached = {(r["run_id"], r["scenario_id"]): r["n"] for r in summary if r["metric"] == "time_to_success"}
    assert reached[("never", "never")] == 0 and reached[("real", "syria_safe_zone_2019")] == 0
    assert reached[("instant", "instant")] == 2000
    single = next(r for r in summary if r["run_id"] == "single" and r["metric"] == "capacity")
    assert single["sd"] == 0.0 and single["se"] == 0.0
    for p in Path(out).glob("episodes/*/part-0.parquet"):
        episodes = pq.read_table(p)
        tts = episodes["time_to_success"]
        run_id = p.parts[-2].removeprefix("run_id=")
        if run_id == "never":
            assert tts.null_count == len(tts) == 20
        if run_id == "instant":
            assert tts.null_count == 0 and pc.max(tts).as_py() == 0.0


def test_units_stand_next_to_the_numbers(out):
    summary = pq.read_table(Path(out) / "summary" / "run_id=real" / "part-0.parquet").to_pylist()
    units = {(r["scenario_id"], r["metric"]): r["unit"] for r in summary}
    assert units[("syria_safe_zone_2019", "capacity")] == "troops"
    assert units[("syria_safe_zone_2019", "spent")] == pivotal.load_scenario(SYRIA).payment_unit
    assert units[("tutorial", "spent")] == "USD million"
    assert units[("tutorial", "time_to_success")] == "days" and units[("tutorial", "success")] == "probability"
    capacity = pq.read_table(Path(out) / "capacity_distribution" / "run_id=real" / "part-0.parquet")
    assert set(zip(capacity["scenario_id"].to_pylist(), capacity["capacity_unit"].to_pylist())) == {
        ("syria_safe_zone_2019", "troops"), ("tutorial", "troops")}
    candidates = pq.read_table(Path(out) / "candidates" / "run_id=real" / "part-0.parquet")
    assert set(candidates["payment_unit"].to_pylist()) == {pivotal.load_scenario(SYRIA).payment_unit, "USD million"}
