"""``perseverance-client audit verify``: intact records pass; each kind of tampering is
named (an edited line, a chain recomputed without the key, a cut-off tail, dropped
triggers and deleted rows, an edited ledger row)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from client.privacy.ledger import LEDGER_FILE, PrivacyLedger
from client.privacy.records import records_head
from common.protocol import HEAD_KEYS
from common.records.trail import AuditTrail, read_trail
from server.federation.audit_log import KEY_ENV, ServerAudit

DELTA = 1e-6
ACTOR = "css-des-laurentides"


@pytest.fixture(autouse=True)
def _ministry_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "ministry-secrets" / "ministry.key"))


def serve_rounds(state: Path, run_dir: Path, rounds: int, node: int = 7) -> None:
    """What a centre and the ministry write over ``rounds`` training rounds: the centre's
    log and ledger, and the heads its replies carry in the ministry's log."""
    trail, ministry = AuditTrail(state / "audit.jsonl", state.name), ServerAudit(run_dir)
    ledger = PrivacyLedger(state)
    for server_round in range(1, rounds + 1):
        trail.record("task_received", kind="train", round=server_round)
        ledger.book(run_id="run-a", server_round=server_round, kind="train",
                    mechanisms=[(1.0, 0.05, 50)], delta=DELTA, cap=50)
        ministry.event("centre_records", node=node, round=server_round, phase="train",
                       **records_head(state))
        trail.record("reply_sent", kind="train", round=server_round)


@pytest.fixture
def records(tmp_path: Path) -> tuple[Path, Path]:
    state, run_dir = tmp_path / ACTOR, tmp_path / "run"
    serve_rounds(state, run_dir, rounds=3)
    return state, run_dir


def verify(state: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--state", str(state), "--lang", "en",
                                      *extra])
    return result.exit_code, result.stdout, result.stderr


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_records_head_reads_the_tails(records: tuple[Path, Path]) -> None:
    state, run_dir = records
    head = records_head(state)
    lines = [json.loads(line) for line in _lines(state / "audit.jsonl")]
    assert tuple(head) == HEAD_KEYS
    assert head["actor"] == ACTOR and head["audit_lines"] == len(lines) == 9
    assert head["audit_head"] == lines[-1]["mac"]
    assert head["ledger_rows"] == 3 and head["ledger_head"] == lines[-2]["ledger_head"]
    anchors = [e for e in read_trail(run_dir / "audit.jsonl") if e["event"] == "centre_records"]
    assert [a["round"] for a in anchors] == [1, 2, 3] and anchors[0]["ledger_rows"] == 1


def test_intact_records_exit_0(records: tuple[Path, Path]) -> None:
    state, run_dir = records
    code, out, err = verify(state, "--anchors", str(run_dir))
    assert (code, err) == (0, "")
    assert "3 ministry anchors checked" in out and "Records intact" in out


def test_an_edited_line_exits_4_naming_it(records: tuple[Path, Path]) -> None:
    state, run_dir = records
    lines = _lines(state / "audit.jsonl")
    lines[4] = lines[4].replace('"round": 2', '"round": 5')
    (state / "audit.jsonl").write_text("\n".join(lines) + "\n")

    code, _, err = verify(state, "--anchors", str(run_dir))
    assert code == 4
    assert err.startswith(f"error: the records were altered: {state / 'audit.jsonl'}, line 5: "
                          "its MAC does not match its content")


def _recompute_without_key(lines: list[str], strip: bool) -> list[str]:
    """What someone without the key can do: redo the chain with plain SHA-256 from the
    edited line on (``strip``: from the first line, without MACs)."""
    start = 0 if strip else 4
    previous, out = json.loads(lines[start - 1])["mac"] if start else "0" * 64, lines[:start]
    for line in lines[start:]:
        entry = json.loads(line)
        entry.pop("mac")
        entry["prev"] = previous
        if strip:  # pass the log off as one written before keying
            entry.pop("seq")
            text = json.dumps(entry, sort_keys=True)
            previous = hashlib.sha256(text.encode()).hexdigest()
        else:
            entry["mac"] = previous = hashlib.sha256(json.dumps(entry).encode()).hexdigest()
            text = json.dumps(entry, sort_keys=True)
        out.append(text)
    return out


@pytest.mark.parametrize(("strip", "named"), [(False, "line 5: its MAC does not match"),
                                              (True, "line 1: no line carries a MAC")])
def test_an_edited_line_with_the_chain_recomputed_without_the_key_exits_4(
    records: tuple[Path, Path], strip: bool, named: str
) -> None:
    state, _ = records
    lines = _lines(state / "audit.jsonl")
    lines[4] = lines[4].replace('"round": 2', '"round": 5')
    (state / "audit.jsonl").write_text("\n".join(_recompute_without_key(lines, strip)) + "\n")

    code, _, err = verify(state)  # no anchors needed: the key tells
    assert code == 4 and err.startswith(f"error: the records were altered: "
                                        f"{state / 'audit.jsonl'}, {named}")


def test_a_cut_off_tail_exits_4_against_the_anchors(records: tuple[Path, Path]) -> None:
    state, run_dir = records
    lines = _lines(state / "audit.jsonl")
    (state / "audit.jsonl").write_text("\n".join(lines[:4]) + "\n")

    assert verify(state)[0] == 0  # an intact chain, shorter: only the anchors can tell
    code, _, err = verify(state, "--anchors", str(run_dir / "audit.jsonl"))
    assert code == 4
    first = err.splitlines()[0]
    assert f"{state / 'audit.jsonl'}, line 5: missing: there are 4 lines" in first
    assert "the ministry (" in first and "round 2, train" in first


def test_dropped_triggers_and_deleted_rows_exit_4(records: tuple[Path, Path]) -> None:
    state, run_dir = records
    db = sqlite3.connect(state / LEDGER_FILE)
    db.executescript("DROP TRIGGER releases_no_delete; DELETE FROM releases WHERE id >= 2;")
    db.close()

    code, _, err = verify(state)  # the centre's own log recorded each booking's head
    assert code == 4
    assert err.splitlines()[0] == (f"error: the records were altered: {state / LEDGER_FILE}, "
                                   "triggers: releases_no_delete were dropped: rows could be "
                                   "deleted or rewritten.")
    assert f"{state / LEDGER_FILE}, row 2: missing: there are 1 rows" in err
    PrivacyLedger(state)  # reopening puts the trigger back: the missing rows still show
    code, _, err = verify(state, "--anchors", str(run_dir))
    assert code == 4 and err.splitlines()[0].startswith(
        f"error: the records were altered: {state / LEDGER_FILE}, row 2: missing")
    assert "row 3: missing" in err


def test_everything_deleted_but_the_log_still_fails_against_the_anchors(
    records: tuple[Path, Path],
) -> None:
    state, run_dir = records
    (state / LEDGER_FILE).unlink()
    (state / "audit.jsonl").write_text(_lines(state / "audit.jsonl")[0] + "\n")

    code, _, err = verify(state, "--anchors", str(run_dir))
    assert code == 4 and "line 8: missing" in err and "row 3: missing" in err


def test_an_edited_ledger_row_exits_4_naming_it(records: tuple[Path, Path]) -> None:
    state, _ = records
    db = sqlite3.connect(state / LEDGER_FILE)
    db.executescript("DROP TRIGGER releases_no_update; "
                     "UPDATE releases SET steps = 5 WHERE id = 2;")
    db.close()
    PrivacyLedger(state)

    code, _, err = verify(state)
    assert code == 4 and err.splitlines()[0] == (
        f"error: the records were altered: {state / LEDGER_FILE}, row 2: its MAC does not "
        "match its fields: the row was edited, or the one before it deleted.")


def test_a_ledger_from_before_keying_opens_and_its_rows_are_unkeyed(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    db.executescript("""
        CREATE TABLE releases (id INTEGER PRIMARY KEY AUTOINCREMENT, booked_at TEXT NOT NULL,
            run_id TEXT NOT NULL, server_round INTEGER NOT NULL, kind TEXT NOT NULL,
            noise_multiplier REAL NOT NULL, sample_rate REAL NOT NULL, steps INTEGER NOT NULL,
            delta REAL NOT NULL, epsilon_after REAL NOT NULL);
        INSERT INTO releases (booked_at, run_id, server_round, kind, noise_multiplier,
            sample_rate, steps, delta, epsilon_after)
        VALUES ('2025-01-01T00:00:00+00:00', 'old', 1, 'train', 1.0, 0.05, 50, 1e-6, 1.5);
    """)
    db.close()
    ledger = PrivacyLedger(tmp_path)
    ledger.book(run_id="new", server_round=1, kind="train", mechanisms=[(1.0, 0.05, 50)],
                delta=DELTA, cap=50)

    code, out, err = verify(tmp_path)
    assert (code, err) == (0, "")
    assert "0 lines and 1 rows are unkeyed, booked before keying" in out
    assert [r.run_id for r in ledger.releases()] == ["old", "new"]


def test_bad_input_exits_2(records: tuple[Path, Path]) -> None:
    state, _ = records
    assert verify(state.parent / "nowhere")[0] == 2
    assert verify(state, "--anchors", str(state.parent / "no-run"))[0] == 2
    (state / "records.key").unlink()
    code, _, err = verify(state)
    assert code == 2 and "but there is no key at" in err and "(--key)" in err
