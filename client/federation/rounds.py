"""What a centre does for one federated round, as plain functions the ClientApp wires.

Nothing here sends anything: the functions return the weights and the aggregate
metrics that may leave the centre (model weights, counts, score histograms). No
student id, no raw value and no per-student score is ever part of a return value.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from client.errors import CentreRefusal as CentreRefusal  # re-exported for callers
from client.ingest.centre_data import CentreData, DataError, load_centre
from client.privacy.audit_log import centre_name, records_key_path
from client.privacy.evaluation import check_evaluation_request, evaluation_release, noise_generator
from client.privacy.ledger import BudgetExceeded, PrivacyLedger
from client.privacy.run_plan import (
    RunPlan,
    check_run_budget,
    load_plan,
    plan_for,
    released_size,
    run_history,
    save_plan,
    size_release,
)
from client.privacy.student_budget import StudentBudget
from common.config import RunConfig
from common.model import ModelConfig, build_model, get_weights, predict_proba, set_weights
from common.privacy.accounting import composed_epsilon
from common.protocol import AuditRequest, EdgesRequest, Reason, Reply
from common.training import DPSettings, train_local

DATA_FILE_SUFFIXES = (".parquet", ".csv")
#: The salt of the size release's seeded noise (reproducible runs): evaluation releases
#: use their round (1 to rounds + 1).
SIZE_SALT = 2**20


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
    # Names sorted as strings (the order of their paths in one folder): a task resolves
    # its source several times, and sorting Path objects cost a millisecond each time.
    files = sorted(name for name in os.listdir(data_dir)
                   if os.path.splitext(name)[1] in DATA_FILE_SUFFIXES)
    index = int(str(node_config["partition-id"]))
    if index >= len(files):
        raise DataError(f"No data file for partition {index} in {data_dir}.")
    mapping_file = data_dir / "mapping.toml"
    policy_file = data_dir / "policy.toml"
    return (
        str(data_dir / files[index]),
        str(mapping_file) if mapping_file.is_file() else None,
        str(policy_file) if policy_file.is_file() else None,
    )


def state_dir(config: RunConfig, node_config: Mapping[str, object]) -> Path | None:
    """Where the centre keeps its persistent state (privacy ledger): the SuperNode's
    ``state-dir`` (a persistent volume), or in simulation a folder of ``state_root``
    (successive runs sharing their centres' state) or of the run."""
    configured = str(node_config.get("state-dir", "") or "")
    if configured:
        return Path(configured)
    if (config.state_root or config.run_dir) and "partition-id" in node_config:
        root = Path(config.state_root) if config.state_root else Path(config.run_dir) / "state"
        return root / f"centre-{node_config['partition-id']}"
    return None


def open_ledger(config: RunConfig, node_config: Mapping[str, object]) -> PrivacyLedger:
    """The centre's ledger. A centre that cannot keep one does not train with DP."""
    folder = state_dir(config, node_config)
    if folder is None:
        raise DataError("This node has no state-dir for its privacy ledger: set state-dir "
                        "in the SuperNode's node config.")
    return PrivacyLedger(folder, key_path=records_key_path(folder, node_config),
                         actor=centre_name(node_config, folder))


def centre_data(config: RunConfig, node_config: Mapping[str, object]) -> CentreData:
    """The centre's validated, encoded records (cached per process)."""
    data_path, mapping, policy = resolve_data_source(config, node_config)
    return load_centre(data_path, mapping, policy, config.evaluation.test_fraction)


@dataclass(frozen=True)
class RoundResult:
    """The release of one training round: weights and aggregate metrics."""

    weights: OrderedDict[str, torch.Tensor]
    num_examples: int  # the run's released (noisy, booked) training-set size
    epsilon: float  # this run's training epsilon at this centre, at the run's delta
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


def require_training_records(data: CentreData, plan: RunPlan | None = None) -> None:
    """Refuse training when the centre has fewer training records (held-out students do
    not count: they never train) than its policy's ``min_records``: with DP, judged on
    the run's released size (``plan.public_size``: noisy and booked), so that the refusal
    is that mechanism's output and one student more or less changes it only through the
    noise (``common.releases``); without DP (no guarantee), on the exact count."""
    count = data.num_train if plan is None else plan.public_size
    if count < data.policy.min_records:
        what = "usable training records" if plan is None else \
            "training records by its released (noisy) size"
        raise CentreRefusal(
            f"The centre has {count} {what}, fewer than the {data.policy.min_records} its "
            "policy requires to take part in training.",
            Reason.TOO_FEW_RECORDS, Reply.REFUSED)


def centre_plan(config: RunConfig, data: CentreData, run_name: str,
                state_dir: Path | None, ledger: PrivacyLedger | None) -> RunPlan:
    """The centre's mechanism for ``run_name`` (see :func:`training_plan`)."""
    return training_plan(config, data, run_name, state_dir, ledger)[0]


def training_plan(config: RunConfig, data: CentreData, run_name: str,
                  state_dir: Path | None,
                  ledger: PrivacyLedger | None) -> tuple[RunPlan, CentreData]:
    """The centre's mechanism for ``run_name`` and the records the run trains on.

    The mechanism is the one the centre fixed at its first training task of the run
    (kept in ``state_dir``), or a new one from a size released now and booked in
    ``ledger`` (``client.privacy.run_plan``). With a ledger, the records are those whose own
    lifetime budget the run leaves within the cap, each set booked as the run's cohort
    before the first release over it (``client.privacy.student_budget``). Without DP the plan
    uses the exact size and every record: such runs are references, with no guarantee
    to keep."""
    floor = data.policy.privacy
    if not config.privacy.dp:
        require_training_records(data)
        return plan_for(data.num_train, config, floor), data
    budget = StudentBudget(ledger, data, config) if ledger is not None else None
    plan = load_plan(state_dir, run_name) if state_dir is not None else None
    if plan is None:
        counted = data
        if ledger is not None and budget is not None:
            history = [*run_history(ledger, run_name, "train"), size_release()]
            check_run_budget(history, config, floor, "release of the training-set size")
            counted = budget.size_records(run_name)
            _book(ledger, run_name, 0, "train", [size_release()], data)
        # Seeded noise (research runs) is salted by the release, never by the count.
        size = released_size(counted.num_train, noise_generator(config, SIZE_SALT))
        plan = plan_for(size, config, floor)
        if state_dir is not None:
            save_plan(state_dir, run_name, plan)
    # After the size release: taking part is decided on it (booked), not on the count.
    require_training_records(data, plan)
    if budget is None:
        return plan, data
    return plan, budget.training_records(run_name, plan)


def evaluation_records(config: RunConfig, data: CentreData, run_name: str,
                       ledger: PrivacyLedger | None,
                       survivors_min: int | None = None) -> CentreData:
    """The held-out records the run's evaluation releases may use: with a ledger, those
    whose own budget every evaluation release of the run leaves within the cap
    (``survivors_min``: the SecAgg+ threshold when the centre adds a share of
    distributed noise, ``client.privacy.secure_evaluation``)."""
    if ledger is None or not config.privacy.dp:
        return data
    return StudentBudget(ledger, data, config).evaluation_records(run_name, survivors_min)


def _book(ledger: PrivacyLedger, run_name: str, server_round: int, kind: str,
          mechanisms: list[tuple[float, float, int]], data: CentreData) -> None:
    """Book at the centre's own delta against its lifetime cap."""
    try:
        ledger.book(run_id=run_name, server_round=server_round, kind=kind,
                    mechanisms=mechanisms, delta=data.policy.privacy.delta,
                    cap=data.policy.epsilon_cap)
    except BudgetExceeded as exc:
        raise CentreRefusal(str(exc), Reason.LIFETIME_CAP, Reply.REFUSED) from exc


def train_round(
    config: RunConfig,
    data: CentreData,
    global_weights: dict[str, torch.Tensor],
    server_round: int,
    plan: RunPlan,
    ledger: PrivacyLedger | None = None,
    run_id: str = "",
) -> RoundResult:
    """Train the global model on the centre's records for ``local_epochs`` epochs of the
    run's public ``plan``.

    Refuses (before any training) when the centre has fewer training records than its
    policy requires, when the round would take the run past its budget as the
    ``ledger`` booked it (``client.privacy.run_plan.check_run_budget``), or the centre's
    lifetime spend past its cap. The release is booked before training, so it is on
    record before the update can leave. The returned ``epsilon`` is the composition of
    this run's booked training rows (without a ledger: of the plan's releases through
    ``server_round``), at the run's delta.
    """
    require_training_records(data, plan if config.privacy.dp else None)
    model = build_model(model_config(config), seed=config.seed)
    set_weights(model, global_weights)
    dp: DPSettings | None = None
    epsilon = 0.0
    if config.privacy.dp:
        this_round = plan.round_mechanism()
        if ledger is not None:
            history = [*run_history(ledger, run_id, "train"), this_round]
            epsilon = check_run_budget(history, config, data.policy.privacy,
                                       f"training round {server_round}")
            _book(ledger, run_id, server_round, "train", [this_round], data)
        else:
            history = [size_release(), (this_round[0], this_round[1],
                                        this_round[2] * max(1, server_round))]
            epsilon = composed_epsilon(history, config.privacy.delta,
                                       config.privacy.accountant)
        dp = DPSettings(noise_multiplier=plan.noise_multiplier,
                        max_grad_norm=config.privacy.max_grad_norm)
    train_local(
        model,
        data.x_train,
        data.y_train,
        epochs=config.local_epochs,
        batch_size=plan.batch_size,
        steps_per_epoch=plan.steps_per_epoch,
        learning_rate=config.training.learning_rate,
        dp=dp,
        seed=config.seed + server_round,
        reproducible=config.privacy.reproducible_noise,
    )
    weights, update_norm = bound_update(
        get_weights(model), global_weights, config.training.max_update_norm
    )
    return RoundResult(weights, plan.public_size, epsilon, update_norm)


def evaluate_round(
    config: RunConfig,
    data: CentreData,
    global_weights: dict[str, torch.Tensor],
    server_round: int | None = None,
    ledger: PrivacyLedger | None = None,
    run_id: str = "",
    audit: AuditRequest | None = None,
    edges: EdgesRequest | None = None,
) -> dict[str, int | float | list[float]]:
    """Aggregate evaluation of the global model on the centre's held-out records:
    score histograms by label, or with ``audit`` the equity audit's per-group counts at
    its threshold, never a per-student score. The request is checked first
    (``client.privacy.evaluation.check_evaluation_request``: an unscheduled round, a malformed
    or repeated audit are refused, nothing booked). With DP, the counts carry Gaussian
    noise and the release is booked first (see ``client.privacy.evaluation``), over the held-out
    records whose own budget the run's evaluation leaves within the cap
    (``client.privacy.student_budget``)."""
    check_evaluation_request(config, server_round or config.rounds, audit, ledger, run_id,
                             edges)
    data = evaluation_records(config, data, run_id, ledger)
    model = build_model(model_config(config), seed=config.seed)
    set_weights(model, global_weights)
    probabilities = predict_proba(model, data.x_test)
    return evaluation_release(
        config, data, probabilities, server_round or config.rounds, ledger, run_id, audit,
        None if edges is None else edges.edges,
    )
