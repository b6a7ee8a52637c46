"""One federated round at the ministry, robust to centres that are missing or die.

Flower's ``Strategy.start`` runs every round from the first and waits for its minimum
of nodes forever. Here each round waits for ``min_centres`` connected centres with a
deadline (:func:`wait_for_centres`), samples among the centres connected at that
moment (:class:`GridView`, so that Flower's sampling never waits again), and
tells a centre's own reply from the SuperLink's notice that the centre is gone
(:func:`exchange`). A centre that sent nothing in time is left out of the round's
evaluation and asked again next round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid

from common import protocol
from common.i18n.catalogue import N_, Number
from common.privacy.accounting import evaluation_scheduled
from server.federation.audit_log import ServerAudit
from server.federation.bookkeeping import (
    CentresRefused,
    FederationStopped,
    audit_request,
    histogram_of,
)
from server.federation.strategy import PooledFedAvg
from server.flower_compat import SUPERLINK_NODE_ID, HttpGrid, Run

__all__ = ["CentresAbsent", "CentresRefused", "FederationStopped", "GridView", "run_audit",
           "run_round", "wait_for_centres"]

POLL_SECONDS = 2.0
#: Between two pulls of an exchange's replies (Flower's HttpGrid waits 3 s).
REPLY_POLL_SECONDS = 0.2


class CentresAbsent(FederationStopped):
    """Fewer than ``min_centres`` centres stayed connected for ``min_centres_wait`` s."""


def wait_for_centres(
    grid: Grid,
    minimum: int,
    timeout: float,
    *,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[int]:
    """Return the connected node ids once at least ``minimum`` are connected; raise
    :class:`CentresAbsent` after ``timeout`` seconds without them."""
    deadline = clock() + timeout
    waited = False
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= minimum:
            return nodes
        if clock() >= deadline:
            raise CentresAbsent(N_(
                "Only %(connected)s of the %(minimum)s centres needed (min_centres) were "
                "connected after waiting %(seconds)s s (min_centres_wait); the run stopped "
                "and can be resumed from its last checkpoint.",
                connected=len(nodes), minimum=minimum, seconds=Number(timeout, 0)))
        if not waited:
            log(WARNING, "Waiting up to %.0f s for %d centres (%d connected).", timeout, minimum,
                len(nodes))
            waited = True
        sleep(poll)


class GridView(Grid):
    """The run's grid, seen through a phase: its node list fixed to the centres chosen
    (``nodes``), and ``timeout`` the default wait of every exchange (Flower's legacy
    evaluation would otherwise wait forever for a dead centre)."""

    def __init__(self, grid: Grid, nodes: list[int] | None = None,
                 timeout: float | None = None) -> None:
        self.grid = grid
        self.nodes = None if nodes is None else list(nodes)
        self.timeout = timeout
        # Each error reply's sender (by the error's identity, the error kept alive):
        # Flower's SecAgg+ workflow hands its strategy the errors without their node.
        self._senders: dict[int, tuple[object, int]] = {}

    def sender(self, error: object) -> int | None:
        """The node that sent the error reply carrying ``error`` (None: not a centre's,
        or not received through this view)."""
        found = self._senders.get(id(error))
        return found[1] if found is not None and found[0] is error else None

    def _received(self, replies: Iterable[Message]) -> list[Message]:
        replies = list(replies)
        for reply in replies:
            if reply.has_error() and reply.metadata.src_node_id != SUPERLINK_NODE_ID:
                self._senders[id(reply.error)] = (reply.error, reply.metadata.src_node_id)
        return replies

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids() if self.nodes is None else list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        """Send, and wait up to ``timeout`` (None: the view's; None again: for all).
        Against the deployed SuperLink (Flower's ``HttpGrid``, which sleeps 3 s between
        pulls, paid by every phase of a deployed round), push, then pull every
        ``REPLY_POLL_SECONDS``; other grids (the simulation's) wait their own way."""
        wait = self.timeout if timeout is None else timeout
        if not isinstance(self.grid, HttpGrid):
            return self._received(self.grid.send_and_receive(messages, timeout=wait))
        pending = set(self.grid.push_messages(messages))
        end = None if wait is None else time.monotonic() + wait
        received: list[Message] = []
        while pending:
            replies = list(self.grid.pull_messages(pending))
            received.extend(replies)
            pending.difference_update(r.metadata.reply_to_message_id for r in replies)
            if not pending or (end is not None and time.monotonic() >= end):
                break
            time.sleep(REPLY_POLL_SECONDS if end is None else
                       max(0.0, min(REPLY_POLL_SECONDS, end - time.monotonic())))
        return self._received(received)


@dataclass
class PhaseOutcome:
    """The centres' own replies (content or their error) and who sent nothing."""

    replies: list[Message] = field(default_factory=list)
    absent: dict[int, str] = field(default_factory=dict)


def exchange(grid: Grid, messages: list[Message], timeout: float) -> PhaseOutcome:
    """Send, wait up to ``timeout`` seconds, and sort the replies by destination."""
    received = list(GridView(grid).send_and_receive(messages, timeout=timeout))
    # Message ids are set when the grid pushes the messages.
    destination = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
    outcome = PhaseOutcome()
    answered: set[int] = set()
    for reply in received:
        node = destination.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)
        answered.add(node)
        if reply.has_error() and reply.metadata.src_node_id != node:
            # Written by the SuperLink, not by the centre (e.g. its heartbeat stopped).
            outcome.absent[node] = reply.error.reason or "unavailable"
        else:
            outcome.replies.append(reply)
    for node in destination.values():
        if node not in answered:
            outcome.absent[node] = f"no reply within {timeout:.0f} s"
    return outcome


def _note_absent(strategy: PooledFedAvg, audit: ServerAudit, server_round: int, phase: str,
                 absent: dict[int, str]) -> None:
    entry = strategy.round_log(server_round)
    for node, reason in sorted(absent.items()):
        entry.absent.append(f"node {node} ({phase}): {reason}")
        audit.absent(server_round, phase, node, reason)
        log(WARNING, "round %s: centre %s sent no %s reply: %s", server_round, node, phase, reason)


def run_round(
    strategy: PooledFedAvg,
    grid: Grid,
    nodes: list[int],
    server_round: int,
    arrays: ArrayRecord,
    run_config: ConfigRecord,
    timeout: float,
    audit: ServerAudit,
    edges: tuple[float, ...] | None = None,
) -> tuple[ArrayRecord, MetricRecord | None]:
    """Train among ``nodes``, aggregate what is valid, evaluate the new model on the
    centres that are still there over the score bins of ``edges`` (placed from the last
    released pooled histogram, ``bookkeeping.next_edges``; None: the fixed bins).
    Returns the global model after the round (unchanged if too few valid updates came)
    and the pooled evaluation."""
    messages = list(strategy.configure_train(
        server_round, arrays, ConfigRecord(dict(run_config)), GridView(grid, nodes)
    ))
    version = strategy.logs[server_round].model_version
    audit.sent(server_round, "train", [m.metadata.dst_node_id for m in messages], version)
    trained = exchange(grid, messages, timeout)
    _note_absent(strategy, audit, server_round, "train", trained.absent)
    new_arrays, _ = strategy.aggregate_train(server_round, trained.replies)
    strategy.book.check_quorum(server_round, nodes)
    entry = strategy.logs[server_round]
    after = new_arrays if new_arrays is not None else arrays
    audit.event("round_aggregated", round=server_round, updates=entry.updates,
                model_changed=new_arrays is not None, rejected=len(entry.rejections))

    # Evaluate where a centre is connected and did not just fail to answer, at the
    # rounds the run's schedule evaluates (``evaluation.progress_every``).
    present = [n for n in sorted(grid.get_node_ids()) if n not in trained.absent]
    evaluated = PhaseOutcome()
    config = strategy.book.config
    if not evaluation_scheduled(server_round, config.rounds,
                                config.evaluation.progress_every):
        present = []
    if present:
        strategy.book.evaluation_edges = edges
        messages = list(strategy.configure_evaluate(
            server_round, after, ConfigRecord({**dict(run_config),
                                               **protocol.edges_config(edges)}),
            GridView(grid, present)
        ))
        audit.sent(server_round, "evaluate", [m.metadata.dst_node_id for m in messages],
                   messages[0].metadata.group_id if messages else "")
        evaluated = exchange(grid, messages, timeout)
        _note_absent(strategy, audit, server_round, "evaluate", evaluated.absent)
    metrics = strategy.aggregate_evaluate(server_round, evaluated.replies)
    return after, metrics


def run_audit(
    strategy: PooledFedAvg,
    grid: Grid,
    nodes: list[int],
    arrays: ArrayRecord,
    run_config: ConfigRecord,
    timeout: float,
    audit: ServerAudit,
    evaluation: dict[str, list[float]],
) -> dict[str, object]:
    """The equity audit's exchange after the final round, among ``nodes``: the final
    model again (same version), with the raw-score threshold that the Platt
    recalibration of the final pooled ``evaluation`` maps to ``evaluation.threshold``
    (``server.federation.bookkeeping.audit_request``). Returns the run's equity audit
    (empty when no centre released it)."""
    config = strategy.book.config
    histogram = histogram_of(evaluation)
    request, _ = audit_request(config.evaluation.threshold, histogram,
                               evaluation if config.evaluation.placement == "released"
                               else None)
    instruction = ConfigRecord({**dict(run_config), **request.as_config()})
    messages = list(strategy.configure_evaluate(config.rounds, arrays, instruction,
                                                GridView(grid, nodes)))
    audit.sent(config.rounds, protocol.PHASE_AUDIT, [m.metadata.dst_node_id for m in messages],
               messages[0].metadata.group_id if messages else "")
    outcome = exchange(grid, messages, timeout)
    _note_absent(strategy, audit, config.rounds, protocol.PHASE_AUDIT, outcome.absent)
    return strategy.aggregate_audit(outcome.replies, request, histogram)
