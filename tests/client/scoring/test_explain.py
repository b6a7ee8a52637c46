"""Integrated Gradients attributions: known answers on a hand-set model, completeness,
missing values, per-predictor sums and the choice of factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import IntegratedGradients

from client.scoring.explain import (
    DEFAULT_STEPS,
    REFERENCE_STUDENT,
    attribute,
    baselines_for,
    per_predictor,
    reference_encoding,
    top_factors,
)
from common.encoding import FEATURE_SLICES, NUM_FEATURES, encode
from common.schema import PREDICTORS
from tests.client.conftest import harmonised_frame
from tests.client.model_files import hand_set_model, random_model


def _student(**values: object) -> pd.DataFrame:
    return pd.DataFrame([{**REFERENCE_STUDENT, **values}])


def test_the_predictor_the_weights_make_risk_increasing_is_the_top_factor() -> None:
    x = encode(_student(absence_rate=0.6, extracurricular=True, grade_math=40.0))

    raising, protective = top_factors(attribute(hand_set_model(), x).per_predictor)

    assert raising == [["absence_rate"]]
    assert protective == [["extracurricular"]]


def test_attributions_of_a_piecewise_linear_path_are_exact() -> None:
    x = encode(_student(absence_rate=0.6, extracurricular=True))

    result = attribute(hand_set_model(risk_weight=5.0, protective_weight=3.0), x)

    by_name = dict(zip(PREDICTORS, result.per_predictor[0], strict=True))
    assert by_name["absence_rate"] == pytest.approx(5.0 * (0.6 - 0.05), abs=1e-4)
    assert by_name["extracurricular"] == pytest.approx(-3.0, abs=1e-4)
    assert sum(abs(v) for k, v in by_name.items()
               if k not in ("absence_rate", "extracurricular")) == pytest.approx(0.0, abs=1e-6)


def test_attributions_add_up_to_the_logit_difference_from_the_reference() -> None:
    x = encode(harmonised_frame(200))

    result = attribute(random_model(), x)

    gap = result.per_predictor.sum(axis=1) - (result.logit - result.reference_logit)
    assert np.abs(gap).max() < 0.02
    assert np.abs(result.delta).max() < 0.02


def test_a_predictor_without_a_value_is_never_a_factor() -> None:
    x = encode(_student(absence_rate=float("nan"), extracurricular=True))

    result = attribute(hand_set_model(), x)

    assert result.per_predictor[0, PREDICTORS.index("absence_rate")] == 0.0


def test_the_reference_student_gives_zero_attributions_to_itself() -> None:
    x = reference_encoding()[None, :]

    result = attribute(random_model(), x)

    assert np.abs(result.per_predictor).max() == pytest.approx(0.0, abs=1e-6)


def test_feature_attributions_are_summed_over_each_predictors_slice() -> None:
    features = np.zeros((1, NUM_FEATURES))
    cols = FEATURE_SLICES["home_language"]
    features[0, cols] = [0.5, 0.25, 0.125, 0.0]

    summed = per_predictor(features)

    assert summed[0, PREDICTORS.index("home_language")] == pytest.approx(0.875)
    assert summed.sum() == pytest.approx(0.875)


def test_top_factors_rank_by_size_and_skip_small_effects() -> None:
    row = np.zeros(len(PREDICTORS))
    row[PREDICTORS.index("failed_courses")] = 0.9
    row[PREDICTORS.index("absence_rate")] = 1.2
    row[PREDICTORS.index("grade_trend")] = 0.01  # below the smallest effect shown
    row[PREDICTORS.index("extracurricular")] = -0.4

    raising, protective = top_factors(row[None, :], k=3, min_effect=0.05)

    assert raising == [["absence_rate", "failed_courses"]]
    assert protective == [["extracurricular"]]


def test_one_backward_pass_per_chunk_gives_captums_per_student_attributions() -> None:
    model, x = random_model(), encode(harmonised_frame(50))
    baselines = torch.from_numpy(baselines_for(x))

    expected = IntegratedGradients(model).attribute(
        torch.from_numpy(x), baselines=baselines, n_steps=DEFAULT_STEPS, method="gausslegendre")

    np.testing.assert_allclose(per_predictor(expected.detach().double().numpy()),
                               attribute(model, x).per_predictor, atol=1e-5)
