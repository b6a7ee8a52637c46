"""Faults on loopback, with the real SuperLink, SuperNodes, TLS and nginx: a SuperNode
killed in the middle of round 1, then the ServerApp killed in the middle of round 2 and
the run resumed from its checkpoint as a new Flower run. One federation for both (its
start costs half a minute); each test checks one behaviour of the outcome."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from client.privacy.ledger import PrivacyLedger
from common.config import RunConfig
from common.records.trail import read_trail, verify_trail
from simulations.loopback.restart import LoopbackFederation
from simulations.network import generate_network, write_network
from tests.deploy.conftest import processes_mentioning

pytestmark = pytest.mark.slow
STEP_TIMEOUT = 240.0


@dataclass
class Outcome:
    run_dir: Path
    work: Path
    victim: str
    victim_node: int
    live: list[str]
    first_status: str
    second_status: str
    killed_serverapp: list[int]
    seconds: float


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _events(path: Path, event: str, **match: object) -> list[dict[str, object]]:
    return [e for e in read_trail(path)
            if e["event"] == event and all(e.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="module")
def outcome(nginx: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    base = tmp_path_factory.mktemp("resilience")
    run_dir, work = base / "run", base / "work"
    files = write_network(generate_network(centres=3, students=6000, seed=11), run_dir / "data")
    # Seeded noise (the centres' policy accepts it, the run asks for it): with fresh noise
    # the smallest centre (kativik, 156 training records) is refused on its noisy released
    # size (std 50, below the default min_records 50) in 1.4 % of runs, and round 1 then
    # has one update, not the two the tests expect.
    (run_dir / "data" / "policy.toml").write_text("[privacy]\nallow_replayable_noise = true\n",
                                                  encoding="utf-8")
    started = time.monotonic()
    with LoopbackFederation(files, run_dir, work, echo=lambda line: None) as federation:
        config = RunConfig.from_flat({
            "scenario": "resilience", "rounds": 2, "local_epochs": 1, "min_centres": 2,
            "run_dir": str(run_dir), "round_timeout": 45.0,
            # No progress evaluation: round 1's would wait the timeout again for the
            # killed centre, which stays "online" to Flower for about a minute.
            "evaluation.progress_every": 0,
            "privacy.reproducible_noise": True,
        })
        centre_log = {c: work / "state" / "centres" / c / "audit.jsonl"
                      for c in federation.centres}
        victim, *live = federation.centres
        first = federation.submit(config)

        # A SuperNode dies while it trains in round 1 (it stays "online" ~60 s for Flower).
        _wait(lambda: bool(_events(centre_log[victim], "task_received", kind="train")),
              f"{victim} to receive round 1")
        federation.kill_centre(victim)

        # The ServerApp dies in round 2, after the live centres answered its training.
        _wait(lambda: all(_events(centre_log[c], "reply_sent", kind="train", round=2)
                          for c in live), "the round 2 updates")
        killed = federation.kill_serverapp()
        second = federation.submit(replace(config, resume=True))
        second_status = federation.follow(second, timeout=STEP_TIMEOUT)
        first_status = federation.status(first)
    inventory = json.loads((work / "inventory.json").read_text())["centres"]
    node = next(int(e["node_id"]) for e in inventory if e["centre"] == victim)
    return Outcome(run_dir, work, victim, node, live, first_status, second_status, killed,
                   time.monotonic() - started)


def _rounds(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "rounds.jsonl").open()]


def test_a_round_goes_on_without_a_supernode_killed_mid_round(outcome: Outcome) -> None:
    first = _rounds(outcome.run_dir)[0]

    assert first["round"] == 1 and first["updates"] == 2
    assert any(f"node {outcome.victim_node} (train)" in a for a in first["absent"])  # type: ignore[union-attr]
    absences = _events(outcome.run_dir / "audit.jsonl", "centre_absent", round=1)
    assert [e["node"] for e in absences] == [outcome.victim_node]


def test_a_killed_serverapp_is_resumed_to_completion_as_a_new_run(outcome: Outcome) -> None:
    summary = json.loads((outcome.run_dir / "summary.json").read_text())

    assert outcome.killed_serverapp, "a ServerApp process should have been killed"
    assert outcome.second_status == "finished:completed"
    assert outcome.first_status != "finished:completed"
    assert summary["rounds_completed"] == 2 and summary["stopped"] is None
    assert [r["round"] for r in _rounds(outcome.run_dir)] == [1, 2]
    events = [e["event"] for e in read_trail(outcome.run_dir / "audit.jsonl")]
    assert events[0] == "run_started" and "run_resumed" in events
    assert events[-1] == "run_finished"
    assert verify_trail(outcome.run_dir / "audit.jsonl") == []


def test_the_resumed_round_was_booked_once_and_sent_again_from_the_ledgered_reply(
    outcome: Outcome,
) -> None:
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["epsilon_train_max"] <= summary["epsilon_target"] + 1e-9
    for centre in outcome.live:
        state = outcome.work / "state" / "centres" / centre
        booked = [r.server_round for r in PrivacyLedger(state).releases()
                  if r.run_id == summary["run_name"] and r.kind == "train"
                  and r.sample_rate < 1]
        assert booked == [1, 2], centre
        resent = _events(state / "audit.jsonl", "reply_sent", kind="train", resent=True)
        assert [e["round"] for e in resent] == [2], centre
        assert verify_trail(state / "audit.jsonl") == []


def test_nothing_is_left_running(outcome: Outcome) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(str(outcome.work)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(str(outcome.work)) == []
    print(f"resilience federation: {outcome.seconds:.0f} s")
