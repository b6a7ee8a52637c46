import numpy as np
import pytest

from common.calibration import Calibration, calibrated_error, fit_calibration
from common.metrics import calibration_error, score_histogram


def _biased_scores(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.5, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    # An overconfident, under-predicting model: logits stretched and shifted down.
    p = 1 / (1 + np.exp(-(2.0 * true_logit - 1.0)))
    return p, y


def test_identity_by_default():
    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(Calibration().apply(p), p)


def test_recovers_the_distortion_and_fixes_calibration():
    p, y = _biased_scores()
    h = score_histogram(p, y, 30)
    calibration = fit_calibration(h)
    assert calibration.slope == pytest.approx(0.5, abs=0.05)
    assert calibration.intercept == pytest.approx(0.5, abs=0.1)
    fixed = calibration.apply(p)
    assert abs(fixed.mean() - y.mean()) < 0.01
    assert calibration_error(score_histogram(fixed, y, 30)) < calibration_error(h) / 3


def test_keeps_the_ranking():
    p, y = _biased_scores(2000, 1)
    fixed = fit_calibration(score_histogram(p, y, 30)).apply(p)
    assert (np.argsort(fixed, kind="stable") == np.argsort(p, kind="stable")).all()


def test_noisy_histograms_still_calibrate():
    p, y = _biased_scores(20_000, 2)
    h = score_histogram(p, y, 30)
    rng = np.random.default_rng(3)
    noisy = type(h)(h.positives + rng.normal(0, 3, 30), h.negatives + rng.normal(0, 3, 30),
                    h.probability_sum, h.squared_error_sum)
    fixed = fit_calibration(noisy).apply(p)
    assert abs(fixed.mean() - y.mean()) < 0.02


def test_a_reversed_fit_falls_back_to_the_identity():
    p, y = _biased_scores(2000, 4)
    h = score_histogram(1 - p, y, 30)  # scores that rank students backwards
    assert fit_calibration(h) == Calibration()


def test_the_calibrated_error_read_from_the_histogram_is_that_of_the_scores():
    # What summary.json reports as calibration_error_pooled_calibrated, read from the
    # released histogram alone, against the error of the recalibrated scores themselves.
    p, y = _biased_scores()
    h = score_histogram(p, y, 20)
    calibration = fit_calibration(h)
    exact = calibration_error(score_histogram(calibration.apply(p), y, 20))
    assert calibrated_error(h, calibration) == pytest.approx(exact, abs=0.01)
    assert calibrated_error(h, calibration) < calibration_error(h) / 3
    assert calibrated_error(h, Calibration()) == pytest.approx(calibration_error(h), abs=0.01)


def test_the_released_calibrated_error_takes_the_noise_out():
    """On DP-noised histograms (the demo's pooled noise: std 10.7 per bin count, 8,800
    held-out students), the figure read as it is errs high (0.004 over groups of equal
    shares of the students, ``calibration_groups``; 0.005 over groups of equal numbers of
    bins); with the noise's variance taken out of each group's gap it comes nearer the
    noise-free one (within 0.002; over single bins the square root of ``d**2 - s2`` errs
    a little low)."""
    p, y = _biased_scores(8_800, 5)
    h = score_histogram(p, y, 20)
    calibration = fit_calibration(h)
    exact = calibrated_error(h, calibration)
    centres = (h.probability_sum / np.maximum(h.positives + h.negatives, 1e-9))
    rng = np.random.default_rng(6)
    std, plain, corrected = 10.7, [], []
    for _ in range(300):
        pos = h.positives + rng.normal(0, std, 20)
        neg = h.negatives + rng.normal(0, std, 20)
        noisy = type(h)(pos, neg, (pos + neg) * centres, 0.0)
        plain.append(calibrated_error(noisy, calibration))
        corrected.append(calibrated_error(noisy, calibration, std**2))
    assert np.mean(plain) - exact > 0.003
    assert abs(np.mean(corrected) - exact) < 0.5 * (np.mean(plain) - exact)
    assert abs(np.median(corrected) - exact) < 0.004
