"""A centre's audit log: ``audit.jsonl`` in its state folder (beside the privacy
ledger), append-only and chained (``common.audit_trail``). One line per event:

- ``task_received``: which run (Flower's id and the logical name), which round, train
  or evaluate, the model version the ministry sent;
- ``reply_sent``: what left the centre: the names and sizes of the arrays, the metric
  names, the number of examples and the epsilon reported, the update's norm before and
  after the centre's bound, and whether it was a re-send of an earlier reply;
- ``task_refused``: the centre declined, with its reason.

- ``ledger_booked``: written by the privacy ledger after each booking: its number of
  rows and the MAC of its last row (``client.ledger``).

Never a student's data: names, counts, norms and versions only. Lines are keyed with the
centre's records key (:func:`records_key_path`; ``common.audit_trail``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context, Message

from common.audit_trail import AuditTrail
from common.records_key import KEY_FILE

AUDIT_FILE = "audit.jsonl"
KEY_PATH_OPTION = "records-key-path"


def records_key_path(state_dir: Path, node_config: Mapping[str, object]) -> Path:
    """The centre's records key: ``records-key-path`` of its node config, else
    ``records.key`` in its state folder. Every writer of the centre's audit log and
    ledger must use the same one (pass it as ``key_path``)."""
    configured = str(node_config.get(KEY_PATH_OPTION, "") or "")
    return Path(configured) if configured else state_dir / KEY_FILE


class CentreAudit:
    """The audit log of one centre, for one message (Flower starts a process per
    message: the chain is kept by the file, not by this object)."""

    def __init__(self, state_dir: Path, centre: str, msg: Message, context: Context) -> None:
        key_path = records_key_path(state_dir, dict(context.node_config))
        self.trail = AuditTrail(state_dir / AUDIT_FILE, centre, key_path)
        config = msg.content.config_records.get("config")
        self.task: dict[str, Any] = {
            "kind": msg.metadata.message_type,
            "flower_run_id": context.run_id,
            "run_name": str(config.get("run-name", "")) if config else "",
            "round": int(config.get("server-round", 0)) if config else 0,  # type: ignore[arg-type]
            "model_version": str(config.get("model-version", "")) if config else "",
        }

    def received(self, message_id: str) -> None:
        self.trail.record("task_received", message_id=message_id, **self.task)

    def refused(self, code: int, reason: str) -> None:
        self.trail.record("task_refused", code=code, reason=reason, **self.task)

    def sent(self, reply: Message, resent: bool = False, **extra: Any) -> None:
        """What the reply carries (names and shapes, not values)."""
        content = reply.content
        arrays = {name: list(array.shape) for record in content.array_records.values()
                  for name, array in record.items()}
        metrics = {key: value for record in content.metric_records.values()
                   for key, value in record.items()}
        scalars = {k: v for k, v in metrics.items() if k in ("num-examples", "epsilon")}
        self.trail.record("reply_sent", arrays=arrays, metrics=sorted(metrics), resent=resent,
                          **scalars, **extra, **self.task)


def centre_name(node_config: Mapping[str, object], state_dir: Path) -> str:
    """How the centre names itself in its log: its data file's name, else its folder's."""
    data_path = str(node_config.get("data-path", "") or "")
    return Path(data_path).stem if data_path else state_dir.name
