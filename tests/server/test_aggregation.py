"""The aggregation modes: Flower's robust strategies behind our validation, quorum and
pooled evaluation, with known answers on a toy round."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedMedian, FedTrimmedAvg, Krum, MultiKrum

from common.config import RunConfig
from server.federation.aggregation import STRATEGIES, build_strategy
from server.federation.audit_log import AUDIT_FILE, ServerAudit
from server.federation.rounds import GridView
from server.federation.strategy import PooledFedAvg
from tests.server.messages import arrays, reply

HONEST, ATTACKER = 1.0, -1.0  # five honest updates of +1 per weight, one sign-flipped


def _round(strategy: PooledFedAvg, updates: list[float]) -> ArrayRecord | None:
    """Configure round 1 from a zero model, then aggregate one reply per update value."""
    nodes = list(range(1, len(updates) + 1))
    messages = list(strategy.configure_train(1, arrays(0.0), ConfigRecord(),
                                             GridView(_NoGrid(), nodes)))
    by_node = {m.metadata.dst_node_id: m for m in messages}
    replies = [reply(by_node[node], arrays(value)) for node, value in zip(nodes, updates,
                                                                          strict=True)]
    new_arrays, _ = strategy.aggregate_train(1, replies)
    return new_arrays


class _NoGrid:
    """Only the node list is read while configuring a round."""

    def get_node_ids(self) -> list[int]:
        return []


def _value(record: ArrayRecord | None) -> float:
    assert record is not None
    values = np.concatenate([a.numpy().ravel() for a in record.values()])
    assert np.allclose(values, values[0])
    return float(values[0])


@pytest.mark.parametrize(
    ("name", "flower_base"),
    [("trimmed-mean", FedTrimmedAvg), ("median", FedMedian), ("krum", Krum),
     ("multi-krum", MultiKrum)],
)
def test_each_robust_mode_is_flowers_strategy_behind_ours(name: str, flower_base: type) -> None:
    strategy = build_strategy(RunConfig.from_flat({"strategy.aggregation": name}))

    assert isinstance(strategy, PooledFedAvg) and isinstance(strategy, flower_base)
    assert type(strategy).__mro__.index(PooledFedAvg) < type(strategy).__mro__.index(flower_base)


def test_fedavg_is_pulled_by_a_sign_flipped_update() -> None:
    strategy = build_strategy(RunConfig(min_centres=1))

    assert _value(_round(strategy, [HONEST] * 5 + [ATTACKER])) == pytest.approx(4 / 6)


@pytest.mark.parametrize("name", ["trimmed-mean", "median", "krum", "multi-krum"])
def test_robust_modes_ignore_one_sign_flipped_update_in_six(name: str) -> None:
    config = RunConfig.from_flat({"strategy.aggregation": name, "min_centres": 1})

    assert _value(_round(build_strategy(config), [HONEST] * 5 + [ATTACKER])) == pytest.approx(1.0)


def test_rejected_updates_are_left_out_and_logged_with_centre_and_reason(tmp_path) -> None:
    config = RunConfig.from_flat({"training.max_update_norm": 5.0, "min_centres": 1})
    strategy = build_strategy(config, audit=ServerAudit(tmp_path))

    result = _round(strategy, [HONEST, HONEST, 10.0])  # norm sqrt(9) * 10 = 30 > 5

    assert _value(result) == pytest.approx(1.0)
    assert strategy.logs[1].rejections == [
        "node 3: its update norm 30 is beyond the bound 5 (x6.0)"
    ]
    events = (tmp_path / AUDIT_FILE).read_text()
    assert events.count('"update_accepted"') == 2 and events.count('"update_rejected"') == 1


def test_too_few_valid_updates_leave_the_model_unchanged() -> None:
    strategy = build_strategy(RunConfig(min_centres=3))

    assert _round(strategy, [HONEST, HONEST, np.nan]) is None
    assert strategy.logs[1].updates == 0 and len(strategy.logs[1].rejections) == 1


def test_every_mode_of_the_configuration_has_a_strategy() -> None:
    from common.config import AGGREGATIONS

    assert set(STRATEGIES) == set(AGGREGATIONS)
