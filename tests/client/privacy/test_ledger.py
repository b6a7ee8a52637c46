import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from client.privacy.ledger import LEDGER_FILE, BudgetExceeded, LedgerError, PrivacyLedger
from common.privacy.accounting import epsilon_spent, filter_epsilon

DELTA = 1e-6


def _book(ledger: PrivacyLedger, cap: float, round_: int = 1, steps: int = 100) -> float:
    return ledger.book(run_id="r1", server_round=round_, kind="train",
                       mechanisms=[(1.0, 0.05, steps)], delta=DELTA, cap=cap)


def test_lifetime_epsilon_composes_every_release(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    _book(ledger, cap=100)
    _book(ledger, cap=100, round_=2)
    # Two bookings of 100 steps compose like one of 200 (same mechanism), as the
    # individual filter counts it (its union bound over orders: a little more than the
    # accountant's figure at delta).
    assert ledger.epsilon_spent(DELTA) == pytest.approx(filter_epsilon([(1.0, 0.05, 200)],
                                                                       DELTA))
    assert ledger.epsilon_spent(DELTA) > epsilon_spent(1.0, 0.05, 200, DELTA)
    assert [r.server_round for r in ledger.releases()] == [1, 2]


def test_refuses_past_the_cap_and_books_nothing(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    _book(ledger, cap=10)
    cap = (filter_epsilon([(1.0, 0.05, 100)], DELTA)
           + filter_epsilon([(1.0, 0.05, 200)], DELTA)) / 2
    with pytest.raises(BudgetExceeded, match="past its cap of"):
        _book(ledger, cap=cap, round_=2)
    assert len(ledger.releases()) == 1


def test_survives_a_restart(tmp_path: Path) -> None:
    spent = _book(PrivacyLedger(tmp_path), cap=10)
    reopened = PrivacyLedger(tmp_path)
    assert reopened.epsilon_spent(DELTA) == pytest.approx(spent)


def test_rows_cannot_be_changed_or_deleted(tmp_path: Path) -> None:
    _book(PrivacyLedger(tmp_path), cap=10)
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE releases SET steps = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM releases")
    db.close()


def test_a_corrupt_ledger_is_refused_with_one_sentence(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match="cannot be used"):
        PrivacyLedger(tmp_path)


def _book_in_process(path: str, cap: float, queue: "multiprocessing.Queue[str]") -> None:
    try:
        _book(PrivacyLedger(Path(path)), cap=cap)
        queue.put("booked")
    except BudgetExceeded:
        queue.put("refused")


def test_two_processes_cannot_both_spend_the_last_of_the_budget(tmp_path: Path) -> None:
    # Room for one booking of 100 steps, not for two.
    sigma_cap = (filter_epsilon([(1.0, 0.05, 100)], DELTA)
                 + filter_epsilon([(1.0, 0.05, 200)], DELTA)) / 2
    queue: multiprocessing.Queue[str] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_book_in_process, args=(str(tmp_path), sigma_cap, queue))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert sorted(queue.get(timeout=5) for _ in workers) == ["booked", "refused"]
    assert len(PrivacyLedger(tmp_path).releases()) == 1


def test_a_release_of_several_mechanisms_is_booked_whole(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    after = ledger.book(run_id="r1", server_round=1, kind="train",
                        mechanisms=[(1.0, 0.05, 100), (50.0, 1.0, 1)], delta=DELTA, cap=10)
    assert [r.steps for r in ledger.releases()] == [100, 1]
    assert ledger.epsilon_spent(DELTA) == pytest.approx(after)
    assert after > epsilon_spent(1.0, 0.05, 100, DELTA)


def test_ledger_command_shows_history_and_what_is_left(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from client.cli import app

    spent = _book(PrivacyLedger(tmp_path), cap=10)
    result = CliRunner().invoke(app, ["ledger", "--state", str(tmp_path), "--lang", "en"])
    assert result.exit_code == 0, result.output
    # A ledger without cohorts (before per-student accounting): every student is charged.
    text = " ".join(result.output.split())
    assert f"Largest lifetime epsilon of a student: {spent:.3f}" in text


def test_ledger_command_without_a_ledger_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from client.cli import app

    result = CliRunner().invoke(app, ["ledger", "--state", str(tmp_path / "nowhere")],
                                env={"LC_ALL": "", "LC_MESSAGES": "", "LANG": ""})
    assert result.exit_code == 2
    assert "pas de registre de confidentialité" in " ".join(result.output.split())


def test_the_ledger_reads_at_80_columns_with_whole_run_names(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from client.cli import app

    run = "quebec-72-20261207T172222-0aeb2642"
    PrivacyLedger(tmp_path).book(run_id=run, server_round=1, kind="train",
                                 mechanisms=[(1.0, 0.05, 100)], delta=DELTA, cap=10)
    result = CliRunner().invoke(app, ["ledger", "--state", str(tmp_path), "--lang", "en"],
                                env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output  # nothing cut
    cells = "".join(line.split("│")[2].strip() for line in result.output.splitlines()
                    if line.count("│") > 5 and "noise" not in line)
    assert run in cells  # the run's name, folded over lines, whole
    assert "noise mult." not in result.output  # the mechanism's columns with --details
