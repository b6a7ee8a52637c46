"""A centre's trust model of distributed noise (issue 26, point 5) and its check of the
SecAgg+ settings it receives (issue 27): under 'secure-aggregation' the ledger books
what the SUM of the t - c honest shares costs; a round whose threshold cannot support
that, or whose settings are not the run's, is refused before anything is read or
booked (``client.privacy.trust``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
    Key,
)
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import (
    SecAggPlusWorkflow,
    WorkflowState,
)
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity
from opacus.accountants.analysis.rdp import get_privacy_spent

from client.errors import CentreRefusal
from client.federation.secure import SecureCentre
from client.privacy.ledger import PrivacyLedger
from client.privacy.trust import (
    SecAggSetup,
    check_trust,
    declared_setup,
    run_epsilon,
    setup_problems,
)
from client.site_policy import PrivacyFloor
from common import protocol
from common.config import RunConfig
from common.discrete_gaussian import MIN_SHARE_STD, sum_multiplier
from common.privacy.accounting import RDP_ORDERS, run_evaluation_noise
from common.records.chain import LEDGER_FILE
from tests.client.federation.test_neighbouring import (
    _centre,
    _flat,
    _one,
    _secagg_state,
    _students,
    _weights,
)

SECURE = {"privacy.secure_aggregation": True, "privacy.distributed_noise": True}
TRUSTING = ('allow_distributed_noise = true\nmax_epsilon_per_run = {max}\n'
            'distributed_noise_trust = "{model}"\nmax_colluding_centres = {c}\n')


def _ask(flat: dict[str, object], node: dict[str, object], state: ConfigRecord | None,
         phase: str | None, audit: bool = False) -> tuple[dict[str, Any], np.ndarray]:
    """One SecAgg+ fit of the centre (what ``secaggplus_mod`` masks), with the round's
    SecAgg+ ``state``."""
    records = RecordDict()
    if state is not None:
        records[RECORD_KEY_STATE] = state
    context = Context(run_id=1, node_id=1, state=records, node_config=node, run_config=flat)
    config: dict[str, Any] = protocol.Task("run-1", 1, "r1").as_config()
    if phase is not None:
        config[protocol.SECURE_PHASE] = phase
    if audit:
        config.update(protocol.AuditRequest(0.3, 1.0, 0.0).as_config())
    vectors, _, metrics = SecureCentre(context).fit(
        [w.numpy() for w in _weights(flat).values()], config)
    return metrics, vectors[0]


def _nothing_booked(state: Path) -> bool:
    if not (state / LEDGER_FILE).exists():
        return True
    ledger = PrivacyLedger(state)
    return not ledger.booked() and not ledger.cohorts()


def _gaussian_epsilon(multipliers: list[float], delta: float) -> float:
    """Independent of the ledger's code: the Gaussian mechanism's RDP in closed form,
    alpha / (2 z^2) per release, composed and converted by Opacus."""
    orders = np.asarray(RDP_ORDERS, dtype=np.float64)
    rdp = sum(orders / (2 * z**2) for z in multipliers)
    epsilon, _ = get_privacy_spent(orders=list(RDP_ORDERS), rdp=rdp, delta=delta)
    return float(epsilon)


def test_the_ledger_books_the_sum_of_the_honest_shares(tmp_path: Path) -> None:
    """t = 4 of 6 centres, c = 1: the histogram and the audit are booked as the sum of
    3 honest shares, i.e. Gaussian releases of std sqrt(3) x the share (over the
    sensitivity), and the reply's epsilon is their composition; alone it would be far
    more."""
    flat = _flat(**SECURE)
    node = _centre(tmp_path / "centre", _students(400),
                   floor=TRUSTING.format(max=10.0, model="secure-aggregation", c=1))
    state = _secagg_state(flat, 6)
    assert (state["share_num"], state["threshold"]) == (6, 4)
    _ask(flat, node, state, protocol.SECURE_EVALUATE)
    metrics, _ = _ask(flat, node, state, protocol.SECURE_EVALUATE, audit=True)

    noise = run_evaluation_noise(RunConfig.from_flat(flat))
    histogram_share = max(noise.final / 2, MIN_SHARE_STD)  # 1/t of the variance
    audit_share = max(noise.audit * math.sqrt(6) / 2, MIN_SHARE_STD)
    assert metrics[protocol.NOISE_AUDIT] == pytest.approx(audit_share)
    expected = [math.sqrt(3) * histogram_share, math.sqrt(3) * audit_share / math.sqrt(6)]
    booked = [r.noise_multiplier for r in PrivacyLedger(Path(str(node["state-dir"])))
              .releases() if r.kind == "evaluate"]
    assert booked == pytest.approx(expected, rel=1e-6)  # the bound's tau term: < 1e-6
    independent = _gaussian_epsilon(expected, 1e-6)
    assert metrics[protocol.EPSILON] == pytest.approx(independent, abs=1e-4)
    assert (metrics[protocol.NOISE_TRUST], metrics[protocol.NOISE_COLLUDING]) == (1, 1)
    alone = _gaussian_epsilon([histogram_share, audit_share / math.sqrt(6)], 1e-6)
    assert alone > 1.5 * metrics[protocol.EPSILON]


def test_alone_books_the_share_seen_alone(tmp_path: Path) -> None:
    flat = _flat(**SECURE)
    node = _centre(tmp_path / "centre", _students(400),
                   floor=TRUSTING.format(max=10.0, model="alone", c=1))
    metrics, _ = _ask(flat, node, _secagg_state(flat, 6), protocol.SECURE_EVALUATE)

    noise = run_evaluation_noise(RunConfig.from_flat(flat))
    share = max(noise.final / 2, MIN_SHARE_STD)
    assert metrics[protocol.EPSILON] == pytest.approx(_gaussian_epsilon([share], 1e-6),
                                                      abs=1e-4)
    assert (metrics[protocol.NOISE_TRUST], metrics[protocol.NOISE_COLLUDING]) == (0, 0)


@pytest.mark.parametrize("colluding", [4, 5, 3], ids=["c-at-t", "c-above-t", "t-c-small"])
def test_a_threshold_too_low_for_the_trust_model_is_refused(colluding: int,
                                                            tmp_path: Path) -> None:
    flat = _flat(**SECURE)
    node = _centre(tmp_path / "centre", _students(400),
                   floor=TRUSTING.format(max=5.0, model="secure-aggregation", c=colluding))
    with pytest.raises(CentreRefusal) as refused:
        _ask(flat, node, _secagg_state(flat, 6), protocol.SECURE_EVALUATE)

    assert (refused.value.code, refused.value.reason) == (protocol.Reply.FLOOR,
                                                          protocol.Reason.SECAGG_TRUST)
    assert _nothing_booked(Path(str(node["state-dir"])))


def test_quebec_at_t_9_supports_one_colluding_centre_within_3() -> None:
    """Québec's 72 centres with 15 neighbours and t = 9 (docs/PRIVACY.md's measured
    run): under 'alone' a share costs 9.59 per run; as the sum of t - c honest shares,
    2.76 with c = 0, 2.95 with c = 1 (within a floor of 3) and 3.17 with c = 2
    (refused at that floor)."""
    config = RunConfig.from_flat({
        "rounds": 20, **SECURE, "evaluation.progress_every": 5,
        "evaluation.audit_weights": "home_language=1.5,immigrant_generation=1.5",
        "privacy.secagg_shares": 0.2, "privacy.secagg_threshold": 0.6})
    assert declared_setup(config, 72) == (15, 9)
    noise = run_evaluation_noise(config)
    figures = {}
    for model, c in (("alone", 0), ("secure-aggregation", 0), ("secure-aggregation", 1),
                     ("secure-aggregation", 2)):
        floor = PrivacyFloor(allow_distributed_noise=True, distributed_noise_trust=model,
                             max_colluding_centres=c)
        figures[(model, c)] = round(run_epsilon(config, noise, floor, 9), 2)
    assert figures == {("alone", 0): 9.59, ("secure-aggregation", 0): 2.76,
                       ("secure-aggregation", 1): 2.95, ("secure-aggregation", 2): 3.17}
    check_trust(config, PrivacyFloor(allow_distributed_noise=True,
                                     distributed_noise_trust="secure-aggregation"), 9)
    with pytest.raises(CentreRefusal):
        check_trust(config, PrivacyFloor(allow_distributed_noise=True,
                                         distributed_noise_trust="secure-aggregation",
                                         max_colluding_centres=2), 9)


MISMATCHES = {
    "threshold-not-declared": {"sample_num": 6, "share_num": 6, "threshold": 5},
    "shares-not-declared": {"sample_num": 6, "share_num": 5, "threshold": 4},
    "threshold-half": {"sample_num": 6, "share_num": 6, "threshold": 3},
    "threshold-above-shares": {"sample_num": 6, "share_num": 6, "threshold": 7},
    "more-neighbours-than-shares": {"sample_num": 6, "share_num": 6, "threshold": 4,
                                    "public_keys_dict:K": list(range(7))},
}


@pytest.mark.parametrize("phase", [None, protocol.SECURE_EVALUATE], ids=["train", "evaluate"])
@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_secagg_settings_other_than_the_runs_are_refused(case: str, phase: str | None,
                                                         tmp_path: Path) -> None:
    """Whatever the trust model: settings the run does not declare (its fractions give
    6 shares and t = 4 for 6 centres) or that are inconsistent, refused before anything
    is read or booked (reply 1003)."""
    flat = _flat(**SECURE)
    node = _centre(tmp_path / "centre", _students(400),
                   floor=TRUSTING.format(max=10.0, model="alone", c=1))
    with pytest.raises(CentreRefusal) as refused:
        _ask(flat, node, ConfigRecord(MISMATCHES[case]), phase)

    assert (refused.value.code, refused.value.reason) == (protocol.Reply.CONFIG,
                                                          protocol.Reason.SECAGG_SETTINGS)
    assert _nothing_booked(Path(str(node["state-dir"])))


def test_the_declared_settings_pass_and_neighbours_within_them() -> None:
    config = RunConfig.from_flat(SECURE)
    assert setup_problems(config, SecAggSetup(6, 6, 4, 6)) == []
    assert setup_problems(config, SecAggSetup(6, 6, 4, 5)) == []  # one left before keys
    assert len(setup_problems(config, SecAggSetup(6, 6, 4, 3))) == 1  # fewer than t


class _Recording(Grid):
    """A Grid that keeps what Flower's workflow sends and answers nothing."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def set_run(self, run: Any) -> None:
        del run

    @property
    def run(self) -> Any:
        raise NotImplementedError

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> list[int]:
        return []

    def push_messages(self, messages: Any) -> list[str]:
        return []

    def pull_messages(self, message_ids: Any) -> list[Message]:
        return []

    def send_and_receive(self, messages: Any, *, timeout: float | None = None
                         ) -> list[Message]:
        self.sent.extend(messages)
        return []


def _flower_setup(shares: float, threshold: float, sampled: int) -> tuple[int, int, int]:
    """What Flower 1.42's own ``SecAggPlusWorkflow.setup_stage`` sends ``sampled``
    centres for these fractions: (sample_num, share_num, threshold)."""
    TaskIdentity.task_id, TaskIdentity.run_id = 1, 1
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    grid = _Recording()
    context = LegacyContext(
        Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
        strategy=FedAvg(fraction_fit=1.0, min_fit_clients=sampled,
                        min_available_clients=sampled))
    for node in range(1, sampled + 1):
        context.client_manager.register(GridClientProxy(node, grid, 1))
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: 1})
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord([np.zeros(2)])
    SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=threshold).setup_stage(
        grid, context, WorkflowState())
    sent = grid.sent[0].content.config_records[RECORD_KEY_CONFIGS]
    return (int(sent[Key.SAMPLE_NUMBER]), int(sent[Key.SHARE_NUMBER]),  # type: ignore[arg-type]
            int(sent[Key.THRESHOLD]))  # type: ignore[arg-type]


@pytest.mark.parametrize("shares,threshold", [(1.0, 0.67), (0.2, 0.6), (0.3, 0.67),
                                              (0.5, 0.51), (0.05, 0.9)])
def test_the_declared_settings_are_what_flower_sends(shares: float, threshold: float) -> None:
    config = RunConfig.from_flat({"privacy.secagg_shares": shares,
                                  "privacy.secagg_threshold": threshold})
    for sampled in (2, 3, 4, 7, 12, 72):
        sent = _flower_setup(shares, threshold, sampled)
        assert sent == (sampled, *declared_setup(config, sampled)), (sampled, sent)


def test_a_trust_refusal_is_the_same_with_one_student_more(tmp_path: Path) -> None:
    """Public: a function of the configuration, the round's threshold and the policy."""
    flat = _flat(**SECURE)
    floor = TRUSTING.format(max=5.0, model="secure-aggregation", c=3)
    reasons = []
    for name, frame in (("d", _students(400)),
                        ("d1", pd.concat([_students(400), _one(held_out=True)]))):
        node = _centre(tmp_path / name, frame, floor=floor)
        with pytest.raises(CentreRefusal) as refused:
            _ask(flat, node, _secagg_state(flat, 6), protocol.SECURE_EVALUATE)
        reasons.append((refused.value.code, refused.value.reason))
    assert reasons[0] == reasons[1]


def _pmf(sigma: float, half: int) -> np.ndarray:
    support = np.arange(-half, half + 1)
    pmf = np.exp(-(support**2) / (2 * sigma**2))
    return pmf / pmf.sum()


@pytest.mark.parametrize("summands,big", [(3, 3.0), (8, 6.0), (8, 1.6)])
def test_a_larger_honest_share_keeps_the_sum_within_the_booked_bound(summands: int,
                                                                     big: float) -> None:
    """The centre books t - c shares of the run's share sigma; an honest centre may add
    more (a smaller delta, or the whole noise). The bound is stated for equal shares:
    checked here exactly (convolving the probabilities) for one share larger, at
    sigma = 1.5, for one count: the sum's Renyi divergence stays within what is booked."""
    sigma = MIN_SHARE_STD
    half = int(12 * max(sigma, big)) + 2
    total = _pmf(big, half)
    for _ in range(summands - 1):
        total = np.convolve(total, _pmf(sigma, half))
    shifted = np.concatenate([[0.0], total[:-1]])
    keep = (total > 1e-250) & (shifted > 1e-250)
    z = sum_multiplier(sigma, summands, 1.0, 1)
    for alpha in (2, 4, 8, 16):
        terms = alpha * np.log(total[keep]) + (1 - alpha) * np.log(shifted[keep])
        divergence = math.log(np.exp(terms).sum()) / (alpha - 1)
        assert divergence <= alpha / (2 * z**2), (summands, big, alpha)


def test_the_trust_model_is_read_from_the_site_policy(tmp_path: Path) -> None:
    from client.ingest.errors import IngestError
    from client.ingest.policy import load_policy

    path = tmp_path / "policy.toml"
    path.write_text('[privacy]\ndistributed_noise_trust = "secure-aggregation"\n'
                    'max_colluding_centres = 2\n')
    floor = load_policy(path).privacy
    assert (floor.distributed_noise_trust, floor.max_colluding_centres) == (
        "secure-aggregation", 2)
    assert floor.honest_shares(9) == 7 and PrivacyFloor().honest_shares(9) is None
    for bad in ('distributed_noise_trust = "sometimes"', "max_colluding_centres = -1",
                "max_colluding_centres = 1.5"):
        path.write_text(f"[privacy]\n{bad}\n")
        with pytest.raises(IngestError):
            load_policy(path)
