"""Every CSV the project writes goes through here: cells a spreadsheet would run as a
formula are neutralised, and the file is written atomically.

CSV formula injection: a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is read by Excel, LibreOffice or Google Sheets as a formula
(``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``) when a school team opens the file. As
OWASP advises (https://owasp.org/www-community/attacks/CSV_Injection), such a text
cell is prefixed with a single quote, which makes the spreadsheet show it as text,
and every cell holding a delimiter, a quote or a line break (carriage return
included) is quoted, so that no cell can spill into a new row or column. Numbers stay
numbers: numeric columns are never touched, and neither are text cells that are a
plain number (``-0.5``, ``+3``, ``-1,5``, ``-2e-3``), nor a lone ``-`` (the usual
"no value" code, which has nothing to run). Column names are cells too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.files import atomic_write_bytes

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a
    formula; anything else (numbers, missing values, plain text) unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_TRIGGERS):
        return value
    if value == "-" or _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are neutralised."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(
            column.dtype
        ):
            continue
        risky = column.map(_is_risky, na_action="ignore").fillna(False).astype(bool)
        if risky.any():
            column = column.astype(object)
            column[risky] = column[risky].map(neutralise_cell)
            out[name] = column
    out.columns = [neutralise_cell(str(name)) for name in out.columns]
    return out


def _is_risky(value: Any) -> bool:
    return neutralise_cell(value) is not value


@dataclass(frozen=True)
class CsvStyle:
    """How a CSV separates its cells and writes its decimals.

    French spreadsheets (Excel and LibreOffice in a French locale) read ``;`` between
    cells and a decimal comma, and take a file for UTF-8 only when it begins with a
    byte-order mark; a comma-separated file opens there as one column.
    """

    sep: str = ","
    decimal: str = "."
    bom: bool = False


#: For programs: RFC 4180 commas, decimal points, no byte-order mark.
MACHINE = CsvStyle()
#: For people, by the language of the command: what the locale's spreadsheets open.
SPREADSHEET = {"fr": CsvStyle(";", ",", True), "en": CsvStyle(",", ".", True)}


def csv_style(lang: str, *, machine: bool = False) -> CsvStyle:
    """The style of a CSV written for people of ``lang`` (``machine``: for programs)."""
    return MACHINE if machine else SPREADSHEET.get(lang, MACHINE)


def write_csv(path: Path, frame: pd.DataFrame, *, mode: int = 0o644,
              style: CsvStyle = MACHINE, **to_csv: Any) -> Path:
    """Write ``frame`` (neutralised) to ``path`` atomically: a temporary file beside it,
    fsynced, given ``mode``, then renamed over ``path``. ``to_csv`` goes to pandas
    (defaults: ``index=False``, CRLF line ends); the file is UTF-8, with a byte-order
    mark and the separator and decimal mark of ``style``."""
    to_csv.setdefault("index", False)
    to_csv.setdefault("sep", style.sep)
    to_csv.setdefault("decimal", style.decimal)
    # CRLF (RFC 4180), which also makes the csv module quote a cell holding a bare
    # carriage return: with "\n" alone such a cell would start a new row, and the text
    # after its \r would be a fresh, unneutralised cell.
    to_csv.setdefault("lineterminator", "\r\n")
    text = neutralise_frame(frame).to_csv(**to_csv)
    path = Path(path)
    atomic_write_bytes(path, text.encode("utf-8-sig" if style.bom else "utf-8"), mode)
    return path
