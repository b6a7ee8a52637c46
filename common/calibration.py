"""Recalibration of the global model from the pooled evaluation histograms.

DP-SGD's per-sample clipping biases a model against its rare class: the demo's model
predicted 8 % on average where 19 % of students left without a diploma. Support levels
are read from probabilities, so the probabilities must mean what they say. Platt
scaling (a logistic regression of the label on the score's logit) is fitted to the
pooled held-out histograms the centres already released: post-processing of released
data, so it costs no privacy. It keeps the ranking (AUC) unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from common.metrics import ScoreHistogram, calibration_error

MIN_SLOPE, MAX_SLOPE = 0.1, 10.0


@dataclass(frozen=True)
class Calibration:
    """``p' = sigmoid(slope * logit(p) + intercept)``; identity by default."""

    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, probabilities: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-9, 1 - 1e-9)
        logits = self.slope * np.log(p / (1 - p)) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept}


def fit_calibration(histogram: ScoreHistogram) -> Calibration:
    """Platt scaling fitted on a (possibly noisy) pooled histogram; identity when the
    histogram cannot support a fit (too few records of either label)."""
    centres = histogram.centres()
    pos = np.clip(histogram.positives, 0.0, None)
    neg = np.clip(histogram.negatives, 0.0, None)
    if pos.sum() < 10 or neg.sum() < 10:
        return Calibration()
    logits = np.log(centres / (1 - centres))
    x = np.concatenate([logits, logits]).reshape(-1, 1)
    y = np.concatenate([np.ones_like(pos), np.zeros_like(neg)])
    weights = np.concatenate([pos, neg])
    keep = weights > 0
    model = LogisticRegression(C=1e6)
    model.fit(x[keep], y[keep], sample_weight=weights[keep])
    slope = float(model.coef_[0, 0])
    if not MIN_SLOPE <= slope <= MAX_SLOPE:
        # A noisy histogram of few students can suggest a flat or even reversed
        # relation: recalibration must never reorder students, so keep the identity.
        return Calibration()
    return Calibration(slope=slope, intercept=float(model.intercept_[0]))


def calibrated_error(histogram: ScoreHistogram, calibration: Calibration,
                     noise_variance: float = 0.0,
                     bounds: Sequence[tuple[int, int]] | None = None) -> float:
    """Pooled calibration error (``common.metrics.calibration_error``) of the
    probabilities once recalibrated: each bin's students at its recalibrated centre.
    From a noisy (DP) histogram, ``noise_variance`` (of each bin count's noise) takes
    the noise's share out of each group's distance, which would otherwise err high.
    ``bounds``: the groups of bins (``common.metrics.calibration_groups``; None: the
    histogram's own)."""
    centres = calibration.apply(histogram.centres())
    recalibrated = ScoreHistogram(histogram.positives, histogram.negatives,
                                  (histogram.positives + histogram.negatives) * centres,
                                  histogram.squared_error_sum, histogram.edges)
    return calibration_error(recalibrated, noise_variance=noise_variance, bounds=bounds)
