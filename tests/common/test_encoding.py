import numpy as np
import pandas as pd
import pytest

from common.encoding import FEATURE_NAMES, FEATURE_SLICES, NUM_FEATURES, encode


def _row(**values):
    base = {
        "grade_level": 3, "age_grade_lag": 1, "ehdaa": True, "home_language": "en",
        "immigrant_generation": "2", "imse_decile": 10, "sfr_decile": 1,
        "absence_rate": 0.25, "suspensions": 20, "school_changes": 0, "grade_french": 50.0,
        "grade_math": 100.0, "grade_average": 75.0, "grade_trend": -50.0,
        "failed_courses": 5, "grade_retentions": 0, "extracurricular": False,
        "qualification_path": None,
    }
    base.update(values)
    return pd.DataFrame([base])


def test_feature_layout_is_fixed_and_named():
    assert len(FEATURE_NAMES) == NUM_FEATURES
    assert FEATURE_NAMES[:2] == ("grade_level", "grade_level:missing")
    assert "home_language=other" in FEATURE_NAMES


def test_known_values_encode_to_known_answers():
    x = encode(_row())[0]
    get = dict(zip(FEATURE_NAMES, x, strict=True))
    assert get["grade_level"] == pytest.approx(0.5)  # (3 - 1) / (5 - 1)
    assert get["imse_decile"] == pytest.approx(1.0)
    assert get["sfr_decile"] == pytest.approx(0.0)
    assert get["suspensions"] == pytest.approx(1.0)  # clipped at the fixed bound 10
    assert get["grade_trend"] == pytest.approx(0.0)  # clipped at -25
    assert get["grade_average"] == pytest.approx(0.75)
    assert get["ehdaa"] == 1.0 and get["ehdaa:missing"] == 0.0
    assert get["home_language=en"] == 1.0 and get["home_language:missing"] == 0.0
    assert get["qualification_path"] == 0.0 and get["qualification_path:missing"] == 1.0


def test_missing_and_refused_predictors_encode_as_missing():
    frame = _row().drop(columns=["grade_math"])
    x = encode(frame, refused=["home_language"])[0]
    get = dict(zip(FEATURE_NAMES, x, strict=True))
    assert get["grade_math:missing"] == 1.0 and get["grade_math"] == 0.0
    assert get["home_language:missing"] == 1.0
    assert get["home_language=en"] == 0.0


def test_encoding_does_not_depend_on_other_rows():
    one = encode(_row())
    many = encode(pd.concat([_row(grade_average=v) for v in (10.0, 75.0, 99.0)]))
    np.testing.assert_array_equal(one[0], many[1])


def test_every_predictor_slice_has_one_hot_or_value_plus_missing():
    covered = sorted(i for s in FEATURE_SLICES.values() for i in range(s.start, s.stop))
    assert covered == list(range(NUM_FEATURES))
