"""Reuse digests: everything that can change an item's numbers, hashed (docs/NIGHTLY.md, "Reuse").

An item's inputs are the bytes of the files it reads (the scenario; the study and its base
scenario; the case files, their observed-participants files and the builder parameters), the
data files it reads (a backtest reads every COW/ATOP file of its data directory:
engine/data/cow.py FILES), the engine (its version and the kernels' source digest) and the
settings that change numbers (seed, episodes, target_se, ...). Executor, workers, chunk size
and Ray address never change a number (docs/ARCHITECTURE.md), so they are left out.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine import __version__
from engine.model.scenario import read_toml
from engine.suite.suitefile import Item
from kernels import SOURCE_DIGEST

_HASHES: dict[tuple, str] = {}   # (path, size, mtime_ns) -> sha256, for this process


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes ("missing" when it cannot be read)."""
    try:
        info = os.stat(path)
    except OSError:
        return "missing"
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return "missing"
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def engine_identity() -> str:
    return f"{__version__}+kernels.{SOURCE_DIGEST[:16]}"


def item_inputs(item: Item) -> dict:
    """What the item reads and how it is run, as a JSON-ready mapping (its digest: `digest`)."""
    inputs = {str(f): file_sha256(f) for f in item.files}
    data: dict[str, str] = {}
    if item.kind == "study":
        base = _study_base(item.files[0])
        if base is not None:
            inputs[str(base)] = file_sha256(base)
    elif item.kind == "backtest":
        from engine.data import builder, cow
        from engine.data.cases import load_case

        params = item.params or builder.SHIPPED_PARAMS
        inputs[str(params)] = file_sha256(Path(params))
        for f in item.files:
            try:
                case = load_case(f, item.data)
            except Exception:  # noqa: BLE001 - a broken case fails its item when it runs
                continue
            inputs[str(case.observed_file)] = file_sha256(case.observed_file)
            for name in cow.FILES.values():
                data[str(case.data / name)] = file_sha256(case.data / name)
    return {"kind": item.kind, "engine": engine_identity(),
            "settings": dict(sorted(item.settings.items())), "input": inputs, "data": data}


def digest(inputs: dict) -> str:
    """One sha256 over an item's inputs (`item_inputs`)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _study_base(path: Path) -> Path | None:
    """The base scenario a study file names (None when the file cannot be read: its item fails)."""
    def fail(rule):
        raise ValueError(rule)
    try:
        doc, _ = read_toml(path, fail)
    except ValueError:
        return None
    base = doc.get("scenario")
    if not isinstance(base, str):
        return None
    return Path(base) if Path(base).is_absolute() else (path.parent / base).resolve()


def changes(previous: dict | None, current: dict) -> list[str]:
    """Why an item's inputs differ from those of its previous run, one phrase per kind of change:
    'input changed: a.toml', 'data changed: cow_nmc.csv', 'engine changed', 'settings changed:
    seed'. Empty when nothing changed; ['new item'] without a previous run."""
    if previous is None:
        return ["new item"]
    out = []
    for key, what in (("input", "input"), ("data", "data")):
        before, now = previous.get(key, {}), current.get(key, {})
        moved = sorted(Path(p).name for p in set(before) | set(now) if before.get(p) != now.get(p))
        if moved:
            out.append(f"{what} changed: {', '.join(moved)}")
    if previous.get("engine") != current.get("engine"):
        out.append("engine changed")
    before, now = previous.get("settings", {}), current.get("settings", {})
    moved = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if moved:
        out.append(f"settings changed: {', '.join(moved)}")
    if previous.get("kind") != current.get("kind"):
        out.append("kind changed")
    return out
