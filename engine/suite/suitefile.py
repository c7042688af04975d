"""Suite files (docs/NIGHTLY.md): a night's scenarios, studies and backtests, read and checked once.

A suite file is TOML: a `name`, optional `out`, a `[defaults]` table (episodes, seed,
executor, ...), an optional `[drift]` table, and `[[items]]`, each naming exactly one of
`scenario` (a file or a glob: one item per matched file), `study` or `backtest` (one case
file or a list, scored together), with optional overrides. Paths are relative to the suite
file's folder. A refusal is one line: the file, the key path and the rule (exit code 2).
"""
from __future__ import annotations

import glob
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.model.scenario import read_toml

KINDS = ("scenario", "study", "backtest")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# settings that can change a forecast's numbers (they enter the reuse digest) ...
NUMERIC = {"episodes": int, "seed": int, "target_se": float, "max_episodes": int,
           "keep_episodes": int, "seeds": int}
# ... and settings that only say where and how fast it runs (they do not)
PLACEMENT = {"executor": str, "workers": int, "chunk_size": int, "ray_address": str}
PATHS = {"params": str, "data": str}   # backtest items: builder parameters, COW data directory
TOP_KEYS = {"name", "out", "defaults", "drift", "items"}
DRIFT_DEFAULTS = {"alpha": 0.01, "min_success": 0.02, "min_membership": 0.03, "min_size": 0.1,
                  "min_capacity": 0.03}
DEFAULT_EPISODES = 100_000


class SuiteError(ValueError):
    """A suite file breaks a rule of docs/NIGHTLY.md (exit code 2)."""

    def __init__(self, path, key, rule):
        super().__init__(f"{path}: {key}: {rule}" if key else f"{path}: {rule}")


@dataclass(frozen=True)
class Item:
    """One item of a night: a run of one scenario file, a study, or a backtest of case files."""
    name: str
    kind: str                      # scenario | study | backtest
    files: tuple[Path, ...]        # the scenario, the study, or the backtest's case files
    settings: dict                 # episodes, seed, ... (NUMERIC), merged with the defaults
    placement: dict                # executor, workers, chunk_size, ray_address (PLACEMENT)
    params: Path | None = None     # backtest: builder parameters (None: the shipped ones)
    data: Path | None = None       # backtest: the COW data directory (None: each case's own)


@dataclass(frozen=True)
class Suite:
    """A checked suite file."""
    path: Path
    name: str
    out: str | None
    items: tuple[Item, ...]
    drift: dict = field(default_factory=lambda: dict(DRIFT_DEFAULTS))

    def item(self, name: str) -> Item:
        return next(i for i in self.items if i.name == name)


def load_suite(path) -> Suite:
    """Read and check a suite file (every rule of docs/NIGHTLY.md); item files are read later,
    when their item runs, so that a broken one fails only its item."""
    path = Path(path)

    def fail(key, rule):
        raise SuiteError(path, key, rule) from None

    doc, _ = read_toml(path, lambda rule: fail("", rule))
    _unknown(doc, TOP_KEYS, "", fail)
    name = doc.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        fail("name", "required: 1-64 letters, digits, '.', '_' or '-' (it names the suite's runs)")
    out = doc.get("out")
    if out is not None and (not isinstance(out, str) or not out.strip()):
        fail("out", "must be a non-empty string (a directory; relative to the suite file)")
    if out is not None and "://" not in out:
        out = str((path.parent / out).resolve())
    defaults = _table(doc, "defaults", fail)
    _unknown(defaults, set(NUMERIC) | set(PLACEMENT), "defaults.", fail)
    base = {"episodes": DEFAULT_EPISODES, "seed": 1} | _values(defaults, NUMERIC, "defaults.", fail)
    base_place = _values(defaults, PLACEMENT, "defaults.", fail)
    drift = _drift(_table(doc, "drift", fail), fail)
    raw = doc.get("items")
    if not isinstance(raw, list) or not raw or not all(isinstance(i, dict) for i in raw):
        fail("items", "required: at least one [[items]] table")
    items: list[Item] = []
    seen: dict[str, int] = {}
    for k, entry in enumerate(raw):
        for item in _items(path, k, entry, base, base_place, fail):
            if item.name in seen:
                fail(f"items[{k}]", f"item name {item.name!r} is used twice (items[{seen[item.name]}] has "
                     "it); give each item its own `name`")
            seen[item.name] = k
            items.append(item)
    return Suite(path, name, out, tuple(items), drift)


def _table(doc, key, fail) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        fail(key, "must be a table")
    return value


def _unknown(d, allowed, prefix, fail):
    for key in d:
        if key not in allowed:
            fail(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _values(d, kinds, prefix, fail) -> dict:
    out = {}
    for key, kind in kinds.items():
        if key not in d:
            continue
        v = d[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) or not isinstance(v, kind):
            fail(prefix + key, {int: "must be an integer", float: "must be a number",
                                str: "must be a string"}[kind])
        if kind is float and not (math.isfinite(v) and v > 0):
            fail(prefix + key, f"must be a finite number > 0 (got {v})")
        if kind is int and (v < (0 if key in ("seed", "keep_episodes") else 1)):
            fail(prefix + key, f"must be >= {0 if key in ('seed', 'keep_episodes') else 1} (got {v})")
        out[key] = v
    return out


def _drift(d, fail) -> dict:
    _unknown(d, set(DRIFT_DEFAULTS), "drift.", fail)
    out = dict(DRIFT_DEFAULTS)
    for key, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            fail(f"drift.{key}", f"must be a finite number >= 0 (got {v!r})")
        if key == "alpha" and not 0 < v < 1:
            fail("drift.alpha", f"must be in (0, 1): the false-alarm rate per scenario (got {v})")
        out[key] = float(v)
    return out


def _items(path: Path, k: int, entry: dict, base: dict, base_place: dict, fail) -> list[Item]:
    where = f"items[{k}]."
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1:
        fail(f"items[{k}]", "needs exactly one of scenario, study, backtest"
             + (f" (got {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    allowed = {"name", kind} | set(NUMERIC) | set(PLACEMENT) | (set(PATHS) if kind == "backtest" else set())
    if kind != "backtest":
        allowed -= {"seeds"}
    if kind != "scenario":
        allowed -= {"keep_episodes"}
    _unknown(entry, allowed, where, fail)
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not NAME.fullmatch(name)):
        fail(where + "name", "must be 1-64 letters, digits, '.', '_' or '-'")
    settings = base | _values(entry, NUMERIC, where, fail)
    if kind != "backtest":
        settings.pop("seeds", None)
    if kind != "scenario":
        settings.pop("keep_episodes", None)
    if "max_episodes" in settings and "target_se" not in settings:
        fail(where + "max_episodes", "needs target_se")
    placement = base_place | _values(entry, PLACEMENT, where, fail)
    if placement.get("executor") not in (None, "local", "ray"):
        fail(where + "executor", f"must be 'local' or 'ray' (got {placement['executor']!r})")
    target = entry[kind]
    if kind == "backtest":
        cases = [target] if isinstance(target, str) else target
        if not isinstance(cases, list) or not cases or not all(isinstance(c, str) and c for c in cases):
            fail(where + "backtest", "must be a case file or a non-empty list of case files")
        for key, value in entry.items():
            if key in PATHS and (not isinstance(value, str) or not value):
                fail(where + key, "must be a non-empty string (a path)")
        extra = {key: _resolve(path, entry[key]) for key in PATHS if key in entry}
        files = tuple(_resolve(path, c) for c in cases)
        return [Item(name or files[0].stem, kind, files, settings, placement, **extra)]
    if not isinstance(target, str) or not target:
        fail(where + kind, "must be a file name (scenario: or a glob such as ../scenarios/*.toml)")
    if kind == "scenario" and any(ch in target for ch in "*?["):
        matched = sorted(glob.glob(str(path.parent / target)))
        if not matched:
            fail(where + "scenario", f"no file matches {target!r} (relative to {path.parent})")
        files = [Path(m).resolve() for m in matched]
        named = [name if name and len(files) == 1 else f"{name}.{f.stem}" if name else f.stem for f in files]
        return [Item(n, kind, (f,), settings, placement) for n, f in zip(named, files)]
    file = _resolve(path, target)
    return [Item(name or file.stem, kind, (file,), settings, placement)]


def _resolve(suite_path: Path, text: str) -> Path:
    return (suite_path.parent / text).resolve()
