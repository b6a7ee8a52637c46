"""Checkpoints hold the whole state of a run after a round and load back exactly, with
``torch.load(weights_only=True)``; an unreadable one is refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import RunConfig
from common.metrics import ScoreHistogram
from server.federation import checkpoint
from server.federation.aggregation import build_strategy
from server.federation.bookkeeping import CentreRecord, RoundLog
from server.federation.checkpoint import Checkpoint, ResumeError


def _strategy_with_history():  # type: ignore[no-untyped-def]
    strategy = build_strategy(RunConfig())
    strategy.logs[1] = RoundLog(
        1, train={"epsilon_max": 1.5}, evaluation={"auc": 0.8},
        equity={"groups": {"sex": {"F": {"auc": np.float64(0.79), "n": np.int64(40),
                                         "auc_ci": (np.float64(0.7), 0.9)}}}},
        rejections=["node 3: stale"], model_version="r1-abc", updates=2,
    )
    histogram = ScoreHistogram(np.ones(3), np.zeros(3), np.full(3, 0.5), 1.25)
    strategy.centres[7] = CentreRecord(7, 100, 20, 1.5, histogram)
    return strategy


def test_a_checkpoint_with_numpy_values_loads_back_with_weights_only(tmp_path) -> None:
    strategy = _strategy_with_history()
    logs, centres = checkpoint.book_state(strategy.book)
    saved = Checkpoint(1, "run-x", {"w": torch.ones(2, 3)}, RunConfig().to_flat(), logs,
                       centres, {"hist_pos": [1.0, 2.0]})

    checkpoint.save(tmp_path, saved)
    loaded = checkpoint.load(tmp_path)

    assert loaded is not None and loaded.round == 1 and loaded.run_name == "run-x"
    assert torch.equal(loaded.weights["w"], torch.ones(2, 3))
    fresh = build_strategy(RunConfig())
    checkpoint.restore_book(fresh.book, loaded)
    assert fresh.logs[1].rejections == ["node 3: stale"] and fresh.logs[1].updates == 2
    assert fresh.logs[1].equity["groups"]["sex"]["F"]["auc"] == pytest.approx(0.79)  # type: ignore[index]
    centre = fresh.centres[7]
    assert centre.histogram is not None and centre.histogram.squared_error_sum == 1.25
    assert centre.num_train == 100 and centre.epsilon == 1.5


def test_an_unreadable_checkpoint_is_refused_in_one_sentence(tmp_path) -> None:
    (tmp_path / checkpoint.CHECKPOINT).write_bytes(b"not a checkpoint")

    with pytest.raises(ResumeError) as info:
        checkpoint.load(tmp_path)

    message = str(info.value)
    assert message.endswith(".") and "\n" not in message and "cannot be read" in message


def test_no_checkpoint_means_nothing_to_resume(tmp_path) -> None:
    assert checkpoint.load(tmp_path) is None
