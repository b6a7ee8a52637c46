"""A centre's secure evaluation release (``client.privacy.secure_evaluation``): its floor decides
whether it adds a share of the noise or the whole, and its ledger books what its own
release costs alone, within its floor, whatever the ministry asks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from client.errors import CentreRefusal
from client.ingest.centre_data import load_centre
from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import run_history
from client.privacy.secure_evaluation import SecureSlot, secure_release
from common.config import RunConfig
from common.discrete_gaussian import MIN_SHARE_STD
from common.privacy.accounting import calibrate_evaluation_noise, composed_epsilon
from common.privacy.secure_release import length
from common.protocol import AuditRequest, Reason
from simulations.network import generate_network, write_network

RUN = "secure-test"
THRESHOLD = 8  # as SecAgg+ would send it for 12 centres


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("secure-evaluation")
    write_network(generate_network(centres=2, students=2000, seed=5), folder)
    return sorted(folder.glob("*.parquet"))[-1]


def _release(extract: Path, tmp_path: Path, floor: str, rounds: tuple[int, ...] = (1, 2)
             ) -> tuple[list[dict[str, float | int]], PrivacyLedger, RunConfig]:
    policy = tmp_path / "policy.toml"
    policy.write_text(f"[privacy]\n{floor}\n", encoding="utf-8")
    data = load_centre(str(extract), None, str(policy), 0.2)
    config = RunConfig.from_flat({"rounds": 2, "privacy.secure_aggregation": True,
                                  "privacy.distributed_noise": True})
    ledger = PrivacyLedger(tmp_path / "state")
    probabilities = np.random.default_rng(0).random(len(data.y_test))
    out = []
    for server_round in rounds:
        vector, metrics = secure_release(config, data, probabilities, server_round, ledger,
                                         RUN, SecureSlot(), THRESHOLD)
        assert len(vector) == length(config.evaluation.bins, 0)
        assert np.array_equal(vector, np.rint(vector))  # integers, for SecAgg+
        out.append(metrics)
    # The audit exchange after the final round: the equity cells, once.
    vector, metrics = secure_release(config, data, probabilities, 2, ledger, RUN,
                                     SecureSlot(), THRESHOLD, AuditRequest(0.3, 1.0, 0.0))
    assert not vector[:2 * config.evaluation.bins].any()  # no histogram: exact zeros
    out.append(metrics)
    return out, ledger, config


def test_a_floor_without_distributed_noise_adds_the_whole_noise(extract: Path,
                                                                tmp_path: Path) -> None:
    metrics, ledger, config = _release(extract, tmp_path, "max_epsilon_per_run = 3.0")
    noise = calibrate_evaluation_noise(3.0, 1e-6, 2)
    assert [m["noise.distributed"] for m in metrics] == [0, 0, 0]
    assert metrics[-1]["noise.audit"] == pytest.approx(noise.audit * math.sqrt(6))
    spent = composed_epsilon(run_history(ledger, RUN, "evaluate"), config.privacy.delta)
    assert spent <= 3.0 * 1.001


def test_a_share_is_booked_for_what_it_costs_alone(extract: Path, tmp_path: Path) -> None:
    metrics, ledger, config = _release(
        extract, tmp_path, "allow_distributed_noise = true\nmax_epsilon_per_run = 10.0")
    noise = calibrate_evaluation_noise(3.0, 1e-6, 2)
    assert [m["noise.distributed"] for m in metrics] == [1, 1, 1]
    assert metrics[-1]["noise.audit"] == pytest.approx(
        max(noise.audit * math.sqrt(6) / math.sqrt(THRESHOLD), MIN_SHARE_STD))
    spent = composed_epsilon(run_history(ledger, RUN, "evaluate"), config.privacy.delta)
    assert 3.0 < spent <= 10.0 and metrics[-1]["epsilon"] == pytest.approx(spent)


def test_a_share_past_the_floor_is_refused_and_nothing_past_it_is_booked(
        extract: Path, tmp_path: Path) -> None:
    with pytest.raises(CentreRefusal) as refused:
        _release(extract, tmp_path, "allow_distributed_noise = true\nmax_epsilon_per_run = 3.0")
    assert refused.value.reason == Reason.RUN_BUDGET
    ledger = PrivacyLedger(tmp_path / "state")
    assert composed_epsilon(run_history(ledger, RUN, "evaluate"), 1e-6) <= 3.0 * 1.001
