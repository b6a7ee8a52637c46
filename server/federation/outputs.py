"""The run folder's outputs, written the same way by the plain and the secure
federation from the run's book (``server.federation.bookkeeping``): the model, ``summary.json``,
the equity audit, participation, the last pooled evaluation and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.calibration import Calibration, fit_calibration
from common.config import RunConfig
from common.metrics import ScoreHistogram
from common.model import ModelConfig
from common.privacy.accounting import composed_epsilon
from common.protocol import NUM_EXAMPLES
from server import run_folder
from server.federation.bookkeeping import HISTOGRAM_KEYS, RunBook, edges_in, participation
from server.federation.checkpoint import Checkpoint
from server.publication.model_card import write_model_card
from server.summary import CentreTrust, Summary, sentence_record


def _calibration(evaluation: dict[str, list[float]] | None) -> Calibration | None:
    """Platt scaling fitted on the final pooled (released) histogram: post-processing."""
    if not evaluation:
        return None
    pos, neg, probability_sum = (np.asarray(evaluation[key]) for key in HISTOGRAM_KEYS)
    return fit_calibration(ScoreHistogram(pos, neg, probability_sum, 0.0,
                                          edges_in(evaluation)))


def write_outputs(
    run_dir: Path,
    config: RunConfig,
    book: RunBook,
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
    completed = [entry for entry in book.logs.values() if entry.evaluation]
    last = max(completed, key=lambda entry: entry.round, default=None)
    evaluation = last.evaluation if last else {}
    # The per-run epsilons the centres reported from their own ledgers (training and
    # evaluation apart: held-out students never train, the two compose in parallel).
    centres = list(book.centres.values())
    epsilon_train = max((c.epsilon for c in centres), default=0.0)
    epsilon_evaluation = max((c.epsilon_evaluation for c in centres), default=0.0)
    num_train = max((entry.train.get(NUM_EXAMPLES, 0.0) for entry in completed), default=0.0)
    nan = float("nan")
    logs = list(book.logs.values())
    summary = Summary(
        scenario=config.scenario,
        run_name=state.run_name,
        rounds=config.rounds,
        rounds_completed=state.round,
        stopped=str(stopped) if stopped else None,
        # The same sentence with its message id and parameters, for a page or command
        # to show in its reader's language (``run_folder.stopped_reason``).
        stopped_sentence=sentence_record(stopped) if stopped else None,
        aggregation=config.strategy.aggregation,
        updates_rejected=sum(len(entry.rejections) for entry in logs),
        replies_missing=sum(len(entry.absent) for entry in logs),
        rounds_unchanged=sum(1 for entry in logs if entry.updates == 0),
        num_centres=int(evaluation.get("centres", 0)),
        num_train=int(num_train),
        num_test=int(evaluation.get(NUM_EXAMPLES, 0)),
        num_students=int(num_train + evaluation.get(NUM_EXAMPLES, 0)),
        auc_pooled=evaluation.get("auc", nan),
        pr_auc_pooled=evaluation.get("pr_auc", nan),
        brier_pooled=evaluation.get("brier", nan),
        calibration_error_pooled=evaluation.get("calibration_error", nan),
        # What the school teams read: the probabilities after the recalibration saved
        # in model.pt (``perseverance-client score`` applies it).
        calibration_error_pooled_calibrated=evaluation.get("calibration_error_calibrated",
                                                           nan),
        dp=config.privacy.dp,
        epsilon_target=config.privacy.epsilon if config.privacy.dp else None,
        epsilon_train_max=epsilon_train if config.privacy.dp else None,
        epsilon_evaluation=(epsilon_evaluation if config.privacy.dp
                            and config.privacy.evaluation_noise else None),
        # Secure mode with distributed noise: the central epsilon the SUMMED evaluation
        # releases meet (``common.privacy.accounting.summed_rows``), beside the centres' own booked
        # ``epsilon_evaluation`` (what each share costs seen alone).
        epsilon_evaluation_sum=(composed_epsilon(book.sum_rows, config.privacy.delta)
                                if book.sum_rows else None),
        equity_audit_done=state.audited,
        # Held-out students never train: the two compose in parallel, the larger holds.
        epsilon_max=max(epsilon_train, epsilon_evaluation) if config.privacy.dp else None,
        delta=config.privacy.delta,
        accountant=config.privacy.accountant,
        privacy_unit="one student's record, per centre, over the whole run",
        centres_refused=dict(sorted(book.refused.items())),
        # Secure mode: how each centre booked its evaluation releases (its trust model
        # of distributed noise, public: its policy; docs/PRIVACY.md); null in plain mode.
        centres_trust=({name: CentreTrust.model_validate(trust)
                        for name, trust in sorted(book.trust.items())}
                       if config.privacy.secure_aggregation else None),
        server_seconds=round(seconds, 2),
    )
    audited = book.logs.get(config.rounds)
    if audited is not None and audited.equity:
        run_folder.write_json(run_dir / run_folder.EQUITY, audited.equity)
    if last is not None:
        run_folder.write_json(
            run_dir / run_folder.PARTICIPATION, participation(centres)
        )
    if state.last_evaluation:
        run_folder.write_json(run_dir / run_folder.EVALUATION, state.last_evaluation)
    run_folder.update_summary(run_dir, summary)
    # Every trained model gets its card, also in deployment (launchers rewrite it after
    # adding their references and baselines).
    if state.round > 0:
        write_model_card(run_dir)
