"""Confidence intervals of the equity audit (95 % unless a ``z`` says otherwise): of a
rate, of an AUC, and of the difference between two groups' values.

They are for sampling variation; with DP (``privacy.evaluation_noise``) the counts also
carry Gaussian noise, which ``widen`` adds to an interval (``common.equity.audit`` estimates
its spread).
"""

from __future__ import annotations

import math
from statistics import NormalDist

Z95 = 1.96
NAN = float("nan")
Interval = tuple[float, float]


def z_for_pairs(groups: int, confidence: float = 0.95) -> float:
    """The normal quantile that makes intervals of all ``groups * (groups - 1) / 2``
    pairwise differences hold together with probability ``confidence`` (Bonferroni):
    an interval for the pair a gap picks as the extreme one then keeps its level,
    although the data chose the pair. 1.96 for two groups, 2.39 for three."""
    pairs = max(groups * (groups - 1) // 2, 1)
    return NormalDist().inv_cdf(1 - (1 - confidence) / (2 * pairs))


def wilson(successes: float, trials: float, z: float = Z95) -> tuple[float, float, float]:
    """A rate (0-1) and its Wilson score interval; NaNs with fewer than one trial.

    Noisy (DP) counts can make the rate fall outside 0-1: it is kept to 0-1.
    """
    if trials < 1:
        return (NAN, NAN, NAN)
    rate = min(max(successes / trials, 0.0), 1.0)
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials**2)) / (
        1 + z * z / trials
    )
    return (rate, max(0.0, centre - half), min(1.0, centre + half))


def hanley_mcneil(auc: float, positives: float, negatives: float, z: float = Z95) -> Interval:
    """Interval of an AUC (Hanley & McNeil 1982)."""
    if math.isnan(auc) or positives < 1 or negatives < 1:
        return (NAN, NAN)
    auc = min(max(auc, 0.0), 1.0)  # noisy (DP) counts can push the estimate outside
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    half = z * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def absolute(value: float, interval: Interval) -> tuple[float, Interval]:
    """``|value|`` and the interval of ``|x|`` for x in ``interval`` (0 at the low end
    when the interval straddles 0)."""
    low, high = interval
    if math.isnan(value) or math.isnan(low) or math.isnan(high):
        return (abs(value), (NAN, NAN))
    if low <= 0.0 <= high:
        return (abs(value), (0.0, max(-low, high)))
    return (abs(value), (min(abs(low), abs(high)), max(abs(low), abs(high))))


def widen(value: float, interval: Interval, extra: float) -> Interval:
    """``interval`` around ``value`` widened by an independent error of half-width
    ``extra`` on each side (half-widths added in quadrature, as in ``difference``)."""
    low, high = interval
    if math.isnan(extra) or extra <= 0.0:
        return interval
    return (value - math.hypot(value - low, extra), value + math.hypot(high - value, extra))


def difference(first: float, first_ci: Interval, second: float, second_ci: Interval) -> Interval:
    """Interval of ``first - second`` from each value's own interval, at their level.

    Newcombe's hybrid score method (1998, method 10) when the intervals are Wilson
    intervals of two independent proportions; with other intervals (Hanley–McNeil for
    AUCs) it is the same construction, the "method of variance estimates recovery"
    (Zou & Donner 2008). NaNs when any input is NaN.
    """
    values = (first, second, *first_ci, *second_ci)
    if any(math.isnan(v) for v in values):
        return (NAN, NAN)
    (l1, u1), (l2, u2) = first_ci, second_ci
    d = first - second
    return (d - math.sqrt((first - l1) ** 2 + (u2 - second) ** 2),
            d + math.sqrt((u1 - first) ** 2 + (second - l2) ** 2))
