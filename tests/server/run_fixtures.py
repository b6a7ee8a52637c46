"""A finished run folder, written in the formats the runner and the lead's equity audit
write, with known figures (for the model card, the registry and the run report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from common.config import RunConfig
from common.metrics import score_histogram
from common.model import ModelConfig, build_model
from server import run_folder
from server.summary import Summary

SUMMARY: dict[str, Any] = {
    "scenario": "fixture", "rounds": 3, "rounds_completed": 3, "num_centres": 4,
    "num_centres_total": 4, "num_students": 5000, "num_train": 4000, "num_test": 1000,
    "auc_pooled": 0.78, "pr_auc_pooled": 0.41, "brier_pooled": 0.12,
    "calibration_error_pooled": 0.03, "auc_centralized": 0.8, "dp": True,
    "epsilon_target": 3.0, "epsilon_max": 2.95, "delta": 1e-6, "accountant": "rdp",
    "privacy_unit": "one student's record, per centre, over the whole run",
    "scenario_file": "fixture",
}

EQUITY: dict[str, Any] = {
    "threshold": 0.5,
    "min_cell": 10,
    "groups": {
        "sex": {
            "F": {"n": 480, "positives": 60, "auc": 0.8, "auc_ci": [0.75, 0.85], "tpr": 0.6,
                  "fpr": 0.1, "calibration_error": 0.02, "mean_predicted": 0.13,
                  "observed_rate": 0.125},
            "M": {"n": 520, "positives": 100, "auc": 0.76, "auc_ci": [0.71, 0.81], "tpr": 0.65,
                  "fpr": 0.14, "calibration_error": 0.03, "mean_predicted": 0.22,
                  "observed_rate": 0.19},
        },
        "ehdaa": {
            "false": {"n": 700, "positives": 70, "auc": 0.77, "auc_ci": [0.72, 0.82],
                      "tpr": 0.5, "fpr": 0.08, "calibration_error": 0.01,
                      "mean_predicted": 0.1, "observed_rate": 0.1},
            "true": {"n": 300, "positives": 90, "auc": 0.74, "auc_ci": [0.68, 0.8],
                     "tpr": 0.7, "fpr": 0.2, "calibration_error": 0.04,
                     "mean_predicted": 0.26, "observed_rate": 0.3},
        },
        "indigenous": {},
    },
    "gaps": {"sex": {"equal_opportunity_gap": 0.05, "fpr_gap": 0.04, "calibration_gap": 0.01},
             "ehdaa": {"equal_opportunity_gap": 0.2, "equal_opportunity_gap_ci": [0.11, 0.28],
                       "equal_opportunity_gap_groups": ["true", "false"],
                       "fpr_gap": 0.12, "calibration_gap": 0.03}},
    "suppressed": ["indigenous=true"],
}

PARTICIPATION: dict[str, Any] = {
    "centres": [
        {"node": 11, "size_band": "small", "num_train": 400, "num_test": 100, "epsilon": 2.95},
        {"node": 12, "size_band": "small", "num_train": 600, "num_test": 150, "epsilon": 2.9},
        {"node": 13, "size_band": "medium", "num_train": 1000, "num_test": 250, "epsilon": 2.8},
        {"node": 14, "size_band": "large", "num_train": 2000, "num_test": 500, "epsilon": 2.7},
    ],
    "auc_by_size_band": {"small": 0.74, "medium": None, "large": 0.8},
}


def write_run_folder(
    run_dir: Path,
    *,
    equity: bool = True,
    participation: bool = True,
    summary_extra: dict[str, Any] | None = None,
) -> Path:
    """A complete run folder; ``equity``/``participation`` false leave those files out."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = RunConfig(scenario="fixture", rounds=3, run_dir=str(run_dir))
    run_folder.write_config(run_dir, config)
    model_config = ModelConfig(hidden=(8,))
    run_folder.save_model(run_dir, build_model(model_config, 1).state_dict(), model_config,
                          config)
    for r, (auc, eps) in enumerate([(0.7, 1.5), (0.75, 2.3), (0.78, 2.95)], start=1):
        run_folder.append_round(run_dir, {"round": r, "eval_auc": auc, "eval_pr_auc": auc / 2,
                                          "eval_brier": 0.2 - r / 100,
                                          "eval_calibration_error": 0.05 - r / 100,
                                          "train_epsilon_max": eps, "refusals": []})
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.16).astype(float)
    scores = np.clip(0.1 + 0.4 * labels + rng.normal(0, 0.12, 1000), 0, 1)
    h = score_histogram(scores, labels, 200)
    run_folder.write_json(run_dir / run_folder.EVALUATION, {
        "hist_pos": h.positives.tolist(), "hist_neg": h.negatives.tolist(),
        "prob_sum": h.probability_sum.tolist()})
    run_folder.update_summary(run_dir, Summary.model_validate({**SUMMARY, **(summary_extra or {})}))
    if equity:
        (run_dir / "equity.json").write_text(json.dumps(EQUITY), encoding="utf-8")
    if participation:
        (run_dir / "participation.json").write_text(json.dumps(PARTICIPATION), encoding="utf-8")
    return run_dir
