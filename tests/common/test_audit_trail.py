"""The chained, append-only audit trail: intact chains verify, any edit is named."""

from __future__ import annotations

import json
from pathlib import Path

from common.audit_trail import GENESIS, AuditTrail, read_trail, verify_trail


def _trail(tmp_path: Path, events: int = 3) -> Path:
    trail = AuditTrail(tmp_path / "audit.jsonl", "css-test")
    for number in range(events):
        trail.record("task_received", round=number)
    return tmp_path / "audit.jsonl"


def test_each_line_names_its_actor_time_and_the_digest_of_the_line_before(tmp_path) -> None:
    events = read_trail(_trail(tmp_path))

    assert [e["round"] for e in events] == [0, 1, 2]
    assert events[0]["prev"] == GENESIS and events[1]["prev"] != GENESIS
    assert all(e["actor"] == "css-test" and e["at"].endswith("+00:00") for e in events)
    assert verify_trail(tmp_path / "audit.jsonl") == []


def test_an_edited_line_breaks_the_chain_at_the_next_line(tmp_path) -> None:
    path = _trail(tmp_path)
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["round"] = 99
    lines[1] = json.dumps(edited, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")

    assert verify_trail(path) == [
        f"Line 3 of {path} does not follow line 2: a line was edited, removed or inserted."
    ]


def test_a_removed_line_breaks_the_chain(tmp_path) -> None:
    path = _trail(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")

    assert len(verify_trail(path)) == 1
