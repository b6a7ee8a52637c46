"""Metrics of a risk score, computable from sums that centres can share.

Each centre sends, for its held-out records, a histogram of predicted probabilities
per label over fixed bins (plus the sum of probabilities per bin). Summed over centres
these give POOLED metrics over all students, not a mean of local ones. Within a bin,
positive/negative pairs count as ties (half), so the pooled AUC equals the AUC of the
pooled scores up to the bin resolution.

The bins are equal on the logit scale from -8 to 6 (probabilities 0.03 % to 99.75 %;
the end bins are open): DP-trained models spread their scores over orders of magnitude,
and with DP noise on every count, few well-placed bins beat many equal ones (measured
in docs/PRIVACY.md).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of held-out records by score bin and label, and the sum of predicted
    probabilities by bin (for calibration and Brier score)."""

    positives: FloatArray
    negatives: FloatArray
    probability_sum: FloatArray
    squared_error_sum: float

    @property
    def bins(self) -> int:
        return len(self.positives)

    @property
    def count(self) -> float:
        return float(self.positives.sum() + self.negatives.sum())

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        assert self.bins == other.bins, "histograms must share their bins"
        return ScoreHistogram(
            self.positives + other.positives,
            self.negatives + other.negatives,
            self.probability_sum + other.probability_sum,
            self.squared_error_sum + other.squared_error_sum,
        )


# The score bins are equal on the logit scale over this range, the end bins open. DP-SGD's
# models put most held-out students between logit -7 and -3 and a thin tail of high
# scores up to 8: on -7..5 (before -8..6) fewer bins hold almost no one, whose noise
# weighs most on the pooled AUC (docs/PRIVACY.md, "Where the pooled histogram's bins are").
LOGIT_RANGE = (-7.0, 5.0)


def bin_edges(bins: int) -> FloatArray:
    """The ``bins - 1`` interior edges (probabilities) of the score bins."""
    logits = np.linspace(*LOGIT_RANGE, bins + 1)[1:-1]
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


def bin_centres(bins: int) -> FloatArray:
    """A representative probability per bin (logit midpoint; the open end bins take
    the midpoint of a bin of the same width beyond the range)."""
    step = (LOGIT_RANGE[1] - LOGIT_RANGE[0]) / bins
    logits = LOGIT_RANGE[0] + step * (np.arange(bins) + 0.5)
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


def score_histogram(
    probabilities: npt.NDArray[np.floating], labels: npt.NDArray[np.floating], bins: int
) -> ScoreHistogram:
    """Histogram of probabilities (0-1) by label over ``bins`` fixed bins."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(labels, dtype=np.float64)
    index = np.searchsorted(bin_edges(bins), p, side="right")
    positives = np.bincount(index, weights=y, minlength=bins).astype(np.float64)
    negatives = np.bincount(index, weights=1.0 - y, minlength=bins).astype(np.float64)
    probability_sum = np.bincount(index, weights=p, minlength=bins).astype(np.float64)
    return ScoreHistogram(positives, negatives, probability_sum, float(((p - y) ** 2).sum()))


def auc_from_histogram(h: ScoreHistogram) -> float:
    """ROC AUC (Mann-Whitney) with within-bin pairs counted as ties. Noisy (DP) counts
    may be negative: they are used as they are, since clipping them would bias the
    estimate."""
    pos, neg = h.positives, h.negatives
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    negatives_below = np.cumsum(neg) - neg
    wins = float((pos * negatives_below).sum() + 0.5 * (pos * neg).sum())
    # With few students, noise can carry the estimate outside what an AUC can be.
    return min(max(wins / float(total_pos * total_neg), 0.0), 1.0)


def pr_auc_from_histogram(h: ScoreHistogram) -> float:
    """Average precision, thresholds at bin edges from the highest bin down."""
    pos, neg = np.clip(h.positives, 0, None)[::-1], np.clip(h.negatives, 0, None)[::-1]
    total_pos = pos.sum()
    if total_pos <= 0:
        return float("nan")
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
    return float((precision * pos).sum() / total_pos)


def brier_from_histogram(h: ScoreHistogram) -> float:
    """Mean squared error of the probabilities, 0-1 (lower is better)."""
    return h.squared_error_sum / h.count if h.count > 0 else float("nan")


def calibration_error(h: ScoreHistogram, groups: int = 10, noise_variance: float = 0.0) -> float:
    """Expected calibration error over ``groups`` groups of adjacent bins (equal on the
    logit scale): mean |predicted - observed| weighted by count.

    ``noise_variance``: the variance of the (DP) noise on each bin count of a noisy
    histogram, whose probability sums are its bins' counts times their probabilities (as
    the centres derive them). A group's gap ``d`` then carries noise of variance
    ``s2 = noise_variance * sum over its bins of (p**2 + (1 - p)**2)``, and ``|d|`` errs
    high (by 0.01 of the demo's pooled figure): each group's ``|d|`` is replaced by
    ``sqrt(max(d**2 - s2, 0))`` (``d**2 - s2`` is unbiased for the squared gap), a
    post-processing of released counts (docs/PRIVACY.md)."""
    edges = np.linspace(0, h.bins, groups + 1).astype(int)
    total = h.count
    if total <= 0:
        return float("nan")
    count = h.positives + h.negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(count != 0, h.probability_sum / count, 0.5)
    spread = p**2 + (1.0 - p) ** 2
    error = 0.0
    for lo, hi in itertools.pairwise(edges):
        if count[lo:hi].sum() >= 1:
            gap = float(h.probability_sum[lo:hi].sum() - h.positives[lo:hi].sum())
            noise = noise_variance * float(spread[lo:hi].sum())
            error += math.sqrt(max(gap**2 - noise, 0.0))
    return float(error / total)


def reliability_curve(h: ScoreHistogram, groups: int = 10) -> tuple[FloatArray, FloatArray]:
    """Mean predicted and observed rate for each non-empty probability group."""
    edges = np.linspace(0, h.bins, groups + 1).astype(int)
    predicted, observed = [], []
    for lo, hi in itertools.pairwise(edges):
        n = h.positives[lo:hi].sum() + h.negatives[lo:hi].sum()
        if n >= 1:
            predicted.append(h.probability_sum[lo:hi].sum() / n)
            observed.append(h.positives[lo:hi].sum() / n)
    return np.asarray(predicted), np.asarray(observed)


def summarise(h: ScoreHistogram, noise_variance: float = 0.0) -> dict[str, float]:
    """The pooled metrics reported for every round (``noise_variance``: of each bin
    count's noise, for the calibration error, :func:`calibration_error`)."""
    return {
        "auc": auc_from_histogram(h),
        "pr_auc": pr_auc_from_histogram(h),
        "brier": brier_from_histogram(h),
        "calibration_error": calibration_error(h, noise_variance=noise_variance),
        "label_rate": float(h.positives.sum() / h.count) if h.count > 0 else float("nan"),
        "num_test": h.count,
    }
