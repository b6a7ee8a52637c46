"""The ministry's side of a federated run, as a plain function the ServerApp wires.

Each round: wait (with a deadline) for ``min_centres`` connected centres, train among
them, validate and aggregate the updates (``strategy.aggregation``), evaluate, then
save a checkpoint. ``resume`` continues the run of ``run_dir`` after its last
checkpointed round, as a new Flower run: the centres recognise it by its logical name
(``run-name`` in every instruction), under which their ledgers booked what it spent.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from logging import INFO
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord
from flwr.common.logger import log
from flwr.serverapp import Grid

from common.calibration import Calibration, fit_calibration
from common.config import RunConfig
from common.metrics import ScoreHistogram
from common.model import ModelConfig, build_model
from common.privacy import evaluation_epsilon
from server import checkpoint, run_folder
from server.aggregation import build_strategy
from server.audit_log import ServerAudit
from server.checkpoint import Checkpoint, ResumeError
from server.model_card import write_model_card
from server.progress import print_round
from server.register import register_of
from server.rounds import FederationStopped, run_round, wait_for_centres
from server.strategy import HISTOGRAM_KEYS, PooledFedAvg, RoundLog, participation


def new_run_name(config: RunConfig) -> str:
    """A logical run name no earlier run of any centre has used."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{config.scenario}-{stamp}-{secrets.token_hex(4)}"


def starting_point(run_dir: Path, config: RunConfig) -> tuple[Checkpoint, bool]:
    """The checkpoint to start from, and whether it is a resumption. A fresh run starts
    from the initial model at round 0; ``resume`` without a checkpoint starts fresh."""
    if config.resume:
        found = checkpoint.load(run_dir)
        if found is not None:
            checkpoint.check_compatible(found, config)
            return found, True
        log(INFO, "resume: no checkpoint in %s, starting at round 1", run_dir)
    model = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    return Checkpoint(0, new_run_name(config), dict(model.state_dict()), config.to_flat()), False


def round_record(entry: RoundLog) -> dict[str, object]:
    """One line of ``rounds.jsonl``."""
    return {"round": entry.round, **_prefixed(entry.train, "train_"),
            **_prefixed(entry.evaluation, "eval_"), "refusals": entry.refusals,
            "rejections": entry.rejections, "absent": entry.absent, "updates": entry.updates,
            "model_version": entry.model_version}


def run_federation(grid: Grid, config: RunConfig) -> Path:
    """Train the remaining rounds of the run over the connected centres, checkpointing
    after each, and write the run folder. Returns the run folder. A stop before the last
    round (centres absent, resume refused) is written to ``summary.json`` as ``stopped``
    and re-raised as :class:`FederationStopped` or :class:`ResumeError`."""
    run_dir = run_folder.resolve_run_dir(config)
    with checkpoint.run_folder_lock(run_dir):
        return _run_locked(grid, config, run_dir)


def open_run(
    run_dir: Path, config: RunConfig, audit: ServerAudit
) -> tuple[Checkpoint, bool]:
    """The run's starting point (a fresh start or its checkpoint), with its configuration
    written and, on resume, the completed rounds' lines kept in ``rounds.jsonl``."""
    try:
        state, resumed = starting_point(run_dir, config)
    except ResumeError as exc:
        audit.event("run_stopped", reason=str(exc), rounds_completed=0)
        run_folder.update_summary(run_dir, stopped=str(exc))
        raise
    run_folder.write_config(run_dir, config)
    rounds = [r for r in run_folder.read_rounds(run_dir) if r["round"] <= state.round]
    (run_dir / run_folder.ROUNDS).unlink(missing_ok=True)
    for record in rounds if resumed else []:
        run_folder.append_round(run_dir, record)
    return state, resumed


def _run_locked(grid: Grid, config: RunConfig, run_dir: Path) -> Path:
    started = time.monotonic()
    register = register_of(config.evaluation.centre_register)  # before anything is written
    audit = ServerAudit(run_dir)
    state, resumed = open_run(run_dir, config, audit)

    def on_round(entry: RoundLog) -> None:
        run_folder.append_round(run_dir, round_record(entry))
        print_round(entry, config.rounds)

    strategy = build_strategy(config, on_round, audit)
    strategy.register = register
    if resumed:
        checkpoint.restore_strategy(strategy, state)
    audit.event("run_resumed" if resumed else "run_started", run_name=state.run_name,
                flower_run_id=grid.run.run_id if _has_run(grid) else None,
                from_round=state.round + 1, rounds=config.rounds,
                aggregation=config.strategy.aggregation, min_centres=config.min_centres)
    arrays = ArrayRecord(state.weights)
    run_config = ConfigRecord({"run-name": state.run_name})
    stopped: FederationStopped | None = None
    previous: list[int] = []
    try:
        for server_round in range(state.round + 1, config.rounds + 1):
            nodes = wait_for_centres(grid, config.min_centres, config.min_centres_wait)
            audit.connected(server_round, nodes, previous)
            previous = nodes
            arrays, metrics = run_round(strategy, grid, nodes, server_round, arrays, run_config,
                                        config.round_timeout, audit)
            if metrics is not None:
                state.last_evaluation = {key: [float(v) for v in metrics[key]]  # type: ignore[union-attr]
                                         for key in HISTOGRAM_KEYS}
            state.round = server_round
            state.weights = arrays.to_torch_state_dict()
            state.logs, state.centres = checkpoint.strategy_state(strategy)
            checkpoint.save(run_dir, state)
            audit.event("checkpoint_saved", round=server_round)
    except FederationStopped as exc:
        stopped = exc
        log(INFO, "%s", exc)
    write_outputs(run_dir, config, strategy, state, time.monotonic() - started,
                  str(stopped) if stopped else None)
    audit.event("run_stopped" if stopped else "run_finished", run_name=state.run_name,
                rounds_completed=state.round, reason=str(stopped) if stopped else None)
    if stopped is not None:
        raise stopped
    return run_dir


def _calibration(evaluation: dict[str, list[float]] | None) -> Calibration | None:
    """Platt scaling fitted on the final pooled (released) histogram: post-processing."""
    if not evaluation:
        return None
    pos, neg, probability_sum = (np.asarray(evaluation[key]) for key in HISTOGRAM_KEYS)
    return fit_calibration(ScoreHistogram(pos, neg, probability_sum, 0.0))


def _has_run(grid: Grid) -> bool:
    try:
        return grid.run is not None
    except (AttributeError, RuntimeError):
        return False


def write_outputs(
    run_dir: Path,
    config: RunConfig,
    strategy: PooledFedAvg,
    state: Checkpoint,
    seconds: float,
    stopped: str | None,
) -> None:
    """The model, summary, equity audit, participation and evaluation files of the run
    as it stands after round ``state.round``."""
    model_config = ModelConfig(hidden=config.training.hidden_sizes)
    if state.round > 0:
        run_folder.save_model(run_dir, state.weights, model_config, config,
                              _calibration(state.last_evaluation))
    completed = [entry for entry in strategy.logs.values() if entry.evaluation]
    last = max(completed, key=lambda entry: entry.round, default=None)
    evaluation = last.evaluation if last else {}
    epsilons = [entry.train.get("epsilon_max", 0.0) for entry in strategy.logs.values()]
    num_train = max((entry.train.get("num-examples", 0.0) for entry in completed), default=0.0)
    nan = float("nan")
    epsilon_evaluation = (
        evaluation_epsilon(config.privacy.epsilon, config.privacy.delta, config.rounds,
                           last.round if last else 0)
        if config.privacy.dp and config.privacy.evaluation_noise else None
    )
    logs = list(strategy.logs.values())
    summary: dict[str, object] = {
        "scenario": config.scenario,
        "run_name": state.run_name,
        "rounds": config.rounds,
        "rounds_completed": state.round,
        "stopped": stopped,
        "aggregation": config.strategy.aggregation,
        "updates_rejected": sum(len(entry.rejections) for entry in logs),
        "replies_missing": sum(len(entry.absent) for entry in logs),
        "rounds_unchanged": sum(1 for entry in logs if entry.updates == 0),
        "num_centres": int(evaluation.get("centres", 0)),
        "num_train": int(num_train),
        "num_test": int(evaluation.get("num-examples", 0)),
        "num_students": int(num_train + evaluation.get("num-examples", 0)),
        "auc_pooled": evaluation.get("auc", nan),
        "pr_auc_pooled": evaluation.get("pr_auc", nan),
        "brier_pooled": evaluation.get("brier", nan),
        "calibration_error_pooled": evaluation.get("calibration_error", nan),
        "dp": config.privacy.dp,
        "epsilon_target": config.privacy.epsilon if config.privacy.dp else None,
        "epsilon_train_max": max(epsilons, default=0.0) if config.privacy.dp else None,
        "epsilon_evaluation": epsilon_evaluation,
        # Held-out students never train: the two compose in parallel, the larger holds.
        "epsilon_max": (
            max(max(epsilons, default=0.0), epsilon_evaluation or 0.0)
            if config.privacy.dp else None
        ),
        "delta": config.privacy.delta,
        "accountant": config.privacy.accountant,
        "privacy_unit": "one student's record, per centre, over the whole run",
        "server_seconds": round(seconds, 2),
    }
    if last is not None:
        run_folder.write_json(run_dir / run_folder.EQUITY, last.equity)
        run_folder.write_json(
            run_dir / run_folder.PARTICIPATION, participation(list(strategy.centres.values()))
        )
    if state.last_evaluation:
        run_folder.write_json(run_dir / run_folder.EVALUATION, state.last_evaluation)
    run_folder.update_summary(run_dir, **summary)
    # Every trained model gets its card, also in deployment (launchers rewrite it after
    # adding their references and baselines).
    if state.round > 0:
        write_model_card(run_dir)


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items()}
