"""The shipped mappings on public data nobody here wrote (../shared/data, see its README).

Cortez and Silva 2008 (UCI Student Performance, doi:10.24432/C5TG7T) and Realinho et
al. 2022 (UCI Predict Students' Dropout and Academic Success, doi:10.24432/C5MC89).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from client.cli import app
from client.ingest import (
    IngestError,
    ingest_file,
    load_mapping,
    prepare_centres,
    split_by_centre,
)
from client.ingest.centre_data import SitePolicy, split_and_encode
from common.schema import COLUMN_BY_NAME, LABEL, Role
from tests.client.conftest import MAPPINGS, real_file, write_text

POR = ("uci-student-por.csv", "uci-student-por.toml")
DROPOUT = ("uci-dropout-realinho.csv", "uci-dropout-realinho.toml")


def files(case: tuple[str, str]) -> tuple[Path, Path]:
    return real_file(case[0]), MAPPINGS / case[1]


@pytest.mark.parametrize(
    ("case", "rows", "positives", "rate"),
    [(POR, 649, 100, "15.4%"), (DROPOUT, 4424, 1421, "32.1%")],
)
def test_validate_exits_0_with_the_published_counts(
    case: tuple[str, str], rows: int, positives: int, rate: str
) -> None:
    data, mapping = files(case)

    result = CliRunner().invoke(app, ["validate", "--lang", "en",
                                      "--data", str(data), "--mapping", str(mapping)])
    report = ingest_file(data, mapping, SitePolicy()).report

    assert result.exit_code == 0, result.output
    assert f"label rate (left without diploma)   {rate}" in result.stdout
    assert (report.rows_read, report.rows_invalid, report.rows_usable) == (rows, 0, rows)
    assert report.positives == positives


def test_por_schools_are_two_centres() -> None:
    report = ingest_file(*files(POR), SitePolicy()).report

    assert [(c.centre, c.rows_read, c.positives) for c in report.centres] == [
        ("GP", 423, 32),
        ("MS", 226, 68),
    ]


def test_dropout_programmes_are_seventeen_centres() -> None:
    report = ingest_file(*files(DROPOUT), SitePolicy()).report

    sizes = {c.centre: c.rows_read for c in report.centres}
    assert len(sizes) == 17
    assert sum(sizes.values()) == 4424
    assert (sizes["9500"], sizes["33"]) == (766, 12)


@pytest.mark.parametrize("case", [POR, DROPOUT])
def test_no_predictor_reads_the_labels_source(case: tuple[str, str]) -> None:
    mapping = load_mapping(files(case)[1])

    label_reads = next(r.reads for r in mapping.rules if r.target == LABEL)
    predictors = [r for r in mapping.rules if COLUMN_BY_NAME[r.target].role is Role.PREDICTOR]
    assert predictors
    assert all(not (r.reads & label_reads) for r in predictors)
    if case is POR:
        assert label_reads == {"G3"}


def test_using_g3_as_a_feature_is_refused(tmp_path: Path) -> None:
    shipped = (MAPPINGS / POR[1]).read_text(encoding="utf-8")
    leaky = shipped + '\n[columns.grade_math]\nexpr = "G3 * 5"\n'

    with pytest.raises(IngestError, match="grade_math reads 'G3'"):
        load_mapping(write_text(tmp_path / "leaky.toml", leaky))


def test_split_by_centre_gives_raw_extracts_that_validate_alone(tmp_path: Path) -> None:
    data, mapping = files(POR)
    source_columns = data.read_text(encoding="utf-8").splitlines()[0].split(",")

    centres = split_by_centre(data, mapping)

    assert {name: len(frame) for name, frame in centres.items()} == {"GP": 423, "MS": 226}
    usable = 0
    for name, frame in centres.items():
        assert list(frame.columns) == source_columns
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        result = CliRunner().invoke(app, ["validate", "--lang", "en",
                                          "-d", str(path), "-m", str(mapping)])
        assert result.exit_code == 0, result.output
        usable += ingest_file(path, mapping, SitePolicy()).report.rows_usable
    assert usable == 649


def test_split_by_centre_can_use_another_column() -> None:
    data, mapping = files(DROPOUT)

    centres = split_by_centre(data, mapping, centre_column="Daytime/evening attendance")

    assert {name: len(frame) for name, frame in centres.items()} == {"0": 483, "1": 3941}


@pytest.mark.parametrize(("case", "low", "high"), [(POR, 0.85, 0.99), (DROPOUT, 0.78, 0.95)])
def test_mapped_data_carry_signal_without_leaking_the_label(
    case: tuple[str, str], low: float, high: float
) -> None:
    # Centralised reference: logistic regression on the fixed encoding, trained on the
    # union of the centres' training rows, scored on the union of their held-out rows
    # (the same deterministic split the federated run uses).
    results = prepare_centres(*files(case), SitePolicy())
    parts = [split_and_encode(r.frame, SitePolicy(), 0.2) for r in results.values()]
    x_train = np.vstack([p.x_train for p in parts])
    y_train = np.concatenate([p.y_train for p in parts])
    x_test = np.vstack([p.x_test for p in parts])
    y_test = np.concatenate([p.y_test for p in parts])

    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])

    assert low < auc < high


def test_a_programme_below_min_records_is_shown_as_scoring_only() -> None:
    data, mapping = files(DROPOUT)

    result = CliRunner().invoke(app, ["validate", "--lang", "en",
                                      "--data", str(data), "--mapping", str(mapping)])

    line = next(row for row in result.stdout.splitlines() if row.strip().startswith("33 "))
    assert line.split()[:4] == ["33", "12", "12", "66.7%"]
    assert "no: scores only" in line
