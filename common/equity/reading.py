"""Reading the pooled equity audit: the probabilities the school teams read, per score
band, and what the audit can conclude, per attribute, at the run's budget.

Both are post-processing of what the centres released (the final pooled histogram, the
pooled group cells): they cost no privacy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from common.calibration import Calibration
from common.equity.audit import GAPS, GROUP_BINS, BandProbabilities, band_midpoints, group_bin_edges
from common.metrics import ScoreHistogram, resolved

#: What the audit can say of one gap (its interval is of the difference between the
#: attribute's extreme groups, simultaneous over the attribute's pairs).
DIFFERS = "differs"  # the interval excludes 0: the groups differ, by at least its low end
CANNOT_TELL = "cannot_tell"  # the interval holds 0: no difference shown at this budget
NOT_MEASURABLE = "not_measurable"  # fewer than two groups reported, or no interval


def band_probabilities(histogram: ScoreHistogram, threshold: float,
                       calibration: Calibration | None) -> BandProbabilities:
    """Each group score band's mean probability, raw and recalibrated, over the pooled
    held-out students: the fine bins of the final pooled histogram, each placed in the
    band of its centre, weighted by their (noisy, kept at 0 or more) counts. A band that
    holds no count keeps its logit midpoint."""
    edges = group_bin_edges(threshold)
    fallback = band_midpoints(edges)
    centres = histogram.centres()
    counts = np.clip(histogram.positives + histogram.negatives, 0.0, None)
    band = np.searchsorted(edges, centres, side="right")
    recalibrated = (calibration or Calibration()).apply(centres)
    raw, calibrated = fallback.copy(), (calibration or Calibration()).apply(fallback)
    for b in range(GROUP_BINS):
        weight = counts[band == b]
        if weight.sum() >= 1.0:
            raw[b] = float((weight * centres[band == b]).sum() / weight.sum())
            calibrated[b] = float((weight * recalibrated[band == b]).sum() / weight.sum())
    return BandProbabilities(raw, calibrated, within_band_wins(histogram, edges, band))


def within_band_wins(histogram: ScoreHistogram, edges: npt.NDArray[np.float64],
                     band: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float64]:
    """Per score band (interior ``edges``, probabilities), the share of the pooled
    positive-negative pairs within it that the positive wins, from the final pooled
    histogram's finer bins (each in the band of its centre; noisy counts kept at 0 or
    more; pairs within one fine bin count half): 0.5 where either label's counts in the
    band are not resolved above the histogram's noise (``common.metrics.resolved``).
    Five bands tie most pairs: the demo's groups' band AUC was 0.015 below their exact
    AUC with every tie at half, 0.001-0.006 with the pool's share (issue 30, point 3).
    Post-processing of the released histogram."""
    if band is None:
        band = np.searchsorted(edges, histogram.centres(), side="right")
    positives = np.clip(histogram.positives, 0.0, None)
    negatives = np.clip(histogram.negatives, 0.0, None)
    shares = np.full(GROUP_BINS, 0.5)
    for b in range(GROUP_BINS):
        pos, neg = histogram.positives[band == b], histogram.negatives[band == b]
        if not (resolved(pos, histogram.noise_sd) and resolved(neg, histogram.noise_sd)):
            continue
        pos, neg = positives[band == b], negatives[band == b]
        below = np.cumsum(neg) - neg
        shares[b] = float(((pos * below).sum() + 0.5 * (pos * neg).sum())
                          / (pos.sum() * neg.sum()))
    return shares


def gap_verdict(gap: Mapping[str, object], name: str) -> str:
    """:data:`DIFFERS`, :data:`CANNOT_TELL` or :data:`NOT_MEASURABLE` for the gap
    ``name`` of one attribute's gaps (``common.equity.group_metrics.gaps_of``)."""
    value = gap.get(name, math.nan)
    interval = gap.get(f"{name}_ci", [math.nan, math.nan])
    assert isinstance(interval, list | tuple), "gaps hold their interval as a pair"
    low, high = (float(v) for v in interval)
    if not isinstance(value, int | float) or any(math.isnan(v) for v in (value, low, high)):
        return NOT_MEASURABLE
    # A gap is the largest minus the smallest value: the groups differ when its
    # interval lies wholly above 0 (or wholly below, which noise can produce).
    return DIFFERS if low > 0.0 or high < 0.0 else CANNOT_TELL


def conclusions(audit: Mapping[str, object]) -> dict[str, dict[str, dict[str, object]]]:
    """Per attribute and per gap (``common.equity.audit.GAPS``): the verdict, the gap, its
    interval and its width, and the two groups behind it. ``equity.json`` holds it as
    ``conclusions``; the model card and the run report say it in words."""
    gaps = audit.get("gaps", {})
    assert isinstance(gaps, Mapping), "an audit's gaps are a mapping"
    out: dict[str, dict[str, dict[str, object]]] = {}
    for attribute, gap in gaps.items():
        out[attribute] = {}
        for name, _ in GAPS:
            interval = [float(v) for v in gap.get(f"{name}_ci", [math.nan, math.nan])]
            out[attribute][name] = {
                "verdict": gap_verdict(gap, name),
                "value": float(gap.get(name, math.nan)),
                "ci": interval,
                "width": interval[1] - interval[0],
                "groups": list(gap.get(f"{name}_groups", [])),
            }
    return out
