"""FedAvg whose evaluation is POOLED over all centres' held-out students, and whose
training updates are validated before they are aggregated.

Centres reply to evaluation with score histograms by label (``client.privacy.evaluation``);
this strategy sums them and computes the metrics of the pooled scores, instead of
Flower's default weighted mean of per-centre metrics. Training metrics keep the
largest per-run epsilon over centres, not an average of them. Every training reply
goes through ``server.federation.validation`` first; rejected ones are logged and left out. The
accounting is the run's book (``server.federation.bookkeeping``), shared with secure mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from common import protocol
from common.metrics import ScoreHistogram
from common.protocol import AuditRequest, TrainRelease
from server.federation.bookkeeping import CentreRecord, RoundCallback, RoundLog, RunBook
from server.federation.validation import ExpectedUpdate, model_version, screen_updates
from server.federation.weights import bounded_weights


def _metrics(content: RecordDict) -> MetricRecord:
    return next(iter(content.metric_records.values()))


def _declared(content: RecordDict) -> MetricRecord:
    """A reply's metrics for its identity (none when it carries no metric record: its
    validation rejects it)."""
    return next(iter(content.metric_records.values()), MetricRecord())


def _configs(content: RecordDict) -> dict[str, dict[str, object]]:
    return {name: dict(record) for name, record in content.config_records.items()}


def aggregate_train_metrics(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Total released size, the largest per-run epsilon over centres, the number of
    centres (Flower's hook; the book keeps the same figures)."""
    releases = [TrainRelease.of(_metrics(r)) for r in records]
    return MetricRecord({weight_key: sum(r.num_examples for r in releases),
                         "epsilon_max": max(r.epsilon for r in releases),
                         "centres": len(releases)})


class PooledFedAvg(FedAvg):
    """FedAvg (weighted by released sizes) with update validation, a quorum, pooled
    evaluation and a per-round callback.

    The robust strategies (``server.federation.aggregation``) put this class before Flower's
    FedTrimmedAvg, FedMedian or (Multi)Krum in their bases: validation, the quorum and
    pooled evaluation stay here, and ``super().aggregate_train`` is theirs.

    Parameters
    ----------
    book : RunBook
        The run's accounting (``server.federation.bookkeeping``), shared with secure mode.
    on_round : RoundCallback | None
        Called with the round's log once its evaluation is aggregated.
    max_update_norm : float | None
        The centres' update bound (L2); None skips validation (unit tests only).
    min_updates : int
        Accepted updates needed to change the model; with fewer the round leaves the
        model unchanged.
    **kwargs
        Passed to the Flower strategy (fractions, minimum nodes, ``beta``, ...).
    """

    def __init__(
        self,
        book: RunBook,
        *,
        on_round: RoundCallback | None = None,
        max_update_norm: float | None = None,
        min_updates: int = 1,
        **kwargs: object,
    ) -> None:
        super().__init__(
            train_metrics_aggr_fn=aggregate_train_metrics,
            **kwargs,  # type: ignore[arg-type]
        )
        self.book = book
        self.on_round = on_round
        self.max_update_norm = max_update_norm
        self.min_updates = min_updates
        self.evaluated_version = ""
        self.expected: ExpectedUpdate | None = None

    @property
    def logs(self) -> dict[int, RoundLog]:
        return self.book.logs

    @logs.setter
    def logs(self, logs: dict[int, RoundLog]) -> None:
        self.book.logs = logs

    @property
    def centres(self) -> dict[int, CentreRecord]:
        return self.book.centres

    @centres.setter
    def centres(self, centres: dict[int, CentreRecord]) -> None:
        self.book.centres = centres

    def round_log(self, server_round: int) -> RoundLog:
        return self.book.round_log(server_round)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Flower's sampling, plus the model version on the config and on every message
        (replies inherit it), and what valid replies must look like."""
        version = model_version(server_round, arrays)
        config[protocol.MODEL_VERSION] = version
        config[protocol.SERVER_ROUND] = server_round
        self._ministry_head(config)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        for message in messages:
            message.metadata.group_id = version
        if self.max_update_norm is not None:
            self.expected = ExpectedUpdate.of(version, arrays, self.max_update_norm)
        self.round_log(server_round).model_version = version
        return messages

    def _ministry_head(self, config: ConfigRecord) -> None:
        """The ministry's audit head, for the centres to record (``common.protocol``)."""
        if self.book.audit is not None:
            config.update(self.book.audit.head())

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        version = model_version(server_round, arrays)
        config[protocol.MODEL_VERSION] = version
        config[protocol.SERVER_ROUND] = server_round
        self._ministry_head(config)
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        for message in messages:
            message.metadata.group_id = version
        self.evaluated_version = version
        return messages

    def _screen(self, server_round: int, replies: list[Message]) -> list[Message]:
        """Drop invalid updates, logging each with its centre and reason."""
        if self.expected is None:
            return replies
        kept, verdicts = screen_updates(replies, self.expected)
        entry = self.round_log(server_round)
        for verdict in verdicts:
            if self.book.audit is not None:
                self.book.audit.update(server_round, verdict.node, verdict.reason, verdict.norm)
            if verdict.reason is not None:
                entry.rejections.append(f"node {verdict.node}: {verdict.reason}")
                log(WARNING, "round %s: update of node %s rejected: %s", server_round,
                    verdict.node, verdict.reason)
        return kept

    def _bound_weights(self, server_round: int, accepted: list[Message]) -> None:
        """Replace each accepted reply's ``num-examples`` by its bounded weight
        (``server.federation.weights``): no centre outweighs the others by its word."""
        metrics = [_metrics(reply.content) for reply in accepted]
        reported = [float(m[protocol.NUM_EXAMPLES]) for m in metrics]  # type: ignore[arg-type]
        bounded = bounded_weights(reported, self.book.config.privacy.secagg_max_weight)
        for reply, record, before, weight in zip(accepted, metrics, reported, bounded,
                                                 strict=True):
            record[protocol.NUM_EXAMPLES] = weight
            if weight < before:
                log(WARNING, "round %s: the weight of node %s is bounded from %g to %s",
                    server_round, reply.metadata.src_node_id, before, weight)
                if self.book.audit is not None:
                    self.book.audit.event("weight_bounded", round=server_round,
                                          node=reply.metadata.src_node_id,
                                          reported=before, weight=weight)

    def _refusals(self, server_round: int, phase: str, replies: list[Message]) -> None:
        for reply in replies:
            if reply.has_error():
                self.book.refusal(server_round, phase, reply.metadata.src_node_id,
                                  reply.error.code, reply.error.reason or "")

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        # Named by the node that sent it: a reply declaring another centre is left out.
        replies = [reply for reply in replies if reply.has_error() or self.book.identify(
            server_round, "train", reply.metadata.src_node_id, _configs(reply.content),
            _declared(reply.content))]
        # In the centres' order, not their replies' arrival: the float sum of the updates
        # (Flower's aggregate_arrayrecords) then does not depend on who answered first,
        # and a reproducible run gives the same weights to the bit on one machine or a
        # cluster (tests/deploy/test_ray_cluster_containers.py).
        replies.sort(key=lambda reply: self.book.identities.of(reply.metadata.src_node_id))
        replies = self._screen(server_round, replies)
        accepted = [reply for reply in replies if not reply.has_error()]
        released = [(r.metadata.src_node_id, TrainRelease.of(_metrics(r.content)))
                    for r in accepted]
        self._bound_weights(server_round, accepted)
        arrays, metrics = super().aggregate_train(server_round, replies)
        if len(accepted) < self.min_updates:
            log(WARNING, "round %s: %s valid updates, fewer than the %s required: the model "
                "is left unchanged", server_round, len(accepted), self.min_updates)
            arrays = None
        self.book.trained(server_round, released, len(accepted) if arrays is not None else 0)
        self._refusals(server_round, "train", replies)
        return arrays, metrics

    def _screened(self, server_round: int, replies: list[Message]
                  ) -> list[tuple[int, dict[str, object]]]:
        """The evaluation replies that follow the protocol, by node (the others logged)."""
        releases: list[tuple[int, dict[str, object]]] = []
        for reply in replies:
            if reply.has_error():
                continue
            node, content = reply.metadata.src_node_id, reply.content
            if len(content.metric_records) != 1 or content.array_records:
                self.book.screen_evaluation(server_round, node, {}, {}, None, None)
                continue
            configs, metrics = _configs(content), _metrics(content)
            if self.book.screen_evaluation(server_round, node, metrics, configs,
                                           reply.metadata.group_id, self.evaluated_version) \
                    and self.book.identify(server_round, "evaluate", node, configs, metrics):
                releases.append((node, dict(metrics)))
        # In the centres' order, as the updates (aggregate_train): the pooled sums do not
        # depend on which centre answered first.
        return sorted(releases, key=lambda release: self.book.identities.of(release[0]))

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = list(replies)
        self._refusals(server_round, "evaluate", replies)
        pooled = self.book.evaluated(server_round, self._screened(server_round, replies))
        if self.on_round is not None:
            self.on_round(self.round_log(server_round))
        return MetricRecord(pooled) if pooled else None  # type: ignore[arg-type]

    def aggregate_audit(self, replies: Iterable[Message], request: AuditRequest,
                        histogram: ScoreHistogram) -> dict[str, object]:
        """The audit exchange's replies (after the final round) into the equity audit."""
        replies = list(replies)
        server_round = self.book.config.rounds
        self._refusals(server_round, protocol.PHASE_AUDIT, replies)
        releases = self._screened(server_round, replies)
        return self.book.audited(request, histogram, releases)
