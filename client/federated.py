"""What a centre does for one federated round, as plain functions the ClientApp wires.

Nothing here sends anything: the functions return the weights and the aggregate
metrics that may leave the centre (model weights, counts, score histograms). No
student id, no raw value and no per-student score is ever part of a return value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from client.data import CentreData, DataError, load_centre
from client.data import CentreRefusal as CentreRefusal  # re-exported for callers
from client.evaluation import evaluation_release, noisy_count
from client.ledger import BudgetExceeded, PrivacyLedger
from common.config import RunConfig
from common.model import ModelConfig, build_model, get_weights, predict_proba, set_weights
from common.privacy import (
    SamplingPlan,
    calibrate_training_noise,
    choose_batch_size,
    composed_epsilon,
    training_history,
)
from common.training import DPSettings, train_local

DATA_FILE_SUFFIXES = (".parquet", ".csv")


def model_config(config: RunConfig) -> ModelConfig:
    return ModelConfig(hidden=config.training.hidden_sizes)


def resolve_data_source(
    config: RunConfig, node_config: Mapping[str, object]
) -> tuple[str, str | None, str | None]:
    """(data path, mapping path, policy path) for this centre.

    Deployment: the SuperNode's node config names the files (``data-path``,
    ``mapping-path``, ``policy-path``; empty means none). Simulation: the centre's file
    is number ``partition-id`` among the data files of ``data_dir``, in name order.
    """
    data_path = str(node_config.get("data-path", "") or "")
    if data_path:
        mapping = str(node_config.get("mapping-path", "") or "") or None
        policy = str(node_config.get("policy-path", "") or "") or None
        return data_path, mapping, policy
    if not config.data_dir or "partition-id" not in node_config:
        raise DataError("This node has no data: set data-path in the SuperNode's node config.")
    data_dir = Path(config.data_dir)
    files = sorted(p for p in data_dir.iterdir() if p.suffix in DATA_FILE_SUFFIXES)
    index = int(str(node_config["partition-id"]))
    if index >= len(files):
        raise DataError(f"No data file for partition {index} in {data_dir}.")
    mapping_file = data_dir / "mapping.toml"
    policy_file = data_dir / "policy.toml"
    return (
        str(files[index]),
        str(mapping_file) if mapping_file.is_file() else None,
        str(policy_file) if policy_file.is_file() else None,
    )


def state_dir(config: RunConfig, node_config: Mapping[str, object]) -> Path | None:
    """Where the centre keeps its persistent state (privacy ledger): the SuperNode's
    ``state-dir`` (a persistent volume), or in simulation a folder of the run."""
    configured = str(node_config.get("state-dir", "") or "")
    if configured:
        return Path(configured)
    if config.run_dir and "partition-id" in node_config:
        return Path(config.run_dir) / "state" / f"centre-{node_config['partition-id']}"
    return None


def open_ledger(config: RunConfig, node_config: Mapping[str, object]) -> PrivacyLedger:
    """The centre's ledger. A centre that cannot keep one does not train with DP."""
    folder = state_dir(config, node_config)
    if folder is None:
        raise DataError("This node has no state-dir for its privacy ledger: set state-dir "
                        "in the SuperNode's node config.")
    return PrivacyLedger(folder)


def declared_name(config: RunConfig, node_config: Mapping[str, object]) -> str:
    """The name a centre declares in its evaluation replies (``common.equity.CENTRE_RECORD``):
    its data file's name, in a deployment and in a simulation alike."""
    return Path(resolve_data_source(config, node_config)[0]).stem


def centre_data(config: RunConfig, node_config: Mapping[str, object]) -> CentreData:
    """The centre's validated, encoded records (cached per process)."""
    data_path, mapping, policy = resolve_data_source(config, node_config)
    return load_centre(data_path, mapping, policy, config.evaluation.test_fraction)


@dataclass(frozen=True)
class RoundResult:
    """The release of one training round: weights and aggregate metrics."""

    weights: OrderedDict[str, torch.Tensor]
    num_examples: int
    epsilon: float
    steps_total: int
    train_loss: float
    update_norm: float = 0.0  # L2 norm of the update before it was bounded


def bound_update(
    weights: Mapping[str, torch.Tensor],
    global_weights: Mapping[str, torch.Tensor],
    max_norm: float,
) -> tuple[OrderedDict[str, torch.Tensor], float]:
    """Scale the update (``weights - global_weights``) down to L2 norm ``max_norm`` at
    most; returns the new weights and the update's norm before. DP-SGD clips each
    student's gradient, not the update: without this bound, a centre's update could
    have any size, and the server could not tell an honest one from a boosted one."""
    deltas = {k: weights[k].double() - global_weights[k].double() for k in weights}
    norm = float(torch.sqrt(sum(((d**2).sum() for d in deltas.values()), torch.zeros(()))))
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    bounded = OrderedDict(
        (k, (global_weights[k].double() + deltas[k] * scale).to(weights[k].dtype))
        for k in weights
    )
    return bounded, norm


def steps_booked(ledger: PrivacyLedger, run_key: str, config: RunConfig, data: CentreData) -> int:
    """DP-SGD steps this centre booked in its ledger for the logical run ``run_key``.
    Flower's per-run state is lost when a run is resumed as a new Flower run; the ledger
    is not, so a resumed run continues the accountant's history from it."""
    plan, sigma = privacy_plan(config, data)
    return sum(
        r.steps for r in ledger.releases()
        if r.run_id == run_key and r.kind == "train"
        and (r.noise_multiplier, r.sample_rate) == (sigma, plan.sample_rate)
    )


def privacy_plan(config: RunConfig, data: CentreData) -> tuple[SamplingPlan, float]:
    """Sampling plan and the noise multiplier that keeps the whole run (all rounds and
    local epochs) within ``privacy.epsilon`` at ``privacy.delta`` for this centre (0
    without DP: no calibration to pay for)."""
    plan = SamplingPlan(data.num_train, choose_batch_size(data.num_train,
                                                          config.training.batch_size))
    if not config.privacy.dp:
        return plan, 0.0
    total_steps = config.rounds * config.local_epochs * plan.steps_per_epoch
    sigma = calibrate_training_noise(
        config.privacy.epsilon,
        config.privacy.delta,
        plan.sample_rate,
        total_steps,
        config.rounds,
        config.privacy.accountant,
    )
    return plan, sigma


def train_round(
    config: RunConfig,
    data: CentreData,
    global_weights: dict[str, torch.Tensor],
    steps_done: int,
    server_round: int,
    ledger: PrivacyLedger | None = None,
    run_id: str = "",
) -> RoundResult:
    """Train the global model on the centre's records for ``local_epochs`` epochs.

    ``steps_done`` is the number of DP-SGD steps this centre already took in this run;
    the returned ``epsilon`` is cumulative over them and this round's. Refuses (before
    any training) when the round would take the run past its epsilon target, or the
    centre's lifetime spend in its ``ledger`` past its cap. The release is booked in the
    ledger before training, so it is on record before the update can leave.
    """
    if data.num_train + data.num_test < data.policy.min_records:
        raise CentreRefusal(
            f"The centre has {data.num_train + data.num_test} usable records, fewer than the "
            f"{data.policy.min_records} its policy requires to take part in training."
        )
    model = build_model(model_config(config), seed=config.seed)
    set_weights(model, global_weights)
    plan, sigma = privacy_plan(config, data)
    steps_per_round = config.local_epochs * plan.steps_per_epoch
    steps_total = steps_done + steps_per_round
    dp: DPSettings | None = None
    epsilon = 0.0
    num_examples = float(data.num_train)
    if config.privacy.dp:
        history = training_history(sigma, plan.sample_rate, steps_total,
                                   steps_total // steps_per_round)
        epsilon = composed_epsilon(history, config.privacy.delta, config.privacy.accountant)
        if epsilon > config.privacy.epsilon * 1.001:
            raise CentreRefusal(
                f"Training round {server_round} would bring this run's epsilon at this centre "
                f"to {epsilon:.3f} (delta {config.privacy.delta:g}), past the run's target of "
                f"{config.privacy.epsilon:g}."
            )
        if ledger is not None:
            try:
                ledger.book(
                    run_id=run_id,
                    server_round=server_round,
                    kind="train",
                    mechanisms=training_history(sigma, plan.sample_rate, steps_per_round, 1),
                    delta=config.privacy.delta,
                    cap=data.policy.epsilon_cap,
                )
            except BudgetExceeded as exc:
                raise CentreRefusal(str(exc)) from exc
        # FedAvg's weight is a count of students: it leaves with noise too.
        num_examples = noisy_count(data.num_train, config)
        dp = DPSettings(noise_multiplier=sigma, max_grad_norm=config.privacy.max_grad_norm)
    stats = train_local(
        model,
        data.x_train,
        data.y_train,
        epochs=config.local_epochs,
        batch_size=plan.batch_size,
        learning_rate=config.training.learning_rate,
        dp=dp,
        seed=config.seed + server_round,
        reproducible=config.privacy.reproducible_noise,
    )
    weights, update_norm = bound_update(
        get_weights(model), global_weights, config.training.max_update_norm
    )
    return RoundResult(weights, max(1, round(num_examples)), epsilon, steps_total,
                       stats.mean_loss, update_norm)


def evaluate_round(
    config: RunConfig,
    data: CentreData,
    global_weights: dict[str, torch.Tensor],
    server_round: int | None = None,
    ledger: PrivacyLedger | None = None,
    run_id: str = "",
) -> dict[str, int | float | list[float]]:
    """Aggregate evaluation of the global model on the centre's held-out records:
    score histograms by label and the equity audit's per-group counts, never a
    per-student score. With DP, the counts carry Gaussian noise and the release is
    booked first (see ``client.evaluation``)."""
    model = build_model(model_config(config), seed=config.seed)
    set_weights(model, global_weights)
    probabilities = predict_proba(model, data.x_test)
    return evaluation_release(
        config, data, probabilities, server_round or config.rounds, ledger, run_id
    )
