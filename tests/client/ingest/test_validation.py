"""Schema validation: built from common.schema, rows excluded with their numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from client.ingest import IngestError, ingest_file, prepare_extract
from client.ingest.centre_data import SitePolicy, load_centre
from client.ingest.validation import harmonised_schema, validate_rows
from common.encoding import FEATURE_NAMES
from common.schema import COLUMNS, STUDENT_ID, Kind
from tests.client.conftest import harmonised_frame, write_csv

LENIENT = SitePolicy(max_invalid_fraction=1.0)


def test_pandera_schema_is_built_from_the_schema_columns() -> None:
    schema = harmonised_schema()

    assert list(schema.columns) == [c.name for c in COLUMNS]
    for column in COLUMNS:
        spec = schema.columns[column.name]
        assert spec.required == column.required
        assert spec.nullable == column.nullable
        assert spec.unique == (column.name == STUDENT_ID)
        if column.kind is Kind.NUMERIC:
            assert f"outside {column.low:g} to {column.high:g}" in [c.error for c in spec.checks]
        if column.kind is Kind.CATEGORICAL:
            assert spec.checks[0].statistics["allowed_values"] == list(column.vocabulary)


def test_a_clean_extract_has_no_problems(harmonised_csv: Path) -> None:
    report = ingest_file(harmonised_csv, None, SitePolicy()).report

    assert (report.rows_read, report.rows_invalid, report.rows_usable) == (40, 0, 40)
    assert report.positives == 14  # rows 0, 3, ..., 39
    assert report.problems == ()


def corrupt(tmp_path: Path, column: str, rows: dict[int, object]) -> Path:
    frame = harmonised_frame(40).astype(object)
    for row, value in rows.items():
        frame.loc[row, column] = value
    return write_csv(tmp_path / "x.csv", frame)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("grade_math", 100.5, "outside 0 to 100"),
        ("grade_math", -1, "outside 0 to 100"),
        ("grade_math", "beaucoup", "not a number"),
        ("grade_math", "inf", "outside 0 to 100"),
        ("grade_math", "1e308", "outside 0 to 100"),
        ("failed_courses", 1.5, "not a whole number"),
        ("home_language", "de", "not one of fr, en, other"),
        ("sex", "unknown", "not one of F, M, X"),
        ("ehdaa", "peut-être", "not a yes/no value"),
        ("consent", "", "missing, but required"),
        ("student_id", "NaN", "missing, but required"),
    ],
)
def test_invalid_cells_exclude_their_row_by_number(
    tmp_path: Path, column: str, value: object, reason: str
) -> None:
    path = corrupt(tmp_path, column, {6: value})

    result = ingest_file(path, None, LENIENT)

    assert result.report.rows_invalid == 1
    assert (result.report.problems[0].row, result.report.problems[0].column) == (7, column)
    assert reason in [p.reason for p in result.report.problems]
    assert "s0006" not in set(result.frame["student_id"])
    assert len(result.frame) == 39


def test_duplicated_ids_exclude_every_copy(tmp_path: Path) -> None:
    path = corrupt(tmp_path, "student_id", {10: "s0003", 11: "s0003"})

    report = ingest_file(path, None, LENIENT).report

    assert sorted({p.row for p in report.problems}) == [4, 11, 12]
    assert report.rows_invalid == 3


def test_missing_predictor_values_are_missing_not_invalid(tmp_path: Path) -> None:
    path = corrupt(tmp_path, "grade_math", {1: "", 2: "NaN", 3: "NA"})

    report = ingest_file(path, None, SitePolicy()).report

    assert report.rows_invalid == 0
    grade_math = next(c for c in report.columns if c.name == "grade_math")
    assert grade_math.missing_fraction == pytest.approx(3 / 40)


def test_accepted_spellings_are_normalised(tmp_path: Path) -> None:
    frame = harmonised_frame(4).assign(
        consent=["oui", "Yes", "1", "TRUE"],
        ehdaa=["non", "N", "0", "faux"],
        sex=["f", "m", "x", "F"],
        home_language=["FR", "En", "other", "fr"],
        grade_level=["1.0", "2", " 3 ", "4"],
    )

    valid = prepare_extract(write_csv(tmp_path / "x.csv", frame), None, SitePolicy())

    assert valid["consent"].tolist() == [True] * 4
    assert valid["ehdaa"].tolist() == [False] * 4
    assert valid["sex"].tolist() == ["F", "M", "X", "F"]
    assert valid["home_language"].tolist() == ["fr", "en", "other", "fr"]
    assert valid["grade_level"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_a_predictor_the_centre_lacks_is_allowed_and_encoded_missing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(40).drop(columns=["grade_math"]))

    report = ingest_file(path, None, SitePolicy()).report
    data = load_centre(str(path), None, None, 0.2)

    assert "grade_math" in report.absent_predictors
    missing_slot = FEATURE_NAMES.index("grade_math:missing")
    assert np.all(data.x_train[:, missing_slot] == 1.0)


def test_a_required_column_absent_stops_with_a_hint(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(5).drop(columns=["consent"]))

    with pytest.raises(IngestError) as caught:
        ingest_file(path, None, SitePolicy())

    assert "lacks the required column consent" in str(caught.value)
    assert "--mapping" in str(caught.value)


def test_unknown_columns_of_a_harmonised_file_are_ignored(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(5).assign(notes="x"))

    result = ingest_file(path, None, SitePolicy())

    assert result.report.ignored_columns == ("notes",)
    assert "notes" not in result.frame.columns


@pytest.mark.parametrize(("bad_rows", "usable"), [(2, True), (3, False)])
def test_row_problems_stop_the_run_only_past_the_policy_threshold(
    tmp_path: Path, bad_rows: int, usable: bool
) -> None:
    path = corrupt(tmp_path, "grade_math", dict.fromkeys(range(bad_rows), 500))
    policy = SitePolicy(max_invalid_fraction=0.05)  # 2 of 40 = 5 % allowed, 3 of 40 not

    if usable:
        assert len(prepare_extract(path, None, policy)) == 40 - bad_rows
    else:
        with pytest.raises(IngestError, match=r"3 of 40 rows .* \(7.5%\) have invalid values"):
            prepare_extract(path, None, policy)


def test_validate_rows_returns_typed_columns() -> None:
    valid, problems = validate_rows(harmonised_frame(3).astype(str))

    assert problems == []
    assert valid["grade_math"].dtype == np.float64
    assert valid["consent"].dtype == pd.BooleanDtype()
    assert valid["sex"].dtype == pd.StringDtype()


def test_current_students_without_labels_are_kept_for_scoring(tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "x.csv", harmonised_frame(20).drop(columns=["left_without_diploma"])
    )

    result = ingest_file(data, None, SitePolicy())
    centre = load_centre(str(data), None, None, 0.2)

    assert result.report.rows_missing_label == 20
    assert result.frame["left_without_diploma"].isna().all()
    assert centre.num_train + centre.num_test == 0


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_generators_files_validate_without_a_mapping(tmp_path: Path, fmt: str) -> None:
    from simulations.network import generate_network, write_network

    network = generate_network(centres=3, students=600, seed=3)
    files = write_network(network, tmp_path, fmt)

    for path in files:
        report = ingest_file(path, None, SitePolicy()).report
        assert report.rows_invalid == 0
        assert report.rows_read == len(network.frames[path.stem])
