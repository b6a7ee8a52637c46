"""What a centre accepts of the ministry's evaluation requests (``client.privacy.evaluation.
check_evaluation_request``): an evaluation only at a round the run's schedule evaluates,
the equity audit only after the final round, at a finite threshold in (0, 1), once a
run. Whatever the ministry sends, a refused request books nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from client.errors import CentreRefusal
from client.federation.rounds import evaluate_round
from client.ingest.centre_data import load_centre
from client.privacy.evaluation import audit_round
from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import run_history
from common.config import RunConfig
from common.equity.audit import all_cell_keys
from common.model import ModelConfig, build_model
from common.privacy.accounting import composed_epsilon
from common.protocol import AuditRequest, Reason
from simulations.network import generate_network, write_network

RUN = "audit-test"


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audit-request")
    write_network(generate_network(centres=2, students=2000, seed=3), folder)
    return sorted(folder.glob("*.parquet"))[-1]


def _setup(extract: Path, tmp_path: Path, **flat: object):
    data = load_centre(str(extract), None, None, 0.2)
    config = RunConfig.from_flat({"rounds": 3, **flat})
    weights = dict(build_model(ModelConfig(hidden=config.training.hidden_sizes),
                               seed=config.seed).state_dict())
    return data, config, weights, PrivacyLedger(tmp_path / "state")


def _rows(ledger: PrivacyLedger) -> list[int]:
    return [r.server_round for r in ledger.releases() if r.run_id == RUN]


def _refused(call, reason: str) -> None:
    with pytest.raises(CentreRefusal) as refused:
        call()
    assert refused.value.reason == reason


def test_unscheduled_rounds_are_refused_and_the_schedule_is_what_is_booked(
        extract: Path, tmp_path: Path) -> None:
    data, config, weights, ledger = _setup(extract, tmp_path,
                                           **{"evaluation.progress_every": 2})
    _refused(lambda: evaluate_round(config, data, weights, 1, ledger, RUN),
             Reason.NOT_SCHEDULED)
    assert _rows(ledger) == []  # nothing booked, not even the cohort's first release
    for server_round in (2, 3):
        release = evaluate_round(config, data, weights, server_round, ledger, RUN)
        assert all(not any(release[key]) for key in all_cell_keys())  # no audit counts
    release = evaluate_round(config, data, weights, 3, ledger, RUN, AuditRequest(0.2, 1.5, -0.3))
    assert not any(release["hist_pos"]) and not any(release["hist_neg"])
    assert any(any(release[key]) for key in all_cell_keys())
    assert _rows(ledger) == [2, 3, audit_round(config)]
    epsilon = composed_epsilon(run_history(ledger, RUN, "evaluate"), config.privacy.delta)
    assert release["epsilon"] == pytest.approx(epsilon) and epsilon <= 3.0 * 1.001


@pytest.mark.parametrize("request_", [
    AuditRequest(math.nan, 1.0, 0.0), AuditRequest(0.0, 1.0, 0.0), AuditRequest(1.0, 1.0, 0.0),
    AuditRequest(1.5, 1.0, 0.0), AuditRequest(math.inf, 1.0, 0.0),
    AuditRequest(0.3, -1.0, 0.0), AuditRequest(0.3, 1.0, math.nan)])
def test_a_malformed_audit_request_is_refused_without_booking(
        extract: Path, tmp_path: Path, request_: AuditRequest) -> None:
    data, config, weights, ledger = _setup(extract, tmp_path)
    _refused(lambda: evaluate_round(config, data, weights, 3, ledger, RUN, request_),
             Reason.AUDIT_INVALID)
    assert _rows(ledger) == []


def test_an_audit_before_the_final_round_or_a_second_one_is_refused_without_booking(
        extract: Path, tmp_path: Path) -> None:
    data, config, weights, ledger = _setup(extract, tmp_path)
    request = AuditRequest(0.25, 1.0, 0.0)
    _refused(lambda: evaluate_round(config, data, weights, 2, ledger, RUN, request),
             Reason.AUDIT_INVALID)
    assert _rows(ledger) == []
    evaluate_round(config, data, weights, 3, ledger, RUN, request)
    booked = _rows(ledger)
    assert booked == [audit_round(config)]
    for again in (request, AuditRequest(0.1, 2.0, 0.5)):  # the same, or another threshold
        _refused(lambda again=again: evaluate_round(config, data, weights, 3, ledger, RUN,
                                                    again), Reason.AUDIT_DONE)
    assert _rows(ledger) == booked
    # Another run is another audit.
    evaluate_round(config, data, weights, 3, ledger, "another-run", request)
    assert np.isfinite(composed_epsilon(run_history(ledger, "another-run", "evaluate"), 1e-6))


def test_a_round_asked_again_cannot_eat_the_audit_s_budget(extract: Path, tmp_path: Path) -> None:
    """The releases still to come are reserved in the budget check: a progress or final
    histogram asked twice (another model version) is refused, and the audit still fits."""
    data, config, weights, ledger = _setup(extract, tmp_path)
    for server_round in (1, 2, 3):
        evaluate_round(config, data, weights, server_round, ledger, RUN)
    for again in (2, 3):
        _refused(lambda again=again: evaluate_round(config, data, weights, again, ledger, RUN),
                 Reason.RUN_BUDGET)
    assert _rows(ledger) == [1, 2, 3]
    evaluate_round(config, data, weights, 3, ledger, RUN, AuditRequest(0.2, 1.0, 0.0))
    assert _rows(ledger) == [1, 2, 3, audit_round(config)]
