"""Why a student has the support priority they have: Integrated Gradients (captum).

Attributions are computed on the model's logit (log-odds), where Integrated Gradients
is complete: for each student, the attributions of all encoded features add up to
``logit(student) - logit(reference)``. They are then summed per predictor over its
encoded features (``common.encoding.FEATURE_SLICES``: value and missing indicator, or
the one-hot slots), so a factor is a predictor as the school team knows it.

The reference (IG's baseline) is a fixed *reference student* (``REFERENCE_STUDENT``):
typical, documented values (``Column.reference`` in ``common.schema``, within its ranges,
from Québec's public figures), the same at every centre and in every run. A factor
therefore reads "compared with a typical student, this raises / lowers the priority".
Why not the alternatives:

- all-missing: the model never sees such a record (centres send known values), so its
  output there is arbitrary and so would be every attribution measured from it;
- the centre's mean student: explanations of one student would change with whichever
  other students are in the extract, and differ between centres for the same record.

A predictor the student has no value for (missing, or refused by the centre's policy)
gets the student's own encoding in the reference, hence an attribution of exactly zero:
missing information is never shown as a factor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from captum.attr import IntegratedGradients

from common.encoding import FEATURE_SLICES, encode
from common.model import RiskModel
from common.schema import COLUMN_BY_NAME, PREDICTORS

# A typical secondary student: each predictor's ``reference`` in the schema (middle of
# secondary, no lag, no plan, no suspension, grades near the Québec averages, no trend).
REFERENCE_STUDENT: dict[str, object] = {p: COLUMN_BY_NAME[p].reference for p in PREDICTORS}

DEFAULT_STEPS = 32  # Gauss-Legendre points: completeness error < 1e-3 logit on our MLPs
MIN_EFFECT = 0.05  # log-odds; smaller attributions are not shown as factors
CHUNK = 1024  # students per captum call (memory: CHUNK * steps rows)


@dataclass(frozen=True)
class Attributions:
    """Per-student, per-predictor attributions in log-odds, columns in ``PREDICTORS``
    order. ``delta`` is each student's completeness error (sum of attributions minus
    ``logit - reference_logit``)."""

    per_predictor: npt.NDArray[np.float64]
    logit: npt.NDArray[np.float64]
    reference_logit: npt.NDArray[np.float64]
    delta: npt.NDArray[np.float64]


def reference_encoding() -> npt.NDArray[np.float32]:
    """The encoded reference student (one row)."""
    row: npt.NDArray[np.float32] = encode(pd.DataFrame([REFERENCE_STUDENT]))[0]
    return row


def baselines_for(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The reference for each row of ``x``, with the row's own encoding for every
    predictor it has no value for (its missing slot is set)."""
    base = np.broadcast_to(reference_encoding(), x.shape).copy()
    for predictor in PREDICTORS:
        cols = FEATURE_SLICES[predictor]
        missing = x[:, cols.stop - 1] == 1.0
        base[np.ix_(missing, np.arange(cols.start, cols.stop))] = x[missing, cols]
    return base


def per_predictor(feature_attributions: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Sum encoded-feature attributions (rows x features) per predictor."""
    return np.stack(
        [feature_attributions[:, FEATURE_SLICES[p]].sum(axis=1) for p in PREDICTORS], axis=1
    )


def summed_logit(model: RiskModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """The batch's summed logit, as a one-element tensor.

    Rows do not interact in the model (no batch statistics), so the gradient of the sum
    with respect to a row is that row's own gradient: captum then needs one backward
    pass per chunk instead of one per student and path point (about 30 times faster).
    """

    def forward(x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor = model(x).sum().reshape(1)
        return total

    return forward


def attribute(
    model: RiskModel, x: npt.NDArray[np.float32], steps: int = DEFAULT_STEPS
) -> Attributions:
    """Integrated Gradients of the logit for every row of the encoded matrix ``x``."""
    model.eval()
    ig = IntegratedGradients(summed_logit(model))
    baselines = baselines_for(x)
    parts: list[npt.NDArray[np.float64]] = []
    for start in range(0, len(x), CHUNK):
        inputs = torch.from_numpy(x[start : start + CHUNK])
        base = torch.from_numpy(baselines[start : start + CHUNK])
        attr = ig.attribute(inputs, baselines=base, n_steps=steps, method="gausslegendre")
        parts.append(attr.detach().double().numpy())
    with torch.no_grad():
        logit = model(torch.from_numpy(x)).double().numpy()
        reference_logit = model(torch.from_numpy(baselines)).double().numpy()
    features = np.concatenate(parts) if parts else np.zeros(x.shape, dtype=np.float64)
    return Attributions(
        per_predictor(features),
        logit,
        reference_logit,
        features.sum(axis=1) - (logit - reference_logit),
    )


def top_factors(
    attributions: npt.NDArray[np.float64], k: int = 3, min_effect: float = MIN_EFFECT
) -> tuple[list[list[str]], list[list[str]]]:
    """For each student, the ``k`` predictors that raise the priority most (largest
    positive attribution) and the ``k`` protective ones (most negative), each only when
    its effect is at least ``min_effect`` log-odds."""
    order = np.argsort(-attributions, axis=1, kind="stable")
    raising, protective = [], []
    for row, ranked in zip(attributions, order, strict=True):
        raising.append([PREDICTORS[i] for i in ranked[:k] if row[i] >= min_effect])
        protective.append([PREDICTORS[i] for i in ranked[::-1][:k] if row[i] <= -min_effect])
    return raising, protective
