"""The ministry's reading of a secure round's summed evaluation: the noise the sums carry,
and what distributed noise withholds (per-centre indicators, ``indigenous=true``,
region rows)."""

from __future__ import annotations

import math

import numpy as np

from common.equity.audit import GROUP_BINS, all_cell_keys
from common.privacy.secure_release import block, decode, encode, exact_sum
from common.protocol import audit_noise_key
from server.federation.secure_pooling import summed_cells

THRESHOLD = 0.3


def _summed(centres: int, distributed: bool) -> tuple[object, list[dict[str, float]]]:
    rng = np.random.default_rng(1)
    vectors, metrics = [], []
    for i in range(centres):
        blocks = {}
        for key in all_cell_keys():
            cell = np.zeros(2 * GROUP_BINS + 3)
            cell[: 2 * GROUP_BINS] = rng.integers(5, 60, 2 * GROUP_BINS)
            blocks[key] = block(cell, 4.0)
            if distributed:
                blocks[key][2 * GROUP_BINS:] = 0
        region = None if distributed else (i % 2, block(cell, 4.0, counted=i != 0))
        vectors.append(encode(np.ones(20), np.ones(20), blocks, 2, region))
        metrics.append({"noise.audit": 2.0 + i, "audit.sensitive": float(i != 0)})
    summed = decode(exact_sum(np.mean(vectors, axis=0), centres), 20, 2)
    return summed, metrics


def test_distributed_sums_count_the_round_and_hide_what_they_cannot_check() -> None:
    summed, metrics = _summed(4, distributed=True)
    cells = summed_cells(summed, metrics, ["A", "B"], THRESHOLD, distributed=True)  # type: ignore[arg-type]
    assert "region" not in cells
    assert cells["indigenous"]["true"].counted == 0 and not cells["indigenous"]["true"].reportable
    assert cells["indigenous"]["false"].counted == 4 and cells["indigenous"]["false"].reportable
    # The noise of a count: the survivors' variances (a sensitive value's, only theirs
    # who released it: centre 0 did not; its UNKNOWN cell, everyone's), then reconciled
    # across the six attributes (common.equity.consistency's formula).
    every, released = 4 + 9 + 16 + 25, 9 + 16 + 25
    attribute = {"sex": 3 * released + every, "indigenous": 2 * released + every,
                 "ehdaa": 3 * every, "immigrant_generation": 4 * every,
                 "home_language": 4 * every, "imse_band": 4 * every}
    weight = sum(1 / v for v in attribute.values())

    def reconciled(v: float, name: str) -> float:
        return math.sqrt(v - v**2 / attribute[name] + v**2 / (attribute[name] ** 2 * weight))

    assert math.isclose(cells["ehdaa"]["true"].noise_sd, reconciled(every, "ehdaa"), rel_tol=1e-3)
    assert math.isclose(cells["sex"]["F"].noise_sd, reconciled(released, "sex"), rel_tol=1e-3)
    assert math.isclose(cells["sex"]["unknown"].noise_sd, reconciled(every, "sex"), rel_tol=1e-3)


def test_whole_noise_sums_keep_the_indicators_and_the_regions() -> None:
    summed, metrics = _summed(4, distributed=False)
    cells = summed_cells(summed, metrics, ["A", "B"], THRESHOLD, distributed=False)  # type: ignore[arg-type]
    assert cells["indigenous"]["true"].contributing == 4
    assert set(cells["region"]) == {"A", "B"}
    # Region A holds centres 0 and 2; centre 0 (an Indigenous-governed board) does not count.
    assert cells["region"]["A"].contributing == 2 and cells["region"]["A"].counted == 1
    assert not cells["region"]["A"].reportable


def test_the_sums_noise_follows_each_attributes_reported_std() -> None:
    """With ``evaluation.audit_weights`` each centre reports its std per attribute
    (``audit_noise_key``): the ministry sums each attribute's variances."""
    summed, metrics = _summed(4, distributed=False)
    for i, m in enumerate(metrics):
        m[audit_noise_key("imse_band")] = (2.0 + i) * 0.5
        m[audit_noise_key("sex")] = (2.0 + i) * 1.5
    cells = summed_cells(summed, metrics, [], THRESHOLD, distributed=False)  # type: ignore[arg-type]
    every, released = 4 + 9 + 16 + 25, 9 + 16 + 25
    attribute = {"sex": (3 * released + every) * 2.25, "indigenous": 2 * released + every,
                 "ehdaa": 3 * every, "immigrant_generation": 4 * every,
                 "home_language": 4 * every, "imse_band": 4 * every * 0.25}
    weight = sum(1 / v for v in attribute.values())
    for name, value, v in (("imse_band", "1-3", every * 0.25), ("sex", "F", released * 2.25),
                           ("ehdaa", "true", every)):
        expected = math.sqrt(v - v**2 / attribute[name] + v**2 / (attribute[name] ** 2 * weight))
        assert math.isclose(cells[name][value].noise_sd, expected, rel_tol=1e-3)
