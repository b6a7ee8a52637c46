"""The ClientApp: wiring only. The logic is in ``client.federated``."""

from __future__ import annotations

from collections.abc import Sequence

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.error import Error
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from client.data import DataError
from client.federated import (
    CentreRefusal,
    centre_data,
    evaluate_round,
    open_ledger,
    train_round,
)
from client.ledger import LedgerError
from common.config import ConfigError, RunConfig

ERROR_DATA = 1001  # the centre's data are unusable
ERROR_REFUSED = 1002  # the centre declines: privacy budget, too few records
ERROR_CONFIG = 1003  # the run's configuration is invalid


def _error_reply(msg: Message, code: int, reason: str) -> Message:
    return Message(Error(code=code, reason=reason), reply_to=msg)


def _steps_done(context: Context) -> int:
    record = context.state.config_records.get("privacy")
    return int(record["steps"]) if record is not None else 0  # type: ignore[arg-type]


def train(msg: Message, context: Context) -> Message:
    """Train the global model locally with DP-SGD and reply with the new weights."""
    try:
        config = RunConfig.from_flat(context.run_config)
        data = centre_data(config, dict(context.node_config))
        server_round = int(msg.content["config"].get("server-round", 0))  # type: ignore[arg-type]
        weights = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
        ledger = open_ledger(config, dict(context.node_config)) if config.privacy.dp else None
        result = train_round(config, data, weights, _steps_done(context), server_round,
                             ledger=ledger, run_id=str(context.run_id))
    except ConfigError as exc:
        return _error_reply(msg, ERROR_CONFIG, str(exc))
    except (DataError, LedgerError) as exc:
        return _error_reply(msg, ERROR_DATA, str(exc))
    except CentreRefusal as exc:
        return _error_reply(msg, ERROR_REFUSED, str(exc))
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
    return Message(content=content, reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global model on the held-out records; reply with histograms."""
    try:
        config = RunConfig.from_flat(context.run_config)
        data = centre_data(config, dict(context.node_config))
        weights = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
        server_round = int(msg.content["config"].get("server-round", 0))  # type: ignore[arg-type]
        node_config = dict(context.node_config)
        ledger = open_ledger(config, node_config) if config.privacy.dp else None
        metrics = evaluate_round(config, data, weights, server_round, ledger,
                                 str(context.run_id))
    except ConfigError as exc:
        return _error_reply(msg, ERROR_CONFIG, str(exc))
    except (DataError, LedgerError) as exc:
        return _error_reply(msg, ERROR_DATA, str(exc))
    except CentreRefusal as exc:
        return _error_reply(msg, ERROR_REFUSED, str(exc))
    content = RecordDict({"metrics": MetricRecord(metrics)})  # type: ignore[arg-type]
    return Message(content=content, reply_to=msg)


def build_client_app(mods: Sequence[Mod] = ()) -> ClientApp:
    """The ClientApp, optionally with extra mods (tests capture what leaves a centre;
    simulations plant attackers). Deployment uses ``app`` below, without mods."""
    client_app = ClientApp(mods=list(mods))
    client_app.train()(train)
    client_app.evaluate()(evaluate)
    return client_app


app = build_client_app()
