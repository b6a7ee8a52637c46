"""Baselines every simulated run reports beside the federated model.

- Environment-only: the same federation (same DP budget, rounds, model) trained on the
  school-level indices only (IMSE and SFR deciles). Perdomo et al. (2023) found that for
  Wisconsin's early-warning system, targeting by environment did about as well as
  individual scores: what the individual model adds must be shown, not assumed.
- Local-only: each centre trains alone with the same DP budget and scores its own
  held-out students: what federation gives, especially to small centres.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from client.ingest.centre_data import CentreData
from common.config import RunConfig
from common.equity.audit import MIN_CENTRES_PER_CELL, SIZE_BANDS, size_band
from common.model import predict_proba
from server.summary import Summary
from simulations.inprocess import federate, restricted, scores, train_alone

ENVIRONMENT_PREDICTORS = ("imse_decile", "sfr_decile")


def environment_only_auc(config: RunConfig, centres: list[CentreData]) -> float:
    """Pooled held-out AUC of the federation trained on school-level indices only."""
    school_level = restricted(centres, ENVIRONMENT_PREDICTORS)
    probabilities, labels = scores(federate(config, school_level), school_level)
    return float(roc_auc_score(labels, probabilities))


def local_only(config: RunConfig, centres: list[CentreData]) -> Summary:
    """Each centre alone: pooled AUC of all students scored by their own centre's model,
    and the same by centre size band (bands of fewer than three centres not reported),
    as the summary's keys."""
    per_centre = []
    for centre in centres:
        model = train_alone(config, centre)
        per_centre.append((centre, predict_proba(model, centre.x_test)))
    probabilities = np.concatenate([p for _, p in per_centre])
    labels = np.concatenate([c.y_test for c, _ in per_centre])
    by_band: dict[str, float | None] = {}
    for band, _, _ in SIZE_BANDS:
        members = [(c, p) for c, p in per_centre if size_band(c.num_train + c.num_test) == band]
        y = np.concatenate([c.y_test for c, _ in members]) if members else np.array([])
        if len(members) >= MIN_CENTRES_PER_CELL and 0 < y.sum() < len(y):
            by_band[band] = float(roc_auc_score(y, np.concatenate([p for _, p in members])))
        else:
            by_band[band] = None
    return Summary(auc_local_only=float(roc_auc_score(labels, probabilities)),
                   auc_local_only_by_size_band=by_band)
