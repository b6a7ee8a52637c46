"""Deterministic feature encoding of the harmonised record.

Every centre encodes with the same fixed vocabularies, bins and scaling taken from
``common.schema``: nothing is fitted on a centre's data, so a feature means the same
thing everywhere and the encoding itself leaks nothing about a centre.

Layout (fixed order, ``FEATURE_NAMES``):
- numeric predictor: value scaled to 0-1 by the schema's fixed bounds (clipped), then a
  missing indicator (1 when missing, the value slot is then 0);
- boolean predictor: 0/1, then a missing indicator;
- categorical predictor: one-hot over the vocabulary, then a missing slot.
A predictor refused by a centre's policy is encoded as missing for every row, so the
model input has the same shape at every centre.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.schema import COLUMN_BY_NAME, PREDICTORS, SCHEMA_VERSION, Column, Kind

ENCODING_VERSION = f"{SCHEMA_VERSION}+enc1"


def _feature_names_of(column: Column) -> list[str]:
    if column.kind is Kind.CATEGORICAL:
        return [f"{column.name}={v}" for v in column.vocabulary] + [f"{column.name}:missing"]
    return [column.name, f"{column.name}:missing"]


FEATURE_NAMES: tuple[str, ...] = tuple(
    name for predictor in PREDICTORS for name in _feature_names_of(COLUMN_BY_NAME[predictor])
)
NUM_FEATURES = len(FEATURE_NAMES)

# Which encoded features come from which predictor (for attributions and policy).
FEATURE_SLICES: dict[str, slice] = {}
_offset = 0
for _predictor in PREDICTORS:
    _width = len(_feature_names_of(COLUMN_BY_NAME[_predictor]))
    FEATURE_SLICES[_predictor] = slice(_offset, _offset + _width)
    _offset += _width


def _as_bool_float(series: pd.Series) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    missing = series.isna().to_numpy()
    values = np.zeros(len(series), dtype=np.float32)
    present = ~missing
    values[present] = series[present].astype(bool).to_numpy(dtype=np.float32)
    return values, missing


def encode(frame: pd.DataFrame, refused: Iterable[str] = ()) -> npt.NDArray[np.float32]:
    """Encode harmonised rows into the model's float32 matrix (rows x ``NUM_FEATURES``).

    ``frame`` must already be validated against the schema; absent predictor columns
    and the predictors in ``refused`` are encoded as missing.
    """
    refused_set = set(refused)
    n = len(frame)
    out = np.zeros((n, NUM_FEATURES), dtype=np.float32)
    for predictor in PREDICTORS:
        column = COLUMN_BY_NAME[predictor]
        cols = FEATURE_SLICES[predictor]
        if predictor in refused_set or predictor not in frame.columns:
            out[:, cols.stop - 1] = 1.0
            continue
        series = frame[predictor]
        if column.kind is Kind.NUMERIC:
            raw = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            missing = ~np.isfinite(raw)
            low, high = column.scaling
            scaled = np.clip((np.where(missing, low, raw) - low) / (high - low), 0.0, 1.0)
            out[:, cols.start] = scaled.astype(np.float32)
            out[:, cols.start + 1] = missing
        elif column.kind is Kind.BOOLEAN:
            values, missing = _as_bool_float(series)
            out[:, cols.start] = values
            out[:, cols.start + 1] = missing
        else:
            text = series.astype("string")
            for offset, value in enumerate(column.vocabulary):
                out[:, cols.start + offset] = (text == value).fillna(False).to_numpy()
            out[:, cols.stop - 1] = 1.0 - out[:, cols.start : cols.stop - 1].sum(axis=1)
    return out


def encode_labels(frame: pd.DataFrame) -> npt.NDArray[np.float32]:
    """The label as float32 0/1; rows must have a known label."""
    label = frame["left_without_diploma"]
    assert not label.isna().any(), "encode_labels needs rows with a known label"
    return np.asarray(label.astype(bool).to_numpy(), dtype=np.float32)


def keep_only(x: npt.NDArray[np.float32], predictors: Iterable[str]) -> npt.NDArray[np.float32]:
    """A copy of encoded rows in which every predictor not in ``predictors`` is encoded
    as missing (same layout, so the same model architecture applies)."""
    keep = set(predictors)
    out = x.copy()
    for predictor, cols in FEATURE_SLICES.items():
        if predictor not in keep:
            out[:, cols] = 0.0
            out[:, cols.stop - 1] = 1.0
    return out
