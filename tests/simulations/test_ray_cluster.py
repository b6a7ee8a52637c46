"""The simulation on an existing Ray cluster (``backend.address``) gives the in-process
result: a real local cluster on 127.0.0.1, started and stopped by this test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.processes import pids_mentioning
from tests.simulations.conftest import TINY_RUN, TinyRun

BIN = Path(sys.executable).parent
SIM, RAY = BIN / "perseverance-sim", BIN / "ray"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the Ray head did not listen on port {port} within {timeout} s")


def _stop(head: subprocess.Popen[bytes], temp_dir: Path) -> None:
    """Stop what this test started, by process group and then by PID (never by name:
    ``ray stop`` would stop every Ray on the machine)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=10)
    deadline = time.monotonic() + 20
    while (left := pids_mentioning(str(temp_dir))) and time.monotonic() < deadline:
        late = time.monotonic() > deadline - 10
        for pid in left:  # workers the cluster's raylet started for this test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
        time.sleep(1)


def _run(out: Path, env: dict[str, str], *extra: str) -> dict[str, object]:
    proc = subprocess.run([str(SIM), "run", *TINY_RUN, *extra, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads((out / "summary.json").read_text()))


@pytest.mark.slow
def test_a_run_on_an_existing_ray_cluster_gives_the_in_process_result(
    tmp_path: Path, tiny_run: TinyRun
) -> None:
    port = _free_port()
    temp_dir = Path(f"/tmp/prs-cluster-{os.getpid()}")  # short: Ray's socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0",
           "FLWR_HOME": str(tmp_path / "flwr"), "RAY_TMPDIR": str(temp_dir)}
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", f"--temp-dir={temp_dir}", "--include-dashboard=false",
         "--disable-usage-stats"],
        env=env, stdout=(tmp_path / "head.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, timeout=120)
        on_cluster = _run(tmp_path / "cluster", env, "--set", f"backend.address=127.0.0.1:{port}")
        assert pids_mentioning(str(temp_dir)), "the cluster should still be running"
    finally:
        _stop(head, temp_dir)
    assert pids_mentioning(str(temp_dir)) == []
    # The same run in-process: the shared tiny run (conftest.py), same overrides.
    assert tiny_run.proc.returncode == 0, tiny_run.proc.stderr[-3000:]
    in_process = json.loads((tiny_run.out / "summary.json").read_text())

    assert on_cluster["rounds_completed"] == in_process["rounds_completed"] == 2
    assert on_cluster["auc_pooled"] == pytest.approx(in_process["auc_pooled"], abs=1e-6)
    assert on_cluster["epsilon_max"] == pytest.approx(in_process["epsilon_max"])
    cluster_model = torch.load(tmp_path / "cluster" / "model.pt", weights_only=True)
    local_model = torch.load(tiny_run.out / "model.pt", weights_only=True)
    for key, value in local_model["state_dict"].items():
        torch.testing.assert_close(cluster_model["state_dict"][key], value, rtol=1e-5,
                                   atol=1e-6)
