"""Plain-mode evaluation noise (issue 26, point 3): the discrete Gaussian of
``common.discrete_gaussian``, as in secure mode. The released counts are integers (no
floating-point low-order bits for Mironov's attack to read), and the noise has the std
the ledger books (seeded, so the test decides the same way every time)."""

from __future__ import annotations

import numpy as np
import pytest

from client.ingest.centre_data import split_and_encode
from client.privacy.evaluation import evaluation_noise, evaluation_release
from client.privacy.run_plan import released_size
from client.site_policy import SitePolicy
from common.config import RunConfig
from common.equity.audit import GROUP_BINS, all_cell_keys
from common.metrics import score_histogram
from common.privacy.accounting import COUNT_NOISE_MULTIPLIER
from common.protocol import AuditRequest
from tests.client.conftest import harmonised_frame

POLICY = SitePolicy()
RELEASES = 200  # rounds released: 200 x 2 x bins draws of the histogram's noise


def _setup() -> tuple[RunConfig, object, np.ndarray]:
    config = RunConfig.from_flat({"rounds": 1, "seed": 11, "privacy.reproducible_noise": True})
    data = split_and_encode(harmonised_frame(300), POLICY, 0.3)
    probabilities = np.random.default_rng(0).random(data.num_test)
    return config, data, probabilities


def test_plain_evaluation_counts_are_integers_with_the_booked_std() -> None:
    config, data, probabilities = _setup()
    noise = evaluation_noise(config, POLICY.privacy)
    assert noise is not None
    exact = score_histogram(probabilities, data.y_test, config.evaluation.bins)
    draws = []
    for server_round in range(1, RELEASES + 1):  # each round its own seeded stream
        metrics = evaluation_release(config, data, probabilities, server_round, None, "r")
        for key, true in (("hist_pos", exact.positives), ("hist_neg", exact.negatives)):
            released = np.asarray(metrics[key])
            assert np.array_equal(released, np.rint(released)), key
            draws.append(released - true)
    noise_draws = np.concatenate(draws)
    # sigma >= 1: the discrete Gaussian's variance is sigma^2 to within 1e-8.
    assert noise_draws.mean() == pytest.approx(0.0, abs=4 * noise.final / np.sqrt(noise_draws.size))
    assert noise_draws.std() == pytest.approx(noise.final, rel=0.05)


def test_plain_audit_cells_are_integers() -> None:
    config, data, probabilities = _setup()
    metrics = evaluation_release(config, data, probabilities, 1, None, "r",
                                 AuditRequest(0.3, 1.0, 0.0))
    for key in all_cell_keys():
        counts = np.asarray(metrics[key])[:2 * GROUP_BINS + 2]  # bins, TP and FP
        assert np.array_equal(counts, np.rint(counts)), key


def test_the_released_size_is_an_integer_count_with_the_booked_std() -> None:
    rng = np.random.default_rng(4)
    # SIZE_GRID rounding aside: the grid's rounding adds a uniform error of std 10/sqrt(12).
    sizes = np.array([released_size(10_000, rng) for _ in range(4000)])
    assert sizes.dtype.kind == "i"
    expected = np.sqrt(COUNT_NOISE_MULTIPLIER**2 + 10**2 / 12)
    assert sizes.std() == pytest.approx(expected, rel=0.05)
