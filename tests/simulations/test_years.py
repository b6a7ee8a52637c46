"""Successive school years: the generator (``simulations.school_years``) and
``perseverance-sim years`` end to end on the tiny scenario."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from client.ingest import prepare_extract
from client.site_policy import SitePolicy
from common.schema import LABEL, STUDENT_ID
from simulations.school_years import YearExtract, network_years
from tests.simulations.test_quiet_terminal import assert_french_and_plain

SIM = Path(sys.executable).with_name("perseverance-sim")
NETWORK: dict[str, Any] = {"centres": 3, "students": 3000, "seed": 5,
                           "include_indigenous_boards": False}


@pytest.fixture(scope="module")
def four_years() -> list[YearExtract]:
    return list(network_years(years=4, **NETWORK))


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame[LABEL].notna()].set_index(STUDENT_ID)


def _current(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame[LABEL].isna()].set_index(STUDENT_ID)


def test_students_advance_keep_their_pseudonym_and_a_new_secondary_1_enters(
        four_years: list[YearExtract]) -> None:
    for before, after in itertools.pairwise(four_years):
        assert after.school_year != before.school_year
        for centre, frame in after.frames.items():
            now, then = _current(frame), _current(before.frames[centre])
            stayed = now.index.intersection(then.index)
            moved = now.loc[stayed, "grade_level"] - then.loc[stayed, "grade_level"]
            assert set(moved.unique()) <= {0, 1}  # a level up, or the same level again
            assert 0.85 < (moved == 1).mean() < 1.0  # most advance, a few repeat
            # Those who did not stay left, and are now labelled: no one vanishes.
            gone = then.index.difference(now.index)
            assert len(gone) > 0 and set(gone) <= set(_labelled(frame).index)
            assert set(gone) == after.newest[centre]
            # The newcomers are a new secondary 1, never seen before.
            entered = now.index.difference(then.index)
            assert len(entered) > 0.15 * len(then)
            assert (now.loc[entered, "grade_level"] == 1).all()
            assert not set(entered) & set(before.frames[centre][STUDENT_ID])
            # Who a student is does not change from one year to the next.
            for column in ("sex", "indigenous", "home_language", "consent"):
                assert (now.loc[stayed, column] == then.loc[stayed, column]).all(), column


def test_labels_only_for_known_outcomes_and_kept_once_known(four_years: list[YearExtract]) -> None:
    for before, after in itertools.pairwise(four_years):
        for centre, frame in after.frames.items():
            assert frame[STUDENT_ID].is_unique
            old, new = _labelled(before.frames[centre]), _labelled(frame)
            # A known outcome stays known, on the same record, with the same label.
            assert set(old.index) <= set(new.index)
            pd.testing.assert_frame_equal(new.loc[old.index], old)
            # Both outcomes are known every year: graduates and those who left without.
            assert new[LABEL].astype(bool).any() and not new[LABEL].astype(bool).all()
    first = four_years[0]
    total = sum(len(_labelled(f)) for f in first.frames.values())
    dropouts = sum(int(_labelled(f)[LABEL].astype(bool).sum()) for f in first.frames.values())
    assert 0.1 < dropouts / total < 0.5
    # Labelled records keep the school year they were first seen in (year 0 or entry).
    assert set(_labelled(first.frames["css-20"])["school_year"]) == {"2023-2024"}


def test_each_year_is_a_valid_extract(four_years: list[YearExtract], tmp_path: Path) -> None:
    frame = four_years[-1].frames["css-20"]
    path = tmp_path / "css-20.parquet"
    frame.to_parquet(path, index=False)
    assert len(prepare_extract(path, None, SitePolicy())) == len(frame)


def test_the_years_are_deterministic_whatever_the_number_asked(
        four_years: list[YearExtract]) -> None:
    again = list(network_years(years=2, **NETWORK))
    for ours, theirs in zip(four_years, again, strict=False):
        for centre, frame in ours.frames.items():
            pd.testing.assert_frame_equal(frame, theirs.frames[centre])
    other_seed = next(network_years(years=1, **{**NETWORK, "seed": 6}))
    assert not other_seed.frames["css-20"].equals(four_years[0].frames["css-20"])


@pytest.mark.slow
def test_years_on_the_tiny_scenario(tmp_path: Path) -> None:
    """Two years of one round at epsilon 8 per run (the floor raised to match), under
    the default lifetime cap of 10: at the small centres, the students used in year 1
    cannot afford a second run, so year 2 retires them and trains on its newest."""
    out = tmp_path / "years"
    env = {**os.environ, "RAY_TMPDIR": f"/tmp/prs-ray-{os.getpid()}",
           "FLWR_HOME": str(tmp_path / "flwr")}
    proc = subprocess.run(
        [str(SIM), "years", "--scenario", "tiny", "--years", "2", "--out", str(out),
         "--set", "rounds=1", "--set", "privacy.epsilon=8",
         "--set", "centre_policy.max_epsilon_per_run=8",
         # Seeded noise: the assertions below must not depend on a draw.
         "--set", "privacy.reproducible_noise=true",
         "--set", "centre_policy.allow_replayable_noise=true"],
        env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads((out / "years.json").read_text(encoding="utf-8"))
    rows = table["years"]
    assert [row["year"] for row in rows] == [1, 2]
    assert "année 2 (2025-2026)" in proc.stdout  # French by default
    # One line per year's wait, nothing English, no colour code in a pipe (issue 28).
    assert "Année 2 sur 2 : ses données, l'entraînement fédéré et l'évaluation" in proc.stderr
    assert_french_and_plain(proc.stdout + proc.stderr)
    first, second = rows
    assert first["run_name"] != second["run_name"] and "-year-2-" in second["run_name"]
    assert first["auc_previous_model"] is None
    assert 0.6 < second["auc_previous_model"] < 1.0
    assert second["labelled"] > first["labelled"] > 0
    assert second["labelled_newest"] < second["labelled_training_side"]
    for row in rows:
        # No student's lifetime epsilon passes the cap, every training-side record is
        # trained on or retired, and at least a third of the labelled records train.
        assert 0 < row["epsilon_student_median"] <= row["epsilon_student_max"]
        assert row["epsilon_student_max"] <= table["epsilon_cap"] + 1e-9
        assert row["students_trained"] + row["retired"] == row["labelled_training_side"]
        assert row["students_trained"] >= row["labelled"] / 3
    assert first["retired"] == first["retired_evaluation"] == 0
    assert first["students_trained"] == first["labelled_training_side"]
    # Year 2: the small centres' records of last year cannot afford a second run at 8
    # (a large centre samples a smaller share per step, so its runs compose to less);
    # the newest, with no history, all train.
    assert 0 < second["retired"] <= second["labelled_training_side"] - second["labelled_newest"]
    assert second["students_trained"] >= second["labelled_newest"]
    assert second["retired_evaluation"] > 0
    summary = json.loads((out / "year-2" / "summary.json").read_text(encoding="utf-8"))
    assert sum(c["train"] for c in summary["records_retired"].values()) == second["retired"]
    assert first["students_known"] == first["labelled"]  # each used once at least
    assert second["students_known"] == second["labelled"]
    # One ledger per centre, kept across the years.
    assert sorted(p.name for p in (out / "state").iterdir()) == [
        "centre-0", "centre-1", "centre-2"]
    assert (out / "year-2" / "report.html").read_text(encoding="utf-8").count(
        "Années scolaires") == 1
