"""The ClientApp: wiring only. The logic is in ``client.federated``."""

from __future__ import annotations

from collections.abc import Sequence

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.error import Error
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from client.audit_log import CentreAudit, centre_name
from client.data import DataError
from client.federated import (
    CentreRefusal,
    centre_data,
    declared_name,
    evaluate_round,
    open_ledger,
    state_dir,
    steps_booked,
    train_round,
)
from client.ledger import LedgerError
from client.releases import ReplyCache
from client.secure import is_secure_message, secure_app
from common.config import ConfigError, RunConfig
from common.equity import CENTRE_RECORD

ERROR_DATA = 1001  # the centre's data are unusable
ERROR_REFUSED = 1002  # the centre declines: privacy budget, too few records
ERROR_CONFIG = 1003  # the run's configuration is invalid


def _error_reply(msg: Message, code: int, reason: str, audit: CentreAudit | None) -> Message:
    if audit is not None:
        audit.refused(code, reason)
    return Message(Error(code=code, reason=reason), reply_to=msg)


def _steps_done(context: Context) -> int:
    record = context.state.config_records.get("privacy")
    return int(record["steps"]) if record is not None else 0  # type: ignore[arg-type]


def _task(msg: Message, context: Context) -> tuple[str, int, str]:
    """(logical run name, round, model version) of an instruction. The run name is what
    the ledger books under: it outlives Flower's run id when a run is resumed."""
    config = msg.content["config"]
    run_name = str(config.get("run-name", "") or context.run_id)
    server_round = int(config.get("server-round", 0))  # type: ignore[arg-type]
    return run_name, server_round, str(config.get("model-version", ""))


def _records(
    config: RunConfig, msg: Message, context: Context
) -> tuple[CentreAudit | None, ReplyCache | None]:
    """The centre's audit log and reply cache, in its state folder (none without one)."""
    folder = state_dir(config, dict(context.node_config))
    if folder is None:
        return None, None
    audit = CentreAudit(folder, centre_name(dict(context.node_config), folder), msg, context)
    audit.received(msg.metadata.message_id)
    return audit, ReplyCache(folder)


def train(msg: Message, context: Context) -> Message:
    """Train the global model locally with DP-SGD and reply with the new weights."""
    if is_secure_message(msg):  # secure mode: Flower's SecAgg+ runs on the legacy path
        return secure_app(msg, context)
    audit: CentreAudit | None = None
    try:
        config = RunConfig.from_flat(context.run_config)
        audit, cache = _records(config, msg, context)
        run_name, server_round, version = _task(msg, context)
        if cache is not None and (done := cache.get("train", run_name, server_round, version)):
            reply = Message(content=done, reply_to=msg)  # the same release again: no cost
            if audit is not None:
                audit.sent(reply, resent=True)
            return reply
        data = centre_data(config, dict(context.node_config))
        weights = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
        ledger = open_ledger(config, dict(context.node_config)) if config.privacy.dp else None
        steps = _steps_done(context)
        if ledger is not None:  # a resumed run: Flower's state is new, the ledger is not
            steps = max(steps, steps_booked(ledger, run_name, config, data))
        result = train_round(config, data, weights, steps, server_round,
                             ledger=ledger, run_id=run_name)
    except ConfigError as exc:
        return _error_reply(msg, ERROR_CONFIG, str(exc), audit)
    except (DataError, LedgerError) as exc:
        return _error_reply(msg, ERROR_DATA, str(exc), audit)
    except CentreRefusal as exc:
        return _error_reply(msg, ERROR_REFUSED, str(exc), audit)
    # The accountant's history: steps taken so far in this run at this centre.
    context.state.config_records["privacy"] = ConfigRecord({"steps": result.steps_total})
    metrics = MetricRecord(
        {
            "num-examples": result.num_examples,
            "epsilon": result.epsilon,
            "train_loss": result.train_loss,
        }
    )
    content = RecordDict({"arrays": ArrayRecord(result.weights), "metrics": metrics})
    if cache is not None:
        cache.put("train", run_name, server_round, version, content)
    reply = Message(content=content, reply_to=msg)
    if audit is not None:
        audit.sent(reply, update_norm=result.update_norm,
                   update_bound=config.training.max_update_norm)
    return reply


def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global model on the held-out records; reply with histograms."""
    if is_secure_message(msg):
        return secure_app(msg, context)
    audit: CentreAudit | None = None
    try:
        config = RunConfig.from_flat(context.run_config)
        audit, cache = _records(config, msg, context)
        run_name, server_round, version = _task(msg, context)
        if cache is not None and (done := cache.get("evaluate", run_name, server_round,
                                                    version)):
            reply = Message(content=done, reply_to=msg)
            if audit is not None:
                audit.sent(reply, resent=True)
            return reply
        data = centre_data(config, dict(context.node_config))
        weights = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
        node_config = dict(context.node_config)
        ledger = open_ledger(config, node_config) if config.privacy.dp else None
        metrics = evaluate_round(config, data, weights, server_round, ledger, run_name)
    except ConfigError as exc:
        return _error_reply(msg, ERROR_CONFIG, str(exc), audit)
    except (DataError, LedgerError) as exc:
        return _error_reply(msg, ERROR_DATA, str(exc), audit)
    except CentreRefusal as exc:
        return _error_reply(msg, ERROR_REFUSED, str(exc), audit)
    name = ConfigRecord({"name": declared_name(config, node_config)})
    content = RecordDict({"metrics": MetricRecord(metrics),  # type: ignore[arg-type]
                          CENTRE_RECORD: name})
    if cache is not None:
        cache.put("evaluate", run_name, server_round, version, content)
    reply = Message(content=content, reply_to=msg)
    if audit is not None:
        audit.sent(reply)
    return reply


def build_client_app(mods: Sequence[Mod] = ()) -> ClientApp:
    """The ClientApp, optionally with extra mods (tests capture what leaves a centre;
    simulations plant attackers). Deployment uses ``app`` below, without mods."""
    client_app = ClientApp(mods=list(mods))
    client_app.train()(train)
    client_app.evaluate()(evaluate)
    return client_app


app = build_client_app()
