import numpy as np
import pytest

from common.calibration import Calibration
from common.equity.audit import GROUP_BINS, group_bin_edges
from common.equity.pooling import pooled_audit
from common.equity.reading import (
    CANNOT_TELL,
    DIFFERS,
    NOT_MEASURABLE,
    band_probabilities,
    conclusions,
    gap_verdict,
)
from common.metrics import score_histogram
from tests.common.equity.test_audit import _centre, _vectors


def test_a_gap_is_told_only_when_its_interval_excludes_zero():
    assert gap_verdict({"auc_gap": 0.05, "auc_gap_ci": [0.01, 0.09]}, "auc_gap") == DIFFERS
    assert gap_verdict({"auc_gap": 0.05, "auc_gap_ci": [-0.01, 0.11]}, "auc_gap") == CANNOT_TELL
    nan = float("nan")
    assert gap_verdict({"auc_gap": nan, "auc_gap_ci": [nan, nan]}, "auc_gap") == NOT_MEASURABLE


def test_band_probabilities_are_the_pooled_students_mean_in_each_band():
    # Every student at 0.5 (above the 0.3 threshold: the top band) and at 0.03.
    p = np.repeat([0.03, 0.5], 1000)
    y = np.tile([0.0, 1.0], 1000)
    bands = band_probabilities(score_histogram(p, y, 20), 0.3, None)
    edges = group_bin_edges(0.3)
    top, low = GROUP_BINS - 1, int(np.searchsorted(edges, 0.03, side="right"))
    # The representatives are the fine bins' centres, within a fine bin of the scores.
    assert bands.raw[top] == pytest.approx(0.5, abs=0.1)
    assert bands.raw[low] == pytest.approx(0.03, abs=0.01)
    np.testing.assert_allclose(bands.calibrated, bands.raw)  # no calibration: identity
    shifted = band_probabilities(score_histogram(p, y, 20), 0.3, Calibration(1.0, 1.0))
    assert np.all(shifted.calibrated > bands.raw)


def test_every_attribute_gets_a_verdict_for_every_gap():
    centres = [_centre(400, s) for s in range(3)]
    audit = pooled_audit(_vectors(centres), threshold=0.3)
    found = conclusions(audit)
    assert set(found) == set(audit["gaps"])
    for gaps in found.values():
        assert set(gaps) == {"equal_opportunity_gap", "fpr_gap", "calibration_gap", "auc_gap"}
        assert all(g["verdict"] in {DIFFERS, CANNOT_TELL, NOT_MEASURABLE} for g in gaps.values())
