"""Membership-inference audit: how well can an attacker holding the final model tell a
centre's training students from its held-out students?

The attack is the loss threshold (Yeom et al. 2018): call a record a member when the
model's loss on it is below a threshold. Its advantage is the best TPR - FPR over all
thresholds (0: no better than chance; 1: perfect). DP-SGD bounds it: for an
(epsilon, delta)-DP training, advantage <= (e^epsilon - 1 + 2 delta) / (e^epsilon + 1).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_curve

from client.ingest.centre_data import CentreData
from common.model import RiskModel, predict_proba


def record_losses(
    model: RiskModel, x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Binary cross-entropy of each record under the model."""
    p = np.clip(predict_proba(model, x), 1e-7, 1 - 1e-7)
    return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)), dtype=np.float64)


def loss_threshold_advantage(model: RiskModel, centres: list[CentreData]) -> float:
    """Best TPR - FPR of the loss-threshold attack, members = training records of all
    centres, non-members = their held-out records."""
    member = np.concatenate([record_losses(model, c.x_train, c.y_train) for c in centres])
    outsider = np.concatenate([record_losses(model, c.x_test, c.y_test) for c in centres])
    is_member = np.concatenate([np.ones(len(member)), np.zeros(len(outsider))])
    fpr, tpr, _ = roc_curve(is_member, -np.concatenate([member, outsider]))
    return float(np.max(tpr - fpr))


def dp_advantage_bound(epsilon: float, delta: float) -> float:
    """Upper bound on any membership attack's advantage under (epsilon, delta)-DP."""
    return (math.exp(epsilon) - 1 + 2 * delta) / (math.exp(epsilon) + 1)
