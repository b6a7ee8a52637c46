"""Restarts and absent centres, end to end in one process: the real ServerApp logic and
the real ClientApp over ``simulations.direct_grid`` (no Ray, no SuperLink)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import pytest
from flwr.app import Message
from flwr.supercore.logger import FLOWER_LOGGER

from client.federation.app import app as client_app
from client.privacy.ledger import PrivacyLedger
from common.config import RunConfig
from common.records.trail import read_trail, verify_trail
from server.federation import checkpoint
from server.federation.checkpoint import ResumeError
from server.federation.rounds import FederationStopped
from server.federation.run import run_federation
from simulations.direct_grid import DirectGrid
from tests.server.conftest import small_network

CENTRES = 3
FLOWER_LOGGER.setLevel(logging.WARNING)


class ServerCrash(Exception):
    """The ServerApp process dies."""


class CrashingGrid(DirectGrid):
    """Dies right after the centres answered round ``crash_round``'s training."""

    crash_round = 2

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        ids = super().push_messages(messages)
        first = messages[0]
        round_ = int(first.content["config"]["server-round"])  # type: ignore[arg-type, index]
        if first.metadata.message_type == "train" and round_ == self.crash_round:
            raise ServerCrash
        return ids


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_network(tmp_path_factory.mktemp("centres"), CENTRES, 1800, 5)


def _config(run_dir: Path, data_dir: Path, **values: object) -> RunConfig:
    flat = {"scenario": "resume-test", "rounds": 3, "local_epochs": 1, "min_centres": 2,
            "training.hidden": "16", "run_dir": str(run_dir), "data_dir": str(data_dir),
            "min_centres_wait": 0.3, **values}
    return RunConfig.from_flat(flat)


def _run(grid_type: type[DirectGrid], config: RunConfig, run_id: int) -> DirectGrid:
    grid = grid_type(client_app, CENTRES, dict(config.to_flat()), run_id)
    run_federation(grid, config)
    return grid


def _summary(run_dir: Path) -> dict[str, object]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


@pytest.mark.federation
def test_a_run_whose_server_died_resumes_and_spends_nothing_twice(tmp_path, data_dir) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(ServerCrash):
        _run(CrashingGrid, _config(run_dir, data_dir), run_id=1)
    assert checkpoint.load(run_dir).round == 1  # type: ignore[union-attr]

    _run(DirectGrid, _config(run_dir, data_dir, resume=True), run_id=2)

    summary = _summary(run_dir)
    assert summary["rounds_completed"] == 3 and summary["stopped"] is None
    assert summary["epsilon_train_max"] <= summary["epsilon_target"] + 1e-9  # type: ignore[operator]
    rounds = [json.loads(line)["round"] for line in (run_dir / "rounds.jsonl").open()]
    assert rounds == [1, 2, 3]
    for centre in range(CENTRES):
        state = run_dir / "state" / f"centre-{centre}"
        booked = [r.server_round for r in PrivacyLedger(state).releases()
                  if r.kind == "train" and r.sample_rate < 1]
        assert booked == [1, 2, 3]  # round 2 was asked twice, trained and booked once
        events = read_trail(state / "audit.jsonl")
        resent = [e["round"] for e in events if e["event"] == "reply_sent" and e["resent"]]
        assert resent == [2]
        assert verify_trail(state / "audit.jsonl") == []
    server_events = [e["event"] for e in read_trail(run_dir / "audit.jsonl")]
    assert server_events[0] == "run_started" and "run_resumed" in server_events
    assert server_events[-1] == "run_finished" and verify_trail(run_dir / "audit.jsonl") == []


@pytest.mark.federation
def test_resuming_with_another_configuration_is_refused_in_one_sentence(
    tmp_path, data_dir
) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(ServerCrash):
        _run(CrashingGrid, _config(run_dir, data_dir), run_id=1)

    with pytest.raises(ResumeError) as info:
        _run(DirectGrid, _config(run_dir, data_dir, resume=True, **{"privacy.epsilon": 1.0}),
             run_id=2)

    message = str(info.value)
    assert "privacy.epsilon" in message and message.endswith(".") and "\n" not in message
    assert _summary(run_dir)["stopped"] == message


@pytest.mark.federation
def test_a_round_goes_on_without_a_centre_that_died_mid_run(tmp_path, data_dir) -> None:
    run_dir = tmp_path / "run"

    class DyingCentre(DirectGrid):
        def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
            messages = list(messages)
            if int(messages[0].content["config"]["server-round"]) == 2:  # type: ignore[arg-type, index]
                self.silence(0)
            return super().push_messages(messages)

    _run(DyingCentre, _config(run_dir, data_dir), run_id=1)

    summary = _summary(run_dir)
    assert summary["rounds_completed"] == 3 and summary["rounds_unchanged"] == 0
    lines = [json.loads(line) for line in (run_dir / "rounds.jsonl").open()]
    assert [r["updates"] for r in lines] == [3, 2, 2]
    assert lines[1]["absent"] == ["node 1001 (train): no reply within 3600 s"]
    absences = [e for e in read_trail(run_dir / "audit.jsonl") if e["event"] == "centre_absent"]
    assert {(e["round"], e["node"]) for e in absences} == {(2, 1001), (3, 1001)}


@pytest.mark.federation
def test_below_the_minimum_the_run_stops_cleanly_then_resumes(tmp_path, data_dir) -> None:
    run_dir = tmp_path / "run"
    config = _config(run_dir, data_dir, min_centres=3)

    class CentreLeaves(DirectGrid):
        def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
            ids = super().push_messages(messages)
            self.disconnect(2)  # gone after round 1's first phase
            return ids

    with pytest.raises(FederationStopped) as info:
        _run(CentreLeaves, config, run_id=1)

    assert str(info.value).startswith("Only 2 of the 3 centres needed")
    summary = _summary(run_dir)
    assert summary["rounds_completed"] == 1 and summary["stopped"] == str(info.value)
    assert checkpoint.load(run_dir).round == 1  # type: ignore[union-attr]

    _run(DirectGrid, _config(run_dir, data_dir, min_centres=3, resume=True), run_id=2)

    assert _summary(run_dir)["rounds_completed"] == 3


def test_a_second_serverapp_on_the_same_run_folder_is_refused(tmp_path, data_dir) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    with checkpoint.run_folder_lock(run_dir), pytest.raises(ResumeError) as info:
        _run(DirectGrid, _config(run_dir, data_dir, resume=True), run_id=2)

    assert str(info.value).startswith("Another ServerApp is running the run in")


class AuditCrashGrid(DirectGrid):
    """Dies at the audit's exchange, after the final round's evaluation: before its
    instructions reach the centres, or (``after_push``) once they answered."""

    after_push = False

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        audit = messages[0].content["config"].get("phase") == "audit"  # type: ignore[union-attr]
        if audit and not self.after_push:
            raise ServerCrash
        ids = super().push_messages(messages)
        if audit:
            raise ServerCrash
        return ids


@pytest.mark.federation
@pytest.mark.parametrize("after_push", [False, True])
def test_a_run_that_died_before_its_audit_resumes_into_it(tmp_path, data_dir,
                                                          after_push) -> None:
    """The checkpoint after the final round says the audit is pending: the resumed run
    does only the audit's exchange, with the same request (the same final histogram, the
    same recalibration); a centre that already answered it resends its reply, so
    nobody books the audit twice."""
    run_dir = tmp_path / "run"
    grid_type = type("Crash", (AuditCrashGrid,), {"after_push": after_push})
    with pytest.raises(ServerCrash):
        _run(grid_type, _config(run_dir, data_dir), run_id=1)
    state = checkpoint.load(run_dir)
    assert state is not None and state.round == 3 and not state.audited
    _run(DirectGrid, _config(run_dir, data_dir, resume=True), run_id=2)
    assert checkpoint.load(run_dir).audited  # type: ignore[union-attr]
    equity = json.loads((run_dir / "equity.json").read_text())
    assert equity["threshold"] == pytest.approx(0.3, abs=1e-9) and equity["groups"]
    for centre in range(CENTRES):
        folder = run_dir / "state" / f"centre-{centre}"
        audits = [r for r in PrivacyLedger(folder).releases()
                  if r.kind == "evaluate" and r.server_round == 4]
        assert len(audits) == 1  # booked once
        events = read_trail(folder / "audit.jsonl")
        resent = [e for e in events if e["event"] == "reply_sent" and e.get("resent")
                  and e["kind"] == "audit"]
        assert len(resent) == (1 if after_push else 0)
    rounds = [json.loads(line)["round"] for line in (run_dir / "rounds.jsonl").open()]
    assert rounds == [1, 2, 3]
