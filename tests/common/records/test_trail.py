"""The keyed, chained, append-only audit trail: intact chains verify, any edit is named."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from common.records.key import KEY_FILE, key_id, read_key
from common.records.trail import (
    GENESIS,
    AuditTrail,
    check_trail,
    key_problem,
    read_trail,
    trail_head,
    verify_trail,
)


def _trail(tmp_path: Path, events: int = 3) -> Path:
    trail = AuditTrail(tmp_path / "audit.jsonl", "css-test")
    for number in range(events):
        trail.record("task_received", round=number)
    return tmp_path / "audit.jsonl"


def _key(tmp_path: Path) -> bytes:
    key = read_key(tmp_path / KEY_FILE)
    assert key is not None
    return key


def _rewrite(path: Path, number: int, **changes: object) -> None:
    lines = path.read_text().splitlines()
    edited = json.loads(lines[number - 1])
    edited.update(changes)
    lines[number - 1] = json.dumps(edited, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")


def test_each_line_is_numbered_keyed_and_chained_to_the_one_before(tmp_path: Path) -> None:
    events = read_trail(_trail(tmp_path))

    assert [e["round"] for e in events] == [0, 1, 2]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[0]["prev"] == GENESIS and events[1]["prev"] == events[0]["mac"]
    assert all(e["actor"] == "css-test" and e["at"].endswith("+00:00") for e in events)
    assert verify_trail(tmp_path / "audit.jsonl", _key(tmp_path)) == []
    assert trail_head(tmp_path / "audit.jsonl").link == events[-1]["mac"]
    assert trail_head(tmp_path / "audit.jsonl").lines == 3


def test_the_key_is_created_owner_only(tmp_path: Path) -> None:
    _trail(tmp_path, events=1)
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600


def test_an_edited_line_is_named_by_its_mac(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    _rewrite(path, 2, round=99)

    assert verify_trail(path, _key(tmp_path)) == [
        f"{path}, line 2: its MAC does not match its content: the line was edited (its chain "
        "recomputed without the key)."
    ]


def test_a_removed_line_breaks_the_chain(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")

    problems = check_trail(path, _key(tmp_path)).problems
    assert [p.entry for p in problems] == ["line 2"]


def test_lines_written_before_keying_are_read_and_counted_as_unkeyed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = json.dumps({"actor": "css-test", "at": "x", "event": "old", "prev": GENESIS})
    second = json.dumps({"actor": "css-test", "at": "y", "event": "old",
                         "prev": hashlib.sha256(first.encode()).hexdigest()})
    path.write_text(first + "\n" + second + "\n")
    AuditTrail(path, "css-test").record("new")

    check = check_trail(path, _key(tmp_path))
    assert check.problems == [] and check.unkeyed == 2
    assert read_trail(path)[2]["seq"] == 3


def test_each_line_names_its_key_and_another_key_is_named_not_an_edit(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    other = bytes(32)

    check = check_trail(path, other)
    problem = key_problem(check, other, tmp_path / "other.key", "--key")

    assert {e["key_id"] for e in read_trail(path)} == {key_id(_key(tmp_path))}
    assert check.problems == [] and check.foreign == [1, 2, 3] and check.verified == 0
    assert problem == (f"The key at {tmp_path / 'other.key'} ({key_id(other)}) is not the one "
                       f"that signed {path} ({key_id(_key(tmp_path))}): give the key that "
                       "signed it (--key).")
    assert key_problem(check_trail(path, _key(tmp_path)), _key(tmp_path), path, "--key") is None
    assert "there is no key at" in str(key_problem(check_trail(path, None), None, path, "-k"))


def test_a_key_id_is_public_short_and_a_function_of_the_key_only() -> None:
    assert key_id(bytes(32)) == key_id(bytes(32)) != key_id(bytes(31) + b"\x01")
    assert len(key_id(bytes(32))) == 16 and bytes(32).hex()[:16] != key_id(bytes(32))
