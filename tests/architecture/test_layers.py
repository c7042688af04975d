"""The layout's one rule: imports flow one way (docs/ARCHITECTURE.md).

kernels <- engine.model <- engine.execution <- engine.outputs <- engine.forecast
<- engine.studies, engine.data <- engine.suite <- engine.cli. Every import of a module of the
package, at its top or inside a function, is read from the source; a module may
import its own part and the parts before it, never a part after it or a sibling
part of the same rank, and no chain of imports returns to where it started.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RANK = {"kernels": 0, "engine": 0, "engine.model": 1, "engine.execution": 2, "engine.outputs": 3,
        "engine.forecast": 4, "engine.studies": 5, "engine.data": 5, "engine.suite": 6,
        "engine.cli": 7}


def modules() -> dict[str, Path]:
    found = {}
    for package in ("engine", "kernels"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known) -> set[str]:
    """The package's modules that `path` imports anywhere in its source."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in known}
    return out


def part(module: str) -> str:
    """The part of the layout a module belongs to (the longest prefix in RANK)."""
    pieces = module.split(".")
    for k in range(len(pieces), 0, -1):
        if ".".join(pieces[:k]) in RANK:
            return ".".join(pieces[:k])
    raise AssertionError(f"{module} belongs to no part of the layout: add it to RANK and ARCHITECTURE.md")


def graph():
    known = modules()
    return {m: imports(p, known) - {m} for m, p in known.items()}


def test_every_module_belongs_to_a_part():
    for m in graph():
        part(m)


def test_no_import_goes_up_or_sideways():
    upward = []
    for m, targets in graph().items():
        for t in targets:
            a, b = part(m), part(t)
            if a != b and t not in ("engine",) and RANK[b] >= RANK[a]:
                upward.append(f"{m} -> {t}")
    assert not upward, "imports against the layout's direction:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    g = graph()
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The test itself bites: a model module importing the CLI is reported."""
    g = graph()
    g["engine.model.scenario"] = g["engine.model.scenario"] | {"engine.cli.main"}
    monkeypatch.setattr(__import__(__name__), "graph", lambda: g)
    with pytest.raises(AssertionError, match="engine.model.scenario -> engine.cli.main"):
        test_no_import_goes_up_or_sideways()
    g["engine.cli.main"] = g["engine.cli.main"] | {"engine.model.scenario"}
    g["engine.model.scenario"] |= {"engine.cli.main"}
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()
