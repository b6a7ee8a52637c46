"""Absent centres: the bounded wait before a round, and telling a centre's own reply from
the SuperLink's notice that it is gone."""

from __future__ import annotations

import pytest
from flwr.app import Message
from flwr.app.error import Error
from flwr.common.constant import SUPERLINK_NODE_ID

from server.federation.rounds import CentresAbsent, exchange, wait_for_centres
from tests.server.messages import arrays, instruction, reply


class FakeGrid:
    """A grid whose connected nodes change as a fake clock advances."""

    def __init__(self, nodes_over_time: list[list[int]]) -> None:
        self.nodes_over_time = nodes_over_time
        self.now = 0.0
        self.replies: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return self.nodes_over_time[min(int(self.now), len(self.nodes_over_time) - 1)]

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def send_and_receive(self, messages: list[Message], *, timeout: float) -> list[Message]:
        return self.replies


def test_the_wait_returns_as_soon_as_enough_centres_are_connected() -> None:
    grid = FakeGrid([[1], [1], [1, 2], [1, 2, 3]])

    nodes = wait_for_centres(grid, 2, timeout=10, poll=1, clock=lambda: grid.now,  # type: ignore[arg-type]
                             sleep=grid.sleep)

    assert nodes == [1, 2] and grid.now == 2


def test_the_wait_stops_the_run_after_its_deadline_with_one_sentence() -> None:
    grid = FakeGrid([[1]])

    with pytest.raises(CentresAbsent) as info:
        wait_for_centres(grid, 3, timeout=5, poll=1, clock=lambda: grid.now,  # type: ignore[arg-type]
                         sleep=grid.sleep)

    message = str(info.value)
    assert grid.now == 5
    assert message.startswith("Only 1 of the 3 centres") and message.endswith(".")
    assert "\n" not in message


def test_a_superlink_notice_and_a_silence_count_as_absences_not_as_refusals() -> None:
    to_alive, to_dead, to_silent, to_declining = (instruction("r1-x", n) for n in (1, 2, 3, 4))
    alive = reply(to_alive, arrays(0.1))
    notice = Message(Error(code=5, reason="Node Unavailable"), reply_to=to_dead)
    notice.metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
    declined = Message(Error(code=1002, reason="budget"), reply_to=to_declining)
    grid = FakeGrid([[1, 2, 3, 4]])
    grid.replies = [alive, notice, declined]

    outcome = exchange(grid, [to_alive, to_dead, to_silent, to_declining], timeout=30)  # type: ignore[arg-type]

    assert outcome.replies == [alive, declined]
    assert outcome.absent == {2: "Node Unavailable", 3: "no reply within 30 s"}
