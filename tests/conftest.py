"""Shared helpers: scenarios built in code, and running them."""
import copy
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pivotal
from engine.model.scenario import parse_scenario


def candidate(cid, low=100.0, mode=200.0, high=300.0, mean=0.0, sd=1.0, tie=0.5, conc=10.0):
    return {"id": cid, "capacity": {"low": low, "mode": mode, "high": high},
            "preference": {"mean": mean, "sd": sd}, "tie": {"mean": tie, "concentration": conc}}


def scenario_doc(candidates=None, parameters=None, mechanisms=None, ties=(), institutions=(), **top):
    """A scenario document (the parsed TOML) with simple defaults; override anything."""
    doc = {"name": top.pop("name", "test"), "pivot": "P", "deadline_days": 100.0,
           "requirement": 0.0, "min_partners": 0, "budget": 0.0,
           "candidates": candidates or [candidate(f"C{i}") for i in range(3)],
           "parameters": parameters or {}, "mechanisms": mechanisms or {},
           "ties": list(ties), "institutions": list(institutions)}
    doc.update(top)
    return doc


def build(doc, scenario_id="test"):
    return parse_scenario(copy.deepcopy(doc), "<test>", scenario_id=scenario_id)


def run(doc, episodes=20_000, seed=1, **kw):
    """Forecast tables of one scenario document (nothing written)."""
    return pivotal.forecast(build(doc), episodes=episodes, seed=seed, progress=False, **kw).tables


def metric(tables, name, column="mean"):
    summary = tables["summary"]
    return summary.filter(summary["metric"] == name)[column].item()


def p_member(tables):
    return dict(zip(tables["candidates"]["candidate_id"], tables["candidates"]["p_member"]))


@pytest.fixture(scope="session")
def closed_form_doc():
    """MODEL.md's closed-form case: independent joins with p_i = Phi(mean_i / sd_i)."""
    rng = np.random.default_rng(7)
    cands = [candidate(f"C{i}", low=float(lo), mode=float(lo + 50), high=float(lo + 150),
                       mean=float(m), sd=float(s), tie=float(t))
             for i, (lo, m, s, t) in enumerate(zip(rng.uniform(0, 500, 8), rng.uniform(-2, 2, 8),
                                                   rng.uniform(0.5, 3, 8), rng.uniform(0.1, 0.9, 8)))]
    high_total = sum(c["capacity"]["high"] for c in cands)
    return scenario_doc(
        candidates=cands, budget=0.0, requirement=high_total + 1.0, deadline_days=50 * 60.0,
        parameters={"info_noise": 0.0, "holdout": 0.0, "bandwidth": len(cands)},
        mechanisms={"peers": False, "venues": False, "withdrawals": False},
        institutions=[{"id": "ORG", "members": ["C0", "C1"], "pivot_member": True, "broker": 0.5,
                       "venue_day": 10.0, "venue_bonus": 50.0}])


def stop_after_saving(monkeypatch, n):
    """Make a run stop (KeyboardInterrupt, as Ctrl-C) right after it checkpointed its n-th chunk."""
    from engine.outputs.directory import RunDirectory

    saved, original = [], RunDirectory.save_chunk

    def save_then_stop(self, position, aggregates):
        original(self, position, aggregates)
        saved.append(position)
        if len(saved) == n:
            raise KeyboardInterrupt
    monkeypatch.setattr(RunDirectory, "save_chunk", save_then_stop)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkpointed(out, run_id) -> int:
    """How many chunks of run `run_id` under `out` are checkpointed (whole journal records)."""
    from engine.execution.journal import count
    return count(Path(out) / "_staging" / f"run_id={run_id}" / "chunks")


def journal_records(path) -> list[tuple[int, int, int]]:
    """(position, payload offset, payload length) of each record of a checkpoint journal, read
    here from the documented layout (docs/OUTPUTS.md), not by the engine's reader."""
    data, records, offset = Path(path).read_bytes(), [], 0
    while offset + 24 <= len(data):
        magic, position, length, _ = struct.unpack_from("<4sQQI", data, offset)
        assert magic == b"PVCK"
        records.append((position, offset + 24, length))
        offset += 24 + length
    return records


def start_past_entry_point(args, **popen):
    """Start `python -m engine.cli.start *args` (the `pivotal` command) and return once it
    has imported the entry point's first module (its own `-X importtime` report on stderr; the
    next statement installs its signal handlers): a signal sent then is the command's to
    handle, however long a loaded machine took to start Python. Its stderr then also holds
    the import report's lines."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "engine.cli.start", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.rstrip().endswith("| engine.execution.supervisor"):
            return proc
    pytest.fail(f"the command never reached its entry point: {''.join(seen)[-2000:]}")


def messages(err: str) -> list[str]:
    """The lines of a command's stderr that are not `-X importtime` reports."""
    return [x for x in err.splitlines() if not x.startswith("import time:")]


def wait_for_checkpoints(proc, out, run_id, n, timeout=120.0, poll=0.01):
    """Wait until the command `proc` has checkpointed `n` chunks of run `run_id` under `out`;
    fail if it ended first (the caller means to interrupt it in the middle of the run)."""
    deadline = time.time() + timeout
    while time.time() < deadline and checkpointed(out, run_id) < n and proc.poll() is None:
        time.sleep(poll)
    assert proc.poll() is None, "the command finished before it could be interrupted"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    """With pytest-xdist (`make test` runs two workers), tests that start Ray run one after
    another on one worker (`--dist loadgroup`): two local Ray instances on two cores would
    compete for every CPU and time out."""
    for item in items:
        if "ray" in item.nodeid.lower():
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif any(f in item.fixturenames for f in SHARED_FIXTURES):  # computed once, on one worker
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Fail the session if xdist did not take the groups (it renames each grouped test
    `<id>@<group>`; a pytest that keeps the id elsewhere makes that a silent no-op)."""
    if getattr(session.config.option, "loadgroup", False):  # (set on xdist workers)
        lost = [i.nodeid for i in session.items
                if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if lost:
            raise pytest.UsageError(f"--dist loadgroup grouped nothing (e.g. {lost[0]}); "
                                    "see the pytest pin in pyproject.toml")


# module-scoped fixtures that take seconds: their tests stay on one worker, so each is built once
SHARED_FIXTURES = ("shipped_and_korea", "batch")
