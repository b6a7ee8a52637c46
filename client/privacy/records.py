"""The head of a centre's records, which every reply carries (``common.protocol``
``RECORDS_HEAD``): the MAC and length of its audit log and of its privacy ledger, and its
lifetime epsilon. The ministry writes it to its own audit log as a ``centre_records``
event; ``common.records.chain`` checks the centre's records against those anchors.
"""

from __future__ import annotations

from pathlib import Path

from client.privacy.ledger import PrivacyLedger
from common.records.chain import AUDIT_FILE, LEDGER_FILE, ledger_head
from common.records.trail import trail_head


def records_head(state_dir: Path, delta: float) -> dict[str, str | int | float]:
    """What a reply carries about the centre's records, read from their tails only.

    ``audit_head`` and ``ledger_head`` are the MACs of the last line and row (for a line
    or row written before keying, its SHA-256), ``""`` if there is none.
    """
    trail = trail_head(state_dir / AUDIT_FILE)
    link, rows, last_delta, last_epsilon = ledger_head(state_dir / LEDGER_FILE)
    if rows == 0:
        epsilon = 0.0
    elif last_delta == delta:  # the last booking composed the whole history at this delta
        epsilon = last_epsilon
    else:
        epsilon = PrivacyLedger(state_dir).epsilon_spent(delta)
    return {"actor": trail.actor or state_dir.name, "audit_head": trail.link,
            "audit_lines": trail.lines, "ledger_head": link, "ledger_rows": rows,
            "epsilon_lifetime": float(epsilon)}
