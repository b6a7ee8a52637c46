"""The head of a centre's records (audit log and privacy ledger), which every reply
carries so that the ministry anchors it in its own audit log."""

from __future__ import annotations

import hashlib
from pathlib import Path

from client.audit_log import AUDIT_FILE
from client.ledger import LEDGER_FILE, PrivacyLedger


def records_head(state_dir: Path, delta: float) -> dict[str, str | int | float]:
    """Actor, audit-log head and length, ledger head and rows, lifetime epsilon."""
    audit = state_dir / AUDIT_FILE
    lines = audit.read_text(encoding="utf-8").splitlines() if audit.is_file() else []
    ledger = PrivacyLedger(state_dir) if (state_dir / LEDGER_FILE).is_file() else None
    releases = ledger.releases() if ledger is not None else []
    return {
        "actor": state_dir.name,
        "audit_head": hashlib.sha256(lines[-1].encode()).hexdigest() if lines else "",
        "audit_lines": len(lines),
        "ledger_head": "",
        "ledger_rows": len(releases),
        "epsilon_lifetime": ledger.epsilon_spent(delta) if ledger is not None else 0.0,
    }
