"""A federation in one process: the real ServerApp logic (``server.federation.run``) and the
real ClientApp (with its mods), joined by a Grid that hands each message straight to
the ClientApp, one centre after the other.

No Ray, no SuperLink: about five times faster than the simulation engine for small
federations, which makes it the tool for experiments that need many runs (poisoning
comparisons) and for tests that stop a run and resume it. Centres can be made absent
(:meth:`DirectGrid.disconnect`, :meth:`DirectGrid.silence`) to test the ministry's
waits.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from flwr.app import Context, Error, Message, RecordDict
from flwr.serverapp import Grid

from common.config import RunConfig
from server.federation.run import run_federation
from simulations.flower_compat import SUPERLINK_NODE_ID, ErrorCode, Run, TaskIdentity

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp

FIRST_NODE_ID = 1001  # node ids the simulation engine would not confuse with the SuperLink's


class DirectGrid(Grid):
    """Delivers every message to ``client_app`` in this process and keeps the reply.

    Parameters
    ----------
    client_app : ClientApp
        The centres' app (``client.federation.app.build_client_app(mods)``).
    num_centres : int
        Centre ``i`` gets ``partition-id`` ``i`` in its node config, as in simulation.
    run_config : dict
        Flat run configuration both sides see.
    run_id : int
        Flower's run id (a resumed run is a new one).
    """

    def __init__(self, client_app: ClientApp, num_centres: int,
                 run_config: dict[str, object], run_id: int = 1) -> None:
        self.client_app = client_app
        self._run = Run.create_empty(run_id)
        # Messages take their run and sender from the process's task identity.
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        self.contexts = {
            FIRST_NODE_ID + i: Context(
                run_id=run_id, node_id=FIRST_NODE_ID + i,
                node_config={"partition-id": i, "num-partitions": num_centres},
                state=RecordDict(), run_config=dict(run_config),  # type: ignore[arg-type]
            )
            for i in range(num_centres)
        }
        self.disconnected: set[int] = set()
        self.silent: set[int] = set()
        self.replies: dict[str, Message] = {}

    def disconnect(self, partition: int) -> None:
        """Centre number ``partition`` disappears: not listed, never answers."""
        self.disconnected.add(FIRST_NODE_ID + partition)

    def silence(self, partition: int) -> None:
        """Centre number ``partition`` dies unnoticed: still listed (as a SuperNode is
        until its heartbeat times out), never answers."""
        self.silent.add(FIRST_NODE_ID + partition)

    def reconnect(self, partition: int) -> None:
        self.disconnected.discard(FIRST_NODE_ID + partition)
        self.silent.discard(FIRST_NODE_ID + partition)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return [node for node in self.contexts if node not in self.disconnected]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = uuid.uuid4().hex
            metadata = message.metadata.__dict__
            metadata["_message_id"] = message_id
            metadata["_run_id"] = self._run.run_id
            metadata["_src_node_id"] = SUPERLINK_NODE_ID
            ids.append(message_id)
            node = message.metadata.dst_node_id
            if node in self.disconnected or node in self.silent:
                continue
            # Each centre gets its own copy, as over the network.
            reply = self._deliver(copy.deepcopy(message), self.contexts[node])
            reply.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            self.replies[message_id] = reply
        return ids

    def _deliver(self, message: Message, context: Context) -> Message:
        try:
            return self.client_app(message, context)
        except Exception as exc:  # a crashing ClientApp answers with an error, as in Flower
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=str(exc)),
                           reply_to=message)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self.replies.pop(i) for i in message_ids if i in self.replies]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(list(self.push_messages(messages)))


def run_direct(
    config: RunConfig, num_centres: int, client_app: ClientApp | None = None, run_id: int = 1
) -> Path:
    """Run ``server.federation.run.run_federation`` over ``num_centres`` in-process centres;
    returns the run folder."""
    if client_app is None:
        from client.federation.app import app as default_app

        client_app = default_app
    grid = DirectGrid(client_app, num_centres, dict(config.to_flat()), run_id)
    return run_federation(grid, config)
