"""The centralised reference: the same architecture trained WITHOUT DP on the pooled
training records of all centres, scored on the same pooled held-out records.

It is what federation with DP is compared against (``auc_centralized``). It exists
only in simulations and on loopback, where one process may see every centre's data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from client.ingest.centre_data import CentreData, load_centre
from common.config import RunConfig
from common.model import ModelConfig, build_model, predict_proba
from common.privacy.accounting import MIN_BATCH
from common.training import train_local

CENTRALIZED_BATCH = 256


def pooled_data(
    data_files: list[Path], config: RunConfig, mapping: Path | None = None
) -> list[CentreData]:
    """Every centre's records, validated and split exactly as the centres do it."""
    return [
        load_centre(str(path), str(mapping) if mapping else None, None,
                    config.evaluation.test_fraction)
        for path in data_files
    ]


def centralized_auc(
    data_files: list[Path], config: RunConfig, mapping: Path | None = None
) -> float:
    """Pooled held-out ROC AUC of a model trained centrally without DP."""
    return centralized_auc_of(pooled_data(data_files, config, mapping), config)


def centralized_auc_of(centres: list[CentreData], config: RunConfig) -> float:
    """Pooled held-out ROC AUC of a model trained centrally without DP on ``centres``."""
    x_train = np.concatenate([c.x_train for c in centres])
    y_train = np.concatenate([c.y_train for c in centres])
    x_test = np.concatenate([c.x_test for c in centres])
    y_test = np.concatenate([c.y_test for c in centres])
    model = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    train_local(
        model,
        x_train,
        y_train,
        epochs=config.training.centralized_epochs,
        # Small pooled sets still get enough optimiser steps.
        batch_size=max(MIN_BATCH, min(CENTRALIZED_BATCH, len(y_train) // 16)),
        learning_rate=1e-3,
        dp=None,
        seed=config.seed,
        reproducible=True,
    )
    return float(roc_auc_score(y_test, predict_proba(model, x_test)))
