"""Ray as deployed: a head started with `ray start` and token authentication, a second
node that is killed while it runs chunks, and `ray job submit` (docs/CLUSTER.md).

One head for the module (`ray start --head`, about 15 s here), with its own temp dir and
ports, so it never meets another Ray instance of this machine; it is stopped by the
process ids it started, never with `ray stop` (which stops every Ray of the machine)."""
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
from polars.testing import assert_frame_equal

import pivotal
from conftest import free_port, wait_for_checkpoints

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
BENCH_120 = ROOT / "bench" / "scenarios" / "synthetic_120.toml"
RAY = str(Path(sys.executable).with_name("ray"))
NUMBERS = ("summary", "size_distribution", "capacity_distribution", "time_to_success",
           "candidates", "episodes", "scenarios")
STUDY_TABLES = ("sensitivity", "comparisons", "design")
AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _env(**auth) -> dict:
    """This environment without Ray's address and auth variables, plus `auth`."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # the code under test, for the driver and the Ray workers
    return {**env, **auth}


def _kill_tree(processes) -> None:
    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass


class Head:
    """A `ray start --head` with token authentication (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN),
    one CPU, its dashboard (for jobs) and a temp dir of its own."""

    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="pvray-", dir="/tmp")  # (Unix socket paths stay short)
        self.token = secrets.token_hex(16)
        self.port, self.dashboard = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        # a killed node is declared dead after ~1.5 s, not Ray's default 15 s
        self.env = _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                        RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3",
                        RAY_health_check_timeout_ms="500")
        self.nodes = []

    def start(self) -> None:
        subprocess.run([RAY, "start", "--head", f"--port={self.port}", "--num-cpus=1",
                        f"--dashboard-port={self.dashboard}", "--dashboard-host=127.0.0.1",
                        f"--ray-client-server-port={free_port()}",
                        f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={self.temp}",
                        "--disable-usage-stats"], env=self.env, check=True, capture_output=True,
                       timeout=120)

    def add_node(self, cpus=1) -> subprocess.Popen:
        """A second raylet on this machine (`ray start --address --block`): every process of
        the node is a descendant of the returned process."""
        node = subprocess.Popen(
            [RAY, "start", f"--address={self.address}", f"--num-cpus={cpus}", "--block",
             f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={self.temp}",
             "--disable-usage-stats"], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.nodes.append(node)
        seen = []
        for line in node.stdout:  # (the node is up once `ray start` says so)
            seen.append(line)
            if "Ray runtime started" in line:
                break
        assert node.poll() is None, "".join(seen)
        threading.Thread(target=node.stdout.read, daemon=True).start()  # never block the node on a pipe
        return node

    def wait_for_cpus(self, n: int, timeout: float = 120) -> None:
        """Wait until the cluster's resource view (what a driver sizes its tasks by) holds `n`
        CPUs: a node that says "Ray runtime started" may not be in it yet on a busy machine."""
        deadline, seen = time.time() + timeout, ""
        while time.time() < deadline:
            seen = subprocess.run([RAY, "status", f"--address={self.address}"], env=self.env,
                                  capture_output=True, text=True, timeout=60).stdout
            cpus = re.search(r"/(\d+(?:\.\d+)?) CPU", seen)
            if cpus and float(cpus.group(1)) >= n:
                return
            time.sleep(0.5)
        raise AssertionError(f"the cluster never had {n} CPUs:\n{seen}")

    def stop(self) -> None:
        started = [p for p in psutil.process_iter(["cmdline"])
                   if any(self.temp in part for part in (p.info["cmdline"] or []))]
        started += [psutil.Process(n.pid) for n in self.nodes if n.poll() is None]
        for p in list(started):
            try:
                started += p.children(recursive=True)
            except psutil.Error:
                pass
        _kill_tree(started)
        psutil.wait_procs(started, timeout=10)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def head():
    h = Head()
    try:
        h.start()
        yield h
    finally:
        h.stop()


def _pivotal(*args, env, **kw):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def _busy_chunks(node):
    """The chunk tasks running on `node` (the worker processes under its raylet)."""
    try:
        under = psutil.Process(node.pid).children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in under if any("ray::run_chunk" in part for part in _cmdline(p))]


def _cmdline(p):
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _kill_node_when_busy(head, node, proc, out, run_id):
    """Once the command `proc` has checkpointed a chunk and `node` runs one, SIGKILL every
    process of the node (its raylet, agents and workers): a node lost mid-run."""
    wait_for_checkpoints(proc, out, run_id, 1, timeout=240, poll=0.02)
    deadline = time.time() + 120
    while not _busy_chunks(node) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert _busy_chunks(node), "the second node ran no chunk"
    processes = [psutil.Process(node.pid), *psutil.Process(node.pid).children(recursive=True)]
    _kill_tree(processes)
    node.wait(timeout=30)


def _tables(out, run_id, names):
    return {t: pl.read_parquet(Path(out) / t / f"run_id={run_id}" / "part-0.parquet") for t in names}


def _assert_same(a, b, names):
    for name in names:
        assert_frame_equal(a[name].drop("run_id"), b[name].drop("run_id"), check_exact=True)


def test_a_node_killed_mid_run_and_mid_study_changes_no_table(head, tmp_path):
    """Two raylets (the head and a second node, one CPU each); the second node is killed while
    it runs a chunk, once during a run and once during a study: Ray re-runs the lost tasks on
    the head and the tables equal an undisturbed local run's. The drivers attach with the
    cluster's token, from RAY_AUTH_TOKEN (the run) and from RAY_AUTH_TOKEN_PATH (the study)."""
    token_file = tmp_path / "token"
    token_file.write_text(head.token)
    study = tmp_path / "s.toml"
    study.write_text(f'name = "node loss"\nscenario = "{BENCH_120}"\nepisodes = 8000\nseed = 9\n'
                     '[design]\nsampler = "lhs"\nsamples = 4\n'
                     '[[inputs]]\npath = "budget"\nlow = 0\nhigh = 900\n'
                     '[[variants]]\nname = "no venues"\nset = { "mechanisms.venues" = false }\n')
    commands = {
        "run": (["run", str(BENCH_120), "--episodes", "30000", "--seed", "11"],
                _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head.token)),
        "study": (["study", str(study)], _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))),
    }
    nodes = [head.add_node()]
    for kind, (args, env) in commands.items():
        out = tmp_path / kind
        head.wait_for_cpus(2)  # else the driver sizes its tasks to the head's one CPU
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args, "--chunk-size", "1000",
                                 "--ray-address", head.address, "--workers", "2", "--out", str(out),
                                 "--run-id", kind, "--quiet"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _kill_node_when_busy(head, nodes.pop(), proc, out, kind)
        if kind == "run":  # the study's second node starts while the run finishes
            starting = threading.Thread(target=lambda: nodes.append(head.add_node()))
            starting.start()
        _, err = proc.communicate(timeout=300)
        if kind == "run":
            starting.join()
        assert proc.returncode == 0 and "Traceback" not in err, err
        if kind == "run":
            clean = pivotal.forecast(BENCH_120, episodes=30000, chunk_size=1000, seed=11, progress=False)
            names = NUMBERS
        else:
            clean = pivotal.study(study, chunk_size=1000, progress=False)
            names = NUMBERS + STUDY_TABLES
        assert _tables(out, kind, ["runs"])["runs"]["executor"].item() == "ray"
        _assert_same(_tables(out, kind, names), clean.tables, names)


def test_ray_job_submit_runs_a_study_on_the_cluster(head, tmp_path):
    """docs/CLUSTER.md's `ray job submit -- pivotal study ...` against the head (the installed
    `pivotal` command, the cluster's token in the environment): the job succeeds and its tables
    equal a local run's."""
    study = tmp_path / "s.toml"
    study.write_text(f'name = "as a job"\nscenario = "{TUTORIAL}"\nepisodes = 2000\nseed = 4\n'
                     '[design]\nsampler = "lhs"\nsamples = 3\n'
                     '[[inputs]]\npath = "budget"\nlow = 50\nhigh = 600\n')
    out = tmp_path / "forecasts"
    submit = subprocess.run(
        [RAY, "job", "submit", "--address", f"http://127.0.0.1:{head.dashboard}", "--",
         "pivotal", "study", str(study), "--out", str(out), "--run-id", "job-1", "--quiet"],
        env=_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head.token), capture_output=True, text=True,
        timeout=300)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    assert re.search(r"Job 'raysubmit_\w+' succeeded", submit.stdout), submit.stdout
    runs = _tables(out, "job-1", ["runs"])["runs"]
    assert runs["executor"].item() == "ray"  # RAY_ADDRESS, set inside the job, chose Ray
    clean = pivotal.study(study, progress=False)
    names = NUMBERS + ("design", "sensitivity")  # (no variants: no comparisons)
    _assert_same(_tables(out, "job-1", names), clean.tables, names)
