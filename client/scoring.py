"""Local scoring: the global model's probability and a support-priority level per student.

Runs at the centre only; nothing here is ever uploaded. A level is a *support priority*
for the school team's professional judgement (principle 5), never a label:

- ``high``: probability at or above ``SupportThresholds.high`` (default 0.5);
- ``moderate``: at or above ``SupportThresholds.moderate`` (default 0.25);
- ``low``: below it.

The probability is the global model's estimate (0-1) that the student leaves secondary
school without a diploma or qualification; its pooled calibration is measured at every
round and shown on the model card. The thresholds are the centre's: a ``[support]``
table in its site policy TOML (``high = 0.5``, ``moderate = 0.25``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from client.data import DataError, SitePolicy
from common.encoding import ENCODING_VERSION, NUM_FEATURES, encode
from common.model import ModelConfig, RiskModel, predict_proba
from common.schema import IDENTIFIERS

LEVELS = ("high", "moderate", "low")  # from the highest priority down


class ModelFileError(DataError):
    """The model file cannot be used (not a Persévérance checkpoint, other encoding)."""


@dataclass(frozen=True)
class SupportThresholds:
    """Probability thresholds (0-1) of the support-priority levels; ``moderate < high``.

    The defaults put about one student in five at a moderate or high priority at the
    Québec base rates (about 8-27 % leave without a diploma); a centre with fewer
    support resources raises them, one that wants to reach out earlier lowers them.
    """

    high: float = 0.5
    moderate: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.moderate < self.high < 1.0:
            raise ValueError(
                f"Support thresholds need 0 < moderate < high < 1, got moderate "
                f"{self.moderate} and high {self.high}."
            )


@dataclass(frozen=True)
class ScoredStudents:
    """Scores of an extract's valid rows, in the extract's order.

    ``identifiers`` holds ``student_id``, ``school_id``, ``school_year`` (local only);
    ``x`` the encoded predictors the model saw.
    """

    identifiers: pd.DataFrame
    x: npt.NDArray[np.float32]
    probability: npt.NDArray[np.float64]
    priority: npt.NDArray[np.str_]
    thresholds: SupportThresholds

    def __len__(self) -> int:
        return len(self.probability)

    def counts(self) -> dict[str, int]:
        """Students per level, every level present (0 when empty)."""
        return {level: int((self.priority == level).sum()) for level in LEVELS}


def support_priority(
    probability: npt.NDArray[np.floating], thresholds: SupportThresholds
) -> npt.NDArray[np.str_]:
    """The level of each probability (vectorised): ``high``, ``moderate`` or ``low``."""
    p = np.asarray(probability, dtype=np.float64)
    return np.where(
        p >= thresholds.high, "high", np.where(p >= thresholds.moderate, "moderate", "low")
    )


def load_model(path: Path) -> RiskModel:
    """Rebuild the global model from a run folder's ``model.pt``.

    Only tensors and plain values are unpickled (``weights_only``): a model file is
    data, never code. Raises ``ModelFileError`` when the file is not a usable model.
    """
    if not path.is_file():
        raise ModelFileError(f"The model file {path} does not exist; give the model.pt of a run.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise ModelFileError(
            f"The model file {path} is not a Persévérance model ({type(exc).__name__}); "
            "give the model.pt of a run."
        ) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "model_config"} <= set(checkpoint):
        raise ModelFileError(
            f"The model file {path} lacks the weights or the model configuration; "
            "give the model.pt of a run."
        )
    raw = checkpoint["model_config"]
    version = raw.get("encoding_version") if isinstance(raw, dict) else None
    if version != ENCODING_VERSION:
        raise ModelFileError(
            f"The model file {path} was trained on feature encoding {version}, but this "
            f"client encodes with {ENCODING_VERSION}; use a model trained with this version."
        )
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
    except (KeyError, TypeError, ValueError, RuntimeError, AssertionError):
        raise ModelFileError(
            f"The model file {path} has weights that do not fit its configuration; "
            "give an unmodified model.pt of a run."
        ) from None
    model.eval()
    return model


def score_frame(
    model: RiskModel,
    frame: pd.DataFrame,
    policy: SitePolicy,
    thresholds: SupportThresholds,
) -> ScoredStudents:
    """Encode validated harmonised rows and score them (vectorised, no per-row Python)."""
    x = encode(frame, refused=policy.refused_predictors)
    probability = predict_proba(model, x)
    identifiers = frame[[c for c in IDENTIFIERS if c in frame.columns]].reset_index(drop=True)
    return ScoredStudents(
        identifiers, x, probability, support_priority(probability, thresholds), thresholds
    )


# -- the site policy's [support] table -------------------------------------------------

SUPPORT_TABLE = "support"


def parse_support(table: Any, source: str) -> SupportThresholds:
    """Check a ``[support]`` table (``high``, ``moderate``); defaults for absent keys."""
    if not isinstance(table, dict):
        raise DataError(f"In {source}, [support] must be a table with high and moderate.")
    unknown = sorted(set(table) - {f.name for f in dataclasses.fields(SupportThresholds)})
    if unknown:
        raise DataError(
            f"In {source}, [support] has the unknown key {unknown[0]!r} "
            "(known keys: high, moderate); correct it and run again."
        )
    values: dict[str, float] = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            raise DataError(f"In {source}, support.{key} must be a number between 0 and 1.")
        values[key] = float(value)
    try:
        return SupportThresholds(**values)
    except ValueError as exc:
        raise DataError(f"In {source}, {exc} Correct [support] and run again.") from None


def support_thresholds(policy: SitePolicy, source: str = "the site policy") -> SupportThresholds:
    """The thresholds of the policy's ``[support]`` table (kept whole in ``extra`` by the
    policy reader); the defaults without one."""
    return parse_support(policy.extra.get(SUPPORT_TABLE, {}), source)


def load_scoring_policy(path: Path | None) -> tuple[SitePolicy, SupportThresholds]:
    """The site policy and its support thresholds; defaults for both without a file.

    Raises ``DataError`` (exit code 2) for an unreadable or invalid policy.
    """
    from client.ingest import load_policy

    if path is None:
        return SitePolicy(), SupportThresholds()
    policy = load_policy(path)
    return policy, support_thresholds(policy, str(path))
