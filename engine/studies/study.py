"""Study files (STUDY_FORMAT.md): parsing, paths into the base scenario, and the scenarios
a study evaluates (`base`, `variant-<k>`, `row-<rrrrrr>`).

`load_study(path)` checks everything before anything runs: every key, every
input, every variant, and every design row, each built as a scenario document
(the base file's TOML with the value applied) and validated by the same
`parse_scenario` as a file. A broken rule raises ScenarioError naming the
study file, the key path and the rule (for a row or variant that makes an
invalid scenario: the input or variant, and the scenario's rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.execution.plan import MAX_EPISODES
from engine.studies.paths import _applied, _copy, _get, _named, _put, _shallow, resolve
from engine.outputs.figures import MEANS, check_outputs
from engine.studies.designs import (DISTRIBUTIONS, SAMPLERS, default_replicates, design_rows, design_rule,
                                    to_values, unit_sample)
from engine.model.scenario import (Scenario, ScenarioError, refusal, load_scenario,
                             parse_scenario, read_toml)

STUDY_KEYS = {"name", "scenario", "episodes", "seed", "design", "inputs", "variants", "outputs"}
DESIGN_KEYS = {"sampler", "samples", "second_order", "levels", "replicates", "row_tables"}
INPUT_KEYS = {"path", "distribution", "apply", "low", "high", "mean", "sd", "mode", "values"}
APPLY = ("set", "shift", "scale")
MAX_ROWS = 2 ** 21  # design rows (compact: a row is its input values and its figures); a sobol
                    # design of 2^18 samples over 6 inputs fits
MAX_TABLED_ROWS = 100_000  # rows with their own run tables (each held as a validated scenario)
TABLED_BY_DEFAULT = 10_000  # up to this many rows get their own run tables unless row_tables = false
DEFAULT_EPISODES, DEFAULT_SEED = 10_000, 1


@dataclass(frozen=True)
class Input:
    path: str
    distribution: str
    params: dict
    apply: str
    locations: tuple


@dataclass(frozen=True)
class Variant:
    name: str
    values: dict           # path -> value
    locations: dict        # path -> tuple of Location


@dataclass
class Study:
    """A validated study: its settings and every scenario it evaluates, in run order."""
    path: str
    name: str
    base_path: str
    base_doc: dict
    episodes: int
    seed: int
    sampler: str | None
    samples: int
    second_order: bool
    levels: int
    inputs: list[Input]
    variants: list[Variant]
    unit: np.ndarray                 # (rows, inputs) design points in (0, 1)
    values: list[list]               # (rows, inputs) drawn values
    scenarios: list[Scenario] = field(default_factory=list)
    replicates: int = 1              # sobol: independent scrambles (their spread gives the intervals)
    row_tables: bool = True          # rows are scenarios with their own run tables; False: compact
                                     # rows (engine/studies/rows.py), `values` an array, no row scenarios
    outputs: tuple = MEANS           # the figures a study analyses and compares (engine/outputs/figures.py)

    @property
    def rows(self) -> int:
        return len(self.values)

    def scenario_doc(self, scenario_id: str) -> dict:
        """The TOML document of one evaluated scenario (`base`, `variant-<k>`, `row-<r>`)."""
        if scenario_id == "base":
            return _named(_copy(self.base_doc), self.base_doc["name"], "base")
        kind, _, number = scenario_id.partition("-")
        if kind == "variant":
            v = self.variants[int(number) - 1]
            return self._variant_doc(v)
        return self._row_doc(int(number))

    def _variant_doc(self, v: Variant) -> dict:
        doc, copied = _shallow(self.base_doc)
        for path, value in v.values.items():
            for loc in v.locations[path]:
                _put(doc, loc, value, copied)
        return _named(doc, self.base_doc["name"], v.name)

    def _row_doc(self, r: int) -> dict:
        return _named(self._point_doc(self.values[r]), self.base_doc["name"], f"row {r}")

    def _point_doc(self, values) -> dict:
        """The base document with the inputs set to `values` (one per input)."""
        doc, copied = _shallow(self.base_doc)
        for inp, value in zip(self.inputs, values):
            value = value.item() if isinstance(value, np.generic) else value
            if inp.locations[0].kind == "bool":
                value = bool(value)
            for loc in inp.locations:
                _put(doc, loc, _applied(inp.apply, loc, value), copied)
        return doc


class _Study:
    """Reads a study document, failing with the study file, the key path and the rule."""

    def __init__(self, path):
        self.path = str(path)

    def fail(self, key, rule):
        raise ScenarioError(self.path, key, rule)

    def number(self, table, name, key, integer=False):
        v = table[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            self.fail(key, "must be an integer" if integer else "must be a number")
        if not math.isfinite(v):
            self.fail(key, f"must be finite (got {v})")
        return v

    def unknown(self, table, allowed, prefix):
        for k in table:
            if k not in allowed:
                self.fail(f"{prefix}.{k}" if prefix else k, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _flatten(table, prefix=""):
    out = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def load_study(path, doc: dict | None = None) -> Study:
    """Read and validate a study file and every scenario it evaluates (`doc`: the document itself,
    as `pivotal.Study` gives it, `path` naming it in errors; a relative scenario is from its folder)."""
    path = Path(path)
    c = _Study(path)
    doc = read_toml(path, refusal(path))[0] if doc is None else doc
    c.unknown(doc, STUDY_KEYS, "")
    for key in ("name", "scenario"):
        if key not in doc:
            c.fail(key, "required key is missing")
        if not isinstance(doc[key], str) or not doc[key]:
            c.fail(key, "must be a non-empty string")
    episodes = c.number(doc, "episodes", "episodes", integer=True) if "episodes" in doc else DEFAULT_EPISODES
    if not 1 <= episodes <= MAX_EPISODES:
        c.fail("episodes", f"must be a positive integer of at most {MAX_EPISODES:.0e} (got {episodes:,})")
    seed = c.number(doc, "seed", "seed", integer=True) if "seed" in doc else DEFAULT_SEED
    if not 0 <= seed < 2**63:
        c.fail("seed", f"must be in [0, 2**63) (got {seed})")

    base_path = (path.parent / doc["scenario"]).resolve() if not Path(doc["scenario"]).is_absolute() \
        else Path(doc["scenario"])
    if not base_path.is_file():
        c.fail("scenario", f"no scenario file at {base_path}")
    base = load_scenario(base_path)  # a broken base scenario is reported against its own file
    base_doc, _ = read_toml(base_path, refusal(base_path))

    for name in ("inputs", "variants"):
        if name in doc and (not isinstance(doc[name], list) or not all(isinstance(x, dict) for x in doc[name])):
            c.fail(name, f"must be an array of tables ([[{name}]])")
    raw_inputs, raw_variants = doc.get("inputs", []), doc.get("variants", [])
    design = doc.get("design")
    if design is not None and not isinstance(design, dict):
        c.fail("design", "must be a table ([design])")
    if design is None and not raw_inputs and not raw_variants:
        c.fail("", "a study needs [design] with [[inputs]], or [[variants]]")
    design = design or {}
    c.unknown(design, DESIGN_KEYS, "design")
    sampler = design.get("sampler", "sobol")
    if sampler not in SAMPLERS:
        c.fail("design.sampler", f"must be one of {', '.join(SAMPLERS)} (got {sampler!r})")
    samples = c.number(design, "samples", "design.samples", integer=True) if "samples" in design else 256
    if samples < 1:
        c.fail("design.samples", f"must be a positive integer (got {samples})")
    second_order = design.get("second_order", False)
    if not isinstance(second_order, bool):
        c.fail("design.second_order", "must be true or false")
    if second_order and sampler != "sobol":
        c.fail("design.second_order", "applies to sobol only")
    replicates = default_replicates(samples) if sampler == "sobol" else 1
    if "replicates" in design:
        replicates = c.number(design, "replicates", "design.replicates", integer=True)
        if sampler != "sobol" or replicates < 1 or replicates & (replicates - 1) or replicates > samples:
            c.fail("design.replicates", f"sobol only: a power of 2 from 1 to samples ({samples}) (got {replicates})")
    levels = c.number(design, "levels", "design.levels", integer=True) if "levels" in design else \
        4 if sampler == "morris" else 5
    if broken := design_rule(sampler, samples, levels):
        c.fail(*broken)
    if "design" in doc and not raw_inputs:
        c.fail("inputs", "at least one [[inputs]] is required with [design]")
    row_tables = design.get("row_tables")
    if row_tables is not None and not isinstance(row_tables, bool):
        c.fail("design.row_tables", "must be true or false")

    inputs, taken = [], {}
    for k, raw in enumerate(raw_inputs):
        inputs.append(_input(c, raw, f"inputs[{k}]", base_doc, base, taken))
    variants = []
    for k, raw in enumerate(raw_variants):
        variants.append(_variant(c, raw, f"variants[{k}]", base_doc, base, variants))

    study = Study(str(path), doc["name"], str(base_path), base_doc, episodes, seed,
                  sampler if inputs else None, samples, second_order, levels, inputs, variants,
                  np.zeros((0, len(inputs))), [], replicates=replicates)
    study.outputs = check_outputs(doc.get("outputs", list(MEANS)), base, c.fail)
    if inputs:
        n_rows = design_rows(sampler, len(inputs), samples, second_order, levels)
        if n_rows > MAX_ROWS:
            c.fail("design", f"makes {n_rows:,} rows (at most {MAX_ROWS:,}): use fewer samples or levels, "
                   "or split the study")
        study.row_tables = n_rows <= TABLED_BY_DEFAULT if row_tables is None else row_tables
        if study.row_tables and n_rows > MAX_TABLED_ROWS:
            c.fail("design.row_tables", f"rows with their own run tables are at most {MAX_TABLED_ROWS:,} "
                   f"(this design makes {n_rows:,}, each held in memory as a validated scenario): "
                   "set row_tables = false")
        study.unit = unit_sample(sampler, [i.path for i in inputs], samples, second_order, levels, seed,
                                 replicates)
        columns = [to_values(i.distribution, i.params, study.unit[:, j], integer=_sets_integers(i))
                   for j, i in enumerate(inputs)]
        if study.row_tables:
            study.values = [list(row) for row in zip(*columns)]
        else:
            study.values = np.array(columns, np.float64).T.reshape(n_rows, len(inputs))
            _check_rows_at_corners(c, study)
    study.scenarios = _scenarios(c, study, base)
    return study


def _check_rows_at_corners(c: _Study, study: Study) -> None:
    """Validate compact rows by their inputs' bounds, not row by row: every rule of a scenario is
    a bound or an order between two values (linear in each input's value, which enters its
    values by set, shift or scale), so it holds in every row if it holds at the corners of the
    box of the drawn values: all corners up to 10 inputs, else each pair's four corners with the
    other inputs all at their lows or all at their highs. A corner that fails may not be a row:
    then the rows themselves are checked, one at a time (nothing kept)."""
    import itertools

    low, high = study.values.min(axis=0), study.values.max(axis=0)
    k = len(study.inputs)
    if k <= 10:
        corners = itertools.product((False, True), repeat=k)
    else:
        corners = ([rest if x not in (a, b) else (fa if x == a else fb) for x in range(k)]
                   for a, b in itertools.combinations(range(k), 2) for fa in (False, True)
                   for fb in (False, True) for rest in (False, True))
    for corner in corners:
        point = np.where(np.array(corner, bool), high, low)
        try:
            parse_scenario(study._point_doc(point), study.path, scenario_id="corner", like=None)
        except ScenarioError:
            break
    else:
        return
    for r in range(study.rows):
        _row_scenario(c, study, r, None)


def _sets_integers(inp: Input) -> bool:
    """Whether an input's values are set, as they are, into integer settings only."""
    return inp.apply == "set" and all(loc.kind == "integer" for loc in inp.locations)


def _input(c: _Study, raw, key, base_doc, base, taken) -> Input:
    c.unknown(raw, INPUT_KEYS, key)
    if "path" not in raw:
        c.fail(f"{key}.path", "required key is missing")
    path = raw["path"]
    if not isinstance(path, str):
        c.fail(f"{key}.path", "must be a string")
    locations = resolve(path, base_doc, base)
    if isinstance(locations, str):
        c.fail(f"{key}.path", f"{path!r} {locations}" if locations.startswith("names") else
               f"{path!r} names nothing in the base scenario: {locations}")
    for loc in locations:
        if loc.keys in taken:
            c.fail(f"{key}.path", f"the same path is given twice ({path!r}; also {taken[loc.keys]})")
    taken.update({loc.keys: f"{key}.path" for loc in locations})
    dist = raw.get("distribution", "uniform")
    if dist not in DISTRIBUTIONS:
        c.fail(f"{key}.distribution", f"must be one of {', '.join(DISTRIBUTIONS)} (got {dist!r})")
    for name in raw:
        if name in ("low", "high", "mean", "sd", "mode", "values") and name not in DISTRIBUTIONS[dist]:
            c.fail(f"{key}.{name}", f"is not a parameter of {dist} (its parameters: "
                   f"{', '.join(DISTRIBUTIONS[dist])})")
    for name in DISTRIBUTIONS[dist]:
        if name not in raw:
            c.fail(f"{key}.{name}", f"required for a {dist} distribution")
    apply = raw.get("apply", "set")
    if apply not in APPLY:
        c.fail(f"{key}.apply", f"must be one of {', '.join(APPLY)} (got {apply!r})")
    boolean = locations[0].kind == "bool"
    if dist == "choice":
        values = raw["values"]
        if not isinstance(values, list) or not values:
            c.fail(f"{key}.values", "must be a non-empty list")
        if boolean:
            if not all(isinstance(v, bool) for v in values):
                c.fail(f"{key}.values", "a mechanism takes true or false")
        elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                     for v in values):
            c.fail(f"{key}.values", "must be finite numbers")
        params = {"values": list(values)}
    else:
        if boolean:
            c.fail(f"{key}.distribution", "a mechanism takes a choice of true/false")
        params = {name: float(c.number(raw, name, f"{key}.{name}")) for name in DISTRIBUTIONS[dist]}
        if dist in ("uniform", "triangular") and params["low"] > params["high"]:
            c.fail(f"{key}", f"low must be <= high (got low {params['low']} > high {params['high']})")
        if dist == "triangular" and not params["low"] <= params["mode"] <= params["high"]:
            c.fail(f"{key}.mode", f"must be in [low, high] (got {params['mode']})")
        if dist == "normal" and params["sd"] < 0:
            c.fail(f"{key}.sd", f"must be >= 0 (got {params['sd']})")
    if boolean and apply != "set":
        c.fail(f"{key}.apply", "a mechanism can only be set")
    if apply != "set" and any(loc.base is None for loc in locations):
        c.fail(f"{key}.apply", f"{path!r} has no value in the base scenario to {apply}")
    inp = Input(path, dist, params, apply, locations)
    if dist == "uniform" and _sets_integers(inp) and math.ceil(params["low"]) > math.floor(params["high"]):
        c.fail(key, f"{path!r} takes whole numbers and [{params['low']}, {params['high']}] holds none")
    return inp


def _variant(c: _Study, raw, key, base_doc, base, earlier) -> Variant:
    c.unknown(raw, {"name", "set"}, key)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        c.fail(f"{key}.name", "required key is missing" if name is None else "must be a non-empty string")
    if any(v.name == name for v in earlier):
        c.fail(f"{key}.name", f"two variants share the name {name!r}")
    if not isinstance(raw.get("set"), dict) or not raw["set"]:
        c.fail(f"{key}.set", "required: a table of path = value")
    values, locations = _flatten(raw["set"]), {}
    for path, value in values.items():
        where = f'{key}.set."{path}"'
        found = resolve(path, base_doc, base)
        if isinstance(found, str):
            c.fail(where, f"{path!r} names nothing in the base scenario: {found}")
        if found[0].kind == "bool" and not isinstance(value, bool):
            c.fail(where, "a mechanism takes true or false")
        if found[0].kind != "bool" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                        or not math.isfinite(value)):
            c.fail(where, "must be a finite number")
        locations[path] = found
    return Variant(name, values, locations)


def _scenarios(c: _Study, study: Study, base: Scenario) -> list[Scenario]:
    """Every evaluated scenario, each validated as a file would be."""
    import dataclasses

    out = [dataclasses.replace(base, id="base")]
    for k, v in enumerate(study.variants, start=1):
        try:
            out.append(parse_scenario(study._variant_doc(v), study.path, scenario_id=f"variant-{k}",
                                      like=base))
        except ScenarioError as exc:
            c.fail(f"variants[{k - 1}]", f"variant {v.name!r} makes an invalid scenario: "
                   f"{exc.key}: {exc.rule}")
    if study.row_tables:
        out += [_row_scenario(c, study, r, base) for r in range(study.rows)]
    return out


def _row_scenario(c: _Study, study: Study, r: int, base: Scenario | None) -> Scenario:
    """Design row r's scenario, validated as a file would be (failing with the input to change)."""
    try:
        return parse_scenario(study._row_doc(r), study.path, scenario_id=row_id(r), like=base)
    except ScenarioError as exc:
        culprit = next((k for k, i in enumerate(study.inputs) for loc in i.locations
                        if exc.key in loc.error_keys), None)
        if culprit is None:
            c.fail("inputs", f"design row {r} makes an invalid scenario: {exc.key}: {exc.rule}")
        inp = study.inputs[culprit]
        value = study.values[r][culprit]
        value = value.item() if isinstance(value, np.generic) else value
        c.fail(f"inputs[{culprit}]", f"{inp.path!r} = {value!r} ({inp.apply}) "
               f"in design row {r} makes an invalid scenario: {exc.key}: {exc.rule}")


def row_id(r: int) -> str:
    return f"row-{r:06d}"


def design_table_rows(run_id: str, study: Study, with_rows: bool = True) -> list[dict]:
    """The `design` table: one row per evaluated scenario x input (`with_rows` False: the base's
    and the variants' only)."""
    rows = []
    docs = [("base", -1, study.base_doc)] + [(f"variant-{k}", -1, study._variant_doc(v))
                                             for k, v in enumerate(study.variants, start=1)]
    for sid, r, doc in docs:
        for inp in study.inputs:
            rows.append({"run_id": run_id, "scenario_id": sid, "row": r, "input": inp.path,
                         "value": _value_of(doc, inp)})
    for r, values in enumerate(study.values if with_rows else ()):
        sid = row_id(r)
        for inp, v in zip(study.inputs, values):
            rows.append({"run_id": run_id, "scenario_id": sid, "row": r, "input": inp.path,
                         "value": float(v)})
    return rows


def _value_of(doc, inp: Input):
    """A scenario's value of an input, in the input's terms (shift: the amount added to the
    base value, scale: the factor); null when the candidates of a `*` path differ."""
    found = set()
    for loc in inp.locations:
        v = _get(doc, loc)
        if v is None:
            return None
        v = float(v)
        if inp.apply == "shift":
            v = v - loc.base
        elif inp.apply == "scale":
            if loc.base == 0:
                return None
            v = v / loc.base
        found.add(v)
    return found.pop() if len(found) == 1 else None
