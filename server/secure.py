"""The ministry's side in secure mode (``privacy.secure_aggregation``): Flower's SecAgg+.

In Flower 1.42, SecAgg+ runs only on the legacy path: ``LegacyContext`` and
``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` with a legacy strategy. The
centres answer through ``client.secure``. Each round the ministry learns the weighted
SUM of the updates of the centres that sent their masked vectors, and nothing of any
one centre's update, as long as fewer than the reconstruction threshold of a centre's
neighbours collude with it. Centres that drop out mid-round (up to ``shares -
threshold`` of any centre's neighbours) are unmasked away and the round goes on; with
more, SecAgg+ halts and the round leaves the model unchanged.

Choices (see docs/PRIVACY.md, "Secure aggregation"):
- centres send updates, not weights, and SecAgg+'s clipping range is the centres'
  update bound ``training.max_update_norm``: no coordinate of a bounded update exceeds
  it, so clipping never changes an honest update and quantization stays in range;
- ``max_weight`` is ``privacy.secagg_max_weight``; centres cap their (noisy) weight at
  it, so the weighting factor never exceeds 1 and nothing overflows;
- quantization keeps Flower's 2**22 levels in a 2**32 modulus: sums of up to 1,024
  centres fit, with a step of 2 * bound / 2**22 per weighted coordinate.

Evaluation keeps the Message-API path's semantics: pooled metrics from the sum of the
centres' noisy histograms, the pooled equity audit, the largest epsilon over centres.
The run folder is the one ``server.federation`` writes, plus ``secure_aggregation``.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from logging import INFO, WARNING
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.logger import log
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from client.secure import RELEASE_KEY
from common.config import RunConfig
from common.equity import CENTRE_RECORD, pooled_audit
from common.privacy import audit_noise_std
from server import checkpoint, run_folder
from server.audit_log import ServerAudit
from server.checkpoint import Checkpoint
from server.federation import open_run, round_record, write_outputs
from server.progress import print_round
from server.register import CentreRegister, register_of
from server.rounds import FederationStopped, wait_for_centres
from server.strategy import (
    HISTOGRAM_KEYS,
    CentreRecord,
    RoundLog,
    aggregate_evaluation,
    aggregate_train_metrics,
    pooled_histogram,
)
from server.validation import model_version

if TYPE_CHECKING:
    from server.strategy import PooledFedAvg

Weights = OrderedDict[str, torch.Tensor]
#: Flower seeds each SecAgg+ mask with 32 bits: with 4 centres or more, at least 3
#: survive any tolerated dropout and each update hides behind 64 bits of masks or more.
MIN_CENTRES_ADVISED = 4


def _scalars(values: MetricRecord | dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def _reasons(failures: Iterable[BaseException | tuple[ClientProxy, Any]]) -> list[str]:
    """One line per failed reply. SecAgg+'s masked-vector stage lists each error reply
    twice (Flower 1.42), hence the de-duplication on the error object."""
    seen: set[int] = set()
    reasons = []
    for failure in failures:
        if isinstance(failure, tuple):
            reasons.append(f"node {failure[0].node_id}: {failure[1].status.message}")
            continue
        error = failure.args[0] if failure.args else failure
        if id(error) not in seen:
            seen.add(id(error))
            reasons.append(str(getattr(error, "reason", None) or error))
    return reasons


def decode_release(metrics: dict[str, Scalar]) -> RecordDict | None:
    """A centre's evaluation release (``client.secure``) as the record the Message-API
    path would have received, or None when it is not one."""
    try:
        release = json.loads(str(metrics[RELEASE_KEY]))
        record = MetricRecord(release)
    except (KeyError, TypeError, ValueError):
        return None
    if not all(key in record for key in (*HISTOGRAM_KEYS, "sq_err_sum", "num-examples")):
        return None
    return RecordDict({"metrics": record})


class SecureFedAvg(FedAvg):
    """Flower's legacy FedAvg for SecAgg+: adds the securely averaged update to the
    global model, and keeps the same accounting as ``server.strategy.PooledFedAvg``
    (``logs``, ``centres``) so that the run folder is written the same way.

    Parameters
    ----------
    config : RunConfig
        The run's configuration.
    state : Checkpoint
        Where the run starts (round 0, or the checkpoint of a resumed run).
    grid : Grid
        The run's grid (to wait for ``min_centres`` with a deadline).
    on_round : Callable[[RoundLog], None]
        Called at the end of every round, after its evaluation.
    audit : ServerAudit
        The ministry's audit log.
    """

    def __init__(self, config: RunConfig, state: Checkpoint, grid: Grid,
                 on_round: Callable[[RoundLog], None], audit: ServerAudit) -> None:
        self.weights: Weights = OrderedDict(
            (k, v.detach().clone()) for k, v in state.weights.items())
        super().__init__(
            fraction_fit=config.fraction_train,
            fraction_evaluate=1.0,
            min_fit_clients=config.min_centres,
            min_evaluate_clients=config.min_centres,
            min_available_clients=config.min_centres,
            initial_parameters=ndarrays_to_parameters(
                [v.numpy() for v in self.weights.values()]),
            accept_failures=True,
        )
        self.config = config
        self.run_name = state.run_name
        self.offset = state.round  # legacy rounds restart at 1 in a resumed run
        self.grid = grid
        self.on_round = on_round
        self.audit = audit
        self.register: CentreRegister | None = None  # the audit's region rows
        self.logs: dict[int, RoundLog] = {}
        self.centres: dict[int, CentreRecord] = {}
        self.sampled: dict[int, list[int]] = {}
        self.last_evaluation: dict[str, list[float]] = dict(state.last_evaluation)

    def round_log(self, server_round: int) -> RoundLog:
        return self.logs.setdefault(server_round, RoundLog(server_round))

    def _centre(self, node: int) -> CentreRecord:
        return self.centres.setdefault(node, CentreRecord(node))

    def _instructions(self, server_round: int, phase: str) -> dict[str, Scalar]:
        """Waits (with a deadline) for ``min_centres`` and names the task for the
        centres' ledgers and audit logs."""
        wait_for_centres(self.grid, self.config.min_centres, self.config.min_centres_wait)
        version = model_version(server_round, ArrayRecord(OrderedDict(self.weights)))
        if phase == "train":
            self.round_log(server_round).model_version = version
        return {"run-name": self.run_name, "server-round": server_round,
                "model-version": version}

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        server_round += self.offset
        config = self._instructions(server_round, "train")
        instructions = super().configure_fit(server_round, parameters, client_manager)
        for _, fit_ins in instructions:
            fit_ins.config = dict(config)
        self.sampled[server_round] = sorted(proxy.node_id for proxy, _ in instructions)
        if len(instructions) < MIN_CENTRES_ADVISED:
            log(WARNING, "round %s: %s centres in secure aggregation; with fewer than %s, "
                "one dropout leaves updates behind 32-bit masks (see docs/PRIVACY.md)",
                server_round, len(instructions), MIN_CENTRES_ADVISED)
        self.audit.sent(server_round, "train", self.sampled[server_round],
                        str(config["model-version"]))
        return instructions

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager) -> list[tuple[ClientProxy, EvaluateIns]]:
        server_round += self.offset
        config = self._instructions(server_round, "evaluate")
        instructions = super().configure_evaluate(server_round, parameters, client_manager)
        for _, evaluate_ins in instructions:
            evaluate_ins.config = dict(config)
        return instructions

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Every result carries the same array: SecAgg+'s weighted average of the
        updates of the centres that sent masked vectors. Add it to the global model."""
        server_round += self.offset
        entry = self.round_log(server_round)
        entry.refusals += _reasons(failures)
        contributed = {proxy.node_id for proxy, _ in results}
        for node in self.sampled.get(server_round, []):
            if node not in contributed:
                entry.absent.append(f"node {node} (train): left the secure aggregation")
                self.audit.absent(server_round, "train", node, "left the secure aggregation")
        if not results:
            return None, {}
        update = parameters_to_ndarrays(results[0][1].parameters)
        self.weights = OrderedDict(
            (name, (weight.double() + torch.from_numpy(np.asarray(delta))).to(weight.dtype))
            for (name, weight), delta in zip(self.weights.items(), update, strict=True))
        records = [RecordDict({"metrics": MetricRecord({
            "num-examples": res.num_examples, "epsilon": float(res.metrics["epsilon"]),
            "train_loss": float(res.metrics["train_loss"])})}) for _, res in results]
        metrics = aggregate_train_metrics(records, "num-examples")
        entry.train = _scalars(metrics)
        entry.updates = len(results)
        for proxy, res in results:
            centre = self._centre(proxy.node_id)
            centre.num_train = res.num_examples
            centre.epsilon = float(res.metrics["epsilon"])
        self.audit.event("round_aggregated", round=server_round, updates=len(results),
                         model_changed=True, secure_aggregation=True)
        return ndarrays_to_parameters([v.numpy() for v in self.weights.values()]), dict(
            entry.train)

    def aggregate_evaluate(
        self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Pooled evaluation from the centres' noisy releases; ends the round."""
        server_round += self.offset
        entry = self.round_log(server_round)
        if server_round not in self.sampled or not entry.train:
            log(WARNING, "round %s: secure aggregation did not complete: the model is left "
                "unchanged", server_round)
            entry.updates = 0
        entry.refusals += _reasons(failures)
        releases: list[tuple[int, RecordDict]] = []
        names: list[str] = []
        for proxy, res in results:
            record = decode_release(res.metrics)
            if record is None:
                entry.refusals.append(f"node {proxy.node_id}: malformed evaluation release")
                continue
            releases.append((proxy.node_id, record))
            names.append(str(res.metrics.get(CENTRE_RECORD, "")))
        metrics: dict[str, Scalar] = {}
        loss: float | None = None
        if releases:
            pooled = aggregate_evaluation([record for _, record in releases], "num-examples")
            entry.evaluation = _scalars(pooled)
            metrics = dict(entry.evaluation)
            loss = entry.evaluation.get("brier")
            self.last_evaluation = {key: [float(v) for v in cast(list[float], pooled[key])]
                                    for key in HISTOGRAM_KEYS}
            cells: list[Mapping[str, list[float]]] = [
                {key: [float(v) for v in cast(list[float], value)]
                 for key, value in next(iter(record.metric_records.values())).items()
                 if key.startswith("eq.")}
                for _, record in releases]
            placements = None if self.register is None else [
                self.register.place(node, name)
                for (node, _), name in zip(releases, names, strict=True)]
            entry.equity = pooled_audit(cells, self.config.evaluation.threshold, placements,
                                        audit_noise_std(self.config))
            for node, record in releases:
                centre = self._centre(node)
                centre.histogram = pooled_histogram([record])
                # A noisy count of a small centre can fall below zero.
                centre.num_test = max(0, round(centre.histogram.count))
        self.on_round(entry)
        return loss, metrics


class _Deadline(Grid):
    """The run's grid, with ``round_timeout`` as the default wait of every exchange
    (Flower's legacy evaluation would otherwise wait forever for a dead centre)."""

    def __init__(self, grid: Grid, timeout: float) -> None:
        self.grid = grid
        self.timeout = timeout

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self.grid.send_and_receive(
            messages, timeout=self.timeout if timeout is None else timeout)


def secagg_workflow(config: RunConfig) -> SecAggPlusWorkflow:
    """SecAgg+ with the project's choices (module docstring)."""
    return SecAggPlusWorkflow(
        num_shares=config.privacy.secagg_shares,
        reconstruction_threshold=config.privacy.secagg_threshold,
        max_weight=float(config.privacy.secagg_max_weight),
        clipping_range=config.training.max_update_norm,
        timeout=config.round_timeout,
    )


def run_secure_federation(grid: Grid, config: RunConfig) -> Path:
    """Train the remaining rounds of the run with SecAgg+, checkpointing after each,
    and write the run folder (as ``server.federation.run_federation`` does, plus
    ``secure_aggregation``). Returns the run folder; a stop is re-raised as
    :class:`FederationStopped` or :class:`ResumeError` after ``summary.json`` says so."""
    started = time.monotonic()
    register = register_of(config.evaluation.centre_register)  # before anything is written
    run_dir = run_folder.resolve_run_dir(config)
    audit = ServerAudit(run_dir)
    run_folder.update_summary(run_dir, secure_aggregation=True)
    state, resumed = open_run(run_dir, config, audit)

    def on_round(entry: RoundLog) -> None:
        run_folder.append_round(run_dir, round_record(entry))
        print_round(entry, config.rounds)
        state.round = entry.round
        state.weights = dict(strategy.weights)
        state.last_evaluation = strategy.last_evaluation
        state.logs, state.centres = checkpoint.strategy_state(as_pooled(strategy))
        checkpoint.save(run_dir, state)
        audit.event("checkpoint_saved", round=entry.round)

    timed = _Deadline(grid, config.round_timeout)
    strategy = SecureFedAvg(config, state, timed, on_round, audit)
    strategy.register = register
    if resumed:
        checkpoint.restore_strategy(as_pooled(strategy), state)
    audit.event("run_resumed" if resumed else "run_started", run_name=state.run_name,
                from_round=state.round + 1, rounds=config.rounds, aggregation="fedavg",
                secure_aggregation=True, min_centres=config.min_centres)
    context = Context(run_id=_run_id(grid), node_id=0, node_config={}, state=RecordDict(),
                      run_config=dict(config.to_flat()))
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=config.rounds - state.round),
                           strategy=strategy, client_manager=SimpleClientManager())
    stopped: FederationStopped | None = None
    try:
        DefaultWorkflow(fit_workflow=secagg_workflow(config))(timed, legacy)
    except FederationStopped as exc:
        stopped = exc
        log(INFO, "%s", exc)
    write_outputs(run_dir, config, as_pooled(strategy), state, time.monotonic() - started,
                  str(stopped) if stopped else None)
    audit.event("run_stopped" if stopped else "run_finished", run_name=state.run_name,
                rounds_completed=state.round, reason=str(stopped) if stopped else None)
    if stopped is not None:
        raise stopped
    return run_dir


def as_pooled(strategy: SecureFedAvg) -> PooledFedAvg:
    """``server.federation.write_outputs`` and ``server.checkpoint`` read only the
    ``logs`` and ``centres`` of the strategy, which this one keeps the same way."""
    return cast("PooledFedAvg", strategy)


def _run_id(grid: Grid) -> int:
    try:
        return int(grid.run.run_id)
    except (AttributeError, RuntimeError):
        return 0
