import math
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from common.equity.audit import (
    CELL_LENGTH,
    GROUP_BINS,
    MIN_CELL,
    Placement,
    all_cell_keys,
    cell_key,
    centre_cells,
    centre_total,
)
from common.equity.group_metrics import CellNoise, auc_interval, cell_metrics, noise_spread
from common.equity.pooling import pooled_audit, region_cells

Centre = tuple[pd.DataFrame, np.ndarray, np.ndarray]


def _centre(n: int, seed: int, sex: str | None = None) -> Centre:
    rng = np.random.default_rng(seed)
    audit = pd.DataFrame({
        "sex": [sex] * n if sex else rng.choice(["F", "M"], n),
        "ehdaa": rng.random(n) < 0.3,
        "indigenous": np.zeros(n, dtype=bool),
        "immigrant_generation": rng.choice(["0", "1", "2"], n),
        "home_language": rng.choice(["fr", "en"], n),
        "imse_decile": rng.integers(1, 11, n),
    })
    y = (rng.random(n) < 0.2).astype(float)
    p = np.clip(0.15 + 0.5 * y + rng.normal(0, 0.1, n), 0.001, 0.999)
    return audit, p, y


def test_every_centre_sends_the_same_keys_with_fixed_length():
    audit, p, y = _centre(200, 0)
    cells = centre_cells(audit, p, y, threshold=0.3, sensitive_allowed=True)
    assert list(cells) == all_cell_keys()
    assert all(len(v) == CELL_LENGTH for v in cells.values())


def test_groups_under_the_minimum_are_sent_as_zeros():
    audit, p, y = _centre(200, 1)
    audit.loc[: MIN_CELL - 2, "immigrant_generation"] = "2"
    audit.loc[MIN_CELL - 1 :, "immigrant_generation"] = "0"
    cells = centre_cells(audit, p, y, threshold=0.3, sensitive_allowed=True)
    assert sum(cells[cell_key("immigrant_generation", "2")]) == 0.0
    students = cells[cell_key("immigrant_generation", "0")][: 2 * GROUP_BINS]
    assert sum(students) == 200 - (MIN_CELL - 1)


def test_sex_and_indigenous_are_not_sent_when_the_policy_refuses():
    audit, p, y = _centre(200, 2)
    cells = centre_cells(audit, p, y, threshold=0.3, sensitive_allowed=False)
    assert sum(sum(cells[cell_key("sex", v)]) for v in ("F", "M", "X")) == 0.0
    assert sum(cells[cell_key("ehdaa", "true")]) > 0


def test_pooled_cells_give_known_rates():
    centres = [_centre(300, s) for s in range(3)]
    vectors = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True) for a, p, y in centres]
    audit = pooled_audit(vectors, threshold=0.3)
    female = audit["groups"]["sex"]["F"]
    mask = np.concatenate([a["sex"].to_numpy() == "F" for a, _, _ in centres])
    p = np.concatenate([c[1] for c in centres])[mask]
    y = np.concatenate([c[2] for c in centres])[mask]
    assert female["n"] == mask.sum()
    assert female["positives"] == y.sum()
    assert female["tpr"] == pytest.approx(((p >= 0.3) & (y == 1)).sum() / y.sum())
    assert female["fpr"] == pytest.approx(((p >= 0.3) & (y == 0)).sum() / (1 - y).sum())
    assert female["mean_predicted"] == pytest.approx(p.mean())
    assert female["auc_ci"][0] <= female["auc"] <= female["auc_ci"][1]
    assert audit["gaps"]["sex"]["fpr_gap"] >= 0


def test_a_cell_from_fewer_than_three_centres_is_suppressed():
    # Only two centres have boys: the pooled cell would show them on their own.
    centres = [_centre(200, 5, sex="F"), _centre(200, 6, sex="M"), _centre(200, 7, sex="M"),
               _centre(200, 8, sex="F")]
    vectors = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True) for a, p, y in centres]
    audit = pooled_audit(vectors, threshold=0.3)
    assert "M" not in audit["groups"]["sex"]
    assert "sex=M" in audit["suppressed"]


def test_auc_interval_narrows_with_more_students():
    small = auc_interval(0.8, 20, 80)
    large = auc_interval(0.8, 2000, 8000)
    assert small[0] < large[0] < 0.8 < large[1] < small[1]


def test_a_gap_names_its_two_groups_and_its_interval_holds_it():
    centres = [_centre(400, s) for s in range(3)]
    vectors = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True) for a, p, y in centres]
    audit = pooled_audit(vectors, threshold=0.3)
    gaps, groups = audit["gaps"]["imse_band"], audit["groups"]["imse_band"]
    high, low = gaps["fpr_gap_groups"]
    assert gaps["fpr_gap"] == pytest.approx(groups[high]["fpr"] - groups[low]["fpr"])
    assert gaps["fpr_gap"] >= 0
    for name in ("equal_opportunity_gap", "fpr_gap", "calibration_gap", "auc_gap"):
        low_ci, high_ci = gaps[f"{name}_ci"]
        assert low_ci <= gaps[name] <= high_ci


def test_the_extreme_pairs_interval_keeps_its_level_although_the_data_chose_the_pair():
    # Immigrant generation is drawn at random: its three groups have the same true
    # false-positive rate, so a 95 % interval of a gap must exclude 0 in at most 5 % of
    # federations. Plain 95 % intervals of the extreme pair of three miss far more often
    # (10.7 % of these 300); the pair-adjusted ones 3.3 %.
    federations = 300
    misses = 0
    for r in range(federations):
        centres = [_centre(300, 1000 + 3 * r + s) for s in range(3)]
        gaps = pooled_audit(_vectors(centres), threshold=0.3)["gaps"]["immigrant_generation"]
        assert len(gaps["fpr_gap_groups"]) == 2
        misses += gaps["fpr_gap_ci"][0] > 0
    assert misses / federations <= 0.05


def test_the_noise_spread_of_a_rate_is_the_delta_methods():
    # 1000 positives and 4000 negatives over the bins; noise of std 7 per count from
    # each of 10 centres: each total has std 7 * sqrt(GROUP_BINS * 10) (50 for 5 bins),
    # so the observed rate P / (P + N) has std 50 * sqrt(4000^2 + 1000^2) / 5000^2 =
    # 0.0082 (delta method).
    vector = np.zeros(CELL_LENGTH)
    vector[:GROUP_BINS] = 1000.0 / GROUP_BINS
    vector[GROUP_BINS : 2 * GROUP_BINS] = 4000.0 / GROUP_BINS
    spread = noise_spread(vector, CellNoise(per_count=7.0, cells=10, threshold=0.3))
    expected = 7.0 * np.sqrt(GROUP_BINS * 10) * np.sqrt(4000**2 + 1000**2) / 5000**2
    assert spread["observed_rate"] == pytest.approx(expected, rel=0.1)
    assert noise_spread(vector, CellNoise(0.0, 10, 0.3))["auc"] == 0.0


def test_with_dp_noise_the_intervals_hold_the_noise_free_value():
    # Three centres release their cells with the audit's noise (std 7.26, the demo's);
    # the intervals must hold what the same students give without noise, which
    # sampling-only intervals around the noisy counts mostly miss. At this small scale
    # (about 900 students a group) the noisy AUC and TPR err low by a third of their
    # noise's spread (ratios of noisy counts), so the bar is the 93 %, not 95 %:
    # measured 94.5 % with the reconciled counts, 96 % before, when more noise widened
    # the intervals over the same bias (docs/PRIVACY.md "Counts that agree").
    noise_std, held, missed_plain, total = 7.26, 0, 0, 0
    for r in range(60):
        centres = [_centre(600, 5000 + 3 * r + k) for k in range(3)]
        rng = np.random.default_rng(r)
        exact = pooled_audit(_vectors(centres), threshold=0.3)["groups"]["sex"]
        noisy = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True,
                              noise_std=noise_std, rng=rng) for a, p, y in centres]
        widened = pooled_audit(noisy, threshold=0.3, noise_std=noise_std)["groups"]["sex"]
        plain = pooled_audit(noisy, threshold=0.3)["groups"]["sex"]
        for group in set(exact) & set(widened):
            for key in ("auc", "tpr", "fpr", "observed_rate", "calibration_error"):
                true = exact[group][key]
                low, high = widened[group][f"{key}_ci"]
                held += low <= true <= high
                low, high = plain[group][f"{key}_ci"]
                missed_plain += not low <= true <= high
                total += 1
    assert total >= 500
    assert held / total >= 0.93
    assert missed_plain / total >= 0.5


@pytest.mark.parametrize("noise_std", [5.04, 2.0])
def test_at_the_demos_noise_and_below_the_intervals_read_as_the_ministry_reads_them_hold(
        noise_std: float) -> None:
    # As the run reads the audit: the bands' representative probabilities from the
    # noisy final pooled histogram (``band_probabilities``), at the demo's per-centre
    # audit noise (5.04, epsilon 3) and less (distributed noise's sums). Without them,
    # the bands' logit midpoints set the mean predicted probability, and the
    # calibration error's interval misses its truth at low noise: the flagged band is
    # open-ended, its midpoint half a band above the threshold.
    from common.equity.reading import band_probabilities
    from common.metrics import ScoreHistogram, score_histogram

    def sex(audit: dict[str, object]) -> Any:
        return cast(dict[str, Any], audit["groups"])["sex"]

    held, total = 0, 0
    for r in range(60):
        centres = [_centre(600, 5000 + 3 * r + k) for k in range(3)]
        rng = np.random.default_rng(r)
        exact = sex(pooled_audit(_vectors(centres), threshold=0.3))
        noisy = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True,
                              noise_std=noise_std, rng=rng) for a, p, y in centres]
        pooled = score_histogram(np.concatenate([p for _, p, _ in centres]),
                                 np.concatenate([y for _, _, y in centres]), 20)
        released = ScoreHistogram(pooled.positives + rng.normal(0.0, 5.0, 20),
                                  pooled.negatives + rng.normal(0.0, 5.0, 20),
                                  pooled.probability_sum, 0.0)
        bands = band_probabilities(released, 0.3, None)
        widened = sex(pooled_audit(noisy, threshold=0.3, noise_std=noise_std, bands=bands))
        for group in set(exact) & set(widened):
            for key in ("auc", "tpr", "fpr", "observed_rate", "calibration_error"):
                low, high = widened[group][f"{key}_ci"]
                held += low <= exact[group][key] <= high
                total += 1
    assert total >= 500
    assert held / total >= 0.93


def test_under_noise_a_centre_without_students_in_a_cell_does_not_count_towards_three():
    # Girls at two centres only; two more centres send the girls' cell as pure noise.
    # Their noisy counts often pass 10 (std 46): they must not make the cell showable.
    noise_std, shown = 7.26, 0
    for r in range(50):
        rng = np.random.default_rng(r)
        centres = [_centre(400, 100 + 4 * r, sex="F"), _centre(400, 101 + 4 * r, sex="F"),
                   _centre(400, 102 + 4 * r, sex="M"), _centre(400, 103 + 4 * r, sex="M")]
        noisy = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True,
                              noise_std=noise_std, rng=rng) for a, p, y in centres]
        shown += "F" in pooled_audit(noisy, threshold=0.3, noise_std=noise_std)["groups"]["sex"]
    assert shown <= 1


def _vectors(centres: list[Centre]) -> list[dict[str, list[float]]]:
    return [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True) for a, p, y in centres]


def test_region_rows_sum_their_centres_students_and_need_three_centres():
    centres = [_centre(300, s) for s in range(6)]
    placements = [Placement("Laval"), Placement("Laval"), Placement("Laval"),
                  Placement("Estrie"), Placement("Estrie"), None]
    audit = pooled_audit(_vectors(centres), threshold=0.3, placements=placements)
    laval = audit["groups"]["region"]["Laval"]
    assert laval["n"] == 900 and laval["centres"] == 3
    y = np.concatenate([c[2] for c in centres[:3]])
    assert laval["positives"] == y.sum()
    assert "Estrie" not in audit["groups"]["region"]
    assert "region=Estrie" in audit["suppressed"]


def test_a_region_carries_the_noise_of_its_centres_reconciled_totals():
    # Each centre's total is the reconciled estimate from all six attributes' noisy
    # cells (common.equity.consistency): less noise than one attribute's cells summed,
    # and the region's intervals must allow for exactly what it has.
    centres = [_centre(300, s) for s in range(3)]
    students = sum(len(c[2]) for c in centres)
    errors = []
    for r in range(300):
        rng = np.random.default_rng(r)
        noisy = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True, noise_std=7.26,
                              rng=rng) for a, p, y in centres]
        audit = pooled_audit(noisy, threshold=0.3, placements=[Placement("Laval")] * 3,
                             noise_std=7.26)
        errors.append(audit["groups"]["region"]["Laval"]["n"] - students)
    expected = 7.26 * math.sqrt(3 / sum(1 / k for k in (4, 3, 3, 4, 4, 4)))  # 1/W per centre
    assert abs(np.std(errors) / math.sqrt(2 * GROUP_BINS) - expected) < 0.12 * expected
    assert abs(np.mean(errors)) < 3 * np.std(errors) / math.sqrt(len(errors))
    # Without noise every attribute holds all students, none is reconciled.
    exact = region_cells(_vectors(centres), [Placement("Laval")] * 3)["Laval"]
    assert exact.noise_sd == 0.0 and exact.students == students


def test_indigenous_governed_boards_never_count_towards_a_region_minimum():
    centres = [_centre(300, s) for s in range(5)]
    north = [Placement("Nord-du-Québec", indigenous_governed=True)] * 2 + [
        Placement("Nord-du-Québec")]
    audit = pooled_audit(_vectors(centres[:3]), threshold=0.3, placements=north)
    assert audit["groups"]["region"] == {}
    assert "region=Nord-du-Québec" in audit["suppressed"]
    # With three other centres the region is shown, the boards' students within it.
    more = north + [Placement("Nord-du-Québec")] * 2
    region = pooled_audit(_vectors(centres), threshold=0.3, placements=more)["groups"]["region"]
    assert region["Nord-du-Québec"]["n"] == 1500


def test_a_centre_total_comes_from_an_attribute_none_of_whose_cells_it_suppressed():
    audit, p, y = _centre(200, 3)
    audit.loc[: MIN_CELL - 2, "home_language"] = "other"
    audit.loc[MIN_CELL - 1 :, "home_language"] = "fr"
    audit["ehdaa"] = [True] * 5 + [False] * 195  # ehdaa=true is suppressed (5 < 10)
    cells = centre_cells(audit, p, y, threshold=0.3, sensitive_allowed=True)
    # The home-language and EHDAA cells miss the students they suppressed; immigrant
    # generation and IMSE band hold all 200, so one of them gives the total.
    assert centre_total(cells)[: 2 * GROUP_BINS].sum() == 200


def test_a_metric_without_its_students_has_no_interval_not_the_whole_range():
    vector = np.zeros(CELL_LENGTH)
    vector[GROUP_BINS : 2 * GROUP_BINS] = 100.0 / GROUP_BINS  # 100 students, no dropout
    for spread in (None, noise_spread(vector, CellNoise(7.26, 3, 0.3))):
        metrics = cell_metrics(vector, spread=spread)
        assert np.isnan(metrics["auc"]) and all(np.isnan(metrics["auc_ci"]))
        assert np.isnan(metrics["tpr"]) and all(np.isnan(metrics["tpr_ci"]))
        assert metrics["fpr_ci"][0] <= metrics["fpr"] <= metrics["fpr_ci"][1]


@pytest.mark.parametrize("threshold", [0.3, 0.059316151139746115, 0.0193, 0.5, 0.871])
def test_the_flagged_band_is_the_last_whatever_the_threshold(threshold) -> None:
    """The audit's raw-score threshold is whatever the recalibration maps 0.3 to: the top
    band edge is exactly it, so the flagged band is always the last (a rounding below it
    once put every flag past the bands: TPR and FPR 0 in a demo run)."""
    from common.equity.audit import GROUP_BINS, flag_bin, group_bin_edges

    edges = group_bin_edges(threshold)
    assert edges[-1] == threshold and flag_bin(edges, threshold) == GROUP_BINS - 1
