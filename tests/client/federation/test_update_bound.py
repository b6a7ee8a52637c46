"""A centre bounds its update before it leaves, and keeps its last reply so that a
resumed run asking for the same round again gets the same release at no new cost."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from client.federation.rounds import bound_update
from client.privacy.releases import ReplyCache

GLOBAL = OrderedDict(w=torch.zeros(2), b=torch.ones(1))


def test_an_update_above_the_bound_is_scaled_down_to_it() -> None:
    weights = OrderedDict(w=torch.tensor([3.0, 4.0]), b=torch.tensor([1.0]))  # update norm 5

    bounded, norm = bound_update(weights, GLOBAL, 2.5)

    assert norm == pytest.approx(5.0)
    assert bounded["w"].tolist() == pytest.approx([1.5, 2.0]) and bounded["b"].tolist() == [1.0]


def test_an_update_within_the_bound_is_left_as_it_is() -> None:
    weights = OrderedDict(w=torch.tensor([0.3, 0.4]), b=torch.tensor([1.0]))

    bounded, norm = bound_update(weights, GLOBAL, 2.5)

    assert norm == pytest.approx(0.5) and torch.equal(bounded["w"], weights["w"])


def _content() -> RecordDict:
    return RecordDict({"arrays": ArrayRecord(OrderedDict(GLOBAL)),
                       "metrics": MetricRecord({"num-examples": 10, "epsilon": 1.5})})


def test_the_same_request_gets_the_kept_reply_and_any_other_gets_none(tmp_path) -> None:
    cache = ReplyCache(tmp_path)
    cache.put("train", "run-a", 2, "r2-abc", _content())

    again = cache.get("train", "run-a", 2, "r2-abc")

    assert again is not None and dict(again["metrics"]) == {"num-examples": 10, "epsilon": 1.5}
    assert torch.equal(again["arrays"].to_torch_state_dict()["b"], GLOBAL["b"])
    assert cache.get("train", "run-a", 2, "r2-other") is None  # another model
    assert cache.get("train", "run-b", 2, "r2-abc") is None  # another run
    assert cache.get("evaluate", "run-a", 2, "r2-abc") is None  # another kind
