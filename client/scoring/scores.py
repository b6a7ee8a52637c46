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

from client.ingest.centre_data import DataError, SitePolicy
from common.encoding import encode
from common.i18n.catalogue import N_, word
from common.model import CheckpointError, RiskModel, predict_proba, read_model
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
    """Rebuild the global model (with its calibration) from a run folder's ``model.pt``.

    Raises ``ModelFileError`` (exit code 2) when the file is not a usable model.
    """
    try:
        return read_model(path)
    except CheckpointError as exc:
        raise ModelFileError(exc.args[0] if exc.args else str(exc)) from None


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
THE_SITE_POLICY = word(N_("the site policy"))  # a policy given by no file


def parse_support(table: Any, source: str) -> SupportThresholds:
    """Check a ``[support]`` table (``high``, ``moderate``); defaults for absent keys."""
    if not isinstance(table, dict):
        raise DataError(N_("In %(source)s, [support] must be a table with high and "
                           "moderate.", source=source))
    unknown = sorted(set(table) - {f.name for f in dataclasses.fields(SupportThresholds)})
    if unknown:
        raise DataError(N_(
            "In %(source)s, [support] has the unknown key %(key)s (known keys: high, "
            "moderate); correct it and run again.", source=source, key=repr(unknown[0])))
    values: dict[str, float] = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            raise DataError(N_("In %(source)s, support.%(key)s must be a number between 0 "
                               "and 1.", source=source, key=key))
        values[key] = float(value)
    try:
        return SupportThresholds(**values)
    except ValueError as exc:
        raise DataError(N_("In %(source)s, %(problem)s Correct [support] and run again.",
                           source=source, problem=str(exc))) from None


def support_thresholds(policy: SitePolicy, source: str = THE_SITE_POLICY) -> SupportThresholds:
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
