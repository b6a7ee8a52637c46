"""The centre's approved-apps list: approve, revoke, read; never half written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from common.app_approval import (
    APPROVED_APPS_FILE,
    LIST_UNREADABLE,
    NOT_APPROVED,
    NOT_AS_ANNOUNCED,
    ApprovalError,
    app_refusal,
    approve,
    fab_hash,
    is_approved,
    read_approved,
    refusal_sentence,
    revoke,
)
from common.i18n.catalogue import translate

A = hashlib.sha256(b"app a").hexdigest()
B = hashlib.sha256(b"app b").hexdigest()


def test_fab_hash_is_the_sha256_of_the_bytes() -> None:
    assert fab_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_centre_that_never_approved_runs_nothing(tmp_path: Path) -> None:
    assert read_approved(tmp_path) == [] and not is_approved(tmp_path, A)


def test_approve_adds_once_and_keeps_the_first_note(tmp_path: Path) -> None:
    first, added = approve(tmp_path, A.upper(), note="release 0.1.0 reviewed")
    again, added_again = approve(tmp_path, A, note="other")

    assert added and not added_again and again == first
    assert [a.fab_hash for a in read_approved(tmp_path)] == [A]
    assert read_approved(tmp_path)[0].note == "release 0.1.0 reviewed"
    assert is_approved(tmp_path, A) and not is_approved(tmp_path, B)


def test_revoke_by_unique_prefix_removes_only_that_app(tmp_path: Path) -> None:
    approve(tmp_path, A)
    approve(tmp_path, B)

    removed = revoke(tmp_path, B[:8])

    assert removed.fab_hash == B and [a.fab_hash for a in read_approved(tmp_path)] == [A]
    with pytest.raises(ApprovalError, match="No approved app"):
        revoke(tmp_path, B)


@pytest.mark.parametrize("bad", ["", "abc", "z" * 64, A[:63]])
def test_approve_refuses_what_is_not_a_sha256(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ApprovalError, match="not a SHA-256"):
        approve(tmp_path, bad)
    assert not (tmp_path / APPROVED_APPS_FILE).exists()


def test_a_damaged_list_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    (tmp_path / APPROVED_APPS_FILE).write_text('{"version": 1, "apps": [{"fab_hash": "x"')

    with pytest.raises(ApprovalError, match="cannot be read"):
        read_approved(tmp_path)
    with pytest.raises(ApprovalError):
        approve(tmp_path, A)  # never overwrites what it cannot read


def test_a_hand_edited_malformed_hash_is_refused(tmp_path: Path) -> None:
    payload = {"version": 1, "apps": [{"fab_hash": "ABC", "approved_at": "now", "note": ""}]}
    (tmp_path / APPROVED_APPS_FILE).write_text(json.dumps(payload))

    with pytest.raises(ApprovalError, match="malformed hash"):
        is_approved(tmp_path, A)


def test_a_missing_state_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ApprovalError, match="does not exist"):
        approve(tmp_path / "absent", A)


@pytest.mark.parametrize("template, hashes", [
    (NOT_APPROVED, {"digest": A}),
    (NOT_AS_ANNOUNCED, {"digest": A, "announced": "b" * 64}),
    (LIST_UNREADABLE, {"digest": A}),
])
def test_an_app_refusal_received_in_english_is_read_back_in_french(
        template: str, hashes: dict[str, str]) -> None:
    sent = app_refusal(template, **hashes)

    shown = translate(refusal_sentence(sent), "fr")

    assert sent.startswith("App not approved: ") and A in sent
    assert shown.startswith("Application non approuvée : ") and A in shown
    assert all(value in shown for value in hashes.values())
    assert translate(refusal_sentence(sent), "en") == sent


def test_another_text_is_left_as_it_came() -> None:
    assert refusal_sentence("App not approved: something else") == (
        "App not approved: something else")
