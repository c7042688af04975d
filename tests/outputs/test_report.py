"""`pivotal report` (offline HTML, checked in headless Chromium) and `pivotal show`."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

import browser
from conftest import build, candidate, scenario_doc
from engine.outputs.html_report import roc_curve
from study_fixtures import STATES, backtest_tables, publish_with, study_tables

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
SCENARIO_CHARTS = ("size", "capacity", "spent", "time_to_success", "candidates")
# every chart's kind, whether its SVG has a size and drawn paths, and every URL the page names
INSPECT = """(() => ({
  charts: Array.from(document.querySelectorAll('figure.chart')).map(f => {
    const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return [f.dataset.chart, box.width, box.height, svg ? svg.querySelectorAll('path').length : 0];
  }),
  urls: Array.from(document.querySelectorAll('[src],[href],[*|href]')).map(
    e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('xlink:href')),
  scripts: document.scripts.length,
}))()"""


def cli(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def needs_chromium():
    if browser.chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """A study run (base, two variants, one design row; sensitivity and comparisons tables)
    and a backtest run (backtests and backtest_states tables)."""
    out = tmp_path_factory.mktemp("forecasts")
    base = dict(requirement=500.0, min_partners=2, budget=100.0)
    docs = {"base": scenario_doc(name="base", **base),
            "variant-1": scenario_doc(name="closer", **{**base, "budget": 500.0, "requirement": 300.0}),
            "variant-2": scenario_doc(name="richer", candidates=[candidate(f"C{i}", tie=0.9) for i in range(5)],
                                      **base),
            "row-000000": scenario_doc(name="row", deadline_days=30.0, **base)}
    publish_with(out, [build(d, sid) for sid, d in docs.items()], "study", study_tables("study"))
    gulf = scenario_doc(name="gulf", requirement=2500.0, min_partners=5, budget=50.0,
                        candidates=[candidate(s, mean=m) for s, m in zip(STATES, np.linspace(1.5, -1.5, len(STATES)))])
    publish_with(out, build(gulf, "gulf"), "backtest", backtest_tables("backtest"))
    return out


def render(out, run_id, tmp_path):
    page = tmp_path / f"{run_id}.html"
    result = cli("report", "--out", out, "--run-id", run_id, "--html", page)
    assert result.returncode == 0, result.stderr
    return page


def check_offline_page(page, screenshot):
    needs_chromium()
    loaded = browser.load(str(page), INSPECT)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / screenshot).write_bytes(loaded.screenshot)
    assert loaded.requests == [f"file://{page}"], loaded.requests  # the page itself, nothing else
    assert loaded.errors == []
    assert loaded.value["scripts"] == 0
    assert all(u.startswith(("#", "data:")) for u in loaded.value["urls"]), loaded.value["urls"]
    for kind, width, height, paths in loaded.value["charts"]:
        assert width > 100 and height > 100 and paths > 5, (kind, width, height, paths)
    assert loaded.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(loaded.screenshot) > 50_000
    return [c[0] for c in loaded.value["charts"]]


def test_the_browser_check_sees_requests_and_console_errors(tmp_path):
    """The harness itself bites: a page that fetches and logs an error is caught."""
    needs_chromium()
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/x.png'>"
                    "<script>console.error('broken chart')</script></body></html>")
    loaded = browser.load(str(page), "document.images.length")
    assert loaded.value == 1
    assert "http://127.0.0.1:9/x.png" in loaded.requests
    assert any("broken chart" in e for e in loaded.errors)


def test_report_of_a_study_run_renders_every_chart_offline(out, tmp_path):
    page = render(out, "study", tmp_path)
    kinds = check_offline_page(page, "report_study.png")
    # the answer first (issue 19): sensitivity and comparisons, then the scenarios
    # design rows summarised, not listed (issue 19)
    assert kinds == ["sensitivity", "comparisons", "success", "capacity_overlay", *SCENARIO_CHARTS * 3]
    html = page.read_text()
    assert html.count("<ul class='figures'") == 3 and html.count("95% CI") == 3
    for line in ("success", "size ", "capacity ", "spent ", "time to success", "most likely", "least likely"):
        assert html.count(f"<li>{line}") == 3, line
    assert "1 design rows" in html and "[row-000000]" not in html
    for text in ("requirement 300", "S1", "ST", "Poland brought closer", "Bigger budget", "schema_version"):
        assert text in html, text
    # base and variants in order, then the design rows' summary
    assert html.index("[base]") < html.index("[variant-2]") < html.index("design rows")


def test_report_of_a_backtest_run_draws_roc_curves_against_the_baselines(out, tmp_path):
    page = render(out, "backtest", tmp_path)
    kinds = check_offline_page(page, "report_backtest.png")
    assert kinds == ["roc", "size_calibration", "success", *SCENARIO_CHARTS]  # the scores first
    assert "5-95% interval in 1 of 1 case(s)" in page.read_text()
    html = page.read_text()
    for label in ("pivotal (AUC 0.80)", "capacity (AUC 0.70)", "base_rate (AUC 0.50)", "major contributors",
                  "AUC of models without per-state scores: no_ties 0.60"):
        assert label in html, label


def test_the_latest_run_is_the_default_and_an_unknown_run_is_refused(out, tmp_path):
    page = tmp_path / "latest.html"
    assert cli("report", "--out", out, "--html", page).stdout.strip().endswith("run backtest")
    missing = cli("report", "--out", out, "--run-id", "nope", "--html", page)
    assert missing.returncode == 2 and "'nope'" in missing.stderr and "Traceback" not in missing.stderr


def test_roc_curve_area_is_the_mann_whitney_statistic():
    rng = np.random.default_rng(11)
    for _ in range(20):
        positive = rng.random(40) < 0.4
        score = np.round(rng.random(40) + 0.3 * positive, 1)  # ties on purpose
        fpr, tpr = roc_curve(score, positive)
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        u = mannwhitneyu(score[positive], score[~positive]).statistic
        auc = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
        assert auc == pytest.approx(u / (positive.sum() * (~positive).sum()))


def test_show_prints_the_end_of_run_summary_again(tmp_path):
    run = cli("run", TUTORIAL, "--episodes", 3000, "--out", tmp_path, "--run-id", "first")
    assert run.returncode == 0, run.stderr
    cli("run", TUTORIAL, "--episodes", 1000, "--seed", 2, "--out", tmp_path, "--run-id", "second", "--quiet")
    one = cli("show", "--out", tmp_path, "--run-id", "first")
    assert one.returncode == 0, one.stderr
    printed = run.stdout.splitlines()[1:]  # after the run id
    assert one.stdout.splitlines()[1:] == printed[1:]  # everything but the timing line
    assert one.stdout.startswith("run first  seed 1  3,000 episodes x 1 scenario(s)")
    latest = cli("show", "--out", tmp_path).stdout
    assert latest.index("  first  ") < latest.index("  second  ") < latest.index("run second  seed 2")


def test_the_shipped_study_page_leads_with_the_answer_and_stays_small(tmp_path):
    """configs/studies/syria_drivers.toml (1,280 design rows) at a small episode count: the page
    opens with the study's question, the sensitivity chart and the comparisons, then the base and
    variants, then the outputs against their top inputs; design rows summarised; under 500 KB
    (it was 1.4 MB, design rows drawn one by one), offline in headless Chromium."""
    out = tmp_path / "fc"
    study = ROOT / "configs" / "studies" / "syria_drivers.toml"
    ran = cli("study", study, "--episodes", 200, "--out", out, "--run-id", "shipped", "--quiet")
    assert ran.returncode == 0, ran.stderr
    page = render(out, "shipped", tmp_path)
    assert page.stat().st_size < 500_000, page.stat().st_size
    html = page.read_text()
    assert html.index("Which assumption drives the Northern Syria forecast?") < html.index("data-chart='sensitivity'")
    kinds = check_offline_page(page, "report_shipped_study.png")
    assert kinds[:4] == ["sensitivity", "comparisons", "success", "capacity_overlay"]
    assert kinds[-1] == "design_binned" and kinds.count("candidates") == 4  # base and 3 variants
    assert "1,280 design rows" in html and "[row-" not in html
