"""The support list as a spreadsheet for the school team (``support-priorities.xlsx``).

The CSV beside it serves the centre's systems; this file is what a school team opens:
headers in the command's language, the probability a number (shown as a percentage in
the locale's notation by the spreadsheet), identifiers as text (a leading zero kept), a
frozen header row with filters, and widths that fit the content.

No cell can run: openpyxl writes a value that begins with ``=`` as a formula, so every
text cell is written as a string whatever it begins with, and one that a spreadsheet
would read as a formula once edited (``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, ``common.csv_output.FORMULA_TRIGGERS``) is also marked with Excel's quote prefix.
Unlike the CSV's leading ``'``, the text itself stays exactly as it was.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.csv_output import FORMULA_TRIGGERS
from common.files import atomic_write_bytes
from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_

XLSX_NAME = "support-priorities.xlsx"
MIN_WIDTH, MAX_WIDTH = 8, 60  # characters; longer cells wrap
_WRAPPED_WIDTH = 50  # the factors: wrapped within this width


@dataclass(frozen=True)
class SheetColumn:
    """One column of the sheet: the support table's column, its header, its kind."""

    name: str
    header: str  # English message id, translated
    number_format: str | None = None  # numbers (English notation; _PERCENT by language)
    wrapped: bool = False


#: The columns a school team reads, in order; the codes for programs stay in the CSV.
COLUMNS = (
    SheetColumn("student_id", N_("Student (pseudonym)")),
    SheetColumn("school_id", N_("School")),
    SheetColumn("school_year", N_("School year")),
    SheetColumn("support_priority_label", N_("Support priority")),
    SheetColumn("probability", N_("Estimated probability"), number_format="0.0%"),
    SheetColumn("factors", N_("What raises the support priority"), wrapped=True),
    SheetColumn("protective_factors", N_("Strengths (protective factors)"), wrapped=True),
)
#: The percentage as French writes it (a space before the sign); English has none.
_PERCENT = {"fr": "0.0 %", "en": "0.0%"}


def write_support_xlsx(path: Path, table: pd.DataFrame, lang: str = "fr",
                       mode: int = 0o600) -> Path:
    """Write the support table (``client.scoring.support_report.support_table``) as one
    sheet at ``path``, atomically, with permission bits ``mode``."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    _ = i18n.gettext(lang)
    columns = [c for c in COLUMNS if c.name in table.columns]
    book = Workbook(write_only=True)
    sheet = book.create_sheet(_("Support priorities"))
    sheet.freeze_panes = "A2"
    values = [table[c.name].tolist() for c in columns]
    for index, (column, column_values) in enumerate(zip(columns, values, strict=True), 1):
        shown = (_lines(v) if column.wrapped else _text(v) for v in column_values)
        width = _width([_(column.header), *shown], column)
        sheet.column_dimensions[get_column_letter(index)].width = width
    last = get_column_letter(max(len(columns), 1))
    sheet.auto_filter.ref = f"A1:{last}{len(table) + 1}"

    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
    header = []
    for column in columns:
        cell = _cell(WriteOnlyCell(sheet), _(column.header))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    percent = _PERCENT.get(lang, "0.0%")
    for row in zip(*values, strict=True):
        cells: list[Any] = []
        for column, value in zip(columns, row, strict=True):
            if column.number_format is not None and _is_number(value):
                cell = WriteOnlyCell(sheet, value=float(value))
                cell.number_format = percent
            elif column.wrapped:
                cell = _cell(WriteOnlyCell(sheet), _lines(value))
                cell.alignment = wrap
            else:
                text = _text(value)
                # A plain string is written as one (a styled cell costs about twice the
                # time); openpyxl would make one beginning with "=" a formula.
                cell = _cell(WriteOnlyCell(sheet), text) if text.startswith(
                    FORMULA_TRIGGERS) else text
            cells.append(cell)
        sheet.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    atomic_write_bytes(path, buffer.getvalue(), mode)
    return path


def _cell(cell: Any, text: str) -> Any:
    """``cell`` holding ``text`` as a string, never a formula."""
    cell.value = text
    cell.data_type = "s"  # openpyxl made "=..." a formula: a string it stays
    if text.startswith(FORMULA_TRIGGERS):
        cell.quotePrefix = True  # and text still when someone edits the cell
    return cell


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


def _lines(value: object) -> str:
    """The factors of a cell (`` | ``-separated in the CSV) one per line."""
    return "\n".join(part for part in _text(value).split(" | ") if part)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _width(texts: Iterable[str], column: SheetColumn) -> float:
    """Characters wide enough for the longest line (a wrapped column: its cap)."""
    longest = max((len(line) for t in texts for line in t.split("\n")), default=0)
    cap = _WRAPPED_WIDTH if column.wrapped else MAX_WIDTH
    return float(min(max(longest + 2, MIN_WIDTH), cap))
