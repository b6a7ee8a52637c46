"""Model files for the scoring tests: checkpoints in the run folder's format, and a
hand-set model whose attributions are known."""

from __future__ import annotations

from pathlib import Path

import torch

from common.encoding import FEATURE_SLICES
from common.model import ModelConfig, RiskModel, build_model


def save_checkpoint(path: Path, model: RiskModel) -> Path:
    """Save as ``server.run_folder.save_model`` does: weights beside their
    configuration."""
    torch.save(
        {"state_dict": model.state_dict(), "model_config": model.config.to_dict(),
         "run_config": {"scenario": "test"}},
        path,
    )
    return path


def random_model(seed: int = 3) -> RiskModel:
    return build_model(ModelConfig(hidden=(16, 8)), seed=seed)


def hand_set_model(
    risk: str = "absence_rate", risk_weight: float = 5.0,
    protective: str = "extracurricular", protective_weight: float = 3.0,
) -> RiskModel:
    """logit = risk_weight * relu(value of ``risk``) - protective_weight * relu(value of
    ``protective``): one hidden unit each, reading the predictor's value slot only."""
    model = RiskModel(ModelConfig(hidden=(2,)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        first, last = model.net[0], model.net[2]
        first.weight[0, FEATURE_SLICES[risk].start] = 1.0
        first.weight[1, FEATURE_SLICES[protective].start] = 1.0
        last.weight[0, 0] = risk_weight
        last.weight[0, 1] = -protective_weight
    return model
