"""End to end on loopback: `perseverance-sim dev-federation` with the real SuperLink,
SuperNodes, TLS, SuperNode authentication and nginx; and nothing left running after it,
whether it succeeds or is interrupted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.deploy.conftest import processes_mentioning
from tests.simulations.test_quiet_terminal import assert_french_and_plain

pytestmark = pytest.mark.slow
CLI_TIMEOUT = 480.0


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "perseverance-sim"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from simulations.cli import main; main()"]


def _kill_what_the_launcher_started(work: Path) -> None:
    """When the test fails, the programs the launcher started in ``work`` must not
    outlive it: stop them by PID (the launcher itself no longer can)."""
    for line in processes_mentioning(str(work)):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def _no_process_left(marker: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(str(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(str(marker)) == []


def test_three_centres_complete_a_round_over_tls_and_authentication(
    nginx: str, tmp_path: Path
) -> None:
    run_dir, work = tmp_path / "run", tmp_path / "work"
    started = time.monotonic()
    # Flower's home as a user's shell may set it: the launcher's SuperLink gets a fresh one
    # of its own, but the ministry's key stays the one `audit verify` reads.
    env = {**{k: v for k, v in os.environ.items() if k != "PERSEVERANCE_MINISTRY_KEY"},
           "FLWR_HOME": str(tmp_path / "flwr-home")}

    result = subprocess.run(
        [*_cli(), "dev-federation", "--centres", "3", "--rounds", "1",
         "--out", str(run_dir), "--work", str(work)],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False, env=env,
    )
    verified = subprocess.run(
        [str(Path(sys.executable).parent / "perseverance-server"), "audit", "verify",
         str(run_dir)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        check=False)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # French, one line per phase and the ServerApp's round lines only: Flower's log lines
    # stay in logs/run.log (issue 28).
    assert_french_and_plain(result.stdout + result.stderr)
    assert "Démarrage des centres (3) et attente de leur connexion" in result.stderr
    # Every wait is said as it begins: the launcher's imports first, then building the FAB.
    assert result.stderr.startswith("Chargement de torch, d'Opacus et de Flower…\n")
    assert "Construction du paquet de l'application (FAB) et calcul de son SHA-256…" in (
        result.stderr)
    assert "INFO" in (run_dir / "logs" / "run.log").read_text(encoding="utf-8")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds_completed"] == 1 and summary["num_centres"] == 3
    assert summary["deployment"] == "loopback" and 0.5 <= summary["auc_centralized"] <= 1.0
    assert 0 < summary["wall_seconds"] <= time.monotonic() - started
    assert len(summary["round_seconds"]) == 1 and summary["round_seconds"][0] > 0
    model = torch.load(run_dir / "model.pt", weights_only=False)
    assert model["state_dict"] and model["run_config"]["rounds"] == 1
    inventory = json.loads((work / "inventory.json").read_text())["centres"]
    assert len(inventory) == 3 and all(e["fingerprint"].startswith("SHA256:") for e in inventory)
    assert "ronde 1/1" in result.stdout  # the ServerApp speaks the command's language
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr
    _every_centre_ran_the_app_it_approved(run_dir / "logs", work / "state" / "centres")
    _no_process_left(work)
    _only_allowed_content_left_the_centres(work / "state" / "centres", model["state_dict"])


def _every_centre_ran_the_app_it_approved(logs: Path, centres: Path) -> None:
    """The centres' own runtime ran the project's app because it was on their list."""
    from common.app_approval import read_approved

    for folder in sorted(p for p in centres.iterdir() if p.is_dir()):
        (approved,) = read_approved(folder)
        log = (logs / f"clientapp-executor-{folder.name}.log").read_text()
        assert f"app {approved.fab_hash} is approved" in log and "Refused" not in log


def _only_allowed_content_left_the_centres(centres: Path, state_dict: dict) -> None:
    """Every reply each centre sent, as its own audit log records it: the model's arrays
    (names and shapes) and aggregate metrics only; and each release booked first."""
    from client.privacy.ledger import PrivacyLedger
    from common.equity.audit import all_cell_keys

    allowed = {"num-examples", "epsilon", "hist_pos", "hist_neg", "prob_sum",
               "sq_err_sum", *all_cell_keys()}
    shapes = {name: list(tensor.shape) for name, tensor in state_dict.items()}
    folders = sorted(p for p in centres.iterdir() if p.is_dir())
    assert len(folders) == 3
    for folder in folders:
        events = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
        sent = [e for e in events if e.get("event") == "reply_sent"]
        assert len(sent) == 3  # 1 round x (train + evaluate), then the audit
        for event in sent:
            assert set(event["metrics"]) <= allowed
            assert event["arrays"] in ({}, shapes)
        kinds = [r.kind for r in PrivacyLedger(folder).releases()]
        assert kinds.count("train") >= 1 and kinds.count("evaluate") >= 1


def test_ctrl_c_during_the_run_stops_every_process(nginx: str, tmp_path: Path) -> None:
    run_dir, work, output = tmp_path / "run", tmp_path / "work", tmp_path / "out.txt"
    with output.open("w") as sink:
        launcher = subprocess.Popen(
            [*_cli(), "--lang", "en", "dev-federation", "--centres", "2", "--rounds", "5",
             "--out", str(run_dir), "--work", str(work)],
            stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # "Submitted run" as it happens
            # As a background job of a script (CI) starts it: SIGINT inherited ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline = time.monotonic() + 180
        while "Submitted run" not in output.read_text() and launcher.poll() is None:
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        assert processes_mentioning(str(work)), "the federation should be running"

        # Ctrl-C, pressed again every 10 s while the launcher still runs: a loaded machine
        # can deliver the first one while the launcher has SIGINT masked (starting or
        # stopping a program), as a person would then press it again.
        deadline = time.monotonic() + 180
        code = None
        while code is None and time.monotonic() < deadline:
            launcher.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = launcher.wait(timeout=10)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            _kill_what_the_launcher_started(work)

    assert code == 130, output.read_text()
    assert "interrupted" in output.read_text()
    _no_process_left(work)
