"""A centre's audit log: ``audit.jsonl`` in its state folder (beside the privacy
ledger), append-only and chained (``common.records.trail``). One line per event:

- ``task_received``: which run (Flower's id and the logical name), which round, train
  or evaluate, the model version the ministry sent;
- ``reply_sent``: what left the centre: the names and sizes of the arrays, the metric
  names, the number of examples and the epsilon reported, the update's norm before and
  after the centre's bound, and whether it was a re-send of an earlier reply;
- ``task_refused``: the centre declined: the reply code, the fixed sentence the ministry
  received and, for the centre's operators only, the detail (with its numbers);
- ``ledger_booked``: written by the privacy ledger after each booking: its number of
  rows and the MAC of its last row (``client.privacy.ledger``);
- ``cohort_booked``: the records a run uses for one kind of release (their number and
  the number retired for budget, never who; ``client.privacy.student_budget``);
- ``ledger_migrated``: a ledger from before per-student accounting given cohorts.

Never a student's data: names, counts, norms and versions only. Lines are keyed with the
centre's records key (:func:`records_key_path`; ``common.records.trail``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from common.records.key import KEY_FILE
from common.records.trail import AuditTrail

AUDIT_FILE = "audit.jsonl"
KEY_PATH_OPTION = "records-key-path"


def records_key_path(state_dir: Path, node_config: Mapping[str, object]) -> Path:
    """The centre's records key: ``records-key-path`` of its node config, else
    ``records.key`` in its state folder. Every writer of the centre's audit log and
    ledger must use the same one (pass it as ``key_path``)."""
    configured = str(node_config.get(KEY_PATH_OPTION, "") or "")
    return Path(configured) if configured else state_dir / KEY_FILE


def centre_trail(state_dir: Path, node_config: Mapping[str, object]) -> AuditTrail:
    """The centre's audit log, keyed with its records key, under its own name."""
    return AuditTrail(state_dir / AUDIT_FILE, centre_name(node_config, state_dir),
                      records_key_path(state_dir, node_config))


def centre_name(node_config: Mapping[str, object], state_dir: Path) -> str:
    """How the centre names itself in its log: its data file's name, else its folder's."""
    data_path = str(node_config.get("data-path", "") or "")
    return Path(data_path).stem if data_path else state_dir.name
