"""A hostile centre forges another centre's name: the ministry names a reply's centre by
the node that sent it (``server.federation.identity``), never by what the reply says.

Real federations (the ClientApp and the ServerApp over ``simulations.direct_grid``),
with one centre's replies rewritten by a ClientApp mod: the forged replies are rejected
and logged, the honest centre's records still verify, and a refusal naming another
centre is filed under its sender."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.error import Error
from flwr.supercore.logger import FLOWER_LOGGER

import tests.server.messages  # noqa: F401  (sets the task identity messages need)
from client.federation.app import build_client_app
from common import protocol
from common.config import RunConfig
from common.protocol import Reason, Reply, refusal_text
from common.records.trail import read_trail
from server.audit_verify import verify_run
from server.federation.audit_log import KEY_ENV
from server.federation.identity import CentreIdentities
from server.federation.rounds import GridView
from server.federation.run import run_federation
from server.federation.secure import _failures as failures
from simulations.direct_grid import FIRST_NODE_ID, DirectGrid
from simulations.network import generate_network, write_network

FLOWER_LOGGER.setLevel(logging.WARNING)
Next = Callable[[Message, Context], Message]
FORGER, VICTIM = 2, 0  # partitions: the hostile centre, the centre whose name it takes


@pytest.fixture(autouse=True)
def _ministry_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "ministry-secrets" / "ministry.key"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("centres")
    write_network(generate_network(centres=3, students=3000, seed=5), folder)
    # Every centre takes part in every round: whether a small centre does is decided on its
    # noisy released size (issue 26), which would make the replies to reject a draw.
    (folder / "policy.toml").write_text("min_records = 0\n", encoding="utf-8")
    return folder


def name_of(data: Path, partition: int) -> str:
    """The name a simulated centre declares: its data file's (in name order)."""
    return sorted(path.stem for path in data.glob("*.parquet"))[partition]


def actor_of(partition: int) -> str:
    """The actor of a simulated centre's records: its state folder's name."""
    return f"centre-{partition}"


def first_train(msg: Message) -> bool:
    """Round 1's training instruction: every centre declares its own name there first."""
    config = msg.content.config_records.get(protocol.CONFIG, ConfigRecord())
    return msg.metadata.message_type == "train" and \
        int(config.get(protocol.SERVER_ROUND, 1)) == 1  # type: ignore[arg-type]


def run(tmp_path: Path, data: Path, mod: Callable[[Message, Context, Next], Message]) -> Path:
    folder = tmp_path / "run"
    config = RunConfig.from_flat({"scenario": "identity-test", "rounds": 2, "local_epochs": 1,
                                  "min_centres": 2, "training.hidden": "8",
                                  "run_dir": str(folder), "data_dir": str(data),
                                  "min_centres_wait": 0.3})
    app = build_client_app([mod])
    run_federation(DirectGrid(app, 3, dict(config.to_flat()), 1), config)
    return folder


def forging_heads(victim: str, actor: str) -> Callable[[Message, Context, Next], Message]:
    """After round 1's training, the forger's replies carry the victim's name and a
    made-up head of its records."""
    fake = {"actor": actor, "audit_head": "0" * 64, "audit_lines": 999,
            "ledger_head": "0" * 64, "ledger_rows": 999}

    def mod(msg: Message, context: Context, call_next: Next) -> Message:
        reply = call_next(msg, context)
        if context.node_config["partition-id"] != FORGER or reply.has_error() or \
                first_train(msg):
            return reply
        reply.content[protocol.CENTRE] = ConfigRecord({protocol.CENTRE_NAME: victim})
        reply.content[protocol.RECORDS_HEAD] = ConfigRecord(fake)  # type: ignore[arg-type]
        return reply

    return mod


def events(folder: Path, name: str) -> list[dict[str, object]]:
    return [e for e in read_trail(folder / "audit.jsonl") if e["event"] == name]


@pytest.mark.federation
def test_a_forged_name_and_head_are_rejected_and_the_victim_s_records_verify(
        tmp_path: Path, data: Path) -> None:
    victim, actor, forger_node = name_of(data, VICTIM), actor_of(VICTIM), FIRST_NODE_ID + FORGER

    folder = run(tmp_path, data, forging_heads(victim, actor))

    problems, _ = verify_run(folder)
    assert problems == [], [p.sentence() for p in problems]
    rejected = events(folder, "identity_rejected")
    assert rejected and {e["node"] for e in rejected} == {forger_node}
    assert all(e["declared"] == victim for e in rejected)
    assert {e["phase"] for e in rejected} == {"train", "evaluate"}  # the audit: "evaluate"
    # The victim's anchors all come from the victim's node; none of the forger's forged
    # replies was aggregated or anchored.
    anchors = events(folder, "centre_records")
    assert {e["node"] for e in anchors if e["actor"] == actor} == {FIRST_NODE_ID + VICTIM}
    assert {(e["round"], e["phase"], e["actor"]) for e in anchors if e["node"] == forger_node} \
        == {(1, "train", actor_of(FORGER))}
    assert forger_node not in {e["node"] for e in events(folder, "update_accepted")
                               if e["round"] > 1}  # round 1's training is honest
    rounds = [json.loads(line) for line in (folder / "rounds.jsonl").read_text().splitlines()]
    assert any(f"node {forger_node}" in r for r in rounds[-1]["rejections"])


def refusing_as(victim: str) -> Callable[[Message, Context, Next], Message]:
    """The forger trains honestly in round 1, then refuses for good in the victim's name."""
    def mod(msg: Message, context: Context, call_next: Next) -> Message:
        if context.node_config["partition-id"] != FORGER or first_train(msg):
            return call_next(msg, context)
        return Message(Error(code=int(Reply.FLOOR),
                             reason=refusal_text(victim, Reason.FLOOR_EPSILON)), reply_to=msg)

    return mod


@pytest.mark.federation
def test_a_refusal_naming_another_centre_is_filed_under_its_sender(
        tmp_path: Path, data: Path) -> None:
    victim, forger = name_of(data, VICTIM), name_of(data, FORGER)

    folder = run(tmp_path, data, refusing_as(victim))

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["centres_refused"] == {forger: Reason.FLOOR_EPSILON}
    # The forged refusals (the small centres may also decline a round on their noisy
    # released size, issue 26: those are their own, under their own names).
    refusals = [e for e in events(folder, "centre_refused")
                if str(Reason.FLOOR_EPSILON) in str(e["reason"])]
    assert refusals and all(e["centre"] == forger for e in refusals)
    rejected = events(folder, "identity_rejected")
    assert rejected and all(e["node"] == FIRST_NODE_ID + FORGER and e["declared"] == victim
                            for e in rejected)


def test_without_an_inventory_a_node_keeps_its_first_names_and_no_other_takes_them() -> None:
    identities = CentreIdentities()
    assert identities.check(7, "css-a", "centre-0") is None
    assert identities.check(7, "css-a", "centre-0") is None

    assert "already declared by node 7" in str(identities.check(8, "css-a", "centre-1"))
    assert "already declared by node 7" in str(identities.check(8, "css-b", "centre-0"))
    assert "node 7 declared css-a" in str(identities.check(7, "css-b", ""))
    assert identities.of(7) == "css-a" and identities.actor(7) == "centre-0"
    assert identities.of(8) == "node 8"  # its rejected declarations bound nothing


def test_with_an_inventory_a_node_is_its_enrolled_centre() -> None:
    identities = CentreIdentities({7: "css-a", 8: "css-b"})
    # Data files' names may repeat between centres; enrolled names cannot be taken.
    assert identities.check(7, "extract", "extract") is None
    assert identities.check(8, "extract", "extract") is None
    assert "enrolled with another node's key" in str(identities.check(8, "css-a", ""))
    assert identities.check(8, "css-b", "") is not None  # it declared "extract" first
    assert (identities.of(8), identities.actor(8)) == ("css-b", "css-b")


def test_an_error_of_the_secure_path_is_named_by_the_node_that_sent_it() -> None:
    refusal = Error(code=int(Reply.FLOOR), reason=refusal_text("css-a", Reason.FLOOR_EPSILON))
    reply = Message(refusal, reply_to=Message(RecordDict(), 1003, "train"))
    reply.metadata.__dict__["_src_node_id"] = 1003

    class Grid(DirectGrid):
        def __init__(self) -> None:
            pass

        def send_and_receive(self, messages: Iterable[Message], *,
                             timeout: float | None = None) -> Iterable[Message]:
            return [reply]

    view = GridView(Grid())
    list(view.send_and_receive([]))
    # Flower's SecAgg+ workflow keeps only Exception(msg.error).
    assert failures([Exception(reply.error)], view.sender) == [
        (1003, int(Reply.FLOOR), refusal.reason)]
    assert view.sender(Error(code=1, reason="x")) is None
