"""simulations.bench_audit: the exact figures the equity audit's released ones are read
against (issue 30, point 3), on seeded scores of known shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from client.ingest.centre_data import CentreData
from client.site_policy import SitePolicy
from common.calibration import Calibration
from common.equity.audit import BandProbabilities, Threshold
from simulations.bench_audit import (
    Members,
    band_figures,
    exact_calibration_error,
    exact_figures,
    group_members,
)


def _centre(sex: list[str], y: list[float], allowed: bool = True) -> CentreData:
    empty = np.zeros((0, 1), dtype=np.float32)
    return CentreData(empty, np.zeros(0, dtype=np.float32), np.zeros((len(y), 1), np.float32),
                      np.asarray(y, dtype=np.float32),
                      SitePolicy(audit_attributes_allowed=allowed),
                      audit_test=pd.DataFrame({"sex": sex, "ehdaa": [False] * len(y)}))


def test_a_centre_that_withholds_the_sensitive_attributes_places_nobody_in_them() -> None:
    shared = _centre(["F", "M", "F"], [1, 0, 0])
    withheld = _centre(["F", "F"], [1, 1], allowed=False)
    scores = [np.array([0.9, 0.2, 0.4]), np.array([0.8, 0.7])]
    members = group_members([shared, withheld], scores)
    assert members[("sex", "F")].labels.tolist() == [1.0, 0.0]
    assert members[("ehdaa", "false")].probabilities.tolist() == [0.9, 0.2, 0.4, 0.8, 0.7]


def test_exact_figures_flag_at_the_threshold_as_the_centres_do() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(2_000) < 0.3).astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-(-1.5 + rng.standard_normal(2_000) + y)))
    raw = float(np.quantile(p, 0.8))
    figures = exact_figures(Members(p, y), raw, Calibration())
    assert figures["tpr"] == pytest.approx(float((p[y == 1] >= raw).mean()))
    assert figures["fpr"] == pytest.approx(float((p[y == 0] >= raw).mean()))
    assert figures["auc"] == pytest.approx(roc_auc_score(y, p))
    assert figures["calibration_error_calibrated"] == pytest.approx(abs(y.mean() - p.mean()))
    # Five bands lose some of the AUC to ties, never gain.
    flat = BandProbabilities(np.full(5, p.mean()), np.full(5, p.mean()))
    bands = band_figures(Members(p, y), Threshold(raw), flat)
    assert 0.5 < bands["auc"] < figures["auc"]
    assert bands["calibration_error_calibrated"] == pytest.approx(abs(y.mean() - p.mean()))


def test_the_exact_calibration_error_of_calibrated_scores_is_sampling_noise() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(0.05, 0.6, 50_000)
    y = (rng.random(len(p)) < p).astype(np.float64)
    assert exact_calibration_error(p, y) < 0.01
    assert exact_calibration_error(p, (rng.random(len(p)) < p * 0.7).astype(float)) > 0.08
