"""The ministry's audit log: ``audit.jsonl`` in the run folder, append-only and chained
(``common.records.trail``). One line per event, with its UTC time:

- ``run_started`` / ``run_resumed`` / ``run_finished`` / ``run_stopped``: the run's
  logical name, Flower's run id, the aggregation mode, the round it starts from;
- ``centres_connected``: the node ids online before a round, who joined and who left;
- ``instructions_sent``: the round, the phase (train or evaluate), the nodes asked and
  the model version they were sent;
- ``update_accepted`` / ``update_rejected``: a centre's training update, its norm, and
  the reason of a rejection; ``evaluation_rejected``: a malformed evaluation reply;
- ``centre_refused``: a centre declined (its own error reply: budget, data), filed under
  its node's identity (``centre``);
- ``identity_rejected``: a reply declared a name that is not its node's
  (``server.federation.identity``): its node, identity, the declared name and why;
- ``centre_absent``: a centre sent nothing in time, or the SuperLink reports it gone;
- ``round_aggregated``: how many updates went into the new model version, or why the
  model was left unchanged;
- ``checkpoint_saved``;

Every instruction carries the log's head as it stands (``head``): each centre records
it in its own audit log, where the ministry cannot rewrite it, and ``audit verify``
with the ministry's log as anchors finds a ministry log rewritten since.
- ``centre_records``: the heads of a centre's records carried by its reply (``node``,
  ``round``, ``phase`` and the keys of ``client.privacy.records.records_head``, its
  ``actor`` the identity of the node that sent it): the anchors against which
  ``audit verify`` finds a centre's rewritten or cut-off records.

Durability (issue 32). The events of a round, one or more per centre and phase (up to
four hundred a round at 72 centres), are written without an fsync each
(:data:`DEFERRED`); the log is fsynced at the points where something depends on them:
before its head leaves in an instruction (:meth:`ServerAudit.head`: the centres anchor
it, so a line they hold is never lost), before a checkpoint says a round is done
(``server.federation.lifecycle``: a resumed run never holds a model whose round lost its
lines), and with the run's first and last lines (``run_started``, ``run_resumed``,
``run_finished``, ``run_stopped``, ``audit_done``, synced when written). A crash of the
ServerApp loses nothing (written lines are in the kernel's cache); a crash of the
machine loses at most the lines since the last sync point, a tail no centre and no
checkpoint holds, and what remains verifies. Through the records keeper (a deployment)
every line is still fsynced by the keeper.

Nothing about a student is ever written here: node ids, counts, norms, versions. The
lines are keyed with the ministry's records key (``common.workdirs.ministry_key_path``:
the same file for the ServerApp, ``audit verify`` and the console), which is
never kept in the run folder (a run folder is published; its key would let anyone
rewrite it). In a deployment the ServerApp does not hold it at all: with
``$PERSEVERANCE_RECORDS_KEEPER`` set, each line is appended by the records keeper
(``common.records.keeper``), the one process with the key, on top of the last line it
wrote itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import protocol
from common.records.keeper import append_through, keeper_socket
from common.records.trail import AuditTrail, sync_trail, trail_head
from common.workdirs import MINISTRY_KEY_ENV as KEY_ENV
from common.workdirs import MINISTRY_KEY_NAME as KEY_NAME
from common.workdirs import ministry_key_path

AUDIT_FILE = "audit.jsonl"
ACTOR = "ministry"
#: Events written without an fsync each: made durable by the next sync point (above).
DEFERRED = frozenset({
    "centres_connected", "instructions_sent", "update_accepted", "update_rejected",
    "weight_bounded", "centre_refused", "identity_rejected", "evaluation_rejected",
    "centre_absent", "centre_records", "round_aggregated", "checkpoint_saved",
    "audit_pooled"})
__all__ = ["ACTOR", "AUDIT_FILE", "KEY_ENV", "KEY_NAME", "ServerAudit", "ministry_key_path"]


class ServerAudit:
    """The ministry's audit log of one run folder (shared by a run and its resumptions)."""

    def __init__(self, run_dir: Path) -> None:
        self.trail = AuditTrail(run_dir / AUDIT_FILE, ACTOR, ministry_key_path())
        # In a deployment the key is the records keeper's alone (common.records.keeper).
        self.keeper = keeper_socket()

    def head(self) -> dict[str, str | int]:
        """The log's head for an instruction (``common.protocol.MINISTRY_HEAD``): the
        centres record it, so that a rewritten log no longer matches what they hold.
        Every line it covers is made durable first: a centre never holds a head whose
        lines a crash could take back."""
        self.sync()
        head = trail_head(self.trail.path)
        return {protocol.MINISTRY_HEAD: head.link, protocol.MINISTRY_LINES: head.lines}

    def event(self, event: str, **fields: Any) -> None:
        """Append any event (the names above); fsynced unless it is :data:`DEFERRED`."""
        if self.keeper is not None:
            append_through(self.keeper, self.trail.path.absolute(), event, fields)
        else:
            self.trail.record(event, sync=event not in DEFERRED, **fields)

    def sync(self) -> None:
        """Make every line written so far durable (a sync point; the keeper syncs each)."""
        if self.keeper is None:
            sync_trail(self.trail.path)

    def connected(self, server_round: int, nodes: list[int], previous: list[int]) -> None:
        """The centres online before a round, and the change since the last round."""
        self.event("centres_connected", round=server_round, nodes=sorted(nodes),
                   joined=sorted(set(nodes) - set(previous)),
                   left=sorted(set(previous) - set(nodes)))

    def sent(self, server_round: int, phase: str, nodes: list[int], version: str) -> None:
        self.event("instructions_sent", round=server_round, phase=phase, nodes=sorted(nodes),
                   model_version=version)

    def update(self, server_round: int, node: int, reason: str | None,
               norm: float | None) -> None:
        """A training update accepted (``reason`` None) or rejected."""
        if reason is None:
            self.event("update_accepted", round=server_round, node=node, norm=norm)
        else:
            self.event("update_rejected", round=server_round, node=node, norm=norm,
                       reason=reason)

    def refused(self, server_round: int, phase: str, node: int, reason: str,
                centre: str = "") -> None:
        """A centre's refusal, as received (``reason``), filed under ``centre``: the
        identity of the node that sent it (``server.federation.identity``)."""
        self.event("centre_refused", round=server_round, phase=phase, node=node,
                   centre=centre, reason=reason)

    def absent(self, server_round: int, phase: str, node: int, reason: str) -> None:
        self.event("centre_absent", round=server_round, phase=phase, node=node, reason=reason)
