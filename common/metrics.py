"""Metrics of a risk score, computable from sums that centres can share.

Each centre sends, for its held-out records, a histogram of predicted probabilities
per label over fixed bins (plus the sum of probabilities per bin). Summed over centres
these give POOLED metrics over all students, not a mean of local ones. Within a bin,
positive/negative pairs count as ties (half), so the pooled AUC equals the AUC of the
pooled scores up to the bin resolution.

Where the bins are (issue 30): the first evaluation of a run uses bins equal on the
logit scale from -7 to 5 (the end bins open); every later one uses the edges the
ministry placed at the quantiles of the pooled histogram released before it
(:func:`place_edges`, post-processing of released counts) and sent in the instruction
(``common.protocol.EVALUATION_EDGES``): public input, the same for every centre. A
histogram carries its ``edges`` (interior edges, logits; None: the fixed ones), and
its bins' centres follow them. With DP noise on every count, bins placed where the
students are beat fixed ones: a model whose scores sit in a narrow band would otherwise
put everyone in one or two bins (measured in docs/PRIVACY.md, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
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
    #: Interior edges of the bins on the logit scale (``bins - 1`` increasing values);
    #: None: the fixed edges (:data:`LOGIT_RANGE`).
    edges: tuple[float, ...] | None = None
    #: The std of the (DP) noise on each count of a released histogram (public: from the
    #: run's configuration); 0: exact, or not known.
    noise_sd: float = 0.0

    @property
    def bins(self) -> int:
        return len(self.positives)

    @property
    def count(self) -> float:
        return float(self.positives.sum() + self.negatives.sum())

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        assert self.bins == other.bins, "histograms must share their bins"
        assert same_edges(self.edges, other.edges, self.bins), "histograms must share their bins"
        return ScoreHistogram(
            self.positives + other.positives,
            self.negatives + other.negatives,
            self.probability_sum + other.probability_sum,
            self.squared_error_sum + other.squared_error_sum,
            self.edges,
            math.hypot(self.noise_sd, other.noise_sd),
        )

    def centres(self) -> FloatArray:
        """A representative probability per bin (:func:`bin_centres`)."""
        return bin_centres(self.bins, self.edges)


# The first evaluation's bins are equal on the logit scale over this range, the end bins
# open. DP-SGD's models put most held-out students between logit -7 and -3 and a thin
# tail of high scores up to 8 (docs/PRIVACY.md, "Where the pooled histogram's bins are");
# later evaluations use edges placed from the released histogram (:func:`place_edges`).
LOGIT_RANGE = (-7.0, 5.0)
#: Placed edges lie within this logit range and at least this far apart.
EDGE_LIMIT = 30.0
MIN_EDGE_GAP = 1e-3


def padded(values: FloatArray, bins: int) -> FloatArray:
    """A placed histogram's counts in a release of ``bins`` bins: the bins it does not
    use are exact zeros (public: no student is counted there)."""
    return np.concatenate([values, np.zeros(bins - len(values))])


def default_edges(bins: int) -> tuple[float, ...]:
    """The fixed interior edges (logits) of ``bins`` bins on :data:`LOGIT_RANGE`."""
    return tuple(float(v) for v in np.linspace(*LOGIT_RANGE, bins + 1)[1:-1])


def edge_logits(bins: int, edges: Sequence[float] | None = None) -> FloatArray:
    """The ``bins - 1`` interior edges on the logit scale (the fixed ones without
    ``edges``)."""
    chosen = default_edges(bins) if edges is None else edges
    values = np.asarray(chosen, dtype=np.float64)
    assert len(values) == bins - 1, "bins - 1 interior edges"
    return values


def same_edges(a: Sequence[float] | None, b: Sequence[float] | None, bins: int) -> bool:
    """Whether two histograms of ``bins`` bins share their edges."""
    return bool(np.array_equal(edge_logits(bins, a), edge_logits(bins, b)))


def edges_problem(edges: Sequence[float], bins: int) -> str | None:
    """Why ``edges`` cannot be the interior edges of an evaluation of at most ``bins``
    bins (None: they can): 1 to ``bins - 1`` finite logits within +-:data:`EDGE_LIMIT`,
    increasing by at least :data:`MIN_EDGE_GAP`. What a centre checks in an instruction
    before using them."""
    values = np.asarray(list(edges), dtype=np.float64)
    if not 1 <= len(values) <= bins - 1:
        return f"{len(values)} edges for at most {bins} bins"
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > EDGE_LIMIT):
        return "an edge is not a finite logit within 30"
    if np.any(np.diff(values) < MIN_EDGE_GAP * 0.99):
        return "the edges do not increase"
    return None


def bin_bounds(bins: int, edges: Sequence[float] | None = None) -> FloatArray:
    """All ``bins + 1`` edges on the logit scale, the open end bins given the width of
    their neighbour (one bin: width 1 around 0)."""
    inner = edge_logits(bins, edges)
    if bins == 1:
        return np.array([-0.5, 0.5])
    if bins == 2:
        return np.array([inner[0] - 1.0, inner[0], inner[0] + 1.0])
    first, last = inner[1] - inner[0], inner[-1] - inner[-2]
    return np.concatenate(([inner[0] - first], inner, [inner[-1] + last]))


def _sigmoid(logits: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


def bin_edges(bins: int, edges: Sequence[float] | None = None) -> FloatArray:
    """The ``bins - 1`` interior edges (probabilities) of the score bins."""
    return _sigmoid(edge_logits(bins, edges))


def bin_centres(bins: int, edges: Sequence[float] | None = None) -> FloatArray:
    """A representative probability per bin (logit midpoint; the open end bins take
    the midpoint of a bin as wide as their neighbour)."""
    bounds = bin_bounds(bins, edges)
    return _sigmoid((bounds[:-1] + bounds[1:]) / 2)


def score_histogram(
    probabilities: npt.NDArray[np.floating], labels: npt.NDArray[np.floating], bins: int,
    edges: Sequence[float] | None = None,
) -> ScoreHistogram:
    """Histogram of probabilities (0-1) by label over ``bins`` bins on the fixed edges,
    or over the ``len(edges) + 1`` bins of interior ``edges`` (logits)."""
    if edges is not None:
        bins = len(edges) + 1
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(labels, dtype=np.float64)
    index = np.searchsorted(bin_edges(bins, edges), p, side="right")
    positives = np.bincount(index, weights=y, minlength=bins).astype(np.float64)
    negatives = np.bincount(index, weights=1.0 - y, minlength=bins).astype(np.float64)
    probability_sum = np.bincount(index, weights=p, minlength=bins).astype(np.float64)
    kept = None if edges is None else tuple(float(v) for v in edges)
    return ScoreHistogram(positives, negatives, probability_sum, float(((p - y) ** 2).sum()),
                          kept)


#: The most bins an evaluation placed from a released histogram asks for (and at most
#: ``evaluation.bins``; the rest of the release's bins are exact zeros; how many:
#: :func:`placed_count`). With DP noise on
#: every count, each bin's noise moves the pooled AUC whatever the bin holds, so fewer
#: bins carry less noise, and placed bins lose less to ties; but a model's scores move
#: between the evaluation that placed them and the next, and too few bins then lose to
#: ties what they save in noise (docs/measurements/evaluation.md, "Bins placed from what
#: is released": on the demo, 8 placed bins lost 0.008 to ties after the scores moved,
#: 16 lose 0.003 as the fixed 20 do, with less noise).
PLACED_BINS = 16
#: The fewest bins an evaluation placed from a released histogram asks for
#: (:func:`placed_count`).
MIN_PLACED_BINS = 4
#: Ties in placed bins: the binned AUC falls short of the exact one by about
#: ``TIES * (AUC - 0.5) / bins**2`` once the model has moved between the evaluation that
#: placed them and the next (the demo, AUC 0.79: 0.008 with 8 bins, 0.003 with 16; a weak
#: signal at 5 % dropout, AUC 0.58: 0.018 with 4 bins).
TIES = 4.0
#: The least signal (|AUC - 0.5|) :func:`placed_count` assumes: a noisy released AUC near
#: 0.5 does not make ties free.
MIN_SIGNAL = 0.05


def placed_count(positives: Sequence[float], negatives: Sequence[float], noise_sd: float,
                 most: int = PLACED_BINS) -> int:
    """How many bins (:data:`MIN_PLACED_BINS` to ``most``) the next evaluation asks for:
    the number ``k`` that minimises the expected squared error of its pooled AUC, ties
    ``(TIES * (A - 0.5) / k**2) ** 2`` plus noise ``noise_sd**2 * k / 12 * (1 / P**2 +
    1 / N**2)`` (each bin's noise moves the AUC by about its distance in rank to the AUC
    over the label's total, and bins placed at the mixture's quantiles spread those
    distances evenly over 0-1). ``P``, ``N`` and ``A``: the totals and the AUC of a
    released pooled histogram (counts clipped at 0 for the AUC); ``noise_sd``: of the
    noise on each count of the release whose bins are chosen. A function of released
    counts and public configuration only (post-processing). With little noise for the
    students it keeps ``most``; with few positives under much noise (a weak signal at
    5 % dropout over 13 centres: 330 positives, noise 11 per count) fewer bins carry
    less noise (docs/measurements/evaluation.md, "The number of placed bins")."""
    pos = np.asarray(list(positives), dtype=np.float64)
    neg = np.asarray(list(negatives), dtype=np.float64)
    least = min(MIN_PLACED_BINS, most)
    if noise_sd <= 0 or not math.isfinite(noise_sd):
        return most
    total_pos, total_neg = max(float(pos.sum()), 1.0), max(float(neg.sum()), 1.0)
    zeros = np.zeros(len(pos))
    auc = auc_from_histogram(ScoreHistogram(np.clip(pos, 0.0, None),
                                            np.clip(neg, 0.0, None), zeros, 0.0))
    signal = max(abs(auc - 0.5), MIN_SIGNAL) if math.isfinite(auc) else MIN_SIGNAL
    spread = noise_sd**2 / 12.0 * (1.0 / total_pos**2 + 1.0 / total_neg**2)
    return min(range(least, most + 1),
               key=lambda k: (TIES * signal / k**2) ** 2 + spread * k)


#: A label's distribution in a released histogram places bins only when the noise on
#: its cumulative count (about ``noise_sd * sqrt(bins)``) is at most this share of its
#: total: otherwise the noise, not the students, would place them (UCI Dropout's 890
#: held-out students over 17 centres: a progress histogram's noise is 26 % of its
#: negatives and 59 % of its positives).
RESOLVED = 0.1


def resolved(values: FloatArray, noise_sd: float) -> bool:
    """Whether a label's noisy counts per bin resolve its distribution (:data:`RESOLVED`)."""
    total = float(np.sum(values))
    return math.isfinite(total) and total > 0 and \
        noise_sd * math.sqrt(len(values)) <= RESOLVED * total


def place_edges(positives: Sequence[float], negatives: Sequence[float],
                edges: Sequence[float] | None, placed: int, noise_sd: float = 0.0
                ) -> tuple[float, ...] | None:
    """``placed - 1`` interior edges (logits) at the quantiles ``1/placed, 2/placed, ...``
    of the mixture of the positives' and the negatives' score distributions
    (``(F_pos + F_neg) / 2``: bins are finer where either label is dense, so that few
    positive-negative pairs fall in one bin, whatever the dropout rate) of a released
    pooled histogram: ``positives`` and ``negatives`` its counts per bin (noisy, NOT
    clipped at 0, so that the noise of empty bins cancels instead of adding phantom
    students), over the bins of interior ``edges`` (None: the fixed ones). Each
    cumulative count is made non-decreasing and the quantiles read by linear
    interpolation on the logit scale within a bin (the open end bins as wide as their
    neighbour). Post-processing of released counts: no privacy cost, the same edges for
    every centre. ``noise_sd``: of the noise on each pooled count; a label whose counts
    do not resolve its distribution (:func:`resolved`) is left out of the mixture; None
    when neither does."""
    pos = np.asarray(list(positives), dtype=np.float64)
    neg = np.asarray(list(negatives), dtype=np.float64)
    bins = len(pos)
    assert len(neg) == bins, "one count per bin and label"

    def distribution(values: FloatArray) -> FloatArray | None:
        cumulative = np.maximum.accumulate(np.cumsum(values))
        total = float(cumulative[-1])
        if not math.isfinite(total) or total <= 0:
            return None
        share = np.concatenate(([0.0], np.clip(cumulative / total, 0.0, 1.0)))
        share[-1] = 1.0
        return share

    parts = [f for f in (distribution(v) for v in (pos, neg) if resolved(v, noise_sd))
             if f is not None]
    if not parts:
        return None
    share = np.mean(parts, axis=0)
    # Strictly increasing for the interpolation: flat stretches (empty bins) get a
    # vanishing slope, so a quantile never lands inside them.
    share = share + np.arange(len(share)) * 1e-12
    logits = np.interp(np.arange(1, placed) / placed, share, bin_bounds(bins, edges))
    logits = np.clip(logits, -EDGE_LIMIT + 1.0, EDGE_LIMIT - 1.0)
    for i in range(1, len(logits)):  # at least MIN_EDGE_GAP apart
        logits[i] = max(logits[i], logits[i - 1] + MIN_EDGE_GAP)
    return tuple(round(float(v), 6) for v in logits)


def span_edges(positives: Sequence[float], negatives: Sequence[float],
               edges: Sequence[float] | None, placed: int, noise_sd: float
               ) -> tuple[float, ...] | None:
    """``placed - 1`` interior edges evenly spaced (logits) over the span of the bins
    whose noisy count of students stands 2 standard deviations of its noise above 0:
    where a released histogram is too noisy to place bins by quantiles
    (:func:`place_edges` gives None) but still shows where the students are (a model
    whose scores sit in one or two fixed bins). Post-processing of released counts; None
    without such a bin."""
    counts = np.asarray(list(positives), dtype=np.float64) + np.asarray(list(negatives))
    significant = np.flatnonzero(counts > 2.0 * noise_sd * math.sqrt(2.0))
    if len(significant) == 0:
        return None
    bounds = bin_bounds(len(counts), edges)
    low, high = float(bounds[significant[0]]), float(bounds[significant[-1] + 1])
    logits = np.clip(np.linspace(low, high, placed + 1)[1:-1], -EDGE_LIMIT + 1.0,
                     EDGE_LIMIT - 1.0)
    for i in range(1, len(logits)):  # at least MIN_EDGE_GAP apart
        logits[i] = max(logits[i], logits[i - 1] + MIN_EDGE_GAP)
    return tuple(round(float(v), 6) for v in logits)


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


#: The calibration error's groups: at most this many (:func:`calibration_groups`).
CALIBRATION_GROUPS = 10


def calibration_groups(counts: Sequence[float] | FloatArray,
                       groups: int = CALIBRATION_GROUPS) -> list[tuple[int, int]]:
    """The calibration error's groups of a histogram (issue 30): ``(first, end)`` ranges
    of adjacent bins, at most ``groups`` of them, each holding about ``1 / groups`` of its
    students (each bin in the group where the middle of its share of the cumulative count
    falls; a bin holding more than a group's share is a group of its own, empty bins join
    a neighbour). ``counts``: students per bin, noisy (DP) ones clipped at 0. A function of
    the released counts only (post-processing, no privacy cost), so the groups follow
    the students whatever the bins; before, groups of equal numbers of bins put a model
    whose scores sit in a narrow band of the fixed bins (logit -7..5) in one or two
    groups. Without any count: equal numbers of bins."""
    values = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    bins = len(values)
    total = float(values.sum())
    if not math.isfinite(total) or total <= 0:
        bounds = np.linspace(0, bins, groups + 1).astype(int)
        return [(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds) if hi > lo]
    middle = (np.cumsum(values) - values / 2) / total
    label = np.minimum((middle * groups).astype(int), groups - 1)
    starts = [0, *(int(i) + 1 for i in np.flatnonzero(np.diff(label))), bins]
    return list(itertools.pairwise(starts))


def calibration_error(h: ScoreHistogram, groups: int = CALIBRATION_GROUPS,
                      noise_variance: float = 0.0,
                      bounds: Sequence[tuple[int, int]] | None = None) -> float:
    """Expected calibration error over at most ``groups`` groups of adjacent bins of
    about equal numbers of students (:func:`calibration_groups`, from the histogram's own
    counts; ``bounds``: these groups given, e.g. a noisy release's for the same students'
    exact counts): mean |predicted - observed| weighted by count.

    ``noise_variance``: the variance of the (DP) noise on each bin count of a noisy
    histogram, whose probability sums are its bins' counts times their probabilities (as
    the centres derive them). A group's gap ``d`` then carries noise of variance
    ``s2 = noise_variance * sum over its bins of (p**2 + (1 - p)**2)``, and ``|d|`` errs
    high (by 0.01 of the demo's pooled figure): each group's ``|d|`` is replaced by
    ``sqrt(max(d**2 - s2, 0))`` (``d**2 - s2`` is unbiased for the squared gap), a
    post-processing of released counts (docs/PRIVACY.md)."""
    total = h.count
    if total <= 0:
        return float("nan")
    count = h.positives + h.negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(count != 0, h.probability_sum / count, 0.5)
    spread = p**2 + (1.0 - p) ** 2
    error = 0.0
    for lo, hi in calibration_groups(count, groups) if bounds is None else bounds:
        if count[lo:hi].sum() >= 1:
            gap = float(h.probability_sum[lo:hi].sum() - h.positives[lo:hi].sum())
            noise = noise_variance * float(spread[lo:hi].sum())
            error += math.sqrt(max(gap**2 - noise, 0.0))
    return float(error / total)


def reliability_curve(h: ScoreHistogram, groups: int = CALIBRATION_GROUPS
                      ) -> tuple[FloatArray, FloatArray]:
    """Mean predicted and observed rate for each non-empty group of the calibration
    error (:func:`calibration_groups`)."""
    predicted, observed = [], []
    for lo, hi in calibration_groups(h.positives + h.negatives, groups):
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
