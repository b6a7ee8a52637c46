import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from common.metrics import (
    auc_from_histogram,
    bin_edges,
    brier_from_histogram,
    calibration_error,
    pr_auc_from_histogram,
    score_histogram,
)


def test_perfect_and_inverted_rankings():
    y = np.array([0, 0, 1, 1.0])
    assert auc_from_histogram(score_histogram(np.array([0.1, 0.2, 0.8, 0.9]), y, 100)) == 1.0
    assert auc_from_histogram(score_histogram(np.array([0.9, 0.8, 0.2, 0.1]), y, 100)) == 0.0


def test_all_in_one_bin_is_a_coin_flip():
    y = np.array([0, 1, 0, 1.0])
    assert auc_from_histogram(score_histogram(np.full(4, 0.5), y, 10)) == 0.5


@settings(max_examples=40, deadline=None, derandomize=True)  # the same cases in every run
@given(st.integers(0, 2**32 - 1), st.integers(50, 2000))
@example(920508, 50)  # a case where the precision differed by 0.024 on the raw scores
def test_pooled_auc_from_summed_histograms_matches_sklearn(seed, n):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(float)
    if y.sum() == 0 or y.sum() == n:
        y[0], y[1] = 1.0, 0.0
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 1)))
    halves = np.array_split(np.arange(n), 3)
    pooled = sum(
        (score_histogram(p[i], y[i], 1000) for i in halves[1:]),
        start=score_histogram(p[halves[0]], y[halves[0]], 1000),
    )
    exact = roc_auc_score(y, p)
    # Exactly scikit-learn's figures on the scores rounded to their bin: students in one
    # bin are ties (counted as halves for the AUC, one threshold for the precision).
    binned = np.searchsorted(bin_edges(1000), p, side="right")
    assert auc_from_histogram(pooled) == pytest.approx(roc_auc_score(y, binned), abs=1e-12)
    assert pr_auc_from_histogram(pooled) == pytest.approx(average_precision_score(y, binned),
                                                          abs=1e-12)
    # On the raw scores, within the bin resolution: the AUC moves by half the share of
    # (positive, negative) pairs that share a bin.
    pairs = (y[:, None] == 1) & (y[None, :] == 0)
    tied = (pairs & (binned[:, None] == binned[None, :])).sum() / pairs.sum()
    assert abs(auc_from_histogram(pooled) - exact) <= tied / 2 + 1e-12
    assert brier_from_histogram(pooled) == pytest.approx(brier_score_loss(y, p))


def test_calibration_error_is_zero_when_rates_match_predictions():
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0.0])
    assert calibration_error(score_histogram(p, y, 100)) == pytest.approx(0.0)


def test_calibration_error_of_an_overconfident_model():
    p = np.full(10, 0.95)
    y = np.array([1] * 5 + [0] * 5, dtype=float)
    assert calibration_error(score_histogram(p, y, 100)) == pytest.approx(0.45)
