"""The calibration error's groups placed from the histogram's own (released) counts
(issue 30, point 3: ``common.metrics.calibration_groups``)."""

import itertools

import numpy as np
import pytest

from common.calibration import Calibration, calibrated_error
from common.metrics import (
    CALIBRATION_GROUPS,
    ScoreHistogram,
    calibration_error,
    calibration_groups,
    reliability_curve,
    score_histogram,
)
from simulations.bench_audit import equal_bin_groups, exact_calibration_error


def _histogram(counts: list[float], predicted: list[float], observed: list[float]
               ) -> ScoreHistogram:
    n = np.asarray(counts, dtype=np.float64)
    positives = n * np.asarray(observed)
    return ScoreHistogram(positives, n - positives, n * np.asarray(predicted), 0.0)


def test_groups_hold_equal_shares_of_the_students_whatever_the_bins() -> None:
    uniform = calibration_groups(np.full(20, 50.0))
    assert uniform == [(2 * g, 2 * g + 2) for g in range(10)]
    # A narrow band of scores: every student in 4 of the 20 fixed bins, each its own group.
    narrow = np.zeros(20)
    narrow[3:7] = 1000.0
    groups = calibration_groups(narrow)
    students = [narrow[lo:hi].sum() for lo, hi in groups]
    assert [s for s in students if s > 0] == [1000.0] * 4
    assert groups[0][0] == 0 and groups[-1][1] == 20
    assert all(a[1] == b[0] for a, b in itertools.pairwise(groups))


def test_groups_are_a_function_of_the_counts_only_noise_clipped() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 400, 16).astype(np.float64)
    noisy = counts + rng.normal(0.0, 10.0, 16)
    assert calibration_groups(noisy) == calibration_groups(np.clip(noisy, 0.0, None))
    assert len(calibration_groups(noisy)) <= CALIBRATION_GROUPS
    assert calibration_groups(np.zeros(6)) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]


def test_a_miscalibration_inside_two_fixed_bins_is_seen() -> None:
    # All students in bins 4 and 5 of the 20 fixed bins, which the old groups (equal
    # numbers of bins) put in one group where the two gaps cancel: 0 then, 0.1 now.
    counts = [0.0] * 20
    counts[4] = counts[5] = 1000.0
    predicted = [0.5] * 20
    observed = [0.5] * 20
    predicted[4], observed[4] = 0.20, 0.10
    predicted[5], observed[5] = 0.25, 0.35
    h = _histogram(counts, predicted, observed)
    assert calibration_error(h, bounds=equal_bin_groups(20)) == pytest.approx(0.0)
    assert calibration_error(h) == pytest.approx(0.1)
    assert len(reliability_curve(h)[0]) == 2


def test_released_error_near_the_students_own_over_equal_shares() -> None:
    # Scores in a narrow band of the fixed bins (logit -6..-4.5, where a weak signal at 5 %
    # put them), right on average but too flat within it: the groups of equal numbers of
    # bins (2-3 groups of 2 bins) miss half of it; groups placed from the counts (one per
    # bin here) come near the students' own 10 groups of equal size.
    rng = np.random.default_rng(11)
    p = 1.0 / (1.0 + np.exp(-rng.uniform(-6.0, -4.5, 40_000)))
    y = (rng.random(len(p)) < np.clip(0.006 + 6.0 * (p - 0.006), 0.0, 1.0)).astype(np.float64)
    h = score_histogram(p, y, 20)
    exact = exact_calibration_error(p, y)
    assert exact > 0.005
    assert abs(calibration_error(h) - exact) < 0.1 * exact
    assert abs(calibration_error(h, bounds=equal_bin_groups(20)) - exact) > 0.4 * exact
    assert calibrated_error(h, Calibration(), 0.0, equal_bin_groups(20)) < calibrated_error(
        h, Calibration())
