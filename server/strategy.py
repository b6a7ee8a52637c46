"""FedAvg whose evaluation is POOLED over all centres' held-out students, and whose
training updates are validated before they are aggregated.

Centres reply to evaluation with score histograms by label (``client.federated``);
this strategy sums them and computes the metrics of the pooled scores, instead of
Flower's default weighted mean of per-centre metrics. Training metrics keep the
largest cumulative epsilon over centres, not an average of them. Every training reply
goes through ``server.validation`` first; rejected ones are logged and left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import INFO, WARNING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from common.equity import (
    CENTRE_RECORD,
    MIN_CENTRES_PER_CELL,
    SIZE_BANDS,
    pooled_audit,
    size_band,
)
from common.metrics import ScoreHistogram, auc_from_histogram, summarise
from server.audit_log import ServerAudit
from server.register import CentreRegister
from server.validation import (
    ExpectedUpdate,
    check_evaluation,
    model_version,
    screen_updates,
)

HISTOGRAM_KEYS = ("hist_pos", "hist_neg", "prob_sum")


def _metric_record(record: RecordDict) -> MetricRecord:
    return next(iter(record.metric_records.values()))


def aggregate_train_metrics(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Total examples, the largest epsilon over centres, the mean training loss."""
    metrics = [_metric_record(r) for r in records]
    weights = np.array([float(m[weight_key]) for m in metrics])  # type: ignore[arg-type]
    losses = np.array([float(m["train_loss"]) for m in metrics])  # type: ignore[arg-type]
    return MetricRecord(
        {
            weight_key: int(weights.sum()),
            "epsilon_max": max(float(m["epsilon"]) for m in metrics),  # type: ignore[arg-type]
            "train_loss": float((weights * losses).sum() / max(weights.sum(), 1.0)),
            "centres": len(metrics),
        }
    )


def pooled_histogram(records: list[RecordDict]) -> ScoreHistogram:
    """Sum of the centres' score histograms."""
    total: ScoreHistogram | None = None
    for record in records:
        m = _metric_record(record)
        positives, negatives, probability_sum = (
            np.asarray(m[key], dtype=np.float64) for key in HISTOGRAM_KEYS
        )
        h = ScoreHistogram(
            positives, negatives, probability_sum, float(m["sq_err_sum"])  # type: ignore[arg-type]
        )
        total = h if total is None else total + h
    assert total is not None, "pooling needs at least one evaluation reply"
    return total


def aggregate_evaluation(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Pooled metrics (AUC, PR AUC, Brier, calibration) and the pooled histogram."""
    histogram = pooled_histogram(records)
    metrics: dict[str, int | float | list[float]] = {
        k: float(v) for k, v in summarise(histogram).items()
    }
    metrics[weight_key] = int(histogram.count)
    metrics["centres"] = len(records)
    for key, values in zip(
        HISTOGRAM_KEYS,
        (histogram.positives, histogram.negatives, histogram.probability_sum),
        strict=True,
    ):
        metrics[key] = values.tolist()
    return MetricRecord(metrics)  # type: ignore[arg-type]


@dataclass
class RoundLog:
    """What the strategy saw in a round, for progress and the run folder."""

    round: int
    train: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    equity: dict[str, object] = field(default_factory=dict)
    rejections: list[str] = field(default_factory=list)  # invalid updates: node and reason
    absent: list[str] = field(default_factory=list)  # no reply in time: node and phase
    model_version: str = ""  # the global model sent for training this round
    updates: int = 0  # updates aggregated into the new model (0: model unchanged)


@dataclass
class CentreRecord:
    """What the ministry knows of one centre (by node id): sizes, epsilon, and its last
    evaluation histogram (kept for size-band pooling, never reported alone)."""

    node: int
    num_train: int = 0
    num_test: int = 0
    epsilon: float = 0.0
    histogram: ScoreHistogram | None = None


RoundCallback = Callable[[RoundLog], None]


def _scalars(record: MetricRecord | None) -> dict[str, float]:
    if record is None:
        return {}
    return {k: float(v) for k, v in record.items() if isinstance(v, int | float)}


def _refusals(replies: list[Message]) -> list[str]:
    return [
        f"node {m.metadata.src_node_id}: {m.error.reason}" for m in replies if m.has_error()
    ]


def _equity_cells(record: MetricRecord) -> dict[str, list[float]]:
    return {
        key: [float(v) for v in value]  # type: ignore[union-attr]
        for key, value in record.items()
        if key.startswith("eq.")
    }


def _declared_name(content: RecordDict) -> str:
    """The name a centre gives itself in an evaluation reply ("" when it gives none)."""
    record = content.config_records.get(CENTRE_RECORD)
    return str(record.get("name", "")) if record is not None else ""


def participation(centres: list[CentreRecord]) -> dict[str, object]:
    """Per-centre sizes and epsilon, and pooled AUC by size band. A band is reported
    only when it holds at least ``MIN_CENTRES_PER_CELL`` centres (no centre, and no
    Indigenous-governed board, shown on its own)."""
    bands: dict[str, list[CentreRecord]] = {}
    rows = []
    for centre in sorted(centres, key=lambda c: c.node):
        band = size_band(centre.num_train + centre.num_test)
        bands.setdefault(band, []).append(centre)
        rows.append({"node": centre.node, "size_band": band, "num_train": centre.num_train,
                     "num_test": centre.num_test, "epsilon": centre.epsilon})
    auc_by_band: dict[str, float | None] = {}
    for name, _, _ in SIZE_BANDS:
        members = [c.histogram for c in bands.get(name, []) if c.histogram is not None]
        if len(members) >= MIN_CENTRES_PER_CELL:
            total = members[0]
            for h in members[1:]:
                total = total + h
            auc_by_band[name] = auc_from_histogram(total)
        else:
            auc_by_band[name] = None
    return {
        "centres": rows,
        "auc_by_size_band": auc_by_band,
        "centres_by_size_band": {name: len(bands.get(name, [])) for name, _, _ in SIZE_BANDS},
        "size_bands": {name: [low, high] for name, low, high in SIZE_BANDS},
    }


class PooledFedAvg(FedAvg):
    """FedAvg (weighted by examples) with update validation, a quorum, pooled
    evaluation and a per-round callback.

    The robust strategies (``server.aggregation``) put this class before Flower's
    FedTrimmedAvg, FedMedian or (Multi)Krum in their bases: validation, the quorum and
    pooled evaluation stay here, and ``super().aggregate_train`` is theirs.

    Parameters
    ----------
    threshold : float
        Operating threshold (probability 0-1) of the equity audit.
    on_round : RoundCallback | None
        Called with the round's log once its evaluation is aggregated.
    max_update_norm : float | None
        The centres' update bound (L2); None skips validation (unit tests only).
    min_updates : int
        Accepted updates needed to change the model; with fewer the round leaves the
        model unchanged.
    audit : ServerAudit | None
        The ministry's audit log.
    bins : int | None
        Score-histogram bins of evaluation replies; None skips their validation.
    **kwargs
        Passed to the Flower strategy (fractions, minimum nodes, ``beta``, ...).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.3,
        on_round: RoundCallback | None = None,
        max_update_norm: float | None = None,
        min_updates: int = 1,
        audit: ServerAudit | None = None,
        bins: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(
            train_metrics_aggr_fn=aggregate_train_metrics,
            evaluate_metrics_aggr_fn=aggregate_evaluation,
            **kwargs,  # type: ignore[arg-type]
        )
        self.threshold = threshold
        self.on_round = on_round
        self.max_update_norm = max_update_norm
        self.min_updates = min_updates
        self.audit = audit
        self.bins = bins
        self.evaluated_version = ""
        self.logs: dict[int, RoundLog] = {}
        self.centres: dict[int, CentreRecord] = {}
        self.expected: ExpectedUpdate | None = None
        # The ministry's centre register (``server.register``): the audit's region rows.
        self.register: CentreRegister | None = None
        # Std of the DP noise on each equity count a centre sends: in the audit's intervals.
        self.audit_noise = 0.0

    def _centre(self, node: int) -> CentreRecord:
        return self.centres.setdefault(node, CentreRecord(node))

    def round_log(self, server_round: int) -> RoundLog:
        return self.logs.setdefault(server_round, RoundLog(server_round))

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Flower's sampling, plus the model version on the config and on every message
        (replies inherit it), and what valid replies must look like."""
        version = model_version(server_round, arrays)
        config["model-version"] = version
        messages = list(super().configure_train(server_round, arrays, config, grid))
        for message in messages:
            message.metadata.group_id = version
        if self.max_update_norm is not None:
            self.expected = ExpectedUpdate.of(version, arrays, self.max_update_norm)
        self.round_log(server_round).model_version = version
        return messages

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        version = model_version(server_round, arrays)
        config["model-version"] = version
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        for message in messages:
            message.metadata.group_id = version
        self.evaluated_version = version
        return messages

    def _screen_evaluations(self, server_round: int, replies: list[Message]) -> list[Message]:
        """Drop malformed evaluation replies, logging each with its centre and reason."""
        if self.bins is None:
            return replies
        kept = []
        for reply in replies:
            verdict = (None if reply.has_error()
                       else check_evaluation(reply, self.evaluated_version, self.bins))
            if verdict is None or verdict.reason is None:
                kept.append(reply)
                continue
            reason = f"evaluation {verdict.reason}"
            self.round_log(server_round).rejections.append(f"node {verdict.node}: {reason}")
            log(WARNING, "round %s: evaluation of node %s rejected: %s", server_round,
                verdict.node, verdict.reason)
            if self.audit is not None:
                self.audit.event("evaluation_rejected", round=server_round, node=verdict.node,
                                 reason=verdict.reason)
        return kept

    def _screen(self, server_round: int, replies: list[Message]) -> list[Message]:
        """Drop invalid updates, logging each with its centre and reason."""
        if self.expected is None:
            return replies
        kept, verdicts = screen_updates(replies, self.expected)
        entry = self.round_log(server_round)
        for verdict in verdicts:
            if self.audit is not None:
                self.audit.update(server_round, verdict.node, verdict.reason, verdict.norm)
            if verdict.reason is not None:
                entry.rejections.append(f"node {verdict.node}: {verdict.reason}")
                log(WARNING, "round %s: update of node %s rejected: %s", server_round,
                    verdict.node, verdict.reason)
        return kept

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = self._screen(server_round, list(replies))
        accepted = [reply for reply in replies if not reply.has_error()]
        arrays, metrics = super().aggregate_train(server_round, replies)
        log_entry = self.round_log(server_round)
        if len(accepted) < self.min_updates:
            log(WARNING, "round %s: %s valid updates, fewer than the %s required: the model "
                "is left unchanged", server_round, len(accepted), self.min_updates)
            arrays = None
        log_entry.updates = len(accepted) if arrays is not None else 0
        log_entry.train = _scalars(metrics)
        log_entry.refusals += _refusals(replies)
        for reply in accepted:
            m = _metric_record(reply.content)
            centre = self._centre(reply.metadata.src_node_id)
            centre.num_train = int(m["num-examples"])  # type: ignore[arg-type]
            centre.epsilon = float(m["epsilon"])  # type: ignore[arg-type]
        for reply in replies:
            if reply.has_error():
                log(INFO, "round %s: a centre declined training: %s", server_round,
                    reply.error.reason)
                if self.audit is not None:
                    self.audit.refused(server_round, "train", reply.metadata.src_node_id,
                                       reply.error.reason or "")
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = self._screen_evaluations(server_round, list(replies))
        metrics = super().aggregate_evaluate(server_round, replies)
        log_entry = self.round_log(server_round)
        log_entry.evaluation = _scalars(metrics)
        log_entry.refusals += _refusals(replies)
        valid = [reply for reply in replies if not reply.has_error()]
        for reply in replies:
            if reply.has_error() and self.audit is not None:
                self.audit.refused(server_round, "evaluate", reply.metadata.src_node_id,
                                   reply.error.reason or "")
        for reply in valid:
            centre = self._centre(reply.metadata.src_node_id)
            centre.histogram = pooled_histogram([reply.content])
            centre.num_test = int(centre.histogram.count)
        if valid:
            placements = None if self.register is None else [
                self.register.place(reply.metadata.src_node_id, _declared_name(reply.content))
                for reply in valid]
            log_entry.equity = pooled_audit(
                [_equity_cells(_metric_record(reply.content)) for reply in valid],
                self.threshold,
                placements,
                self.audit_noise,
            )
        if self.on_round is not None:
            self.on_round(log_entry)
        return metrics
