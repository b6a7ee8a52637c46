"""Each student's lifetime budget: the individual filter at the centre (issue 17)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from client.federation.rounds import evaluation_records, training_plan
from client.ingest.centre_data import CentreData
from client.privacy import ledger as ledger_module
from client.privacy.cohorts import pseudonym_key, student_epsilons, student_hashes
from client.privacy.ledger import BudgetExceeded, LedgerError, PrivacyLedger
from client.privacy.run_plan import size_release
from client.privacy.student_budget import budget_spread, run_cohorts
from client.site_policy import SitePolicy
from common.config import RunConfig
from common.privacy import accounting as privacy
from common.privacy.accounting import filter_epsilon
from common.records.chain import LEDGER_FILE
from common.records.key import load_or_create_key

DELTA = 1e-6
# Replayable noise: the same released sizes, so each plan's noise is calibrated once.
CONFIG = RunConfig.from_flat({"rounds": 2, "local_epochs": 1, "privacy.reproducible_noise": True})


def _data(train: list[str], test: list[str] = (), *, cap: float = 10.0,  # type: ignore[assignment]
          min_records: int = 5) -> CentreData:
    n, m = len(train), len(test)
    return CentreData(np.zeros((n, 3), np.float32), np.zeros(n, np.float32),
                      np.zeros((m, 3), np.float32), np.zeros(m, np.float32),
                      SitePolicy(min_records=min_records, epsilon_cap=cap), pd.DataFrame(),
                      tuple(train), tuple(test))


def _students(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def _spent(ledger: PrivacyLedger, ids: list[str]) -> np.ndarray:
    key = pseudonym_key(load_or_create_key(ledger.key_path))
    return student_epsilons(student_hashes(ids, key), ledger.cohorts(), ledger.booked(), DELTA)


def _train_all_rounds(ledger: PrivacyLedger, state: Path, data: CentreData,
                      run: str) -> CentreData:
    """What a run's training books: its plan, its cohorts, and every round."""
    plan, used = training_plan(CONFIG, data, run, state, ledger)
    for server_round in range(1, CONFIG.rounds + 1):
        ledger.book(run_id=run, server_round=server_round, kind="train",
                    mechanisms=[plan.round_mechanism()], delta=DELTA, cap=data.policy.epsilon_cap)
    return used


def _one_year_at_the_cap(tmp_path: Path,
                         students: list[str]) -> tuple[Path, PrivacyLedger, float]:
    """A centre whose ``students`` trained one run, and a cap that run reached."""
    state = tmp_path / "state"
    ledger = PrivacyLedger(state)
    _train_all_rounds(ledger, state, _data(students), "year-1")
    return state, ledger, float(_spent(ledger, students).max()) * 1.01


def test_a_student_at_the_cap_never_trains_again_and_new_students_do(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger = PrivacyLedger(state)
    first_year = _students("y1", 40)
    _train_all_rounds(ledger, state, _data(first_year), "year-1")
    after_one = _spent(ledger, first_year)
    # A run booked at 3 (the run's epsilon at delta); the filter's figure for the same
    # history pays for its union bound over orders (delta / k at each): a little more.
    assert np.allclose(after_one, after_one[0]) and 3.0 < after_one[0] <= 3.0 * 1.3
    # A cap one run stays under and a second passes (two runs count about 1.35 times
    # one): the first year's students have no room for another, newcomers have.
    cap = float(after_one.max()) * 1.15
    second_year = _data([*first_year, *_students("y2", 30)], cap=cap)

    used = _train_all_rounds(ledger, state, second_year, "year-2")

    assert set(used.ids_train) == set(_students("y2", 30))
    assert used.num_train == 30 == len(used.x_train)
    assert _spent(ledger, first_year).max() <= cap  # the size release fitted, no more
    newcomers = _spent(ledger, _students("y2", 30))
    assert np.allclose(newcomers, newcomers[0]) and 3.0 < newcomers[0] <= 3.0 * 1.3
    cohorts = {c.kind: c for c in run_cohorts(state, "year-2")}
    assert (cohorts["size"].records, cohorts["train"].records) == (70, 30)
    assert cohorts["train"].retired == 40
    # And never again: a third run does not take them either.
    third = _train_all_rounds(ledger, state, _data([*first_year, *_students("y3", 20)],
                                                   cap=cap), "year-3")
    assert not set(third.ids_train) & set(first_year)


def test_one_students_record_changes_no_other_students_inclusion(tmp_path: Path) -> None:
    veterans = _students("old", 25)
    state, _, cap = _one_year_at_the_cap(tmp_path, veterans)
    others = [*veterans[:10], *_students("new", 20)]

    def included(extra: list[str], run: str) -> set[str]:
        state_copy = tmp_path / run
        state_copy.mkdir()
        (state_copy / "records.key").write_bytes((state / "records.key").read_bytes())
        source, target = (sqlite3.connect(p / LEDGER_FILE) for p in (state, state_copy))
        source.backup(target)
        source.close()
        target.close()
        copy = PrivacyLedger(state_copy)
        return set(training_plan(CONFIG, _data([*others, *extra], cap=cap), run, state_copy,
                                 copy)[1].ids_train)

    without = included([], "without")
    with_veteran = included([veterans[20]], "with-veteran")
    with_newcomer = included(["new-extra"], "with-newcomer")

    assert without == set(_students("new", 20))
    assert with_veteran == without  # a retired student adds nothing, changes nothing
    assert with_newcomer == without | {"new-extra"}  # a new one adds itself only


def test_few_records_with_budget_left_train_without_a_refusal(tmp_path: Path) -> None:
    """No refusal on the exact number of students with budget left (issue 26: it would
    tell whether one student is there): the run trains over those, its plan fixed by the
    released size."""
    students = _students("s", 12)
    state, ledger, cap = _one_year_at_the_cap(tmp_path, students)
    rows = len(ledger.releases())

    plan, kept = training_plan(CONFIG, _data([*students, *_students("n", 3)], cap=cap,
                                             min_records=5), "year-2", state, ledger)

    assert set(kept.ids_train) == set(_students("n", 3)) and plan.public_size >= 10
    # Only the size release is booked before the first round.
    assert all(r.kind == "train" and r.server_round == 0 for r in ledger.releases()[rows:])


def test_the_ledger_refuses_a_release_that_passes_a_members_cap(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    key = pseudonym_key(load_or_create_key(ledger.key_path))
    members = student_hashes(["a", "b"], key)
    ledger.book_cohort(run_id="r", kind="train", first_round=1, label="train",
                       members=members, retired=0)
    mechanism = (1.0, 0.05, 100)
    one = filter_epsilon([mechanism], DELTA)
    cap = (one + filter_epsilon([mechanism, mechanism], DELTA)) / 2
    assert ledger.book(run_id="r", server_round=1, kind="train", mechanisms=[mechanism],
                       delta=DELTA, cap=cap) == pytest.approx(one)
    with pytest.raises(BudgetExceeded, match="a student of this release"):
        ledger.book(run_id="r", server_round=2, kind="train", mechanisms=[mechanism],
                    delta=DELTA, cap=cap)
    assert len(ledger.releases()) == 1
    # Students of another cohort are not charged with it.
    other = student_hashes(["c"], key)
    assert student_epsilons(other, ledger.cohorts(), ledger.booked(), DELTA)[0] == 0.0


def test_a_cohort_edited_in_the_file_is_found(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    key = pseudonym_key(load_or_create_key(ledger.key_path))
    ledger.book_cohort(run_id="r", kind="train", first_round=1, label="train",
                       members=student_hashes(["a", "b"], key), retired=0)
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    db.execute("DROP TRIGGER cohorts_no_update")
    # Giving a student its budget back: removing it from the cohort.
    db.execute("UPDATE cohorts SET members = substr(members, 1, 16), records = 1")
    db.commit()
    db.close()
    ledger_module._COHORTS.clear()  # as the next process finds the file: read it all
    with pytest.raises(LedgerError, match="cohort row 1"):
        ledger.cohorts()


def test_a_retried_task_reuses_the_cohort_it_booked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger = PrivacyLedger(state)
    data = _data(_students("s", 20), _students("t", 8))
    training_plan(CONFIG, data, "run", state, ledger)
    evaluation_records(CONFIG, data, "run", ledger)
    before = ledger.cohorts()
    again = training_plan(CONFIG, _data([*_students("s", 20), "late"],
                                        _students("t", 8)), "run", state, ledger)[1]
    evaluated = evaluation_records(CONFIG, _data(_students("s", 20), [*_students("t", 8),
                                                                      "late-t"]), "run", ledger)
    assert ledger.cohorts() == before
    assert "late" not in again.ids_train and "late-t" not in evaluated.ids_test
    assert [c.kind for c in run_cohorts(state, "run")] == ["size", "train", "evaluate"]


def test_an_evaluation_no_held_out_record_can_pay_for_is_noise_alone(tmp_path: Path
                                                                      ) -> None:
    """When the run's evaluation releases would take every held-out record past the cap
    (a share of distributed noise costs its centre more than the run's epsilon), the
    release is over no student (noise alone), not a refusal: a refusal on the exact
    number of students with budget left would tell whether one of them is there."""
    state = tmp_path / "state"
    ledger = PrivacyLedger(state)
    held_out = _students("t", 8)
    spent = filter_epsilon(privacy.run_shares(privacy.run_evaluation_noise(CONFIG)), DELTA)
    # The run's evaluation is booked at 3; as the filter counts it, each held-out
    # student pays a little more (its union bound over orders).
    assert 3.0 < spent <= 3.0 * 1.3

    kept = evaluation_records(CONFIG, _data(_students("s", 20), held_out, cap=spent - 0.1),
                              "run", ledger)

    assert kept.num_test == 0 and ledger.releases() == []
    assert [(c.kind, c.records, c.retired) for c in ledger.cohorts()] == [("evaluate", 0, 8)]
    # One cent of budget more and they all take part (another run: this one's cohort
    # is booked).
    kept = evaluation_records(CONFIG, _data(_students("s", 20), held_out, cap=spent + 0.01),
                              "run-2", ledger)
    assert kept.ids_test == tuple(held_out)


def test_the_migration_charges_the_students_present_and_no_later_one(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path)
    old = [(1.0, 0.05, 200), (3.0, 1.0, 1)]
    for kind, mechanism in zip(("train", "evaluate"), old, strict=True):
        ledger.book(run_id="old-run", server_round=1, kind=kind, mechanisms=[mechanism],
                    delta=DELTA, cap=10)
    centre_wide = ledger.epsilon_spent(DELTA)
    present = _students("p", 15)
    assert _spent(ledger, ["anyone"])[0] == pytest.approx(centre_wide)  # before: everyone

    _, used = training_plan(CONFIG, _data(present), "new-run", tmp_path, ledger)

    assert {c.kind for c in run_cohorts(tmp_path, "old-run")} == {"migrated"}
    assert _spent(ledger, ["someone-who-came-later"])[0] == 0.0
    with_new = filter_epsilon([*old, size_release()], DELTA)
    assert _spent(ledger, present) == pytest.approx(np.full(15, with_new))
    assert used.num_train == 15
    assert budget_spread(tmp_path, DELTA).students == 15
    assert ledger.migrate(present) == 0  # once


def test_the_ledger_command_shows_how_the_students_budget_is_spread(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from client.cli import app

    state = tmp_path / "state"
    ledger = PrivacyLedger(state)
    _train_all_rounds(ledger, state, _data(_students("a", 30)), "year-1")
    _train_all_rounds(ledger, state, _data([*_students("a", 30), *_students("b", 12)]),
                      "year-2")
    spent = _spent(ledger, [*_students("a", 30), *_students("b", 12)])

    english = CliRunner().invoke(app, ["ledger", "--state", str(state), "--lang", "en"])
    assert english.exit_code == 0, english.output
    text = " ".join(english.output.split())
    assert "over 42 students" in text
    assert f"Largest lifetime epsilon of a student: {spent.max():.3f}" in text
    # The spread as the ledger composes it: 12 students spent one run, 30 spent two.
    for low, high in ((0, 3), (3, 6), (6, 10)):
        count = int(((spent >= low) & (spent < high)).sum())
        assert re.search(rf"{low:.3f} - {high:.3f}\s*│ {count}\s", english.output), (low, high)
    values, counts = np.unique(np.round(spent, 9), return_counts=True)
    assert counts.tolist() == [12, 30] and values[0] < values[1]  # one run; two runs
    assert "Runs like the last one each student can still take" in text
    french = CliRunner().invoke(app, ["ledger", "--state", str(state)],
                                env={"LC_ALL": "", "LC_MESSAGES": "", "LANG": ""})
    assert french.exit_code == 0, french.output
    assert "élèves" in french.output


def _book_runs_forever(path: str) -> None:
    ledger = PrivacyLedger(Path(path))
    key = pseudonym_key(load_or_create_key(ledger.key_path))
    members = student_hashes(_students("s", 500), key)
    for run in range(10_000):
        ledger.book_cohort(run_id=f"r{run}", kind="train", first_round=1, label="train",
                           members=members, retired=0)
        ledger.book(run_id=f"r{run}", server_round=1, kind="train",
                    mechanisms=[(50.0, 0.01, 1)], delta=DELTA, cap=1e9)


def test_a_centre_killed_while_booking_leaves_a_ledger_that_checks(tmp_path: Path) -> None:
    import multiprocessing
    import os
    import signal
    import time

    from common.records.chain import check_ledger

    worker = multiprocessing.get_context("spawn").Process(target=_book_runs_forever,
                                                          args=(str(tmp_path),))
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(PrivacyLedger(tmp_path).releases()) < 3:
        time.sleep(0.05)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)

    ledger = PrivacyLedger(tmp_path)
    cohorts = ledger.cohorts()  # every cohort still matches its MAC
    assert len(ledger.releases()) >= 3
    # Booked before release: every release row has its cohort (a cohort may lack its row).
    assert all(any(c.run_id == b[0] for c in cohorts) for b in ledger.booked())
    assert len(cohorts) in (len(ledger.releases()), len(ledger.releases()) + 1)
    assert not check_ledger(tmp_path / LEDGER_FILE, load_or_create_key(ledger.key_path)).problems


def test_the_ledger_bands_hold_their_edges() -> None:
    from client.privacy.student_budget import BudgetSpread

    spread = BudgetSpread(1e-6, np.array([0.0, 2.9999999, 3.0000004, 3.001, 6.0, 10.0, 10.2]))

    # (0-3], (3-6], (6-10]: one run at epsilon 3 ends in the first band, above the cap none.
    assert spread.counts([0.0, 3.0, 6.0, 10.0]) == [3, 2, 1]
