"""A centre in secure mode (``privacy.secure_aggregation``): Flower's SecAgg+.

In Flower 1.42, SecAgg+ exists only on the legacy path: a ``NumPyClient`` behind
``secaggplus_mod``. The Message-API ClientApp (``client.app``) hands every legacy
message (SecAgg+ stages, legacy fit and evaluate instructions) to ``secure_app`` here,
so one Flower app serves both modes.

What leaves the centre in a training round is its UPDATE (new weights minus the global
weights it received), never its weights: ``client.federated.train_round`` has already
booked the round in the ledger, trained with DP-SGD and bounded the update's L2 norm to
``training.max_update_norm`` when ``fit`` returns; only then does ``secaggplus_mod``
weight, quantize and mask it. The ministry sets SecAgg+'s clipping range to that same
bound (``server.secure``): a coordinate is never larger than the vector's L2 norm and
the weight factor is at most 1 (the weight is capped at ``privacy.secagg_max_weight``
here), so SecAgg+'s clipping never cuts an honest update and the quantized integers
stay in range (no silent overflow).

Evaluation is not secure-aggregated (SecAgg+ covers training only): the release is the
same DP-noised histograms and equity counts as in plain mode, sent as one JSON string
because legacy metrics must be scalars.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.app.error import Error
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from client.audit_log import AUDIT_FILE, centre_name
from client.data import DataError
from client.federated import (
    CentreRefusal,
    centre_data,
    declared_name,
    evaluate_round,
    model_config,
    open_ledger,
    state_dir,
    steps_booked,
    train_round,
)
from client.ledger import LedgerError
from common.audit_trail import AuditTrail
from common.config import ConfigError, RunConfig
from common.equity import CENTRE_RECORD
from common.model import build_model

#: The one metric of a secure evaluation reply: the release, as JSON.
RELEASE_KEY = "release"
#: Config records only legacy messages carry: SecAgg+ stages, legacy fit and evaluate.
LEGACY_RECORDS = (RECORD_KEY_CONFIGS, "fitins.config", "evaluateins.config")

NDArrays = list[npt.NDArray[Any]]
Scalars = dict[str, Any]


def is_secure_message(msg: Message) -> bool:
    """Whether ``msg`` comes from the secure (legacy SecAgg+) path of the ServerApp;
    the Message-API path sends ``arrays`` and ``config`` records instead."""
    records = msg.content.config_records
    return any(key in records for key in LEGACY_RECORDS)


def _global_weights(parameters: NDArrays, config: RunConfig) -> OrderedDict[str, torch.Tensor]:
    """The global model's arrays, named in the model's ``state_dict`` order."""
    names = list(build_model(model_config(config), seed=config.seed).state_dict())
    if len(names) != len(parameters):
        raise DataError(f"The global model has {len(parameters)} arrays, this centre's model "
                        f"{len(names)}: the run's model configuration differs.")
    return OrderedDict((name, torch.from_numpy(np.array(array, copy=True)))
                       for name, array in zip(names, parameters, strict=True))


def _steps_done(context: Context) -> int:
    record = context.state.config_records.get("privacy")
    return int(record["steps"]) if record is not None else 0  # type: ignore[arg-type]


class SecureCentre(NumPyClient):
    """The centre's training and evaluation for the legacy path.

    Parameters
    ----------
    context : Context
        The node's Flower context (run configuration, node configuration, state).
    """

    def __init__(self, context: Context) -> None:
        self.node = context
        self.config = RunConfig.from_flat(context.run_config)
        self.node_config = dict(context.node_config)

    def _task(self, config: Scalars) -> tuple[str, int]:
        run_name = str(config.get("run-name", "") or self.node.run_id)
        return run_name, int(config.get("server-round", 0))

    def _audit(self, event: str, **fields: Any) -> None:
        folder = state_dir(self.config, self.node_config)
        if folder is not None:
            trail = AuditTrail(folder / AUDIT_FILE, centre_name(self.node_config, folder))
            trail.record(event, secure_aggregation=True, **fields)

    def fit(self, parameters: NDArrays, config: Scalars) -> tuple[NDArrays, int, Scalars]:
        """Train with DP-SGD and return the bounded update (state_dict order), the
        FedAvg weight (capped at ``privacy.secagg_max_weight``) and the metrics."""
        run_name, server_round = self._task(config)
        task = {"kind": "train", "run_name": run_name, "round": server_round,
                "model_version": str(config.get("model-version", ""))}
        self._audit("task_received", **task)
        data = centre_data(self.config, self.node_config)
        global_weights = _global_weights(parameters, self.config)
        ledger = open_ledger(self.config, self.node_config) if self.config.privacy.dp else None
        steps = _steps_done(self.node)
        if ledger is not None:  # a resumed run: Flower's state is new, the ledger is not
            steps = max(steps, steps_booked(ledger, run_name, self.config, data))
        # No reply cache here, unlike plain mode: the same update summed again with
        # other centres would let the ministry subtract sums. A repeated request is
        # new work, booked anew.
        result = train_round(self.config, data, global_weights, steps, server_round,
                             ledger=ledger, run_id=run_name)
        self.node.state.config_records["privacy"] = ConfigRecord({"steps": result.steps_total})
        update = [(result.weights[name].double() - weight.double()).numpy()
                  for name, weight in global_weights.items()]
        weight = min(result.num_examples, self.config.privacy.secagg_max_weight)
        self._audit("reply_sent", **task, masked=True, num_examples=weight,
                    epsilon=result.epsilon, update_norm=result.update_norm,
                    update_bound=self.config.training.max_update_norm)
        return update, weight, {"epsilon": result.epsilon, "train_loss": result.train_loss}

    def evaluate(self, parameters: NDArrays, config: Scalars) -> tuple[float, int, Scalars]:
        """The same evaluation release as plain mode, as one JSON metric."""
        run_name, server_round = self._task(config)
        self._audit("task_received", kind="evaluate", run_name=run_name, round=server_round)
        data = centre_data(self.config, self.node_config)
        global_weights = _global_weights(parameters, self.config)
        ledger = open_ledger(self.config, self.node_config) if self.config.privacy.dp else None
        release = evaluate_round(self.config, data, dict(global_weights), server_round,
                                 ledger, run_name)
        count = int(release["num-examples"])  # type: ignore[arg-type]
        self._audit("reply_sent", kind="evaluate", run_name=run_name, round=server_round,
                    metrics=sorted(release))
        # The loss is the Brier score of the noisy histogram: post-processing, no cost.
        loss = float(release["sq_err_sum"]) / max(count, 1)  # type: ignore[arg-type]
        return loss, count, {RELEASE_KEY: json.dumps(release),
                             CENTRE_RECORD: declared_name(self.config, self.node_config)}


def _client_fn(context: Context) -> Any:
    return SecureCentre(context).to_client()


def _refusals_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """A centre that cannot or will not take part answers with an error reply and the
    codes of the plain path; SecAgg+ counts it as dropped out."""
    from client import app as plain  # imported here: client.app imports this module

    try:
        return call_next(msg, context)
    except ConfigError as exc:
        code, reason = plain.ERROR_CONFIG, str(exc)
    except (DataError, LedgerError) as exc:
        code, reason = plain.ERROR_DATA, str(exc)
    except CentreRefusal as exc:
        code, reason = plain.ERROR_REFUSED, str(exc)
    try:
        folder = state_dir(RunConfig.from_flat(context.run_config), dict(context.node_config))
    except ConfigError:
        folder = None
    if folder is not None:
        AuditTrail(folder / AUDIT_FILE, centre_name(dict(context.node_config), folder)).record(
            "task_refused", code=code, reason=reason, secure_aggregation=True)
    return Message(Error(code=code, reason=reason), reply_to=msg)


def build_secure_app(outer_mods: Sequence[Mod] = (), inner_mods: Sequence[Mod] = ()) -> ClientApp:
    """The legacy ClientApp of secure mode. ``outer_mods`` see what the ministry sees
    (masked vectors); ``inner_mods`` run inside ``secaggplus_mod`` and see the update
    before it is masked (tests compare the two with what the ministry aggregates)."""
    mods = [*outer_mods, _refusals_mod, secaggplus_mod, *inner_mods]
    return ClientApp(client_fn=_client_fn, mods=mods)


secure_app = build_secure_app()

