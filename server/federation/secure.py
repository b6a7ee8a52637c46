"""The ministry's side in secure mode (``privacy.secure_aggregation``): Flower's SecAgg+.

In Flower 1.42, SecAgg+ runs only on the legacy path: ``LegacyContext`` and
``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` with a legacy strategy. The
centres answer through ``client.federation.secure``. Each round the ministry learns the weighted
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

Evaluation is secure-aggregated too: after each training round a second SecAgg+ round
(``SecureEvaluation``) sends fit instructions marked ``secure.phase = evaluate``; each
centre answers with its noisy evaluation counts as one integer vector
(``common.privacy.secure_release``), and the ministry learns only their sum: the pooled
histogram; after the final round, one more SecAgg+ round (the audit exchange) sums the
equity cells, counted at the raw-score threshold the recalibration of the final pooled
histogram maps to ``evaluation.threshold``, and, without distributed noise, the region
slots. SecAgg+'s
quantization is made exact for integers (clipping range ``CLIP``, quantization range 2 x
``CLIP``, weight 1).
The run lifecycle (``server.federation.lifecycle``) and the book
(``server.federation.bookkeeping``) are the
plain federation's: only how the sum of the updates is formed differs.
"""

from __future__ import annotations

import json
import timeit
from collections import OrderedDict
from collections.abc import Callable, Iterable
from logging import WARNING
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    log,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import ClientManager, LegacyContext, ServerConfig, SimpleClientManager
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from common import protocol
from common.config import RunConfig
from common.metrics import ScoreHistogram
from common.privacy import secure_release as layout
from common.privacy.accounting import evaluation_scheduled
from common.protocol import AuditRequest, TrainRelease
from server.federation.bookkeeping import (
    FederationStopped,
    RoundLog,
    RunBook,
    audit_request,
    histogram_of,
    kept_evaluation,
    next_edges,
)
from server.federation.lifecycle import RunLifecycle
from server.federation.rounds import GridView, wait_for_centres
from server.federation.validation import model_version
from server.federation.weights import secure_weight_problem, sum_problem
from server.flower_compat import (
    MAIN_CONFIGS_RECORD,
    ClientProxy,
    WeighedSecAggPlusWorkflow,
    default_init_params_workflow,
    start_update_client_manager_thread,
    summed_weight,
)
from server.flower_compat import WorkflowKey as Key

Weights = OrderedDict[str, torch.Tensor]
#: Flower seeds each SecAgg+ mask with 32 bits: with 4 centres or more, at least 3
#: survive any tolerated dropout and each update hides behind 64 bits of masks or more.
MIN_CENTRES_ADVISED = 4
#: SecAgg+'s quantization levels for the training sum (Flower's default, 2**22).
QUANTIZATION_LEVELS = 2**22


def _failures(failures: Iterable[BaseException | tuple[ClientProxy, Any]],
              sender: Callable[[object], int | None] = lambda error: None,
              ) -> list[tuple[int | None, int | None, str]]:
    """(node, code, reason) of each failed reply; ``sender`` finds the node of an error
    SecAgg+ hands over without it (``GridView.sender``). SecAgg+'s masked-vector stage
    lists each error reply twice (Flower 1.42), hence the de-duplication on the error
    object."""
    seen: set[int] = set()
    found: list[tuple[int | None, int | None, str]] = []
    for failure in failures:
        if isinstance(failure, tuple):
            found.append((failure[0].node_id, None, str(failure[1].status.message)))
            continue
        error = failure.args[0] if failure.args else failure
        if id(error) not in seen:
            seen.add(id(error))
            code = getattr(error, "code", None)
            found.append((sender(error), code if isinstance(code, int) else None,
                          str(getattr(error, "reason", None) or error)))
    return found


def decode_release(metrics: dict[str, Scalar]) -> dict[str, Any] | None:
    """A centre's evaluation release (``client.federation.secure``) as the metrics the Message-API
    path would have received, or None when it is not one."""
    try:
        release = json.loads(str(metrics[protocol.RELEASE]))
    except (KeyError, TypeError, ValueError):
        return None
    return release if isinstance(release, dict) else None


class SecureFedAvg(FedAvg):
    """Flower's legacy FedAvg for SecAgg+: adds the securely averaged update to the
    global model; the accounting is the run's book, as in plain mode.

    Parameters
    ----------
    config : RunConfig
        The run's configuration.
    run : RunLifecycle
        The run (its starting point, book, round and checkpoint hooks).
    grid : Grid
        The run's grid (to wait for ``min_centres`` with a deadline).
    """

    def __init__(self, config: RunConfig, run: RunLifecycle, grid: Grid) -> None:
        self.weights: Weights = OrderedDict(
            (k, v.detach().clone()) for k, v in run.state.weights.items())
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
        self.run = run
        self.book: RunBook = run.book
        self.offset = run.state.round  # legacy rounds restart at 1 in a resumed run
        self.grid = grid
        self.sampled: dict[int, list[int]] = {}
        self.sampled_evaluation: list[int] = []
        self.last_evaluation: dict[str, list[float]] = dict(run.state.last_evaluation)
        self.audit_request: AuditRequest | None = None
        self.audit_histogram = ScoreHistogram(np.zeros(1), np.zeros(1), np.zeros(1), 0.0)

    def _instructions(self, server_round: int, phase: str) -> dict[str, Scalar]:
        """Waits (with a deadline) for ``min_centres`` and names the task for the
        centres' ledgers and audit logs."""
        wait_for_centres(self.grid, self.config.min_centres, self.config.min_centres_wait)
        version = model_version(server_round, ArrayRecord(OrderedDict(self.weights)))
        if phase == "train":
            self.book.round_log(server_round).model_version = version
        return {**protocol.Task(self.run.state.run_name, server_round, version).as_config(),
                **self.run.audit.head()}

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
        self.run.audit.sent(server_round, "train", self.sampled[server_round],
                            str(config[protocol.MODEL_VERSION]))
        return instructions

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager) -> list[tuple[ClientProxy, EvaluateIns]]:
        server_round += self.offset
        self.book.evaluation_edges = next_edges(self.config, self.last_evaluation)
        config = {**self._instructions(server_round, "evaluate"),
                  **protocol.edges_config(self.book.evaluation_edges)}
        instructions = super().configure_evaluate(server_round, parameters, client_manager)
        for _, evaluate_ins in instructions:
            evaluate_ins.config = dict(config)
        return instructions

    def regions(self) -> list[str]:
        """The register's regions, in the order of the release's region slots."""
        register = self.book.register
        if register is None:
            return []
        return sorted({p.region for p in [*register.by_node.values(),
                                          *register.by_name.values()] if p.region})

    def _secure_instructions(self, config: dict[str, Scalar], parameters: Parameters,
                             client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        """Fit instructions asking every centre for its secure evaluation vector, each
        with its region slot (from the register and the name it declared)."""
        regions = self.regions()
        instructions = []
        for proxy, _ in super().configure_evaluate(1, parameters, client_manager):
            place = None if self.book.register is None else self.book.register.place(
                proxy.node_id, self.book.names.get(proxy.node_id, ""))
            slot: dict[str, Scalar] = {
                protocol.SECURE_PHASE: protocol.SECURE_EVALUATE,
                protocol.SECURE_REGIONS: len(regions),
                protocol.SECURE_REGION: regions.index(place.region) if place and place.region in
                regions else -1,
                protocol.SECURE_COUNTS: not (place and place.indigenous_governed)}
            instructions.append((proxy, FitIns(parameters, {**config, **slot})))
        self.sampled_evaluation = sorted(proxy.node_id for proxy, _ in instructions)
        return instructions

    def configure_secure_evaluation(self, server_round: int, parameters: Parameters,
                                    client_manager: ClientManager
                                    ) -> list[tuple[ClientProxy, FitIns]]:
        """The round's secure evaluation instructions (:meth:`_secure_instructions`)."""
        server_round += self.offset
        # The bins placed from the last released pooled histogram (issue 30).
        self.book.evaluation_edges = next_edges(self.config, self.last_evaluation)
        config = {**self._instructions(server_round, "evaluate"),
                  **protocol.edges_config(self.book.evaluation_edges)}
        return self._secure_instructions(config, parameters, client_manager)

    def configure_secure_audit(self, parameters: Parameters, client_manager: ClientManager
                               ) -> list[tuple[ClientProxy, FitIns]]:
        """The audit exchange's instructions, after the final round: the final model
        again, with the raw-score threshold the recalibration of the final pooled
        histogram maps to ``evaluation.threshold``."""
        rounds = self.config.rounds
        self.audit_histogram = histogram_of(self.run.state.last_evaluation)
        self.audit_request, _ = audit_request(
            self.config.evaluation.threshold, self.audit_histogram,
            self.run.state.last_evaluation if self.config.evaluation.placement == "released"
            else None)
        config = {**self._instructions(rounds, "evaluate"), **self.audit_request.as_config()}
        instructions = self._secure_instructions(config, parameters, client_manager)
        self.run.audit.sent(rounds, protocol.PHASE_AUDIT, self.sampled_evaluation,
                            str(config[protocol.MODEL_VERSION]))
        return instructions

    def aggregate_secure_audit(
        self, results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> None:
        """The summed audit (or none, when SecAgg+ halted) into the run's equity audit."""
        rounds = self.config.rounds
        self._refusals(rounds, protocol.PHASE_AUDIT, failures)
        for proxy, res in results:
            self.book.identify(rounds, protocol.PHASE_AUDIT, proxy.node_id, {}, res.metrics)
        report: dict[str, object] = {}
        if results and self.audit_request is not None:
            regions = self.regions()
            average = parameters_to_ndarrays(results[0][1].parameters)[0]
            summed = layout.decode(layout.exact_sum(average, len(results)),
                                   self.config.evaluation.bins, len(regions))
            report = self.book.audited_sum(
                self.audit_request, self.audit_histogram, summed,
                [(p.node_id, dict(r.metrics)) for p, r in results], regions)
        else:
            log(WARNING, "the secure equity audit did not complete")
        self.run.audited(report)

    def skip_evaluation(self, server_round: int) -> None:
        """A round the schedule does not evaluate (``evaluation.progress_every``): it
        ends with its checkpoint, no evaluation asked."""
        server_round += self.offset
        entry = self._evaluation_begins(server_round, [])
        self.run.round_done(entry)
        self.run.checkpoint(server_round, dict(self.weights), self.last_evaluation)

    def _evaluation_begins(self, server_round: int, failures: list[Any]) -> RoundLog:
        """The round's log once its evaluation replies are in: a round whose secure
        aggregation did not complete keeps the model (no update counted); the
        evaluation's refusals noted."""
        entry = self.book.round_log(server_round)
        if server_round not in self.sampled or not entry.train:
            log(WARNING, "round %s: secure aggregation did not complete: the model is left "
                "unchanged", server_round)
            entry.updates = 0
        self._refusals(server_round, "evaluate", failures)
        return entry

    def aggregate_secure_evaluation(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> None:
        """Pool the summed evaluation (or none, when SecAgg+ halted) and end the round."""
        server_round += self.offset
        entry = self._evaluation_begins(server_round, failures)
        for proxy, res in results:
            self.book.identify(server_round, "evaluate", proxy.node_id, {}, res.metrics)
        pooled: dict[str, Any] = {}
        if results:
            regions = self.regions()
            average = parameters_to_ndarrays(results[0][1].parameters)[0]
            summed = layout.decode(layout.exact_sum(average, len(results)),
                                   self.config.evaluation.bins, len(regions))
            pooled = self.book.evaluated_sum(
                server_round, summed, [(p.node_id, dict(r.metrics)) for p, r in results],
                regions)
        else:
            log(WARNING, "round %s: the secure evaluation did not complete", server_round)
        if (kept := kept_evaluation(pooled)) is not None:
            self.last_evaluation = kept
        self.run.round_done(entry)
        self.run.checkpoint(server_round, dict(self.weights), self.last_evaluation)

    def _refusals(self, server_round: int, phase: str,
                  failures: Iterable[BaseException | tuple[ClientProxy, Any]]) -> None:
        sender = self.grid.sender if isinstance(self.grid, GridView) else (lambda e: None)
        for node, code, reason in _failures(failures, sender):
            self.book.refusal(server_round, phase, -1 if node is None else node, code, reason)

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Every result carries the same array: SecAgg+'s weighted average of the
        updates of the centres that sent masked vectors. Add it to the global model."""
        server_round += self.offset
        entry = self.book.round_log(server_round)
        self._refusals(server_round, "train", failures)
        contributed = {proxy.node_id for proxy, _ in results}
        for node in self.sampled.get(server_round, []):
            if node not in contributed:
                entry.absent.append(f"node {node} (train): left the secure aggregation")
                self.run.audit.absent(server_round, "train", node, "left the secure aggregation")
        # SecAgg+ has summed every masked vector: a centre declaring another's name is
        # left out of the book and its head is not anchored (its update, bounded like
        # any other, stays in the sum).
        identified = {proxy.node_id for proxy, res in results
                      if self.book.identify(server_round, "train", proxy.node_id, {}, res.metrics)}
        self.book.check_quorum(server_round, self.sampled.get(server_round, []))
        if not results:
            return None, {}
        update = parameters_to_ndarrays(results[0][1].parameters)
        problem = self._weight_problem(results) or sum_problem(
            update, [tuple(w.shape) for w in self.weights.values()],
            self.config.training.max_update_norm)
        if problem is not None:
            entry.rejections.append(f"the secure sum: {problem}")
            log(WARNING, "round %s: the secure sum is rejected (%s): the model is left "
                "unchanged", server_round, problem)
            self.run.audit.event("round_aggregated", round=server_round, updates=0,
                                 model_changed=False, secure_aggregation=True, reason=problem)
            self.book.trained(server_round, [], 0)
            return ndarrays_to_parameters([v.numpy() for v in self.weights.values()]), {}
        self.weights = OrderedDict(
            (name, (weight.double() + torch.from_numpy(np.asarray(delta))).to(weight.dtype))
            for (name, weight), delta in zip(self.weights.items(), update, strict=True))
        accepted = [(proxy.node_id, TrainRelease(res.num_examples,
                                                 float(res.metrics[protocol.EPSILON])))
                    for proxy, res in results if proxy.node_id in identified]
        train = self.book.trained(server_round, accepted, len(results))
        self.run.audit.event("round_aggregated", round=server_round, updates=len(results),
                             model_changed=True, secure_aggregation=True)
        return ndarrays_to_parameters([v.numpy() for v in self.weights.values()]), dict(train)

    def _weight_problem(self, results: list[tuple[ClientProxy, FitRes]]) -> str | None:
        """What is wrong with the weights inside the round's sum (``server.federation.
        weights.secure_weight_problem``: each declared weight within the cap, the weight
        unmasked with the sum equal to the declared ones'), or None."""
        summed = summed_weight()
        cap = float(self.config.privacy.secagg_max_weight)
        return secure_weight_problem(
            {proxy.node_id: float(res.num_examples) for proxy, res in results},
            None if summed is None else summed.factor,
            QUANTIZATION_LEVELS if summed is None else summed.levels,
            cap if summed is None else summed.max_weight)

    def aggregate_evaluate(
        self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Pooled evaluation from the centres' noisy releases; ends the round."""
        server_round += self.offset
        entry = self._evaluation_begins(server_round, failures)
        releases = []
        for proxy, res in results:
            release = decode_release(res.metrics)
            node = proxy.node_id
            if release is None:
                self.book.screen_evaluation(server_round, node, {}, {}, None, None)
                continue
            if self.book.screen_evaluation(server_round, node, release, {}, None, None):
                self.book.identify(server_round, "evaluate", node, {}, res.metrics)
                releases.append((node, release))
        pooled = self.book.evaluated(server_round, releases)
        if (kept := kept_evaluation(pooled)) is not None:
            self.last_evaluation = kept
        self.run.round_done(entry)
        self.run.checkpoint(server_round, dict(self.weights), self.last_evaluation)
        metrics = {k: v for k, v in entry.evaluation.items()}
        return entry.evaluation.get("brier"), dict(metrics)


class _EvaluationRound(FedAvg):
    """The strategy SecAgg+ sees in an evaluation round (or, with ``audit``, the audit
    exchange): fit instructions that ask for the centres' secure evaluation, and the sum
    handed back to the run's strategy."""

    def __init__(self, strategy: SecureFedAvg, audit: bool = False) -> None:
        super().__init__(accept_failures=True)
        self.strategy = strategy
        self.audit = audit
        self.done = False

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        if self.audit:
            return self.strategy.configure_secure_audit(parameters, client_manager)
        return self.strategy.configure_secure_evaluation(server_round, parameters,
                                                         client_manager)

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.done = True
        if self.audit:
            self.strategy.aggregate_secure_audit(results, failures)
        else:
            self.strategy.aggregate_secure_evaluation(server_round, results, failures)
        return None, {}  # the model is left as it is


class SecureEvaluation:
    """The evaluate workflow of secure mode: one SecAgg+ round over the centres'
    evaluation vectors at the rounds the schedule evaluates (``evaluation.progress_every``;
    the others end without evaluation); if SecAgg+ halts (too many dropouts), the round
    ends without evaluation. :meth:`audit` is the equity audit's SecAgg+ round, after
    the final round."""

    def __init__(self, strategy: SecureFedAvg, config: RunConfig) -> None:
        self.strategy = strategy
        self.config = config
        self.workflow = SecAggPlusWorkflow(
            num_shares=config.privacy.secagg_shares,
            reconstruction_threshold=config.privacy.secagg_threshold,
            max_weight=1.0, clipping_range=float(layout.CLIP),
            quantization_range=layout.QUANTIZATION_RANGE, timeout=config.round_timeout)

    def __call__(self, grid: Grid, context: Context) -> None:
        assert isinstance(context, LegacyContext)
        round_now = int(str(context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND]))
        if not evaluation_scheduled(round_now + self.strategy.offset, self.config.rounds,
                                    self.config.evaluation.progress_every):
            self.strategy.skip_evaluation(round_now)
            return
        adapter = _EvaluationRound(self.strategy)
        inner = LegacyContext(context, context.config, adapter, context.client_manager)
        self.workflow(grid, inner)
        if not adapter.done:
            self.strategy.aggregate_secure_evaluation(round_now, [], [])

    def audit(self, grid: Grid, context: LegacyContext) -> None:
        """The audit's SecAgg+ round, when the run's audit is pending (also on a resume
        after the final round)."""
        if not self.strategy.run.audit_pending:
            return
        adapter = _EvaluationRound(self.strategy, audit=True)
        inner = LegacyContext(context, context.config, adapter, context.client_manager)
        self.workflow(grid, inner)
        if not adapter.done:
            self.strategy.aggregate_secure_audit([], [])


class SecureWorkflow(DefaultWorkflow):
    """Flower's ``DefaultWorkflow`` (training with SecAgg+, then the evaluate workflow,
    each round), followed by the equity audit's SecAgg+ round; the round loop is
    Flower's, without its centralised evaluation (this strategy has none)."""

    def __init__(self, fit_workflow: SecAggPlusWorkflow, evaluation: SecureEvaluation) -> None:
        super().__init__(fit_workflow=fit_workflow, evaluate_workflow=evaluation)
        self.evaluation = evaluation

    def __call__(self, grid: Grid, context: Context) -> None:
        assert isinstance(context, LegacyContext)
        thread, stop, ready = start_update_client_manager_thread(grid, context.client_manager)
        ready.wait()
        try:
            default_init_params_workflow(grid, context)
            cfg = ConfigRecord({Key.START_TIME: timeit.default_timer(), Key.CURRENT_ROUND: 0})
            context.state.config_records[MAIN_CONFIGS_RECORD] = cfg
            for current_round in range(1, context.config.num_rounds + 1):
                cfg[Key.CURRENT_ROUND] = current_round
                self.fit_workflow(grid, context)
                self.evaluate_workflow(grid, context)
            self.evaluation.audit(grid, context)
        finally:
            stop.set()
            thread.join()


def secagg_workflow(config: RunConfig) -> SecAggPlusWorkflow:
    """SecAgg+ with the project's choices (module docstring), keeping the summed weight
    for :meth:`SecureFedAvg.aggregate_fit`'s check."""
    return WeighedSecAggPlusWorkflow(
        num_shares=config.privacy.secagg_shares,
        reconstruction_threshold=config.privacy.secagg_threshold,
        max_weight=float(config.privacy.secagg_max_weight),
        clipping_range=config.training.max_update_norm,
        quantization_range=QUANTIZATION_LEVELS,
        timeout=config.round_timeout,
    )


def run_secure_federation(grid: Grid, config: RunConfig) -> Path:
    """Train the remaining rounds of the run with SecAgg+, checkpointing after each,
    and write the run folder (as ``server.federation.run.run_federation`` does, plus
    ``secure_aggregation``). Returns the run folder; a stop is re-raised as
    :class:`FederationStopped` or :class:`ResumeError` after ``summary.json`` says so."""
    with RunLifecycle(grid, config, secure=True) as run:
        timed = GridView(grid, timeout=config.round_timeout)
        strategy = SecureFedAvg(config, run, timed)
        context = Context(run_id=run_id_of(grid), node_id=0, node_config={},
                          state=RecordDict(), run_config=dict(config.to_flat()))
        legacy = LegacyContext(context,
                               config=ServerConfig(num_rounds=config.rounds - run.state.round),
                               strategy=strategy, client_manager=SimpleClientManager())
        stopped: FederationStopped | None = None
        try:
            SecureWorkflow(secagg_workflow(config),
                           SecureEvaluation(strategy, config))(timed, legacy)
        except FederationStopped as exc:
            stopped = exc
        return run.finish(stopped)


def run_id_of(grid: Grid) -> int:
    try:
        return int(grid.run.run_id)
    except (AttributeError, RuntimeError):
        return 0
