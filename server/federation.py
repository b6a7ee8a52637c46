"""The ministry's side of a federated run, as a plain function the ServerApp wires."""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from common.config import RunConfig
from common.model import ModelConfig, build_model
from common.privacy import evaluation_epsilon
from server import run_folder
from server.model_card import write_model_card
from server.progress import print_round
from server.strategy import HISTOGRAM_KEYS, PooledFedAvg, RoundLog, participation

ROUND_TIMEOUT_SECONDS = 3600.0


def run_federation(grid: Grid, config: RunConfig) -> Path:
    """Train ``config.rounds`` rounds of FedAvg over the connected centres and write the
    run folder. Returns the run folder."""
    started = time.monotonic()
    run_dir = run_folder.resolve_run_dir(config)
    run_folder.write_config(run_dir, config)
    (run_dir / run_folder.ROUNDS).unlink(missing_ok=True)
    model_config = ModelConfig(hidden=config.training.hidden_sizes)
    model = build_model(model_config, seed=config.seed)

    def on_round(entry: RoundLog) -> None:
        record = {"round": entry.round, **_prefixed(entry.train, "train_"),
                  **_prefixed(entry.evaluation, "eval_"), "refusals": entry.refusals}
        run_folder.append_round(run_dir, record)
        print_round(entry, config.rounds)

    strategy = PooledFedAvg(
        threshold=config.evaluation.threshold,
        on_round=on_round,
        fraction_train=config.fraction_train,
        fraction_evaluate=1.0,
        min_train_nodes=config.min_centres,
        min_evaluate_nodes=config.min_centres,
        min_available_nodes=config.min_centres,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=config.rounds,
        timeout=ROUND_TIMEOUT_SECONDS,
    )
    final_weights = result.arrays.to_torch_state_dict()
    run_folder.save_model(run_dir, final_weights, model_config, config)

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
    summary: dict[str, object] = {
        "scenario": config.scenario,
        "rounds": config.rounds,
        "rounds_completed": last.round if last else 0,
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
        "server_seconds": round(time.monotonic() - started, 2),
    }
    if last is not None:
        run_folder.write_json(run_dir / run_folder.EQUITY, last.equity)
        run_folder.write_json(
            run_dir / run_folder.PARTICIPATION, participation(list(strategy.centres.values()))
        )
        record = result.evaluate_metrics_clientapp[last.round]
        run_folder.write_json(
            run_dir / run_folder.EVALUATION,
            {key: list(record[key]) for key in HISTOGRAM_KEYS},  # type: ignore[arg-type]
        )
    run_folder.update_summary(run_dir, **summary)
    # Every trained model gets its card, also in deployment (launchers rewrite it after
    # adding their references and baselines).
    write_model_card(run_dir)
    return run_dir


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items()}
