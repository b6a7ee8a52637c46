"""The head of a centre's records, which every reply carries (``common.protocol``
``RECORDS_HEAD``): the MAC and length of its audit log and of its privacy ledger. The
ministry writes it to its own audit log as a ``centre_records`` event;
``common.records.chain`` checks the centre's records against those anchors.

The head carries no figure of the centre's students: the lifetime epsilon (the largest
over its students) depends on who is enrolled, so it stays in the centre's ledger and
its own commands (``perseverance-client ledger``). Each key's class is declared in
``common.releases``.
"""

from __future__ import annotations

from pathlib import Path

from common.records.chain import AUDIT_FILE, LEDGER_FILE, ledger_head
from common.records.trail import trail_head


def records_head(state_dir: Path) -> dict[str, str | int]:
    """What a reply carries about the centre's records, read from their tails only.

    ``audit_head`` and ``ledger_head`` are the MACs of the last line and row (for a line
    or row written before keying, its SHA-256), ``""`` if there is none.
    """
    trail = trail_head(state_dir / AUDIT_FILE)
    link, rows, _, _ = ledger_head(state_dir / LEDGER_FILE)
    return {"actor": trail.actor or state_dir.name, "audit_head": trail.link,
            "audit_lines": trail.lines, "ledger_head": link, "ledger_rows": rows}
