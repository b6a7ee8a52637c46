"""Weights and sums the ministry can trust (issue 27, point 3): one hostile centre
claiming 1e15 examples does not become the aggregate, and a secure sum with a NaN or
beyond the update bound is not applied."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import ConfigRecord

from common.config import RunConfig
from server.federation.aggregation import build_strategy
from server.federation.rounds import GridView
from server.federation.weights import (
    MAX_WEIGHT_SPREAD,
    bounded_weights,
    secure_weight_problem,
    sum_problem,
    weight_factor,
)
from tests.server.messages import SHAPES, arrays, reply

HONEST, HOSTILE = 1.0, -1.0


class _NoGrid:
    def get_node_ids(self) -> list[int]:
        return []


def _aggregate(updates: list[tuple[float, float]]) -> float:
    """Round 1 from a zero model: one reply per (update value, num-examples)."""
    strategy = build_strategy(RunConfig(min_centres=1))
    nodes = list(range(1, len(updates) + 1))
    messages = list(strategy.configure_train(1, arrays(0.0), ConfigRecord(),
                                             GridView(_NoGrid(), nodes)))
    by_node = {m.metadata.dst_node_id: m for m in messages}
    replies = [reply(by_node[node], arrays(value), {"num-examples": weight, "epsilon": 1.0})
               for node, (value, weight) in zip(nodes, updates, strict=True)]
    new, _ = strategy.aggregate_train(1, replies)
    assert new is not None
    values = np.concatenate([a.numpy().ravel() for a in new.values()])
    return float(values[0])


def test_a_centre_claiming_1e15_examples_moves_the_model_by_a_bounded_share() -> None:
    honest = [(HONEST, 100.0)] * 9

    moved = _aggregate([*honest, (HOSTILE, 1e15)])

    # Before: -1.0 (the hostile centre was the aggregate). Now it weighs at most
    # MAX_WEIGHT_SPREAD honest centres: (9 - 10) / 19.
    share = MAX_WEIGHT_SPREAD / (9 + MAX_WEIGHT_SPREAD)
    assert moved == pytest.approx(HONEST * (1 - share) + HOSTILE * share, abs=1e-6)
    assert moved > -0.1


def test_honest_weights_within_the_spread_are_kept() -> None:
    sizes = [150.0, 900.0, 3_500.0, 3_500.0, 5_000.0, 29_000.0]

    assert bounded_weights(sizes, 30_000) == [int(s) for s in sizes]


@pytest.mark.parametrize("reported", [1e15, math.inf, -5.0, math.nan])
def test_a_hostile_weight_is_bounded(reported: float) -> None:
    weights = bounded_weights([100.0] * 9 + [reported], 30_000)

    assert weights[:9] == [100] * 9 and 1 <= weights[9] <= MAX_WEIGHT_SPREAD * 100


def test_the_absolute_cap_holds_even_for_a_network_of_giants() -> None:
    assert bounded_weights([1e9] * 5, 30_000) == [30_000] * 5


SHAPE_LIST = list(SHAPES.values())


@pytest.mark.parametrize(("update", "problem"), [
    ([np.full(s, math.nan) for s in SHAPE_LIST], "NaN"),
    ([np.full(s, math.inf) for s in SHAPE_LIST], "NaN or infinite"),
    ([np.full(s, 100.0) for s in SHAPE_LIST], "beyond the update bound"),
    ([np.zeros((2, 2))], "arrays"),
])
def test_a_bad_secure_sum_is_named(update: list[np.ndarray], problem: str) -> None:
    found = sum_problem(update, SHAPE_LIST, 12.0)

    assert found is not None and problem in found


def test_an_honest_secure_sum_passes() -> None:
    assert sum_problem([np.full(s, 1.0) for s in SHAPE_LIST], SHAPE_LIST, 12.0) is None



LEVELS, CAP = 2**22, 30_000.0
DECLARED = {1: 900.0, 2: 4_000.0, 3: 29_999.0}
HONEST_FACTOR = sum(weight_factor(w, CAP, LEVELS) for w in DECLARED.values())


def test_honest_secure_weights_pass() -> None:
    assert secure_weight_problem(DECLARED, HONEST_FACTOR, LEVELS, CAP) is None
    assert secure_weight_problem(DECLARED, HONEST_FACTOR + 3, LEVELS, CAP) is None  # rounding


@pytest.mark.parametrize(("declared", "factor", "problem"), [
    ({**DECLARED, 3: 3e7}, HONEST_FACTOR, "node 3 declared a weight of 3e+07"),
    ({**DECLARED, 2: math.nan}, HONEST_FACTOR, "node 2 declared"),
    ({**DECLARED, 1: 0.0}, HONEST_FACTOR, "node 1 declared"),
    (DECLARED, None, "unknown"),
    (DECLARED, 3 * LEVELS + 4, "beyond 3 centres x the cap"),
    (DECLARED, HONEST_FACTOR + LEVELS // 2, "not the 34899 the centres declared"),
    (DECLARED, HONEST_FACTOR - 100, "not the"),
])
def test_a_hostile_secure_weight_is_named(declared: dict[int, float], factor: int | None,
                                          problem: str) -> None:
    found = secure_weight_problem(declared, factor, LEVELS, CAP)

    assert found is not None and problem in found, found
