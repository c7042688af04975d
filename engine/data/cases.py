"""Backtest case files (shared/design/BACKTEST_FORMAT.md): reading and checking a case, its
observed participants, and the scored candidates."""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data import builder, cow
from engine.data.cow import DataError
from engine.model.scenario import read_toml

THRESHOLD = ("COW lists only states above its participation threshold (about 1,000 troops in combat "
             "or 100 battle deaths): participants are the major contributors")


class CaseError(DataError):
    """A case file breaks a rule of BACKTEST_FORMAT.md (exit code 2)."""

    def __init__(self, path, key, rule):
        super().__init__(f"{path}: {key}: {rule}" if key else f"{path}: {rule}")


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    data: Path
    pivot: str
    year: int
    target: str
    theater: str | None
    candidates: str
    requirement: float | None
    deadline_days: float | None
    budget: float | None
    observed_file: Path
    warnum: int
    side: int
    exclude: tuple[str, ...]
    complete: bool = False   # the observed file lists every state that sent forces (size is scored)
    institutions: str | None = None  # `--institutions ID[:DAY],...` of the build

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.path.stem)


CASE_KEYS = {"name", "data", "build", "observed"}
BUILD_KEYS = {"pivot", "year", "target", "theater", "candidates", "requirement", "deadline_days", "budget",
              "institutions"}
OBSERVED_KEYS = {"file", "warnum", "side", "exclude", "complete"}


def load_case(path, data_override=None) -> Case:
    """Read and check one case file (paths resolved as BACKTEST_FORMAT.md says)."""
    path = Path(path)
    def fail(rule):
        raise CaseError(path, "", rule) from None
    doc, _ = read_toml(path, fail)

    def table(d, key):
        v = d.get(key)
        if not isinstance(v, dict):
            raise CaseError(path, key, "required table is missing" if v is None else "must be a table")
        return v

    def unknown(d, allowed, prefix):
        for k in d:
            if k not in allowed:
                raise CaseError(path, f"{prefix}{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(d, key, prefix, kinds, required=False, default=None):
        if key not in d:
            if required:
                raise CaseError(path, prefix + key, "required key is missing")
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, kinds):
            names = {str: "a string", int: "an integer", float: "a number"}
            raise CaseError(path, prefix + key, "must be " + " or ".join(names[k] for k in kinds))
        if isinstance(v, float) and not math.isfinite(v):
            raise CaseError(path, prefix + key, f"must be finite (got {v})")
        return v

    if "candidates" in doc and "build" not in doc:
        fail("a scenario file, not a backtest case: run it with `pivotal run`; a case file has "
             "[build] and [observed] tables (docs/BACKTESTS.md)")
    unknown(doc, CASE_KEYS, "")
    name = get(doc, "name", "", (str,), required=True)
    b, o = table(doc, "build"), table(doc, "observed")
    unknown(b, BUILD_KEYS, "build.")
    unknown(o, OBSERVED_KEYS, "observed.")
    if data_override is not None:
        data = Path(data_override)
    elif "data" in doc:
        data = (path.parent / get(doc, "data", "", (str,))).resolve()
    else:
        data = builder.DEFAULT_DATA.resolve()
    numbers = {}
    for key in ("requirement", "deadline_days", "budget"):
        v = get(b, key, "build.", (int, float))
        if v is not None and (v < 0 or (key == "deadline_days" and v <= 0)):
            raise CaseError(path, f"build.{key}", f"must be {'> 0' if key == 'deadline_days' else '>= 0'} "
                            f"(got {v})")
        numbers[key] = None if v is None else float(v)
    file = get(o, "file", "observed.", (str,), required=True)
    observed = (path.parent / file) if file.startswith(("./", "../")) else data / file
    exclude = get(o, "exclude", "observed.", (list,), default=[])
    if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in exclude):
        raise CaseError(path, "observed.exclude", "must be a list of COW abbreviations or codes")
    pivot = get(b, "pivot", "build.", (str, int), required=True)
    target = get(b, "target", "build.", (str, int), required=True)
    theater = get(b, "theater", "build.", (str, int))
    complete = o.get("complete", False)
    if not isinstance(complete, bool):
        raise CaseError(path, "observed.complete", "must be true or false")
    return Case(name=name, path=path, data=data, pivot=str(pivot),
                year=get(b, "year", "build.", (int,), required=True), target=str(target),
                theater=None if theater is None else str(theater),
                candidates=get(b, "candidates", "build.", (str,), default="all"),
                observed_file=observed, warnum=get(o, "warnum", "observed.", (int,), required=True),
                side=get(o, "side", "observed.", (int,), required=True),
                exclude=tuple(str(x) for x in exclude), complete=complete,
                institutions=get(b, "institutions", "build.", (str,)), **numbers)


def participants(case: Case) -> set[int]:
    """ccodes with a row of the case's war and side in its observed file (a CSV with at least the
    columns warnum, ccode, side; a value that is not an integer is refused with its line)."""
    where = case.observed_file

    def fail(rule):
        raise CaseError(case.path, "observed.file", f"{where}: {rule}") from None

    try:
        with open(where, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except OSError as exc:
        raise CaseError(case.path, "observed.file", f"cannot read {where} ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        fail(f"cannot read it as a CSV file ({exc})")
    header = [h.strip() for h in lines[0]] if lines else []
    missing = {"warnum", "ccode", "side"} - set(header)
    if missing:
        fail(f"lacks the columns {', '.join(sorted(missing))} (needs warnum, ccode, side)")
    col = {name: header.index(name) for name in ("warnum", "ccode", "side")}

    def integer(row, line, name):
        try:
            return int(row[col[name]].strip())
        except ValueError:
            fail(f"line {line}: {name} must be an integer (got {row[col[name]].strip()!r})")

    found = set()
    for line, row in enumerate(lines[1:], start=2):
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(header):
            fail(f"line {line} has {len(row)} fields where the header has {len(header)} "
                 "(quote a value that contains a comma)")
        if integer(row, line, "warnum") == case.warnum and integer(row, line, "side") == case.side:
            found.add(integer(row, line, "ccode"))
    if not found:
        raise CaseError(case.path, "observed", f"no row of warnum {case.warnum}, side {case.side} in {where}")
    return found


def observed_set(case: Case) -> str:
    """What the case's participants are (the `observed_set` column): COW's major contributors, or
    whoever the case's own file lists."""
    if case.observed_file.resolve() == (case.data / "cow_war_participants.csv").resolve():
        return THRESHOLD
    return (f"participants as listed in the case's own file {case.observed_file.name} "
            "(not COW's list: its threshold need not apply)")


@dataclass
class Prepared:
    """A case with its data read once: inputs, participants and the scored candidates."""
    case: Case
    inputs: builder.Inputs
    scored: np.ndarray          # bool per candidate
    joined: np.ndarray          # bool per candidate (participated)
    unscored: tuple[str, ...] = ()  # participants that are not candidates (pivot, target aside)


def prepare(case: Case) -> Prepared:
    """Read the case's data and observed participants once (refusing what the data lack)."""
    try:
        inp = builder.gather(case.data, case.pivot, case.year, case.target, case.theater, case.candidates,
                             case.institutions)
    except DataError as exc:  # "--target X: ..." names a flag of `scenario build`: give the case's key
        flag = re.match(r"--(\w+) ?", str(exc))
        name = flag and flag.group(1)
        if name not in BUILD_KEYS | {"data"}:
            raise CaseError(case.path, "build", str(exc)) from None
        key = name if name == "data" else f"build.{name}"
        raise CaseError(case.path, key, str(exc)[flag.end():]) from None
    joined_codes = participants(case)
    excluded = set()
    for token in case.exclude:
        try:
            excluded.add(cow.resolve(case.data, token, case.year, "exclude").ccode)
        except DataError as exc:
            raise CaseError(case.path, "observed.exclude", str(exc)) from None
    known = {int(c): a for c, a in cow.frames(case.data)["states"].select("ccode", "stateabb").iter_rows()}
    unknown = sorted(joined_codes - set(known))
    if unknown:
        raise CaseError(case.path, "observed.file", f"{case.observed_file}: ccode {unknown[0]} (warnum "
                        f"{case.warnum}, side {case.side}) is not a COW state code (cow_states.csv)")
    ccodes = np.array([s.ccode for s in inp.candidates])
    scored = ~np.isin(ccodes, list(excluded))
    if not scored.any():
        raise CaseError(case.path, "observed.exclude", "leaves no candidate to score")
    joined = np.isin(ccodes, list(joined_codes))
    outside = sorted(joined_codes - set(ccodes.tolist()) - {inp.pivot.ccode, inp.target.ccode})
    unscored = tuple(f"{known[c]} ({c})" for c in outside)
    return Prepared(case, inp, scored, joined, unscored)


def check_distinct(cases: list[Case]) -> None:
    """Refuse two cases with the same name or file name (their rows could not be told apart)."""
    for attr, what in (("name", "name"), ("slug", "file name")):
        seen = {}
        for c in cases:
            key = getattr(c, attr)
            if key in seen:
                raise CaseError(c.path, "name" if attr == "name" else "",
                                f"same {what} {key!r} as {seen[key]}: each case needs its own")
            seen[key] = c.path


def notes(prepared: list[Prepared]) -> list[str]:
    """One line per case whose participants file lists states that are not its candidates."""
    return [f"{p.case.path}: participants not among the candidates, not scored: {', '.join(p.unscored)}"
            for p in prepared if p.unscored]
