"""The risk model: a small MLP over the fixed encoding, configured by one dataclass.

No BatchNorm (Opacus refuses it: batch statistics mix students and leak across
records). The output is a logit; ``torch.sigmoid`` of it is the probability.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from common.calibration import Calibration
from common.encoding import ENCODING_VERSION, NUM_FEATURES
from common.errors import PerseveranceError
from common.i18n.catalogue import N_


@dataclass(frozen=True)
class ModelConfig:
    """Architecture; stored beside the weights in every checkpoint."""

    num_features: int = NUM_FEATURES
    hidden: tuple[int, ...] = (64, 32)
    encoding_version: str = ENCODING_VERSION

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def num_parameters(self) -> int:
        """The number of weights and biases, computed without building the model."""
        widths = (self.num_features, *self.hidden, 1)
        return sum((a + 1) * b for a, b in pairwise(widths))


class RiskModel(nn.Module):
    """MLP ``num_features -> hidden... -> 1`` with ReLU; outputs logits.

    ``calibration`` maps its probabilities to calibrated ones (identity until the
    server fits it at the end of a run); it is not part of the federated weights.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        assert config.hidden, "the model needs at least one hidden layer"
        self.config = config
        self.calibration = Calibration()
        layers: list[nn.Module] = []
        width = config.num_features
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)
        return logits.squeeze(-1)


def build_model(config: ModelConfig, seed: int) -> RiskModel:
    """A freshly initialised model, identical for the same seed."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = RiskModel(config)
    torch.random.set_rng_state(generator_state)
    return model


def get_weights(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """Detached copy of the weights, without Opacus's ``_module.`` prefix."""
    inner = getattr(model, "_module", model)
    return OrderedDict((k, v.detach().clone()) for k, v in inner.state_dict().items())


def set_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    inner = getattr(model, "_module", model)
    inner.load_state_dict(weights, strict=True)


@torch.no_grad()
def predict_proba(
    model: nn.Module, x: npt.NDArray[np.float32], batch_size: int = 65_536
) -> npt.NDArray[np.float64]:
    """Probabilities 0-1 for each row of an encoded matrix."""
    model.eval()
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), batch_size):
        chunk = torch.from_numpy(x[start : start + batch_size])
        out[start : start + len(chunk)] = torch.sigmoid(model(chunk)).double().numpy()
    calibration = getattr(model, "calibration", None)
    if isinstance(calibration, Calibration) and calibration != Calibration():
        return calibration.apply(out)
    return out


class CheckpointError(PerseveranceError, ValueError):
    """A model file is not a usable Persévérance model. One sentence."""


def read_model(path: Path) -> RiskModel:
    """Rebuild a model and its calibration from a checkpoint (``model.pt``).

    Only tensors and plain values are unpickled (``weights_only``): a model file is
    data, never code. Raises ``CheckpointError`` when the file is not a usable model.
    """
    if not path.is_file():
        raise CheckpointError(N_("The model file %(path)s does not exist; give the model.pt "
                                 "of a run.", path=path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(N_(
            "The model file %(path)s is not a Persévérance model (%(error)s); give the "
            "model.pt of a run.", path=path, error=type(exc).__name__)) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "model_config"} <= set(checkpoint):
        raise CheckpointError(N_(
            "The model file %(path)s lacks the weights or the model configuration; give the "
            "model.pt of a run.", path=path))
    raw = checkpoint["model_config"]
    version = raw.get("encoding_version") if isinstance(raw, dict) else None
    if version != ENCODING_VERSION:
        raise CheckpointError(N_(
            "The model file %(path)s was trained on feature encoding %(version)s, but this "
            "client encodes with %(current)s; use a model trained with this version.",
            path=path, version=version, current=ENCODING_VERSION))
    try:
        config = ModelConfig(
            num_features=int(raw["num_features"]),
            hidden=tuple(int(h) for h in raw["hidden"]),
            encoding_version=str(version),
        )
        if config.num_features != NUM_FEATURES:
            raise ValueError(config.num_features)
        model = RiskModel(config)
        model.load_state_dict(checkpoint["state_dict"], strict=True)
        calibration = checkpoint.get("calibration") or {}
        model.calibration = Calibration(
            slope=float(calibration.get("slope", 1.0)),
            intercept=float(calibration.get("intercept", 0.0)),
        )
    except (KeyError, TypeError, ValueError, RuntimeError, AssertionError, AttributeError):
        raise CheckpointError(N_(
            "The model file %(path)s has weights that do not fit its configuration; give an "
            "unmodified model.pt of a run.", path=path)) from None
    model.eval()
    return model
