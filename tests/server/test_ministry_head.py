"""The ministry's records outside its own reach: every instruction carries the head of
the ministry's audit log, each centre records it in its own log, and ``audit verify``
finds a ministry log rewritten since, even one re-keyed whole with the ministry's key
(which the ministry's own check cannot see)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from flwr.supercore.logger import FLOWER_LOGGER
from typer.testing import CliRunner

from client.cli import app as client_cli
from client.federation.app import app as client_app
from common.config import RunConfig
from common.records.chain import read_anchors, verify_centre
from common.records.key import read_key
from common.records.trail import RESERVED, AuditTrail, check_trail, read_trail
from server.audit_verify import verify_run
from server.federation.audit_log import AUDIT_FILE, KEY_ENV, ministry_key_path
from server.federation.run import run_federation
from simulations.direct_grid import DirectGrid
from simulations.network import generate_network, write_network

pytestmark = pytest.mark.federation  # an in-process federation: make test, not test-fast

FLOWER_LOGGER.setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _ministry_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "ministry-secrets" / "ministry.key"))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    data, folder = tmp_path / "centres", tmp_path / "run"
    write_network(generate_network(centres=2, students=2000, seed=5), data)
    config = RunConfig.from_flat({"scenario": "ministry-head", "rounds": 2, "local_epochs": 1,
                                  "min_centres": 2, "training.hidden": "8",
                                  "run_dir": str(folder), "data_dir": str(data),
                                  "min_centres_wait": 0.3})
    run_federation(DirectGrid(client_app, 2, dict(config.to_flat()), 1), config)
    return folder


def rewrite(log: Path, keep: object) -> None:
    """The ministry rewrites its log without the events ``keep`` refuses, re-keyed
    whole with its own key: its chain stays whole."""
    events = [e for e in read_trail(log) if keep(e)]
    log.unlink()
    trail = AuditTrail(log, "ministry", ministry_key_path())
    for event in events:
        # An anchor's actor is the centre's (it overrides the trail's).
        fields = {k: v for k, v in event.items() if k not in (*RESERVED, "event")
                  and (k, v) != ("actor", "ministry")}
        trail.record(str(event["event"]), **fields)


def test_the_centres_record_the_ministry_s_head_of_every_instruction(run: Path) -> None:
    ministry = read_trail(run / AUDIT_FILE)
    tasks = [e for e in read_trail(run / "state" / "centre-0" / "audit.jsonl")
             if e["event"] == "task_received"]
    assert tasks and all(isinstance(e["ministry_lines"], int) for e in tasks)
    for task in tasks:
        assert ministry[task["ministry_lines"] - 1]["mac"] == task["ministry_head"]
    assert verify_run(run)[0] == []


def test_a_rewritten_ministry_log_is_found_at_the_centres(run: Path) -> None:
    log = run / AUDIT_FILE
    rewrite(log, lambda e: not (e["event"] == "update_accepted" and e["round"] == 1))
    assert check_trail(log, read_key(ministry_key_path())).problems == []  # unseen alone

    check = verify_centre(run / "state" / "centre-0", anchors=read_anchors(run))
    assert check.problems and {p.path for p in check.problems} == {log}
    assert "0 ministry anchors" not in check.notes[0]
    assert any("rewritten" in p.reason for p in check.problems)
    problems, _ = verify_run(run)
    assert any(p.path == log for p in problems)
    result = CliRunner().invoke(client_cli, ["audit", "verify", "--state",
                                             str(run / "state" / "centre-1"), "--anchors",
                                             str(run), "--lang", "en"])
    assert result.exit_code == 4 and str(log) in result.stderr, result.stderr


def test_a_centre_compares_only_the_runs_of_the_log_it_is_given(run: Path,
                                                                 tmp_path: Path) -> None:
    other = tmp_path / "other-run.jsonl"
    trail = AuditTrail(other, "ministry", ministry_key_path())
    trail.record("run_started", run_name="another-run")
    trail.record("centre_records", actor="centre-0", node=1, round=1, phase="train")

    check = verify_centre(run / "state" / "centre-0", anchors=read_anchors(other))

    assert check.problems == [], json.dumps([p.sentence() for p in check.problems])
