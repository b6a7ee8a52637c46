"""The ministry's side of a federated run, as a plain function the ServerApp wires."""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from common.config import RunConfig
from common.model import ModelConfig, build_model
from server import run_folder
from server.progress import print_round
from server.strategy import PooledFedAvg, RoundLog

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

    last_round = max(result.evaluate_metrics_clientapp, default=0)
    evaluation = result.evaluate_metrics_clientapp.get(last_round)
    epsilons = [float(m["epsilon_max"]) for m in result.train_metrics_clientapp.values()]
    train_sizes = [int(m["num-examples"]) for m in result.train_metrics_clientapp.values()]
    summary: dict[str, object] = {
        "scenario": config.scenario,
        "rounds": config.rounds,
        "rounds_completed": last_round,
        "num_centres": int(evaluation["centres"]) if evaluation else 0,
        "num_train": max(train_sizes, default=0),
        "num_test": int(evaluation["num-examples"]) if evaluation else 0,
        "auc_pooled": float(evaluation["auc"]) if evaluation else float("nan"),
        "pr_auc_pooled": float(evaluation["pr_auc"]) if evaluation else float("nan"),
        "brier_pooled": float(evaluation["brier"]) if evaluation else float("nan"),
        "calibration_error_pooled": (
            float(evaluation["calibration_error"]) if evaluation else float("nan")
        ),
        "dp": config.privacy.dp,
        "epsilon_target": config.privacy.epsilon if config.privacy.dp else None,
        "epsilon_max": max(epsilons, default=0.0) if config.privacy.dp else None,
        "delta": config.privacy.delta,
        "accountant": config.privacy.accountant,
        "privacy_unit": "one student's record, per centre, over the whole run",
        "server_seconds": round(time.monotonic() - started, 2),
    }
    summary["num_students"] = int(summary["num_train"]) + int(summary["num_test"])  # type: ignore[call-overload]
    if evaluation is not None:
        run_folder.write_json(
            run_dir / run_folder.EVALUATION,
            {key: list(evaluation[key]) for key in ("hist_pos", "hist_neg", "prob_sum")},  # type: ignore[call-overload]
        )
    run_folder.update_summary(run_dir, **summary)
    return run_dir


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items()}
