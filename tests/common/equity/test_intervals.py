"""The equity audit's intervals against published worked examples."""

import math

import pytest

from common.equity.intervals import absolute, difference, hanley_mcneil, wilson, z_for_pairs


def test_wilson_interval_of_newcombe_1998_example() -> None:
    # Newcombe (1998, Statistics in Medicine 17:857), single proportion 81/263.
    rate, low, high = wilson(81, 263)
    assert rate == pytest.approx(81 / 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=5e-5)


def test_difference_of_two_proportions_is_newcombe_method_10() -> None:
    # Newcombe (1998, Statistics in Medicine 17:873), example (a): 56/70 vs 48/80,
    # hybrid score interval 0.0524 to 0.3339.
    first, second = wilson(56, 70), wilson(48, 80)
    low, high = difference(first[0], first[1:], second[0], second[1:])
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=5e-5)


def test_hanley_mcneil_standard_error_of_their_example() -> None:
    # Hanley & McNeil (1982, Radiology 143:29): area 0.893 with 51 abnormal and 58
    # normal cases, standard error about 0.032.
    low, high = hanley_mcneil(0.893, 51, 58)
    assert (high - low) / (2 * 1.96) == pytest.approx(0.032, abs=1e-3)


def test_difference_interval_holds_the_difference_and_widens_with_either_interval() -> None:
    narrow = difference(0.9, (0.88, 0.92), 0.8, (0.78, 0.82))
    wide = difference(0.9, (0.80, 0.97), 0.8, (0.78, 0.82))
    assert narrow[0] < 0.1 < narrow[1]
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_absolute_value_interval() -> None:
    assert absolute(-0.05, (-0.08, -0.02)) == (0.05, (0.02, 0.08))
    assert absolute(0.01, (-0.03, 0.04)) == (0.01, (0.0, 0.04))


def test_too_few_trials_or_missing_values_give_nans() -> None:
    assert all(math.isnan(v) for v in wilson(0, 0))
    assert all(math.isnan(v) for v in hanley_mcneil(0.7, 0, 10))
    assert all(math.isnan(v) for v in difference(math.nan, (0.1, 0.2), 0.1, (0.0, 0.2)))


def test_pair_adjusted_quantiles_are_bonferronis() -> None:
    # One pair: the plain 95 % quantile; three groups, three pairs: 1 - 0.05 / 6;
    # four groups, six pairs: 1 - 0.05 / 12 (normal tables: 1.960, 2.394, 2.638).
    assert z_for_pairs(2) == pytest.approx(1.95996, abs=1e-5)
    assert z_for_pairs(3) == pytest.approx(2.39398, abs=1e-5)
    assert z_for_pairs(4) == pytest.approx(2.63826, abs=1e-5)
    low95, high95 = wilson(81, 263)[1:]
    low, high = wilson(81, 263, z_for_pairs(3))[1:]
    assert low < low95 and high > high95
