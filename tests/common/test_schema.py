import pytest

from common.schema import (
    AUDIT_ATTRIBUTES,
    COLUMN_BY_NAME,
    COLUMNS,
    IDENTIFIERS,
    PREDICTORS,
    Column,
    Kind,
    Role,
    Unit,
    Words,
    is_forbidden,
    reader_gaps,
)


def test_column_names_are_unique() -> None:
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))


def test_design_predictors_are_all_present() -> None:
    expected = {
        "grade_level", "age_grade_lag", "ehdaa", "home_language", "immigrant_generation",
        "imse_decile", "sfr_decile", "absence_rate", "suspensions", "school_changes",
        "grade_french", "grade_math", "grade_average", "grade_trend", "failed_courses",
        "grade_retentions", "extracurricular", "qualification_path",
    }
    assert set(PREDICTORS) == expected


def test_identifiers_and_audit_attributes_are_never_predictors() -> None:
    assert not set(IDENTIFIERS) & set(PREDICTORS)
    assert set(AUDIT_ATTRIBUTES) == {"sex", "indigenous"}
    assert not set(AUDIT_ATTRIBUTES) & set(PREDICTORS)


def test_numeric_columns_have_a_valid_scaling() -> None:
    for column in COLUMNS:
        if column.kind is Kind.NUMERIC:
            low, high = column.scaling
            assert high > low, column.name


def test_grades_are_on_0_100() -> None:
    for name in ("grade_french", "grade_math", "grade_average"):
        assert (COLUMN_BY_NAME[name].low, COLUMN_BY_NAME[name].high) == (0, 100)


def test_teacher_and_class_columns_are_forbidden() -> None:
    for name in ("teacher_id", "teacher_name", "class_id", "enseignant", "Teacher_ID", "groupe_id"):
        assert is_forbidden(name), name
    for name in PREDICTORS + IDENTIFIERS:
        assert not is_forbidden(name), name


@pytest.mark.parametrize("name", PREDICTORS)
def test_every_predictor_says_what_it_is_to_a_reader(name: str) -> None:
    assert reader_gaps(COLUMN_BY_NAME[name]) == []


@pytest.mark.parametrize(
    ("column", "lacking"),
    [
        (Column("tutoring", Kind.BOOLEAN, Role.PREDICTOR, "tutoring this year"),
         ["label", "reference"]),
        (Column("tutoring", Kind.BOOLEAN, Role.PREDICTOR, "tutoring this year",
                label=Words("Tutorat", ""), reference=0), ["label", "reference"]),
        (Column("homework", Kind.NUMERIC, Role.PREDICTOR, "share of homework done", low=0,
                high=1, label=Words("Devoirs", "Homework"), reference=1.5), ["unit", "reference"]),
        (Column("homework", Kind.NUMERIC, Role.PREDICTOR, "share of homework done", low=0,
                high=1, label=Words("Devoirs", "Homework"), unit=Unit("{n} %", "{n} %",
                en_plural="percent"), reference=0.9), ["unit"]),
        (Column("visits", Kind.NUMERIC, Role.PREDICTOR, "visits", low=0, high=9, integer=True,
                label=Words("Visites", "Visits"), unit=Unit(), reference=0.5), ["reference"]),
        (Column("track", Kind.CATEGORICAL, Role.PREDICTOR, "track", vocabulary=("a", "b"),
                value_labels=(Words("voie a", "track a"),), label=Words("Voie", "Track"),
                reference="c"), ["value_labels", "reference"]),
    ],
)
def test_a_predictor_lacking_a_readers_part_is_reported(column: Column, lacking: list[str]) -> None:
    gaps = reader_gaps(column)

    assert [gap.rsplit("(", 1)[1].rstrip(")") for gap in gaps] == lacking


def test_columns_never_shown_lack_nothing() -> None:
    assert [c.name for c in COLUMNS if c.role is not Role.PREDICTOR and reader_gaps(c)] == []
