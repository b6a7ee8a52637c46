"""The evaluation's score bins placed from what is released (issue 30): on a model whose
held-out scores all sit in a band 0.1 logit wide, the fixed bins (logit -7..5, 0.6
wide) put every student in one bin and the released pooled AUC says 0.5 whatever the
model; placed from the pooled histograms released before, two evaluations later the
released AUC is within 0.02 of the exact one, with each centre's seeded noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from common.config import RunConfig
from common.discrete_gaussian import discrete_gaussian
from common.equity.audit import (
    GROUP_BINS,
    Threshold,
    band_auc,
    bands_problem,
    group_bin_edges,
    place_bands,
)
from common.metrics import (
    MIN_PLACED_BINS,
    PLACED_BINS,
    ScoreHistogram,
    auc_from_histogram,
    bin_bounds,
    edge_logits,
    edges_problem,
    place_edges,
    placed_count,
    score_histogram,
)
from common.protocol import AUDIT_BANDS, AuditRequest, audit_request_of
from server.federation.bookkeeping import (
    aggregate_evaluation,
    audit_request,
    histogram_of,
    kept_evaluation,
    next_edges,
)

CENTRES = 12
STD = 3.1  # the demo's final-histogram noise per count per centre (epsilon 3)


def _narrow(seed: int, n: int = 8_000) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scores in the logit band [-2.05, -1.95], 20 % positives, exact AUC
    about 0.76 (the ranking of a normal shifted by 1 for the positives)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float64)
    rank = norm.cdf(rng.standard_normal(n) + 1.0 * y)
    logits = -2.05 + 0.1 * rank
    return 1.0 / (1.0 + np.exp(-logits)), y


def _release(p: np.ndarray, y: np.ndarray, edges: tuple[float, ...] | None,
             rng: np.random.Generator, bins: int = 20) -> dict[str, object]:
    """The pooled evaluation the ministry computes from 12 centres' noisy releases over
    the bins of ``edges`` (each centre's counts padded to ``bins``, as sent)."""
    releases = []
    for part in np.array_split(np.arange(len(y)), CENTRES):
        h = score_histogram(p[part], y[part], bins, edges)
        pos = h.positives + discrete_gaussian(rng, STD, h.bins)
        neg = h.negatives + discrete_gaussian(rng, STD, h.bins)
        pad = np.zeros(bins - h.bins)
        releases.append({"hist_pos": np.concatenate([pos, pad]).tolist(),
                         "hist_neg": np.concatenate([neg, pad]).tolist(),
                         "prob_sum": np.zeros(bins).tolist(), "sq_err_sum": 0.0})
    return aggregate_evaluation(releases, CENTRES * STD**2, edges)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bins_placed_from_the_released_histograms_find_a_narrow_band(seed: int) -> None:
    p, y = _narrow(seed)
    exact = roc_auc_score(y, p)
    rng = np.random.default_rng([seed, 30])
    config = RunConfig()
    first = _release(p, y, None, rng)  # the run's first evaluation: the fixed bins
    assert abs(float(first["auc"]) - 0.5) < 0.03  # everyone in one bin: noise, no signal
    kept = kept_evaluation(first)
    released = []
    for _ in range(2):  # two later evaluations, each over bins placed from the last one
        edges = next_edges(config, kept)
        # From the fixed bins all 16; from placed ones as many as the noise is worth.
        assert edges is not None and MIN_PLACED_BINS - 1 <= len(edges) <= PLACED_BINS - 1
        if histogram_of(kept).edges is None:
            assert len(edges) == PLACED_BINS - 1
        assert edges_problem(edges, config.evaluation.bins) is None
        pooled = _release(p, y, edges, rng)
        released.append(float(pooled["auc"]))
        kept = kept_evaluation(pooled)
    assert kept is not None and histogram_of(kept).edges == edges
    # Once placed from a histogram that resolves the band, the bins find it.
    assert abs(released[-1] - exact) < 0.02, (released, exact)
    logits = edge_logits(len(edges) + 1, edges)
    assert np.sum((logits > -2.06) & (logits < -1.94)) >= len(edges) - 2, logits


def test_the_edges_are_a_function_of_the_released_counts_only() -> None:
    """The same released pooled histogram gives the same edges (the ministry and a
    resumed run ask for the same bins); the fixed placement and a run's first
    evaluation ask for none."""
    p, y = _narrow(5)
    pooled = kept_evaluation(_release(p, y, None, np.random.default_rng(7)))
    assert pooled is not None
    config = RunConfig()
    assert next_edges(config, pooled) == next_edges(config, dict(pooled))
    assert next_edges(config, None) is None
    fixed = RunConfig.from_flat({"evaluation.placement": "fixed"})
    assert next_edges(fixed, pooled) is None
    # The counts before the clipping at 0 place them, not the clipped ones.
    assert next_edges(config, pooled) == place_edges(
        pooled["hist_pos_raw"], pooled["hist_neg_raw"], None, PLACED_BINS,
        pooled["noise_sd"][0])


def test_placement_keeps_the_bins_when_the_noise_decides() -> None:
    """No student, or counts the noise does not resolve (UCI Dropout's 890 held-out
    students over 17 centres), place nothing: the ministry asks for the bins it had;
    one label resolved places the bins alone."""
    zeros = np.zeros(20)
    assert place_edges(zeros, zeros, None, 8) is None
    noise = np.random.default_rng(3).normal(0, 30, 20)
    assert place_edges(noise + 10, noise + 30, None, 8, noise_sd=30.0) is None
    one_label = np.r_[np.zeros(10), np.full(10, 500.0)]
    edges = place_edges(noise, one_label, None, 8, noise_sd=30.0)
    assert edges is not None and edges_problem(edges, 20) is None
    assert edge_logits(8, edges)[0] >= -1.0
    kept = {"hist_pos": list(noise), "hist_neg": list(noise + 30), "noise_sd": [30.0],
            "edges": list(edges[:7])}
    assert next_edges(RunConfig(), kept) == edges[:7]
    # From the fixed bins, even bins over the bins that stand above the noise.
    narrow = np.zeros(20)
    narrow[8] = 600.0
    spread = next_edges(RunConfig(), {"hist_pos": list(zeros), "hist_neg": list(narrow),
                                      "noise_sd": [30.0]})
    assert spread is not None and len(spread) == PLACED_BINS - 1
    assert spread[0] > -2.2 and spread[-1] < -1.6  # within the fixed bin [-2.2, -1.6]


def test_a_histogram_keeps_its_bins() -> None:
    h = score_histogram(np.array([0.1, 0.2, 0.3]), np.array([0.0, 1.0, 1.0]), 20,
                        (-2.0, -1.0))
    assert h.bins == 3 and h.edges == (-2.0, -1.0)
    assert auc_from_histogram(h) == pytest.approx(1.0)
    other = ScoreHistogram(h.positives, h.negatives, h.probability_sum, 0.0, (-2.0, -0.5))
    with pytest.raises(AssertionError):
        _ = h + other


def test_the_audit_bands_are_placed_where_the_students_are_below_the_threshold() -> None:
    """Issue 30, point 3: a threshold far above every score (a weak signal at a low
    dropout rate) put every student in the lowest fixed band, so each group's band AUC
    was 0.5; placed at the quantiles of the final pooled histogram below the threshold,
    the bands hold a share of the students each and the band AUC follows the exact one."""
    p, y = _narrow(11)
    pooled = kept_evaluation(_release(p, y, next_edges(RunConfig(), kept_evaluation(
        _release(p, y, None, np.random.default_rng(1)))), np.random.default_rng(2)))
    assert pooled is not None
    histogram = histogram_of(pooled)
    raw = 0.9  # far above every score (logit 2.2)
    request, _ = audit_request(0.3, histogram, pooled)
    bands = place_bands(raw, pooled["hist_pos_raw"], pooled["hist_neg_raw"],
                        bin_bounds(histogram.bins, histogram.edges), pooled["noise_sd"][0])
    assert bands is not None and bands_problem(raw, bands) is None
    exact = roc_auc_score(y, p)
    for cut, near in ((Threshold(raw), False), (Threshold(raw, bands), True)):
        band = np.searchsorted(group_bin_edges(cut), p, side="right")
        pos = np.bincount(band, weights=y, minlength=GROUP_BINS)
        neg = np.bincount(band, weights=1 - y, minlength=GROUP_BINS)
        assert (abs(band_auc(pos, neg) - exact) < 0.05) is near
    assert request.valid and request.bands is not None
    # A centre refuses bands that do not increase, or on the threshold (logit(0.1) =
    # -2.197225), or malformed; bands on both sides of it are edges it counts over.
    assert not AuditRequest(0.1, 1.0, 0.0, (-3.0, 0.5, -2.0)).valid
    assert not AuditRequest(0.1, 1.0, 0.0, (-3.0, -2.197225, 0.5)).valid
    assert AuditRequest(0.1, 1.0, 0.0, (-3.0, -2.0, 0.5)).valid
    assert not audit_request_of({**request.as_config(), AUDIT_BANDS: "a,b"}).valid
    assert audit_request_of(request.as_config()) == request


def _weak(seed: int, rate: float, shift: float, n: int = 6_400
          ) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scores of a weak signal: logits normal, the positives' shifted by
    ``shift`` (AUC about Phi(shift / sqrt 2)), at dropout rate ``rate``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.float64)
    logits = -4.0 + 0.5 * (rng.standard_normal(n) + shift * y)
    return 1.0 / (1.0 + np.exp(-logits)), y


def test_the_number_of_placed_bins_follows_the_noise_for_the_students() -> None:
    """All 16 without noise or with many students per count of noise (the demo's 1,675
    positives under 10.7, Quebec's); fewer for 330 positives under 11 (a weak signal at
    5 % dropout over 13 centres), where each bin's noise costs more than its ties."""
    demo_p, demo_y = _weak(1, 0.19, 1.15, 8_781)
    weak_p, weak_y = _weak(2, 0.05, 0.28)
    for p, y, noise, low, high in ((demo_p, demo_y, 0.0, 16, 16),
                                   (demo_p, demo_y, 10.7, 12, 16),
                                   (weak_p, weak_y, 11.1, MIN_PLACED_BINS, 6)):
        h = score_histogram(p, y, 20)
        assert low <= placed_count(h.positives, h.negatives, noise) <= high
    assert placed_count(np.zeros(20), np.zeros(20), 11.1) == MIN_PLACED_BINS
    assert placed_count(np.ones(20), np.ones(20), 5.0, most=3) == 3


def test_fewer_placed_bins_bring_a_weak_signal_at_5_percent_closer() -> None:
    """The released AUC of a weak signal at 5 % dropout (330 positives of 6,400, pooled
    noise 11.1 per count, 300 seeded draws, counts clipped at 0 as the ministry does)
    errs less over the bins ``placed_count`` asks for than over 16: the noise, not the
    ties, decides there."""
    p, y = _weak(3, 0.05, 0.28)
    exact = roc_auc_score(y, p)
    exact_h = score_histogram(p, y, 20)
    chosen = placed_count(exact_h.positives, exact_h.negatives, 11.1)
    rng = np.random.default_rng(30)
    errors = {}
    for k in (chosen, PLACED_BINS):
        edges = place_edges(exact_h.positives, exact_h.negatives, None, k)
        h = score_histogram(p, y, 20, edges)
        draws = []
        for _ in range(300):
            pos = np.clip(h.positives + rng.normal(0, 11.1, h.bins), 0, None)
            neg = np.clip(h.negatives + rng.normal(0, 11.1, h.bins), 0, None)
            draws.append(auc_from_histogram(ScoreHistogram(pos, neg, pos, 0.0, edges)) - exact)
        errors[k] = float(np.sqrt(np.mean(np.square(draws))))
    assert chosen < PLACED_BINS
    assert errors[chosen] < 0.75 * errors[PLACED_BINS], errors


def test_students_who_left_the_placed_bins_get_the_fixed_bins_again() -> None:
    """A released histogram over placed bins whose open end bin holds most students (the
    model moved out of them between two evaluations): the next evaluation counts over
    the fixed bins, which find them again, not over the same placed bins."""
    p, y = _narrow(4)
    edges = tuple(float(v) for v in np.linspace(-1.0, -0.5, 15))  # above every score
    pooled = kept_evaluation(_release(p, y, edges, np.random.default_rng(8)))
    assert pooled is not None and histogram_of(pooled).edges == edges
    assert next_edges(RunConfig(), pooled) is None
    inside = kept_evaluation(_release(p, y, tuple(float(v) for v in np.linspace(
        -2.04, -1.96, 15)), np.random.default_rng(9)))
    assert next_edges(RunConfig(), inside) is not None
