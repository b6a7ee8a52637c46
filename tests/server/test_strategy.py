import numpy as np

from common.equity.audit import size_band
from common.metrics import score_histogram
from server.federation.bookkeeping import CentreRecord, participation


def _record(node: int, n_train: int, n_test: int) -> CentreRecord:
    rng = np.random.default_rng(node)
    y = (rng.random(n_test) < 0.2).astype(float)
    p = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.1, n_test), 0, 1)
    return CentreRecord(node, n_train, n_test, 2.5, score_histogram(p, y, 200))


def test_size_bands():
    assert size_band(150) == "small"
    assert size_band(2_000) == "medium"
    assert size_band(29_000) == "large"


def test_a_size_band_with_fewer_than_three_centres_is_not_reported():
    centres = [_record(i, 800, 200) for i in range(3)] + [_record(10, 20_000, 5_000)]
    report = participation(centres)
    assert report["auc_by_size_band"]["small"] is not None
    assert report["auc_by_size_band"]["large"] is None
    assert report["centres_by_size_band"] == {"small": 3, "medium": 0, "large": 1}
    assert [row["node"] for row in report["centres"]] == [0, 1, 2, 10]
