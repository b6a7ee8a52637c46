"""A centre in secure mode (``privacy.secure_aggregation``): Flower's SecAgg+.

In Flower 1.42, SecAgg+ exists only on the legacy path: a ``NumPyClient`` behind
``secaggplus_mod``. The Message-API ClientApp (``client.federation.app``) hands every legacy
message (SecAgg+ stages, legacy fit and evaluate instructions) to ``secure_app`` here,
so one Flower app serves both modes.

What leaves the centre in a training round is its UPDATE (new weights minus the global
weights it received), never its weights: ``client.federation.rounds.train_round`` has already
booked the round in the ledger, trained with DP-SGD and bounded the update's L2 norm to
``training.max_update_norm`` when ``fit`` returns; only then does ``secaggplus_mod``
weight, quantize and mask it. The ministry sets SecAgg+'s clipping range to that same
bound (``server.federation.secure``): a coordinate is never larger than the vector's L2 norm and
the weight factor is at most 1 (the weight is capped at ``privacy.secagg_max_weight``
here), so SecAgg+'s clipping never cuts an honest update and the quantized integers
stay in range (no silent overflow).

Evaluation goes through SecAgg+ too: the ministry sends a second SecAgg+ round of fit
instructions marked ``secure.phase = evaluate`` (``common.privacy.secure_release``), and the
centre answers with its evaluation counts as one integer vector
(``client.privacy.secure_evaluation``), masked and summed like an update. The legacy evaluate
instruction is still answered (plain mode's release as one JSON string, because legacy
metrics must be scalars) for a ministry that asks for it that way.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from flwr.app import Context, Error, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp

from client.errors import DataError
from client.federation.centre_task import Centre, evaluate_task, refuse, train_task, update_of
from client.federation.rounds import evaluation_records, model_config, open_ledger
from client.flower_compat import RECORD_KEY_CONFIGS, RECORD_KEY_STATE, ClientAppCallable, Mod
from client.privacy.evaluation import check_evaluation_request
from client.privacy.secure_evaluation import SecureSlot, secure_release
from client.privacy.trust import SecAggSetup, check_setup, check_trust
from client.site_policy import SitePolicy
from common import protocol, releases
from common.config import RunConfig
from common.model import build_model, predict_proba, set_weights
from common.protocol import Task

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


def _elements(parameters: NDArrays) -> int:
    """Array elements an instruction carries (held to the centre's ``max_parameters``)."""
    return sum(int(np.asarray(array).size) for array in parameters)


class SecureCentre(NumPyClient):
    """The centre's training and evaluation for the legacy path (``client.federation.centre_task``).

    Parameters
    ----------
    context : Context
        The node's Flower context (run configuration, node configuration, state).
    """

    def __init__(self, context: Context) -> None:
        self.centre = Centre.of(context.run_config, context.node_config, context.run_id)
        self.context = context

    def _setup(self) -> SecAggSetup | None:
        """The settings of the SecAgg+ round in progress, as ``secaggplus_mod`` received
        them at the setup stage (None outside a SecAgg+ round)."""
        return SecAggSetup.of_state(self.context.state.config_records.get(RECORD_KEY_STATE))

    def _threshold(self) -> int | None:
        """The reconstruction threshold of the SecAgg+ round in progress (None before
        any): checked against the run's declared settings first (``_admit``)."""
        setup = self._setup()
        return setup.threshold if setup is not None and setup.threshold >= 2 else None

    def _admit(self, elements: int, regions: int = 0) -> SitePolicy:
        """The centre's floor and limits (``Centre.admit``), then the round's SecAgg+
        settings against the run's (``client.privacy.trust``): refused before anything
        is read or booked."""
        policy = self.centre.admit(elements, regions)
        check_setup(self.centre.config, self._setup())
        return policy

    def _task(self, config: Scalars) -> Task:
        return protocol.task_of(config, default_run=str(self.centre.flower_run_id))

    def _identity(self) -> Scalars:
        return {protocol.CENTRE: self.centre.name,
                **protocol.head_metrics(self.centre.head())}

    def fit(self, parameters: NDArrays, config: Scalars) -> tuple[NDArrays, int, Scalars]:
        """Train with DP-SGD and return the bounded update (state_dict order), the
        FedAvg weight (the released size, capped at ``privacy.secagg_max_weight``) and
        the metrics."""
        if config.get(protocol.SECURE_PHASE) == protocol.SECURE_EVALUATE:
            return self._secure_evaluation(parameters, config)
        task = self._task(config)
        # Not fsynced on its own (Centre.received): reply_sent or task_refused is.
        self.centre.received(task, "train", secure_aggregation=True,
                             **protocol.ministry_head_of(config))
        self._admit(_elements(parameters))
        global_weights = _global_weights(parameters, self.centre.config)
        # No reply cache here, unlike plain mode: the same update summed again with
        # other centres would let the ministry subtract sums. A repeated request is
        # new work, booked anew.
        result = train_task(self.centre, task, dict(global_weights))
        weight = min(result.num_examples, self.centre.config.privacy.secagg_max_weight)
        self.centre.audit("reply_sent", task, "train", secure_aggregation=True, masked=True,
                          num_examples=weight, epsilon=result.epsilon,
                          update_norm=result.update_norm,
                          update_bound=self.centre.config.training.max_update_norm)
        metrics = {protocol.EPSILON: result.epsilon, **self._identity()}
        releases.check_reply("secure", "train", {protocol.METRICS: metrics})
        return update_of(result, global_weights), weight, metrics

    def _secure_evaluation(self, parameters: NDArrays, config: Scalars
                           ) -> tuple[NDArrays, int, Scalars]:
        """The evaluation counts as one integer vector for SecAgg+ to sum, weight 1
        (``common.privacy.secure_release``: the ministry's average times the centres summed is
        the exact sum), with the epsilon booked and the noise added beside it."""
        task = self._task(config)
        audit = protocol.audit_request_of(config) if protocol.is_audit(config) else None
        kind = "evaluate" if audit is None else protocol.PHASE_AUDIT
        self.centre.received(task, kind, secure_aggregation=True,
                             **protocol.ministry_head_of(config))
        slot = SecureSlot(int(config.get(protocol.SECURE_REGIONS, 0)),
                          int(config.get(protocol.SECURE_REGION, -1)),
                          bool(config.get(protocol.SECURE_COUNTS, True)))
        policy = self._admit(_elements(parameters), slot.regions)
        run_config = self.centre.config
        # Its trust model against the round's threshold, before any record is read.
        check_trust(run_config, policy.privacy, self._threshold())
        model = build_model(model_config(run_config), seed=run_config.seed)
        set_weights(model, dict(_global_weights(parameters, run_config)))
        data = self.centre.data(task.run_name)
        ledger = open_ledger(run_config, self.centre.node_config) if run_config.privacy.dp \
            else None
        # No reply cache (as for training): a repeated audit is refused by the ledger.
        edges = None if audit is not None else protocol.edges_of(config)
        check_evaluation_request(run_config, task.server_round or run_config.rounds, audit,
                                 ledger, task.run_name, edges)
        share_of = self._threshold() if (run_config.privacy.distributed_noise and
                                         data.policy.privacy.allow_distributed_noise) else None
        data = evaluation_records(run_config, data, task.run_name, ledger, share_of)
        vector, metrics = secure_release(run_config, data, predict_proba(model, data.x_test),
                                         task.server_round or run_config.rounds, ledger,
                                         task.run_name, slot, self._threshold(), audit,
                                         None if edges is None else edges.edges)
        self.centre.audit("reply_sent", task, kind, secure_aggregation=True,
                          masked=True, **metrics)
        metrics = {**metrics, **self._identity()}
        releases.check_reply("secure", "evaluate", {protocol.METRICS: metrics})
        return [vector], 1, metrics

    def evaluate(self, parameters: NDArrays, config: Scalars) -> tuple[float, int, Scalars]:
        """The same evaluation release as plain mode, as one JSON metric."""
        task = self._task(config)
        self.centre.received(task, "evaluate", secure_aggregation=True,
                             **protocol.ministry_head_of(config))
        self.centre.admit(_elements(parameters))
        global_weights = _global_weights(parameters, self.centre.config)
        audit = protocol.audit_request_of(config) if protocol.is_audit(config) else None
        edges = None if audit is not None else protocol.edges_of(config)
        release = evaluate_task(self.centre, task, dict(global_weights), audit, edges)
        count = int(release[protocol.NUM_EXAMPLES])  # type: ignore[arg-type]
        self.centre.audit("reply_sent", task, "evaluate", secure_aggregation=True,
                          metrics=sorted(release))
        # The loss is the Brier score of the noisy histogram: post-processing, no cost.
        loss = float(release[protocol.SQ_ERR_SUM]) / max(count, 1)  # type: ignore[arg-type]
        metrics = {protocol.RELEASE: json.dumps(release), **self._identity()}
        releases.check_reply("plain", "evaluate" if audit is None else "audit",
                             {protocol.METRICS: list(release)})
        releases.check_reply("secure", "legacy-evaluate", {protocol.METRICS: metrics})
        return loss, count, metrics


def _client_fn(context: Context) -> Any:
    return SecureCentre(context).to_client()


def _refusals_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """A centre that cannot or will not take part answers with an error reply of the
    plain path's codes and fixed sentences; SecAgg+ counts it as dropped out."""
    try:
        return call_next(msg, context)
    except Exception as exc:
        try:
            centre: Centre | None = Centre.of(context.run_config, context.node_config,
                                              context.run_id)
        except Exception:
            centre = None
        records = msg.content.config_records
        legacy: Mapping[str, object] = next(
            (records[key] for key in LEGACY_RECORDS[1:] if key in records), {})
        task = protocol.task_of(legacy, default_run=str(context.run_id))
        code, reason = refuse(centre, task, msg.metadata.message_type, exc,
                              secure_aggregation=True)
    return Message(Error(code=code, reason=reason), reply_to=msg)


def build_secure_app(outer_mods: Sequence[Mod] = (), inner_mods: Sequence[Mod] = ()) -> ClientApp:
    """The legacy ClientApp of secure mode. ``outer_mods`` see what the ministry sees
    (masked vectors); ``inner_mods`` run inside ``secaggplus_mod`` and see the update
    before it is masked (tests compare the two with what the ministry aggregates)."""
    mods = [*outer_mods, _refusals_mod, secaggplus_mod, *inner_mods]
    return ClientApp(client_fn=_client_fn, mods=mods)


secure_app = build_secure_app()
