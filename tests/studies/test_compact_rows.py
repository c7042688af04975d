"""Compact design rows (docs/STUDIES.md, "Compact rows"): a block of rows run by one kernel call
gives every row the figures its own scenario gives (the study with row_tables = true builds,
validates and runs each row as a scenario: an independent path), for inputs of every kind;
the same numbers for any chunking, workers and after a resume; design and row_outputs hold
each row's values and figures; invalid rows are refused as before."""
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pivotal
from engine.cli.main import main
from conftest import stop_after_saving
from study_fixtures import analysed_figures

SYRIA = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "syria_safe_zone_2019.toml"
EPISODES, SEED = 300, 5
OUTPUTS = ["success", "size", "capacity", "spent", "size.p50", "size.sd", "capacity.p50", "spent.p95",
           "time_to_success.p50", "offers.max", "withdrawals.mean", "venue_joins.mean", "candidates.FRN.member",
           "candidates.UKG.payment", "candidates.TUR.venue_join", "candidates.USA.ever_joined",
           "success_by_day.40"]
# one input of every kind a row can vary (each writes a different place of the arrays)
INPUTS = [
    {"path": "budget", "low": 0.5, "high": 2.0, "apply": "scale"},
    {"path": "requirement", "low": 0.7, "high": 1.3, "apply": "scale"},
    {"path": "deadline_days", "low": 90, "high": 200},
    {"path": "min_partners", "low": 0, "high": 3},
    {"path": "parameters.holdout", "low": 0.0, "high": 0.6},
    {"path": "parameters.max_rounds", "low": 1, "high": 4},
    {"path": "parameters.peer_weight", "low": 0.0, "high": 1.0},
    {"path": "parameters.withdrawal_rate", "low": 0.0, "high": 0.01},
    {"path": "mechanisms.brokers", "distribution": "choice", "values": [True, False]},
    {"path": "candidates.*.capacity.high", "low": 1.0, "high": 1.5, "apply": "scale"},
    {"path": "candidates.FRN.preference.mean", "low": -0.5, "high": 0.5, "apply": "shift"},
    {"path": "candidates.*.tie.mean", "low": 0.6, "high": 1.05, "apply": "scale"},
    {"path": "candidates.UKG.tie.concentration", "low": 5.0, "high": 40.0},
    {"path": "candidates.ITA.tie_linkage.mean", "low": 0.1, "high": 0.9},
    {"path": "ties.FRN.UKG.mean", "low": 0.2, "high": 0.9},
    {"path": "institutions.NATO.broker", "low": 0.0, "high": 0.9},
    {"path": "institutions.EU.venue_day", "low": 10.0, "high": 80.0},
    {"path": "institutions.OSCE.venue_bonus", "low": 0.0, "high": 3.0},
]


def _study(row_tables, inputs=INPUTS, samples=12, **design):
    return pivotal.Study("compact", SYRIA, episodes=EPISODES, seed=SEED, inputs=inputs, outputs=OUTPUTS,
                         design={"sampler": "lhs", "samples": samples, "row_tables": row_tables, **design})


def _analysed(study, **kw):
    """A study's result and the per-row figures its sensitivity analysis received."""
    result, seen = analysed_figures(study, **kw)
    return result, np.column_stack([seen[o] for o in OUTPUTS])


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    tabled = _analysed(_study(True), out=out, run_id="tabled")
    compact = _analysed(_study(False), out=out, run_id="compact")
    return tabled, compact, out


def test_every_figure_of_every_row_is_the_figure_of_its_own_scenario(both):
    (_, want), (_, got), _ = both
    assert got.shape == (12, len(OUTPUTS))
    np.testing.assert_array_equal(got, want)  # bit for bit, NaN where both are missing
    # the inputs act: the rows differ in what they vary (not one row copied twelve times)
    assert np.ptp(got[:, OUTPUTS.index("success")]) > 0.05


def test_sensitivity_and_design_tables_match_and_rows_have_no_run_tables(both):
    (tabled, _), (compact, _), _ = both
    for name in ("sensitivity", "design"):
        a, b = tabled.tables[name].drop("run_id"), compact.tables[name].drop("run_id")
        assert a.equals(b), name
    ids = compact.tables["summary"]["scenario_id"].unique().to_list()
    assert ids == ["base"]  # compact rows have no summary, candidates, distributions
    assert compact.tables["scenarios"]["scenario_id"].to_list() == ["base"]


def test_row_outputs_hold_each_rows_figures_with_null_for_missing(both):
    (_, _), (compact, got), out = both
    rows = pl.read_parquet(out / "row_outputs" / "**" / "*.parquet").filter(pl.col("run_id") == "compact")
    assert rows.height == 12 * len(OUTPUTS)
    assert rows["output"].to_list()[:len(OUTPUTS)] == OUTPUTS
    assert rows["scenario_id"][0] == "row-000000" and rows["row"].to_list() == sorted(rows["row"].to_list())
    values = rows["value"].to_numpy().reshape(12, len(OUTPUTS))
    np.testing.assert_array_equal(np.where(np.isnan(got), np.nan, got), values)
    assert rows["value"].null_count() == int(np.isnan(got).sum())
    assert not rows["value"].is_nan().any()


@pytest.mark.parametrize("settings", [{"chunk_size": 300}, {"chunk_size": 1500, "workers": 1},
                                      {"chunk_size": 10**6, "workers": 3}])
def test_the_same_numbers_for_any_block_size_and_workers(both, settings):
    (_, want), _, _ = both
    _, got = _analysed(_study(False), **settings)
    np.testing.assert_array_equal(got, want)


def test_a_resumed_study_of_compact_rows_gives_the_same_tables(both, tmp_path, monkeypatch):
    (_, want), _, _ = both
    with monkeypatch.context() as m:
        stop_after_saving(m, 3)
        with pytest.raises(KeyboardInterrupt):
            pivotal.study(_study(False), progress=False, out=tmp_path, run_id="r", chunk_size=600)
    _, got = _analysed(_study(False), out=tmp_path, run_id="r", resume=True, chunk_size=600)
    np.testing.assert_array_equal(got, want)
    rows = pl.read_parquet(tmp_path / "row_outputs" / "**" / "*.parquet")
    assert rows.height == 12 * len(OUTPUTS)  # each row once, although blocks were merged twice


def test_an_invalid_row_is_refused_naming_the_input_and_the_row(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(f'name = "s"\nscenario = "{SYRIA}"\n'
                     '[design]\nsampler = "random"\nsamples = 40\nrow_tables = false\n'
                     '[[inputs]]\npath = "candidates.FRN.tie.mean"\nlow = 0.5\nhigh = 1.5\n')
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inputs[0]: 'candidates.FRN.tie.mean' = " in err[0], err
    assert "in design row" in err[0] and "candidates[0].tie" in err[0], err


def test_a_row_outside_the_rules_is_found_whatever_its_corner(tmp_path):
    """Capacity low drawn above its mode in some rows: the box's corner fails, the rows are then
    checked one by one and the first invalid one is named."""
    bad = [{"path": "candidates.FRN.capacity.low", "low": 100.0, "high": 9000.0}]
    with pytest.raises(Exception, match=r"inputs\[0\].*in design row \d+ makes an invalid scenario"):
        pivotal.Study("bad", SYRIA, episodes=50, inputs=bad,
                      design={"sampler": "random", "samples": 8, "row_tables": False}).checked


def test_ema_results_and_discovery_read_compact_rows_as_they_read_tabled_ones(both):
    import pivotal.ema
    from engine.studies.discovery import load_design

    _, _, out = both
    (x_tab, y_tab), (x_cmp, y_cmp) = (pivotal.ema.results(out, run_id) for run_id in ("tabled", "compact"))
    assert x_tab.equals(x_cmp)
    assert list(y_tab) == list(y_cmp) == [pivotal.ema.ema_name(o) for o in OUTPUTS]
    for name in y_tab:
        np.testing.assert_array_equal(y_cmp[name], y_tab[name])
    (in_tab, mean_tab), (in_cmp, mean_cmp) = (load_design(out, r, "success") for r in ("tabled", "compact"))
    assert in_tab.equals(in_cmp)
    np.testing.assert_array_equal(mean_cmp, mean_tab)


def test_the_catalog_shows_the_latest_compact_rows_of_each_study(both):
    import duckdb

    _, _, out = both
    assert main(["catalog", "--out", str(out)]) == 0
    con = duckdb.connect(str(out / "forecasts.duckdb"), read_only=True)
    rows = con.execute("SELECT run_id, count(*), count(DISTINCT row) FROM latest_row_outputs GROUP BY run_id").fetchall()
    assert rows == [("compact", 12 * len(OUTPUTS), 12)]
    # design rows of the compact study are not series of their own
    assert con.execute("SELECT count(*) FROM latest_scenario_runs WHERE scenario_id LIKE 'row-%'").fetchone() == (0,)


def test_the_report_summarises_compact_rows_from_row_outputs(both):
    from engine.outputs.html_report import render
    from engine.outputs.storage import locate, run_tables

    (_, want), _, out = both
    page = render(run_tables(locate(out), "compact"))
    success = want[:, OUTPUTS.index("success")]
    assert (f"12 design rows (compact: their figures in row_outputs): success over the rows min "
            f"{success.min():.1%}, median {np.median(success):.1%}, max {success.max():.1%}") in page
    assert "design_binned" in page
