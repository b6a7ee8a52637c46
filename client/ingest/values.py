"""Reading cell values as numbers, yes/no values or text, the same way everywhere.

Each reader returns the converted column and a mask of the cells that held a value
that could not be read (so the caller can list those rows); missing cells stay
missing and are not failures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRUE_SPELLINGS = frozenset({"true", "t", "yes", "y", "oui", "o", "vrai", "v", "1", "1.0"})
FALSE_SPELLINGS = frozenset({"false", "f", "no", "n", "non", "faux", "0", "0.0"})
_DECIMAL_COMMA = r"^\s*[-+]?\d+,\d+\s*$"


def is_textual(series: pd.Series) -> bool:
    """True when the column holds text (or mixed objects) rather than numbers or booleans."""
    return not (
        pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype)
    )


def as_number(series: pd.Series, decimal: str = ".") -> tuple[pd.Series, pd.Series]:
    """Float64 values (NaN when missing) and the mask of cells that are not numbers.

    Text cells are stripped; with ``decimal=","`` a cell such as ``12,5`` reads as 12.5.
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        numbers = series.astype("Float64").astype("float64")
        return numbers, pd.Series(False, index=series.index)
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.astype("Float64").astype("float64")
        return numbers, pd.Series(False, index=series.index)
    text = series.astype("string").str.strip()
    text = text.mask(text == "")
    if decimal == ",":
        commas = text.str.match(_DECIMAL_COMMA).fillna(False).astype(bool)
        text = text.where(~commas, text.str.replace(",", ".", regex=False))
    with np.errstate(all="ignore"):
        numbers = pd.to_numeric(text, errors="coerce").astype("Float64").astype("float64")
    failed = text.notna() & numbers.isna()
    return numbers, failed.astype(bool)


def as_boolean(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Nullable booleans and the mask of cells that are not yes/no values.

    Accepted: booleans, 1/0, and (any case) true/false, yes/no, oui/non, vrai/faux,
    t/f, y/n, o/n.
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean"), pd.Series(False, index=series.index)
    text = as_text(series).str.lower()
    truth = pd.Series(pd.NA, index=series.index, dtype="boolean")
    truth[text.isin(TRUE_SPELLINGS).fillna(False).astype(bool)] = True
    truth[text.isin(FALSE_SPELLINGS).fillna(False).astype(bool)] = False
    failed = text.notna() & truth.isna()
    return truth, failed.astype(bool)


def as_text(series: pd.Series) -> pd.Series:
    """Text values, stripped; whole numbers lose a trailing ``.0`` (ids read as floats)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean").astype("string").str.lower()
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.astype("Float64").astype("float64")
        whole = np.isfinite(numbers) & (numbers % 1 == 0) & (numbers.abs() < 2**53)
        text = numbers.astype("string").mask(numbers.isna())
        return text.where(~whole, numbers.where(whole, 0).astype("int64").astype("string"))
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        series = series.map(text_of, na_action="ignore")
    text = series.astype("string").str.strip()
    return text.mask(text == "")


def text_of(value: object) -> str | None:
    """One value as text (None when missing), with the same rules as ``as_text``."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        number = float(value)
        if np.isnan(number):
            return None
        if np.isfinite(number) and number.is_integer() and abs(number) < 2**53:
            return str(int(number))
        return str(number)
    return str(value)
