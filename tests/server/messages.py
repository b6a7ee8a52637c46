"""Training instructions and replies as the grid would carry them, for strategy tests."""

from __future__ import annotations

import uuid

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.supercore.task_identity import TaskIdentity

TaskIdentity.task_id = 1
TaskIdentity.run_id = 1
TaskIdentity.node_id = SUPERLINK_NODE_ID

SHAPES = {"w": (3, 2), "b": (3,)}


def arrays(value: float = 0.0, shapes: dict[str, tuple[int, ...]] | None = None) -> ArrayRecord:
    return ArrayRecord({k: Array(np.full(s, value, dtype=np.float32))
                        for k, s in (shapes or SHAPES).items()})


def instruction(version: str, node: int, global_arrays: ArrayRecord | None = None) -> Message:
    """A training instruction to ``node``, as pushed (it has a message id)."""
    content = RecordDict({"arrays": global_arrays or arrays()})
    message = Message(content, node, "train", group_id=version)
    message.metadata.__dict__["_message_id"] = uuid.uuid4().hex
    return message


def reply(
    to: Message,
    weights: ArrayRecord,
    metrics: dict[str, float] | None = None,
) -> Message:
    """A centre's reply carrying ``weights`` and the protocol's training metrics."""
    values = {"num-examples": 100, "epsilon": 1.0} if metrics is None \
        else metrics
    content = RecordDict({"arrays": weights, "metrics": MetricRecord(values)})  # type: ignore[arg-type]
    return Message(content, reply_to=to)
