"""Ray clusters with token authentication (Ray 2.60's default, docs/CLUSTER.md): a driver without
the cluster's token, or with another, fails in one line that says what to set; with the token
it attaches and runs."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "configs" / "scenarios" / "tutorial.toml"
TOKEN = "pivotal0test0token0abcdef01234567"


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """A one-CPU Ray head with token authentication, in its own process group (stopped with it,
    leaving any other Ray of the test session alone)."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    ray_bin = Path(sys.executable).parent / "ray"
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", f"--temp-dir={tmp_path_factory.mktemp('ray')}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail("the token-authenticated Ray head did not start")
    time.sleep(2)  # the GCS listens before the head's raylet has registered
    yield f"127.0.0.1:{port}"
    os.killpg(head.pid, signal.SIGKILL)  # (`ray start --block` ignores SIGTERM for 30 s)
    head.wait(timeout=30)


def _pivotal(address, tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", str(TUTORIAL), "--episodes", "2000",
                           "--ray-address", address, "--out", str(tmp_path), "--quiet"],
                          cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("env,says", [
    ({}, "requires a token (token authentication) and this process has none"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not0the0token0000000000000000000"}, "rejected this process's token"),
])
def test_a_driver_without_the_token_fails_in_one_line_saying_what_to_set(token_head, tmp_path, env, says):
    done = _pivotal(token_head, tmp_path, **env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # no InvalidAuthToken retries logged, no traceback
    assert lines[0].startswith(f"pivotal: error: the Ray cluster at '{token_head}' {says}: set RAY_AUTH_MODE=token"), lines
    assert "RAY_AUTH_TOKEN" in lines[0] and "RAY_AUTH_TOKEN_PATH" in lines[0]
    assert not any(tmp_path.iterdir())  # nothing claimed


def test_a_driver_with_the_token_attaches_and_runs(token_head, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    done = _pivotal(token_head, tmp_path / "out", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "out" / "runs").glob("run_id=*/part-0.parquet"))
