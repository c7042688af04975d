"""The Ray job path of docs/NIGHTLY.md: `ray job submit -- python -m engine.cli suite ...` against a
local Ray head started here (one CPU, its own ports and temporary directory). The head runs under
`ray start --block` in its own process group, which the test ends by id (not `ray stop`, which
would stop every Ray instance of this user on a shared machine)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
RAY = Path(sys.executable).parent / "ray"


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for_dashboard(url, head, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if head.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return True
        except urllib.error.HTTPError:  # it answers (e.g. 401 where token authentication is on)
            return True
        except OSError:
            time.sleep(0.5)
    return False


@pytest.fixture
def ray_head():
    if not RAY.exists():
        pytest.skip("the ray command is not installed (pip install 'pivotal[ray]')")
    temp = tempfile.mkdtemp(prefix="pvray", dir="/tmp")  # short: Ray's socket paths must fit
    gcs, dash, client, agent, agent_grpc, node, objects, metrics, runtime_env = free_ports(9)
    # Ray >= 2.5x turns token authentication on; this head listens on 127.0.0.1 only, for this test
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT),
                                                                         "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=1", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--node-manager-port={node}", f"--object-manager-port={objects}", f"--metrics-export-port={metrics}",
         f"--runtime-env-agent-port={runtime_env}", f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        if not wait_for_dashboard(url, head):
            pytest.skip("the Ray dashboard (job server) did not start on this machine")
        yield url, env
    finally:
        _end(head, temp)


def _end(head, temp):
    """Stop the head's process group, then any process still running from its temporary directory."""
    import psutil

    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for p in psutil.process_iter(["cmdline"]):
        if any(temp in part for part in (p.info["cmdline"] or [])):
            try:
                p.kill()
            except psutil.Error:
                pass
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_the_suite_on_the_cluster(ray_head, tmp_path):
    url, env = ray_head
    (tmp_path / "suite.toml").write_text(f'name = "ray-night"\n[defaults]\nepisodes = 20000\nchunk_size = 5000\n\n'
                                         f'[[items]]\nscenario = "{TUTORIAL}"\n')
    out = tmp_path / "out"
    job = subprocess.run(
        [str(RAY), "job", "submit", "--address", url,
         "--runtime-env-json", json.dumps({"env_vars": {"PYTHONPATH": str(ROOT)}}), "--",
         sys.executable, "-m", "engine.cli", "suite", str(tmp_path / "suite.toml"), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "1 run, 0 reused, 0 failed" in job.stdout
    rows = pl.read_parquet(next((out / "_suite" / "suite_runs").glob("*/part-0.parquet")))
    assert rows["status"].to_list() == ["complete"]
    runs = pl.read_parquet(out / "runs" / f"run_id={rows['run_id'][0]}" / "part-0.parquet")
    assert runs["executor"].to_list() == ["ray"]  # inside a Ray job the chunks ran as Ray tasks
