"""Distributed noise in secure mode: the discrete Gaussian, the shares, what the sum
costs, and intervals that stay honest when the sum carries the shares of the centres
that survived (synthetic federations, seeded)."""

from __future__ import annotations

import math

import numpy as np

from common.discrete_gaussian import MIN_SHARE_STD, discrete_gaussian, sum_multiplier
from common.equity.audit import GROUP_BINS, band_auc
from common.equity.group_metrics import CellNoise, cell_metrics, noise_spread
from common.privacy.accounting import (
    audit_share,
    calibrate_evaluation_noise,
    composed_epsilon,
    noise_share,
    run_shares,
    summed_rows,
)
from common.privacy.secure_release import block, decode, encode, exact_sum, length, pooled_cell


def test_discrete_gaussian_has_the_variance_and_shape_of_its_sigma() -> None:
    rng = np.random.default_rng(3)
    for sigma in (1.5, 4.0, 20.0):
        draws = discrete_gaussian(rng, sigma, 200_000)
        assert draws.dtype == np.int64
        assert abs(draws.mean()) < 0.05 * sigma
        assert abs(draws.std() / sigma - 1) < 0.01
        # P(0) / P(1) = exp(1 / (2 sigma^2)) for N_Z(0, sigma^2)
        ratio = np.mean(draws == 0) / np.mean(draws == 1)
        assert abs(ratio - math.exp(1 / (2 * sigma**2))) < 0.05


def test_a_share_is_one_over_t_of_the_variance_and_the_sum_meets_the_target() -> None:
    noise = calibrate_evaluation_noise(1.0, 1e-6, 6)
    whole = audit_share(noise)
    share = audit_share(noise, survivors_min=8)
    assert not whole.distributed and share.distributed
    assert math.isclose(share.audit, max(whole.audit / math.sqrt(8), MIN_SHARE_STD))
    rows = run_shares(noise, 8)
    alone = composed_epsilon(rows, 1e-6)
    assert alone > 3.0  # what a centre books: its share, seen alone
    shares = [*(noise_share(noise, k, 8) for k in range(1, 7)), audit_share(noise, 8)]
    summed = [r for s in shares for r in summed_rows(s, 8, 40, 170)]
    assert composed_epsilon(summed, 1e-6) <= 1.0 + 0.01  # what the sum costs
    # Fewer survivors than the threshold would not carry the target (SecAgg+ halts then).
    fewer = [r for s in shares for r in summed_rows(s, 4, 40, 170)]
    assert composed_epsilon(fewer, 1e-6) > 1.2
    # The tau term of the bound is negligible at the smallest share.
    assert sum_multiplier(MIN_SHARE_STD, 72, 6.0, 400) > 0.999 * MIN_SHARE_STD / math.sqrt(6 / 72)


def test_secagg_sums_the_encoded_vectors_exactly() -> None:
    rng = np.random.default_rng(5)
    vectors = []
    for _ in range(4):
        cell = np.zeros(2 * GROUP_BINS + 3)
        cell[: 2 * GROUP_BINS] = rng.integers(-3, 400, 2 * GROUP_BINS)
        vectors.append(encode(rng.integers(-2, 500, 20), rng.integers(-2, 500, 20),
                              {"eq.sex=F": block(cell, 2.25)}, 2, (1, block(cell, 2.25))))
    average = np.mean(vectors, axis=0)
    summed = decode(exact_sum(average, 4), 20, 2)
    assert len(vectors[0]) == length(20, 2)
    assert np.array_equal(summed.positives, np.sum(vectors, axis=0)[:20])
    assert np.array_equal(summed.cells["eq.sex=F"], np.sum(vectors, axis=0)[40:54])
    assert summed.regions[0].sum() == 0 and summed.regions[1][:10].sum() > 0


def _coverage(draws: int, seed: int) -> tuple[float, float]:
    """A synthetic federation of 12 centres (threshold 8, 0-4 drop out at random): each
    draws its students of one group from fixed band probabilities, adds its share of the
    audit's noise, SecAgg+ sums the survivors; how often the 95 % intervals of the
    pooled TPR and AUC hold their true values."""
    rng = np.random.default_rng(seed)
    pos_p = np.array([0.05, 0.1, 0.2, 0.25, 0.4])  # flagged: the top band
    neg_p = np.array([0.35, 0.3, 0.2, 0.1, 0.05])
    true_tpr, true_auc = pos_p[-1], band_auc(pos_p * 1000, neg_p * 1000)
    audit = calibrate_evaluation_noise(1.0, 1e-6, 6).audit * math.sqrt(6)
    share = max(audit / math.sqrt(8), MIN_SHARE_STD)
    hits = np.zeros(2)
    for _ in range(draws):
        survivors = 12 - int(rng.integers(0, 5))
        total = np.zeros(2 * GROUP_BINS)
        for _ in range(survivors):
            total[:GROUP_BINS] += rng.multinomial(40, pos_p) + discrete_gaussian(rng, share, 5)
            total[GROUP_BINS:] += rng.multinomial(200, neg_p) + discrete_gaussian(rng, share, 5)
        summed = np.zeros(2 * GROUP_BINS + 4, dtype=np.int64)
        summed[: 2 * GROUP_BINS] = total
        summed[-1] = math.ceil(survivors * share**2 * 1000)
        cell = pooled_cell(summed, threshold=0.3, centres=survivors)
        spread = noise_spread(cell.total, CellNoise(cell.noise_sd, 1, 0.3))
        metrics = cell_metrics(cell.total, spread=spread)
        for i, (key, truth) in enumerate((("tpr_ci", true_tpr), ("auc_ci", true_auc))):
            low, high = metrics[key]  # type: ignore[misc]
            hits[i] += low <= truth <= high
    return float(hits[0] / draws), float(hits[1] / draws)


def test_intervals_of_a_distributed_sum_hold_their_truth_95_times_in_100() -> None:
    tpr, auc = _coverage(400, seed=11)
    assert tpr >= 0.93 and auc >= 0.93, (tpr, auc)


def test_the_sums_exact_renyi_divergence_stays_under_the_bound_the_ministry_books() -> None:
    """For one count (shift 1), the Renyi divergence of a sum of n discrete Gaussians,
    computed exactly by convolving their probabilities, is within Kairouz, Liu and
    Steinke's bound as ``sum_multiplier`` transcribes it (alpha / (2 z^2))."""
    for sigma, summands in ((1.0, 12), (1.5, 8), (1.5, 48)):
        support = np.arange(-int(10 * sigma) - 2, int(10 * sigma) + 3)
        pmf = np.exp(-(support**2) / (2 * sigma**2))
        pmf /= pmf.sum()
        total = pmf
        for _ in range(summands - 1):
            total = np.convolve(total, pmf)
        shifted = np.concatenate([[0.0], total[:-1]])
        keep = (total > 1e-200) & (shifted > 1e-200)
        z = sum_multiplier(sigma, summands, 1.0, 1)
        for alpha in (2, 4, 8):
            terms = alpha * np.log(total[keep]) + (1 - alpha) * np.log(shifted[keep])
            divergence = math.log(np.exp(terms).sum()) / (alpha - 1)
            assert divergence <= alpha / (2 * z**2) * (1 + 1e-9), (sigma, summands, alpha)
            assert divergence >= 0.99 * alpha / (2 * summands * sigma**2)  # and it is tight
