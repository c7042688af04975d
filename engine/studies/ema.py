"""EMA Workbench interoperability (`pivotal.ema`; the extra pivotal[ema]), for EMA Workbench 2.5
(Python 3.11) and 3.x (Python >= 3.12): docs/STUDIES.md, "EMA Workbench and SALib".

- `model(scenario, uncertainties, outcomes)`: an EMA `Model` whose uncertainties are study input
  paths and whose outcomes are forecast figures (engine/outputs/figures.py); each experiment is a
  `pivotal run` of the base scenario with the values applied, as a study row is.
- `results(out, run_id)`: a published study run as EMA's `(experiments, outcomes)`, one entry per
  design row, for `prim`, `feature_scoring`, `dimensional_stacking`.
- `problem_spec(study, result)`: a study's design as a SALib `ProblemSpec` (its unit coordinates,
  its samples and, given a result, each output's values per row).

EMA 3 requires names that are Python identifiers: a path's EMA name (`ema_name`) replaces "." by
"__" and "*" by "ALL" (`budget`, `candidates__ALL__tie__mean`); `path_of` maps one back.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from engine.outputs.figures import MEANS, check_figure
from engine.studies import paths, study as study_file

INSTALL_HINT = ("pivotal.ema needs EMA Workbench, the extra pivotal[ema]: pip install -e '.[ema]' in "
                "the pivotal checkout (make install includes it)")


def ema_name(path: str) -> str:
    """The EMA Workbench name of a study path or figure path (a Python identifier)."""
    name = path.replace(".", "__").replace("*", "ALL")
    if not name.isidentifier():
        raise ValueError(f"{path!r} makes no Python identifier for EMA Workbench ({name!r})")
    return name


def path_of(name: str) -> str:
    """The study path or figure path of an EMA name (`ema_name`'s inverse)."""
    return ".".join("*" if part == "ALL" else part for part in name.split("__"))


def _ema():
    try:
        import ema_workbench
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ema_workbench


@dataclasses.dataclass
class ScenarioFunction:
    """The model function EMA calls with one experiment's values (keyword arguments by EMA name):
    the base scenario with the values applied, run for `episodes` from `seed`, its figures
    returned by EMA name. Picklable, so the multiprocessing evaluator can ship it."""
    base_path: str
    base_doc: dict
    inputs: list                 # (EMA name, apply, locations) per uncertainty
    outcomes: tuple              # figure paths
    episodes: int
    seed: int
    workers: int = 1

    def scenario(self, **values):
        """The scenario an experiment evaluates (validated as a file is)."""
        from engine.model.scenario import load_scenario, parse_scenario

        base = load_scenario(self.base_path)
        doc, copied = study_file._shallow(self.base_doc)
        for name, apply, locations in self.inputs:
            value = values[name]
            value = bool(value) if isinstance(value, (bool, np.bool_)) else float(value)
            for loc in locations:
                paths._put(doc, loc, paths._applied(apply, loc, value), copied)
        return parse_scenario(doc, self.base_path, scenario_id="ema", like=base)

    def __call__(self, **values) -> dict:
        from engine.forecast import execute_plan, plan_run

        plan = plan_run([self.scenario(**values)], episodes=self.episodes, seed=self.seed,
                        workers=self.workers, executor="local")
        _, publisher = execute_plan(plan, progress=False, figures=self.outcomes)
        return {ema_name(o): float(v) for o, v in zip(self.outcomes, publisher.values[0])}


def _parameter(ema, spec: dict, name: str, locations):
    dist = spec.get("distribution", "uniform")
    if locations[0].kind == "bool":
        return ema.BooleanParameter(name)
    if dist == "choice":
        return ema.CategoricalParameter(name, list(spec["values"]))
    if dist != "uniform":
        raise ValueError(f"uncertainty {spec['path']!r}: EMA Workbench samples uniform or choice "
                         f"uncertainties (got {dist!r})")
    if spec.get("apply", "set") == "set" and all(loc.kind == "integer" for loc in locations):
        return ema.IntegerParameter(name, int(np.ceil(spec["low"])), int(np.floor(spec["high"])))
    return ema.RealParameter(name, float(spec["low"]), float(spec["high"]))


def model(scenario, uncertainties=None, outcomes=None, *, episodes: int = 1_000, seed: int = 1,
          workers: int = 1, name: str = "pivotal"):
    """An EMA Workbench `Model` of `scenario` (a scenario file; or a study file or `pivotal.Study`,
    whose base, inputs and outputs are the defaults). `uncertainties`: study inputs (dicts with a
    study file's keys: path, low/high or distribution = "choice" with values, apply); `outcomes`:
    figure paths (default the study's outputs, else success, size, capacity, spent). Each
    experiment runs `episodes` episodes from `seed` on `workers` threads. Raises ScenarioError
    (a path that names nothing, a figure the scenario lacks) before EMA sees the model."""
    ema = _ema()
    from engine.model.scenario import ScenarioError, load_scenario, read_toml, refusal
    from engine.outputs.figures import FigureError

    st = getattr(scenario, "checked", None)
    if st is None and str(scenario).endswith(".toml") and "scenario" in read_toml(Path(scenario), refusal(Path(scenario)))[0]:
        st = study_file.load_study(scenario)
    if st is not None:
        base_path, base_doc = st.base_path, st.base_doc
        specs = uncertainties if uncertainties is not None else [
            {"path": i.path, "distribution": i.distribution, "apply": i.apply, **i.params} for i in st.inputs]
        outcomes = st.outputs if outcomes is None else outcomes
    else:
        base_path = str(Path(scenario).resolve())
        base_doc, _ = read_toml(Path(base_path), refusal(Path(base_path)))
        specs = uncertainties or []
    base = load_scenario(base_path)
    outcomes = tuple(MEANS if outcomes is None else outcomes)
    for k, o in enumerate(outcomes):
        try:
            check_figure(o, base)
        except FigureError as exc:
            raise ScenarioError(base_path, f"outcomes[{k}]", str(exc)) from None
    inputs, params = [], []
    for k, spec in enumerate(specs):
        locations = paths.resolve(spec["path"], base_doc, base)
        if isinstance(locations, str):
            raise ScenarioError(base_path, f"uncertainties[{k}].path", f"{spec['path']!r} {locations}")
        name_k = ema_name(spec["path"])
        inputs.append((name_k, spec.get("apply", "set"), locations))
        params.append(_parameter(ema, spec, name_k, locations))
    function = ScenarioFunction(base_path, base_doc, inputs, outcomes, episodes, seed, workers)
    m = ema.Model(name, function=function)
    m.uncertainties = params
    m.outcomes = [ema.ScalarOutcome(ema_name(o)) for o in outcomes]
    return m


def results(out, run_id: str, outcomes=None):
    """A published study run as EMA Workbench's `(experiments, outcomes)`: a pandas DataFrame of
    the design rows' input values (one column per input, by EMA name, in design order) and a dict
    of one array per figure (by EMA name; default the study's outputs, as its `sensitivity` table
    lists them), one entry per design row. Missing figures are NaN. Raises DiscoveryError for a
    run that is not a complete study with a design."""
    import pandas as pd
    import polars as pl

    from engine.outputs.figures import table_values
    from engine.studies.discovery import _read, load_design

    inputs, _ = load_design(out, run_id, "success")
    if outcomes is None:
        sens = _read(out, "sensitivity", run_id)
        outcomes = MEANS if sens is None else sens["output"].unique(maintain_order=True).to_list()
    compact = _read(out, "row_outputs", run_id)
    if compact is not None:  # compact rows: the study's outputs, one row per (row, output)
        values = row_output_values(compact, list(outcomes), inputs.height)
    else:
        tables = {t: _read(out, t, run_id) for t in ("summary", "candidates", "time_to_success")}
        ids = [study_file.row_id(r) for r in range(inputs.height)]
        tables = {t: (f.filter(pl.col("scenario_id").is_in(ids)) if f is not None else f) for t, f in tables.items()}
        values = table_values(list(outcomes), tables, ids)
    experiments = pd.DataFrame({ema_name(c): inputs[c].to_numpy() for c in inputs.columns})
    return experiments, {ema_name(o): values[:, k] for k, o in enumerate(outcomes)}


def row_output_values(row_outputs, outputs, rows: int) -> np.ndarray:
    """(rows, outputs) figures of compact design rows from their `row_outputs` table (NaN where
    null or not an output of the study)."""
    out = np.full((rows, len(outputs)), np.nan)
    for k, name in enumerate(outputs):
        part = row_outputs.filter(row_outputs["output"] == name)
        out[part["row"].to_numpy(), k] = part["value"].fill_null(np.nan).to_numpy()
    return out


def problem_spec(study, result=None):
    """A study's design as a SALib `ProblemSpec`: one variable per input (by path) on its unit
    coordinate [0, 1] (the design table maps it to the input's value), the study's unit samples
    set, and, given a `result` (the study's `Forecast`), its outputs per design row as results
    (one column per output, in the study's order), so `spec.analyze_sobol()` etc. run on them."""
    from SALib import ProblemSpec

    from engine.outputs.figures import table_values

    st = getattr(study, "checked", study)
    if not isinstance(st, study_file.Study):
        st = study_file.load_study(study)
    names = [i.path for i in st.inputs]
    spec = ProblemSpec({"names": names, "num_vars": len(names), "bounds": [[0.0, 1.0]] * len(names),
                        "outputs": list(st.outputs)})
    spec.set_samples(np.asarray(st.unit, dtype=float))
    if result is not None:
        if "row_outputs" in result.tables:
            y = row_output_values(result.tables["row_outputs"], list(st.outputs), st.rows)
        else:
            ids = [study_file.row_id(r) for r in range(st.rows)]
            y = table_values(list(st.outputs), result.tables, ids)
        spec.set_results(y[:, 0] if y.shape[1] == 1 else y)
    return spec
