from common.schema import (
    AUDIT_ATTRIBUTES,
    COLUMN_BY_NAME,
    COLUMNS,
    IDENTIFIERS,
    PREDICTORS,
    Kind,
    is_forbidden,
)


def test_column_names_are_unique():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))


def test_design_predictors_are_all_present():
    expected = {
        "grade_level", "age_grade_lag", "ehdaa", "home_language", "immigrant_generation",
        "imse_decile", "sfr_decile", "absence_rate", "suspensions", "school_changes",
        "grade_french", "grade_math", "grade_average", "grade_trend", "failed_courses",
        "grade_retentions", "extracurricular", "qualification_path",
    }
    assert set(PREDICTORS) == expected


def test_identifiers_and_audit_attributes_are_never_predictors():
    assert not set(IDENTIFIERS) & set(PREDICTORS)
    assert set(AUDIT_ATTRIBUTES) == {"sex", "indigenous"}
    assert not set(AUDIT_ATTRIBUTES) & set(PREDICTORS)


def test_numeric_columns_have_a_valid_scaling():
    for column in COLUMNS:
        if column.kind is Kind.NUMERIC:
            low, high = column.scaling
            assert high > low, column.name


def test_grades_are_on_0_100():
    for name in ("grade_french", "grade_math", "grade_average"):
        assert (COLUMN_BY_NAME[name].low, COLUMN_BY_NAME[name].high) == (0, 100)


def test_teacher_and_class_columns_are_forbidden():
    for name in ("teacher_id", "teacher_name", "class_id", "enseignant", "Teacher_ID", "groupe_id"):
        assert is_forbidden(name), name
    for name in PREDICTORS + IDENTIFIERS:
        assert not is_forbidden(name), name
