"""Scenario files (TOML): loading, defaults and validation, all at the boundary.

`load_scenario(path)` returns a `Scenario` or raises `ScenarioError` with one
message naming the file, the key path and the rule broken. Nothing downstream
checks inputs again. The format is docs/SCENARIOS.md (= shared SCENARIO_FORMAT).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import stat
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.model.keys import candidate_key, tie_key


class ScenarioError(ValueError):
    """A scenario file breaks a rule of the format."""

    def __init__(self, path, key, rule):
        self.path, self.key, self.rule = str(path), key, rule
        super().__init__(f"{path}: {key}: {rule}" if key else f"{path}: {rule}")


# Every number has a finite range (docs/SCENARIOS.md, "Ranges"): wide enough for any real
# coalition, narrow enough that every sum and histogram the kernels form stays exact and finite.
AMOUNT = "in [0, 1e12]"        # capacities, requirement, budget (units of the scenario)
VALUE = "in [-1e9, 1e9]"       # preference means (payment units)
SPREAD = "in [0, 1e9]"         # sds, noise, hold-out, peer weight, venue bonus (payment units)
DAYS = "in (0, 36500]"         # the deadline: at most 100 years (time_to_success has a row a day)
COUNT = "in [0, 1000000]"      # min_partners

# name -> (default, kind, check); kinds: "number", "integer"; checks below.
PARAMETERS = {
    "info_noise": (1.0, "number", SPREAD),
    "credibility_floor": (0.5, "number", "in [0, 1]"),
    "linkage": (1.0, "number", "in [0, 1e6]"),
    "holdout": (0.0, "number", SPREAD),
    "peer_weight": (0.0, "number", SPREAD),
    "bandwidth": (5, "integer", "in [1, 1000000]"),
    "delay_min_days": (7.0, "number", "in [0, 1e9]"),
    "delay_max_days": (60.0, "number", "in [0, 1e9]"),
    "max_rounds": (3, "integer", "in [1, 1000000]"),
    "escalation": (0.25, "number", "in [0, 1e3]"),
    "margin": (0.1, "number", "in [0, 1e3]"),
    "approach_cost": (1.0, "number", "in (0, 1e12]"),
    "withdrawal_rate": (0.0, "number", "in [0, 1e6]"),
}
MECHANISMS = ("information", "linkage", "credibility", "brokers", "venues", "peers", "withdrawals")
TOP_LEVEL = {"name", "pivot", "deadline_days", "requirement", "min_partners", "budget",
             "capacity_unit", "payment_unit", "description", "sources", "parameters",
             "mechanisms", "candidates", "ties", "institutions"}


@dataclass(frozen=True)
class Candidate:
    id: str
    name: str
    capacity: tuple[float, float, float]      # low, mode, high
    preference: tuple[float, float]           # mean, sd
    tie: tuple[float, float]                  # mean, concentration
    # per-mechanism ties (MODEL.md, revision 2026-12-04), each (mean, concentration) or None: the
    # channel is then the `tie` draw itself; order: information, linkage, credibility
    channels: tuple = (None, None, None)

    def field(self, name: str) -> tuple | None:
        """The table `name` (capacity, preference, tie or a channel) as a tuple; None: a channel not given."""
        return self.channels[CHANNELS.index(name)] if name in CHANNELS else getattr(self, name)


CHANNELS = ("tie_information", "tie_linkage", "tie_credibility")


@dataclass(frozen=True)
class Tie:
    a: str
    b: str
    mean: float
    concentration: float


@dataclass(frozen=True)
class Institution:
    id: str
    members: tuple[str, ...]
    pivot_member: bool = False
    broker: float = 0.0
    venue_day: float | None = None
    venue_bonus: float = 0.0


@dataclass(frozen=True)
class Scenario:
    """A validated scenario with every default filled in."""
    id: str
    name: str
    pivot: str
    deadline_days: float
    requirement: float
    min_partners: int
    budget: float
    capacity_unit: str
    payment_unit: str
    parameters: dict
    mechanisms: dict
    candidates: tuple[Candidate, ...]
    ties: tuple[Tie, ...] = ()
    institutions: tuple[Institution, ...] = ()
    description: str = ""
    sources: tuple[str, ...] = ()
    path: str = ""
    sha256: str = field(default="", compare=False)
    # (parameters, mechanisms) as they were when this module checked this very object; None for
    # an object made otherwise (`dataclasses.replace`, `with_` and pickling aside, as below)
    _check: tuple | None = field(default=None, init=False, compare=False, repr=False)

    def with_(self, **changes) -> "Scenario":
        """A validated variant: `scenario.with_(budget=500.0)`, or with nested changes such as
        `parameters={**scenario.parameters, "bandwidth": 2}`. Raises ScenarioError like a file."""
        return validate_scenario(dataclasses.replace(self, **changes))

    def content_sha256(self) -> str:
        """Hash of everything that can change a forecast (the canonical JSON of the document)."""
        text = json.dumps(scenario_document(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class _Checker:
    """Reads typed values from a TOML table, naming the key path on failure."""

    def __init__(self, path):
        self.path = path

    def fail(self, key, rule):
        raise ScenarioError(self.path, key, rule)

    def table(self, value, key):
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        return value

    def no_unknown(self, table, allowed, prefix):
        for k in table:
            if k not in allowed:
                where = f"{prefix}.{k}" if prefix else k
                self.fail(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, table, name, prefix, kind, default=None, required=False, check=None):
        if name not in table:
            if required:
                self.fail(f"{prefix}.{name}" if prefix else name, "required key is missing")
            return default
        value = table[name]
        if kind == "number" and type(value) is float and math.isfinite(value) and (
                check is None or _holds(value, check)):
            return value  # the common case, checked without building the key path
        key = f"{prefix}.{name}" if prefix else name
        if kind == "string":
            if not isinstance(value, str) or (required and not value):
                self.fail(key, "must be a non-empty string" if required else "must be a string")
        elif kind == "bool":
            if not isinstance(value, bool):
                self.fail(key, "must be true or false")
        elif kind in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(key, f"must be {'an integer' if kind == 'integer' else 'a number'}")
            if kind == "integer" and not isinstance(value, int):
                self.fail(key, f"must be an integer (got {value})")
            try:
                number = float(value)
            except OverflowError:  # an integer of hundreds of digits
                number = math.inf
            if not math.isfinite(number):
                self.fail(key, f"must be finite{f' and {check}' if check else ''} (got {_short(value)})")
            if check and not _holds(number, check):
                self.fail(key, f"must be {check} (got {_short(value)})")
            value = int(value) if kind == "integer" else float(value)
        elif kind == "strings":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.fail(key, "must be a list of strings")
        return value


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _holds(value, check):
    low, high, closed_low, closed_high = _bounds(check)
    return (low <= value if closed_low else low < value) and (value <= high if closed_high else value < high)


@lru_cache(maxsize=None)
def _bounds(check):
    """A check ("in [0, 1]", "in (0, 1e6]", ">= 0", "> 0") as (low, high, low closed, high closed),
    read once: a study validates thousands of rows of hundreds of values each."""
    if check.startswith("in "):
        low, high = (float(x) for x in check[4:-1].split(","))
        return low, high, check[3] == "[", check[-1] == "]"
    op, bound = check.split()
    return float(bound), math.inf, op == ">=", True


def _candidate(c, raw, k):
    p = f"candidates[{k}]"
    c.table(raw, p)
    c.no_unknown(raw, {"id", "name", "capacity", "preference", "tie", *CHANNELS}, p)
    cid = c.get(raw, "id", p, "string", required=True)
    name = c.get(raw, "name", p, "string", default=cid)
    cap = c.table(c.get(raw, "capacity", p, "table", required=True), f"{p}.capacity")
    c.no_unknown(cap, {"low", "mode", "high"}, f"{p}.capacity")
    low, mode, high = (c.get(cap, x, f"{p}.capacity", "number", required=True, check=AMOUNT)
                       for x in ("low", "mode", "high"))
    if low > mode:
        c.fail(f"{p}.capacity", f"low must be <= mode (got low {low} > mode {mode})")
    if mode > high:
        c.fail(f"{p}.capacity", f"mode must be <= high (got mode {mode} > high {high})")
    pref = c.table(c.get(raw, "preference", p, "table", required=True), f"{p}.preference")
    c.no_unknown(pref, {"mean", "sd"}, f"{p}.preference")
    pmean = c.get(pref, "mean", f"{p}.preference", "number", required=True, check=VALUE)
    psd = c.get(pref, "sd", f"{p}.preference", "number", required=True, check=SPREAD)
    tie = _tie_shape(c, c.get(raw, "tie", p, "table", required=True), f"{p}.tie")
    channels = tuple(_tie_shape(c, raw[key], f"{p}.{key}") if key in raw else None for key in CHANNELS)
    return Candidate(cid, name, (low, mode, high), (pmean, psd), tie, channels)


def _tie_shape(c, raw, where) -> tuple[float, float]:
    """A tie table {mean, concentration}: a Beta with that mean and concentration."""
    c.table(raw, where)
    c.no_unknown(raw, {"mean", "concentration"}, where)
    return (c.get(raw, "mean", where, "number", required=True, check="in [0, 1]"),
            c.get(raw, "concentration", where, "number", required=True, check="in (0, 1e6]"))


def _tie(c, raw, k, known):
    p = f"ties[{k}]"
    c.table(raw, p)
    c.no_unknown(raw, {"a", "b", "mean", "concentration"}, p)
    a = c.get(raw, "a", p, "string", required=True)
    b = c.get(raw, "b", p, "string", required=True)
    for end, v in (("a", a), ("b", b)):
        if v not in known:
            c.fail(f"{p}.{end}", f"names unknown candidate {v!r}")
    if a == b:
        c.fail(p, f"a tie must join two different candidates (got {a!r} twice)")
    mean = c.get(raw, "mean", p, "number", required=True, check="in [0, 1]")
    conc = c.get(raw, "concentration", p, "number", required=True, check="in (0, 1e6]")
    return Tie(a, b, mean, conc)


def _institution(c, raw, k, known, pivot):
    p = f"institutions[{k}]"
    c.table(raw, p)
    c.no_unknown(raw, {"id", "members", "pivot_member", "broker", "venue_day", "venue_bonus"}, p)
    iid = c.get(raw, "id", p, "string", required=True)
    members = c.get(raw, "members", p, "strings", required=True)
    seen = set()
    for j, m in enumerate(members):
        if m == pivot:
            c.fail(f"{p}.members[{j}]", f"is the pivot {m!r}; use pivot_member = true instead")
        if m not in known:
            c.fail(f"{p}.members[{j}]", f"names unknown candidate {m!r}")
        if m in seen:
            c.fail(f"{p}.members[{j}]", f"lists member {m!r} twice")
        seen.add(m)
    return Institution(
        iid, tuple(members),
        pivot_member=c.get(raw, "pivot_member", p, "bool", default=False),
        broker=c.get(raw, "broker", p, "number", default=0.0, check="in [0, 1]"),
        venue_day=c.get(raw, "venue_day", p, "number", default=None, check="in [0, 36500]"),
        venue_bonus=c.get(raw, "venue_bonus", p, "number", default=0.0, check=SPREAD),
    )


def _array_of_tables(c, doc, name, required=False):
    value = doc.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        c.fail(name, f"must be an array of tables ([[{name}]])")
    if required and not value:
        c.fail(name, f"at least one [[{name}]] is required")
    return value


def parse_scenario(doc: dict, path: str = "<scenario>", scenario_id: str | None = None,
                   like: Scenario | None = None) -> Scenario:
    """Validate a parsed TOML document and return the `Scenario` with defaults applied.
    Candidates, ties and institutions equal to those of `like` at the same place are taken
    from it (the rows of a study share their base's: they differ in a few values)."""
    c = _Checker(path)
    if "build" in doc and "observed" in doc and "candidates" not in doc:
        c.fail("", "a backtest case file, not a scenario: run it with `pivotal backtest` "
                   "(docs/BACKTESTS.md)")
    c.no_unknown(doc, TOP_LEVEL, "")
    name = c.get(doc, "name", "", "string", required=True)
    pivot = c.get(doc, "pivot", "", "string", required=True)
    deadline = c.get(doc, "deadline_days", "", "number", required=True, check=DAYS)
    params_raw = c.table(doc.get("parameters", {}), "parameters")
    c.no_unknown(params_raw, PARAMETERS, "parameters")
    params = {k: c.get(params_raw, k, "parameters", kind, default=d, check=check)
              for k, (d, kind, check) in PARAMETERS.items()}
    params = {k: (int(v) if PARAMETERS[k][1] == "integer" else float(v)) for k, v in params.items()}
    if params["delay_min_days"] > params["delay_max_days"]:
        c.fail("parameters.delay_min_days",
               f"must be <= delay_max_days (got {params['delay_min_days']} > {params['delay_max_days']})")
    mech_raw = c.table(doc.get("mechanisms", {}), "mechanisms")
    c.no_unknown(mech_raw, MECHANISMS, "mechanisms")
    mechanisms = {k: c.get(mech_raw, k, "mechanisms", "bool", default=True) for k in MECHANISMS}

    candidates, keys = [], {}
    for k, raw in enumerate(_array_of_tables(c, doc, "candidates", required=True)):
        cand = _candidate(c, raw, k)
        if cand.id == pivot:
            c.fail(f"candidates[{k}].id", f"is the pivot {pivot!r}; the pivot must not be a candidate")
        if any(cand.id == other.id for other in candidates):
            c.fail(f"candidates[{k}].id", f"duplicate candidate id {cand.id!r}")
        other = keys.setdefault(candidate_key(cand.id), cand.id)
        if other != cand.id:
            c.fail(f"candidates[{k}].id", f"{cand.id!r} has the same random-number key as {other!r} "
                   "(engine/model/keys.py; a one-in-four-billion coincidence): rename one of them")
        candidates.append(cand)
    known = {cand.id for cand in candidates}
    ties, pairs, tie_keys = [], set(), {}
    for k, raw in enumerate(_array_of_tables(c, doc, "ties")):
        tie = _tie(c, raw, k, known)
        pair = frozenset((tie.a, tie.b))
        if pair in pairs:
            c.fail(f"ties[{k}]", f"the pair {tie.a!r}-{tie.b!r} is tied twice")
        other = tie_keys.setdefault(tie_key(tie.a, tie.b), pair)
        if other != pair:
            c.fail(f"ties[{k}]", f"the tie {tie.a!r}-{tie.b!r} has the same random-number key as "
                   f"{'-'.join(sorted(other))!r} (engine/model/keys.py; a one-in-four-billion "
                   "coincidence): rename a candidate")
        pairs.add(pair)
        ties.append(tie)
    institutions = []
    for k, raw in enumerate(_array_of_tables(c, doc, "institutions")):
        inst = _institution(c, raw, k, known, pivot)
        if any(inst.id == other.id for other in institutions):
            c.fail(f"institutions[{k}].id", f"duplicate institution id {inst.id!r}")
        institutions.append(inst)

    return _checked(Scenario(
        id=scenario_id or name,
        name=name,
        pivot=pivot,
        deadline_days=deadline,
        requirement=c.get(doc, "requirement", "", "number", default=0.0, check=AMOUNT),
        min_partners=c.get(doc, "min_partners", "", "integer", default=0, check=COUNT),
        budget=c.get(doc, "budget", "", "number", default=0.0, check=AMOUNT),
        capacity_unit=c.get(doc, "capacity_unit", "", "string", default="capacity"),
        payment_unit=c.get(doc, "payment_unit", "", "string", default="payment units"),
        parameters=params,
        mechanisms=mechanisms,
        candidates=_shared(candidates, like and like.candidates),
        ties=_shared(ties, like and like.ties),
        institutions=_shared(institutions, like and like.institutions),
        description=c.get(doc, "description", "", "string", default=""),
        sources=tuple(c.get(doc, "sources", "", "strings", default=[])),
        path=str(path),
    ))


def _shared(items: list, like: tuple | None) -> tuple:
    """`items` as a tuple, each item equal to `like`'s at the same place replaced by it."""
    items = tuple(items)
    if not like or len(like) != len(items):
        return items
    if items == like:
        return like
    return tuple(old if new == old else new for new, old in zip(items, like))


def _checked(s: Scenario) -> Scenario:
    """Mark `s` as checked: `validate_scenario` returns it as it is (a study's rows, checked when
    the study is loaded, are not checked again when it runs). A changed copy made with `with_` or
    `dataclasses.replace` is a new object without the mark, and so is checked; the two dicts of a
    frozen Scenario can still be edited in place, so they must still equal their copies."""
    object.__setattr__(s, "_check", (dict(s.parameters), dict(s.mechanisms)))
    return s


def _still_checked(s: Scenario) -> bool:
    return s._check is not None and s._check == (s.parameters, s.mechanisms)


MAX_FILE_BYTES = 64 << 20  # a scenario of 10,000 candidates is about 2 MB


def read_toml(path: Path, fail) -> tuple[dict, bytes]:
    """A TOML file's document and bytes; when it cannot be read or parsed, `fail(rule)` raises
    the caller's error (a scenario, study, case or parameters file names itself)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            fail("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            fail(f"larger than {MAX_FILE_BYTES >> 20} MiB ({info.st_size:,} bytes); not a scenario or study file")
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read file ({exc.strerror})")
    try:
        return tomllib.loads(data.decode("utf-8")), data
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        fail(f"not valid TOML ({exc})")
    except RecursionError:
        fail("values nested too deeply")


def refusal(path):
    """`fail(rule)` for `read_toml`: raise a ScenarioError naming the file."""
    def fail(rule):
        raise ScenarioError(path, "", rule) from None
    return fail


def load_scenario(path) -> Scenario:
    """Read and validate one scenario file; its id is the file name without `.toml`."""
    path = Path(path)
    doc, data = read_toml(path, refusal(path))
    scenario = parse_scenario(doc, str(path), scenario_id=path.stem)
    return _checked(dataclasses.replace(scenario, sha256=hashlib.sha256(data).hexdigest()))


def scenario_document(s: Scenario) -> dict:
    """`s` as a scenario-file document (the parsed TOML), every default written out:
    `parse_scenario(scenario_document(s))` gives `s` back."""
    doc = {"name": s.name, "pivot": s.pivot, "deadline_days": s.deadline_days,
           "requirement": s.requirement, "min_partners": s.min_partners, "budget": s.budget,
           "capacity_unit": s.capacity_unit, "payment_unit": s.payment_unit,
           "description": s.description, "sources": list(s.sources),
           "parameters": dict(s.parameters), "mechanisms": dict(s.mechanisms),
           "candidates": [{"id": c.id, "name": c.name,
                           "capacity": dict(zip(("low", "mode", "high"), c.capacity)),
                           "preference": dict(zip(("mean", "sd"), c.preference)),
                           "tie": dict(zip(("mean", "concentration"), c.tie)),
                           **{key: dict(zip(("mean", "concentration"), shape))
                              for key, shape in zip(CHANNELS, c.channels) if shape is not None}}
                          for c in s.candidates],
           "ties": [{"a": t.a, "b": t.b, "mean": t.mean, "concentration": t.concentration}
                    for t in s.ties],
           "institutions": []}
    for k in s.institutions:
        inst = {"id": k.id, "members": list(k.members), "pivot_member": k.pivot_member,
                "broker": k.broker, "venue_bonus": k.venue_bonus}
        if k.venue_day is not None:
            inst["venue_day"] = k.venue_day
        doc["institutions"].append(inst)
    return doc


def validate_scenario(s: Scenario) -> Scenario:
    """Check a `Scenario` made in Python (e.g. by `dataclasses.replace`) by the rules of a file;
    returns it with defaults filled in, or raises ScenarioError naming the key and the rule."""
    if _still_checked(s):  # built by this module: checked already
        return s
    try:
        doc = scenario_document(s)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ScenarioError(s.path or f"<scenario {s.id}>", "", f"not a valid scenario ({exc})") from None
    checked = parse_scenario(doc, s.path or f"<scenario {s.id}>", scenario_id=s.id)
    return _checked(dataclasses.replace(checked, sha256=s.sha256))
