"""Update validation: each kind of bad update is rejected with its centre and a reason,
and the valid ones go on to aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.app.error import Error

from common.protocol import CENTRE as CENTRE_RECORD
from server.federation.validation import (
    ExpectedUpdate,
    check_evaluation,
    check_update,
    model_version,
    screen_updates,
)
from tests.server.messages import SHAPES, arrays, instruction, reply

VERSION = "r2-abc"
BOUND = 4.0


def _expected() -> ExpectedUpdate:
    return ExpectedUpdate.of(VERSION, arrays(0.0), BOUND)


def test_an_update_within_the_bound_is_accepted_with_its_norm() -> None:
    update = reply(instruction(VERSION, 7), arrays(0.5))  # 9 weights of 0.5: norm 1.5

    verdict = check_update(update, _expected())

    assert verdict.reason is None and verdict.node == 7
    assert verdict.norm == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        (arrays(0.1, {"w": (2, 3), "b": (3,)}), "shape"),
        (arrays(0.1, {"w": (3, 2)}), "are not the model's"),
        (ArrayRecord({"w": Array(np.full((3, 2), np.nan, np.float32)),
                      "b": Array(np.zeros(3, np.float32))}), "NaN or infinite"),
        (ArrayRecord({"w": Array(np.zeros((3, 2), np.float32)),
                      "b": Array(np.array([0, np.inf, 0], np.float32))}), "NaN or infinite"),
        (arrays(10.0), "beyond the bound 4 (x7.5)"),
        (ArrayRecord({k: Array(np.zeros(s, np.int64)) for k, s in SHAPES.items()}),
         "not floating-point"),
    ],
)
def test_malformed_or_oversized_updates_are_rejected_with_a_reason(
    weights: ArrayRecord, words: str
) -> None:
    verdict = check_update(reply(instruction(VERSION, 3), weights), _expected())

    assert verdict.reason is not None and words in verdict.reason
    assert verdict.node == 3


def test_an_update_trained_from_another_model_version_is_stale() -> None:
    old = reply(instruction("r1-old", 4), arrays(0.1))

    verdict = check_update(old, _expected())

    assert verdict.reason is not None and "stale" in verdict.reason and "r1-old" in verdict.reason


@pytest.mark.parametrize(
    "metrics",
    [{"num-examples": 10, "epsilon": 1.0, "train_loss": 0.4},  # an unnoised loss: refused
     {"num-examples": 10},
     {"num-examples": 10, "epsilon": math.nan},
     {"num-examples": 0, "epsilon": 1.0}],
)
def test_metrics_outside_the_protocol_are_rejected(metrics: dict[str, float]) -> None:
    verdict = check_update(reply(instruction(VERSION, 2), arrays(0.1), metrics), _expected())

    assert verdict.reason is not None


def test_a_reply_with_two_array_records_is_rejected() -> None:
    message = instruction(VERSION, 2)
    content = RecordDict({"a": arrays(0.1), "b": arrays(0.1),
                          "metrics": MetricRecord({"num-examples": 1, "epsilon": 0.0})})

    verdict = check_update(Message(content, reply_to=message), _expected())

    assert verdict.reason is not None and "2 array records" in verdict.reason


def test_screening_keeps_valid_updates_and_error_replies_and_drops_the_rest() -> None:
    good = reply(instruction(VERSION, 1), arrays(0.2))
    bad = reply(instruction(VERSION, 2), arrays(9.0))
    declined = Message(Error(code=1002, reason="budget"), reply_to=instruction(VERSION, 3))

    kept, verdicts = screen_updates([good, bad, declined], _expected())

    assert kept == [good, declined]
    assert [(v.node, v.reason is None) for v in verdicts] == [(1, True), (2, False)]


def test_the_model_version_names_the_round_and_changes_with_the_weights() -> None:
    assert model_version(3, arrays(0.0)).startswith("r3-")
    assert model_version(3, arrays(0.0)) == model_version(3, arrays(0.0))
    assert model_version(3, arrays(0.0)) != model_version(3, arrays(1.0))


def _evaluation(version: str, bins: int = 30, **changes: object) -> Message:
    from common.equity.audit import CELL_LENGTH, all_cell_keys

    metrics: dict[str, object] = {"num-examples": 50, "sq_err_sum": 4.2, "epsilon": 1.2,
                                  "hist_pos": [1.0] * bins, "hist_neg": [-0.5] * bins,
                                  "prob_sum": [0.3] * bins}
    metrics.update({key: [0.0] * CELL_LENGTH for key in all_cell_keys()})
    metrics.update(changes)
    message = instruction(version, 9)
    message.metadata.__dict__["_message_type"] = "evaluate"
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)  # type: ignore[arg-type]


def test_an_evaluation_of_the_protocol_is_accepted_even_with_negative_noisy_counts() -> None:
    assert check_evaluation(_evaluation(VERSION), VERSION, 30).reason is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"hist_pos": [1.0] * 29}, "29 values, not 30"), ({"prob_sum": [math.inf] * 30}, "NaN"),
     ({"sq_err_sum": [1.0, 2.0]}, "not a single number"), ({"extra": 1.0}, "add ['extra']")],
)
def test_a_malformed_evaluation_is_rejected_with_a_reason(changes, words) -> None:
    verdict = check_evaluation(_evaluation(VERSION, **changes), VERSION, 30)

    assert verdict.reason is not None and words in verdict.reason


def test_an_evaluation_of_another_model_version_is_stale() -> None:
    verdict = check_evaluation(_evaluation("r1-old"), VERSION, 30)

    assert verdict.reason is not None and "stale" in verdict.reason


def test_an_evaluation_may_carry_the_centre_name_and_nothing_else() -> None:
    from flwr.app import ConfigRecord

    named = _evaluation(VERSION)
    named.content[CENTRE_RECORD] = ConfigRecord({"name": "css-02"})
    assert check_evaluation(named, VERSION, 30).reason is None
    extra = _evaluation(VERSION)
    extra.content[CENTRE_RECORD] = ConfigRecord({"name": "css-02", "students": 12})
    other = _evaluation(VERSION)
    other.content["leak"] = ConfigRecord({"name": "css-02"})
    for message in (extra, other):
        reason = check_evaluation(message, VERSION, 30).reason
        assert reason is not None and "record" in reason


def test_a_reply_may_carry_its_records_head_and_nothing_beyond_its_keys() -> None:
    from flwr.app import ConfigRecord

    headed = _evaluation(VERSION)
    headed.content["records-head"] = ConfigRecord({"actor": "css-02", "audit_lines": 4})
    assert check_evaluation(headed, VERSION, 30).reason is None
    headed.content["records-head"] = ConfigRecord({"actor": "css-02", "students": 4})
    reason = check_evaluation(headed, VERSION, 30).reason
    assert reason is not None and "records-head" in reason
