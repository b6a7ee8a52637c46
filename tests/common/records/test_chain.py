"""Checking a ledger writes nothing beside it (the console and ``audit verify`` only read)."""

from __future__ import annotations

from pathlib import Path

from client.privacy.ledger import PrivacyLedger
from common.records.chain import LEDGER_FILE, check_ledger
from common.records.key import load_or_create_key


def test_checking_a_closed_ledger_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    ledger.book(run_id="r1", server_round=1, kind="train", mechanisms=[(1.0, 0.01, 100)],
                delta=1e-6, cap=10.0)
    key = load_or_create_key(ledger.key_path)
    del ledger
    before = sorted(p.name for p in tmp_path.iterdir())

    check = check_ledger(tmp_path / LEDGER_FILE, key)

    assert not check.problems and len(check.links) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
