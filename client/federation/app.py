"""The ClientApp: wiring only. The task is ``client.federation.centre_task``'s, for both the plain
Message-API handlers below and the SecAgg+ client (``client.federation.secure``)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

from client.federation.centre_task import Centre, evaluate_task, refuse, train_task
from client.federation.secure import is_secure_message, secure_app
from client.flower_compat import Mod
from client.privacy.releases import ReplyCache
from common import protocol, releases
from common.protocol import Task, TrainRelease


def _task(msg: Message, context: Context) -> Task:
    """The instruction's task; the run name is what the ledger books under: it outlives
    Flower's run id when a run is resumed."""
    config = msg.content.config_records.get(protocol.CONFIG, ConfigRecord())
    return protocol.task_of(config, default_run=str(context.run_id))


def _handle(kind: str, msg: Message, context: Context) -> Message:
    """Run the task ``kind`` (train or evaluate) and build its reply."""
    task = _task(msg, context)
    config = msg.content.config_records.get(protocol.CONFIG, ConfigRecord())
    audit = protocol.audit_request_of(config) if kind == "evaluate" and \
        protocol.is_audit(config) else None
    edges = protocol.edges_of(config) if kind == "evaluate" and audit is None else None
    if audit is not None:
        kind = protocol.PHASE_AUDIT
    # The audit's reply is kept under what it was asked at: the same request gets the
    # same reply (no cost); any other is refused by the centre's ledger. An evaluation's
    # under its bins too (issue 30), so that a reply is never read over other bins.
    version = task.model_version if audit is None else (
        f"{task.model_version}|{audit.threshold!r}|{audit.slope!r}|{audit.intercept!r}"
        f"|{audit.bands!r}")
    if edges is not None and edges.edges is not None:
        version = f"{version}|{config.get(protocol.EVALUATION_EDGES)!s}"
    centre: Centre | None = None
    try:
        centre = Centre.of(context.run_config, context.node_config, context.run_id)
        # Not fsynced on its own (Centre.received): reply_sent or task_refused, synced,
        # makes it durable before anything leaves.
        centre.received(task, kind, message_id=msg.metadata.message_id,
                        **protocol.ministry_head_of(config))
        folder = centre.state_dir
        cache = ReplyCache(folder) if folder is not None else None
        if cache is not None and (done := cache.get(kind, task.run_name, task.server_round,
                                                    version)):
            centre.audit("reply_sent", task, kind, resent=True, reply_digest=_digest(done))
            # The same release again (no cost), with the head that covers this line.
            done[protocol.RECORDS_HEAD] = ConfigRecord(centre.head())  # type: ignore[arg-type]
            return Message(content=done, reply_to=msg)
        record = msg.content.array_records[protocol.ARRAYS]
        centre.admit(sum(math.prod(array.shape) for array in record.values()))
        weights = record.to_torch_state_dict()
        if kind == "train":
            result = train_task(centre, task, weights)
            metrics = TrainRelease(result.num_examples, result.epsilon).as_metrics()
            content = RecordDict({protocol.ARRAYS: ArrayRecord(result.weights),
                                  protocol.METRICS: MetricRecord(metrics)})  # type: ignore[arg-type]
            extra = {"update_norm": result.update_norm,
                     "update_bound": centre.config.training.max_update_norm}
        else:
            release = evaluate_task(centre, task, weights, audit, edges)
            content = RecordDict({protocol.METRICS: MetricRecord(release)})  # type: ignore[arg-type]
            extra = {}
        content[protocol.CENTRE] = ConfigRecord({protocol.CENTRE_NAME: centre.name})
        content[protocol.RECORDS_HEAD] = ConfigRecord(centre.head())  # type: ignore[arg-type]
        # Nothing undeclared leaves: a key the release table lacks is a programming error.
        releases.check_reply("plain", kind, {name: list(record)
                                             for name, record in content.items()})
        # The record of the reply is chained BEFORE it leaves, with the reply's digest,
        # so the head the reply carries covers it: no line of the centre's log is left
        # outside an anchor the ministry holds (docs/PRIVACY.md, "Records").
        _sent(centre, task, kind, content, **extra)
        content[protocol.RECORDS_HEAD] = ConfigRecord(centre.head())  # type: ignore[arg-type]
    except Exception as exc:
        code, reason = refuse(centre, task, kind, exc)
        return Message(Error(code=code, reason=reason), reply_to=msg)
    if cache is not None:
        cache.put(kind, task.run_name, task.server_round, version, content)
    return Message(content=content, reply_to=msg)


def _digest(content: RecordDict) -> str:
    """SHA-256 of what a reply releases (its arrays' bytes and its metrics), the records
    head aside: the audit log's ``reply_sent`` line names the reply it stands for."""
    digest = hashlib.sha256()
    for name, record in sorted(content.array_records.items()):
        for key, array in record.items():
            digest.update(f"{name}/{key}/{array.dtype}/{list(array.shape)}".encode())
            digest.update(array.data)
    for name, metrics in sorted(content.metric_records.items()):
        digest.update(name.encode())
        digest.update(json.dumps(dict(metrics), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _sent(centre: Centre, task: Task, kind: str, content: RecordDict, **extra: object) -> None:
    """What the reply carries, in the centre's audit log (names and shapes, not values)."""
    arrays = {name: list(array.shape) for record in content.array_records.values()
              for name, array in record.items()}
    metrics = {key: value for record in content.metric_records.values()
               for key, value in record.items()}
    scalars = {k: v for k, v in metrics.items() if k in protocol.TRAIN_METRIC_KEYS}
    centre.audit("reply_sent", task, kind, arrays=arrays, metrics=sorted(metrics),
                 resent=False, reply_digest=_digest(content), **scalars, **extra)


def train(msg: Message, context: Context) -> Message:
    """Train the global model locally with DP-SGD and reply with the new weights."""
    if is_secure_message(msg):  # secure mode: Flower's SecAgg+ runs on the legacy path
        return secure_app(msg, context)
    return _handle("train", msg, context)


def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global model on the held-out records; reply with histograms."""
    if is_secure_message(msg):
        return secure_app(msg, context)
    return _handle("evaluate", msg, context)


def build_client_app(mods: Sequence[Mod] = ()) -> ClientApp:
    """The ClientApp, optionally with extra mods (tests capture what leaves a centre;
    simulations plant attackers). Deployment uses ``app`` below, without mods."""
    client_app = ClientApp(mods=list(mods))
    client_app.train()(train)
    client_app.evaluate()(evaluate)
    return client_app


app = build_client_app()
