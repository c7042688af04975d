"""Small study and backtest tables with the documented columns (STUDY_FORMAT.md,
BACKTEST_FORMAT.md), published with a run by the engine's own publish code."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import pivotal
from engine.outputs.directory import run_directory

TUTORIAL = Path(__file__).resolve().parents[1] / "configs" / "scenarios" / "tutorial.toml"
INPUTS = ("budget", "requirement", "parameters.linkage")
OUTPUTS = ("success", "size", "capacity", "spent")
VARIANTS = ("Poland brought closer", "Bigger budget")
STATES = ("USA", "UKG", "FRN", "ITA", "CAN", "EGY", "SYR", "MOR", "ARG", "AUL", "POR", "SPN", "GRC", "TUR")


def analysed_figures(study, **kw):
    """Run a study (`pivotal.study`'s keywords) and return its result and the per-row figures
    its sensitivity analysis received ({output: array over the design rows})."""
    from engine.studies import run as study_run

    seen = {}
    real = study_run.sensitivity_tables

    def spy(run_id, sampler, names, unit, outputs, *args):
        seen.update({k: np.array(v) for k, v in outputs.items()})
        return real(run_id, sampler, names, unit, outputs, *args)

    study_run.sensitivity_tables = spy
    try:
        result = pivotal.study(study, progress=False, **kw)
    finally:
        study_run.sensitivity_tables = real
    return result, seen


def study_tables(run_id: str) -> dict[str, pa.Table]:
    rng = np.random.default_rng(3)
    sens = [{"run_id": run_id, "output": o, "input": i, "S1": s1, "S1_conf": 0.05,
             "ST": s1 + 0.1, "ST_conf": 0.07}
            for o in OUTPUTS for i, s1 in zip(INPUTS, rng.uniform(0, 0.5, len(INPUTS)))]
    comp = []
    for v in VARIANTS:
        for o in OUTPUTS:
            base, diff, se = float(rng.uniform(0, 10)), float(rng.normal()), 0.1
            comp.append({"run_id": run_id, "variant": v, "output": o, "base_mean": base,
                         "variant_mean": base + diff, "difference": diff, "difference_se": se,
                         "difference_low": diff - 1.96 * se, "difference_high": diff + 1.96 * se,
                         "independent_se": 0.3, "variance_reduction": 9.0})
    return {"sensitivity": pa.Table.from_pylist(sens), "comparisons": pa.Table.from_pylist(comp)}


def backtest_tables(run_id: str, case: str = "Gulf War, 1990") -> dict[str, pa.Table]:
    rng = np.random.default_rng(4)
    participated = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0], bool)
    p_member = np.clip(0.3 * participated + rng.uniform(0, 0.7, len(STATES)), 0, 1)
    states = pa.table({"run_id": [run_id] * len(STATES), "case": [case] * len(STATES),
                       "state": list(STATES), "ccode": np.arange(len(STATES), dtype=np.int64) * 10 + 2,
                       "participated": participated, "p_member": p_member,
                       "capacity_rank": np.arange(1, len(STATES) + 1, dtype=np.int64)})
    rows = [{"run_id": run_id, "case": case, "model": m, "scored": len(STATES),
             "participants": int(participated.sum()), "auc": auc, "brier": brier, "log_loss": ll,
             "size_observed": 9, "size_mean": 7.5, "size_p05": 5.0, "size_p95": 10.0}
            for m, auc, brier, ll in (("pivotal", 0.8, 0.2, 0.6), ("no_ties", 0.6, 0.25, 0.7),
                                      ("capacity", 0.7, None, None), ("base_rate", 0.5, 0.24, 0.69))]
    return {"backtests": pa.Table.from_pylist(rows), "backtest_states": states}


def publish_with(out, scenario, run_id: str, extra: dict[str, pa.Table], **kw):
    """Publish a run of `scenario`, then its extra tables, the `runs` table last again."""
    result = pivotal.forecast(scenario, out=out, run_id=run_id, progress=False, **{"episodes": 2000, **kw})
    store = run_directory(out, run_id)
    runs = pq.read_table(store.published("runs") / "part-0.parquet")
    store.publish({**extra, "runs": runs})
    return result


def write_study(tmp_path, body, scenario=TUTORIAL, name="s.toml"):
    path = tmp_path / name
    path.write_text(f'name = "test study"\nscenario = "{scenario}"\n' + body)
    return path


SMALL = '''
episodes = 3000
seed = 5
[design]
sampler = "lhs"
samples = 6
[[inputs]]
path = "budget"
low = 50
high = 600
[[inputs]]
path = "candidates.*.preference.mean"
distribution = "normal"
mean = 0
sd = 5
apply = "shift"
[[inputs]]
path = "ties.B.C.mean"
distribution = "triangular"
low = 0.2
mode = 0.5
high = 0.9
[[inputs]]
path = "mechanisms.venues"
distribution = "choice"
values = [true, false]
[[variants]]
name = "no summit"
set = { "mechanisms.venues" = false }
[[variants]]
name = "richer"
set = { budget = 450, "candidates.E.tie.mean" = 0.6 }
'''
