"""Who was left out of an extract and why, quoting the file's own cells.

``validate`` and ``score`` say it the same way, one line a row problem, within the
console's width (80 columns off a terminal)::

    ligne 13 (fiche 112) : « Jours absents » = « -4 » donne absence_rate =
      -0,02222 : hors de la plage 0 à 1

The line is the row's number as the file shows it (``QualityReport.line_of``), the cells
are the source columns and their text as read (``client.ingest.source_cells``), and the
harmonised value follows only when the mapping changed it. A long list is cut after the
first ``shown`` lines; ``write_left_out`` writes it whole (CSV, the command's style).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from rich.console import Console

from client.ingest.report import QualityReport, RowProblem
from common.csv_output import CsvStyle, write_csv
from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_

LEFT_OUT_NAME = "rows-left-out.csv"
VALUE_CHARS = 40  # a longer cell is cut with "…" on the console (whole in the file)
INDENT = "  "


def print_problems(console: Console, report: QualityReport, shown: int,
                   lang: str, *, full_list: Path | None = None) -> None:
    """The first ``shown`` problems of ``report``, one wrapped line each, then how many
    more (and where the whole list is, when it was written)."""
    for problem in report.problems[:shown]:
        print_wrapped(console, problem_line(problem, report, lang))
    rest = len(report.problems) - shown
    if rest > 0:
        _ = i18n.gettext(lang)
        more = counted(lang, rest, N_("and %(count)s more rows"), N_("and %(count)s more row"))
        if full_list is not None:
            more = _("%(more)s: the whole list is in %(path)s") % {
                "more": more, "path": full_list}
        print_wrapped(console, more)


def print_wrapped(console: Console, text: str, indent: str = INDENT) -> None:
    """``text`` within the console's width, its following lines indented further (a
    word longer than the width, a path, is left whole to be copied)."""
    width = max(console.width, 40)
    for line in textwrap.wrap(text, width, initial_indent=indent,
                              subsequent_indent=indent + INDENT, break_long_words=False,
                              break_on_hyphens=False):
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def counted(lang: str, count: int, many: str, one: str, **params: object) -> str:
    """``many`` or, when ``count`` is singular in ``lang`` (French: 0 and 1; English: 1),
    ``one``, translated, with ``count`` and ``params``."""
    singular = count in (0, 1) if lang == "fr" else count == 1
    return i18n.gettext(lang)(one if singular else many) % {"count": count, **params}


def problem_line(problem: RowProblem, report: QualityReport, lang: str) -> str:
    """One problem as a sentence: where, the file's cells, the harmonised value when the
    mapping changed it, and why."""
    _ = i18n.gettext(lang)
    where = where_of(problem, report, lang)
    reason = i18n.translate(problem.reason, lang)
    cells = cells_of(problem, lang)
    harmonised = harmonised_value(problem, lang)
    if harmonised is None:
        return _("%(where)s: %(cells)s: %(reason)s") % {
            "where": where, "cells": cells, "reason": reason}
    return _("%(where)s: %(cells)s gives %(column)s = %(value)s: %(reason)s") % {
        "where": where, "cells": cells, "column": problem.harmonised, "value": harmonised,
        "reason": reason}


def where_of(problem: RowProblem, report: QualityReport, lang: str) -> str:
    """``line 13 (student 112)``, or ``record 13`` in a Parquet file."""
    _ = i18n.gettext(lang)
    number = report.line_of(problem.row)
    where = (_("line %(line)s") if report.file_format == "csv"
             else _("record %(line)s")) % {"line": number}
    if problem.student is None:
        return where
    return _("%(where)s (student %(student)s)") % {
        "where": where, "student": _cut(problem.student)}


def cells_of(problem: RowProblem, lang: str, limit: int | None = VALUE_CHARS) -> str:
    """The source cells, ``« Jours absents » = « -4 »``; the mapping's constant when the
    column was made from no cell."""
    _ = i18n.gettext(lang)
    if not problem.cells:
        return _("the mapping's constant")
    parts = []
    for column, text in problem.cells:
        name = _quoted(column, lang, limit)
        parts.append(_("%(column)s is empty") % {"column": name} if text is None
                     else f"{name} = {_quoted(text, lang, limit)}")
    return ", ".join(parts)


def harmonised_value(problem: RowProblem, lang: str) -> str | None:
    """The harmonised value as the language writes it, or None when it is the source
    cell itself (a renamed column) or the problem is the source cell's."""
    if problem.column != problem.harmonised:
        return None  # the source cell could not be read: nothing was made from it
    value = _value(problem.value, lang)
    if len(problem.cells) == 1 and _same(problem.cells[0][1], problem.value):
        return None
    return value


def write_left_out(path: Path, report: QualityReport, lang: str, style: CsvStyle,
                   mode: int = 0o600) -> Path:
    """Every problem of ``report`` as a CSV row (headers in ``lang``), atomically."""
    import pandas as pd

    _ = i18n.gettext(lang)
    rows = [{
        _("line"): report.line_of(p.row),
        _("student"): p.student or "",
        _("column in the file"): "; ".join(column for column, _text in p.cells),
        _("value in the file"): "; ".join(text or "" for _column, text in p.cells),
        _("harmonised column"): p.harmonised,
        _("harmonised value"): harmonised_value(p, lang) or "",
        _("reason"): i18n.translate(p.reason, lang),
    } for p in report.problems]
    return write_csv(path, pd.DataFrame(rows), mode=mode, style=style)


def _quoted(text: str, lang: str, limit: int | None) -> str:
    _ = i18n.gettext(lang)
    return _("\u201c%(text)s\u201d") % {"text": _cut(text, limit)}


def _cut(text: str, limit: int | None = VALUE_CHARS) -> str:
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _value(text: str, lang: str) -> str:
    """A harmonised value: a number with 4 significant digits in the language's notation,
    empty for a missing one, else the text."""
    _ = i18n.gettext(lang)
    if text in ("", "None", "nan", "NaN", "<NA>"):
        return _("empty")
    number = _number(text)
    if number is None:
        return _cut(text)
    shown = f"{number:.4g}"
    return shown.replace(".", ",") if lang == "fr" else shown


def _same(cell: str | None, value: str) -> bool:
    """Whether the harmonised value is the cell as written (``12`` and ``12.0``)."""
    if cell is None:
        return value in ("", "None", "nan", "NaN", "<NA>")
    if cell.strip() == value:
        return True
    left, right = _number(cell), _number(value)
    return left is not None and right is not None and left == right


def left_out_sentence(report: QualityReport, lang: str) -> str:
    """``4 of 150 students left out ...``: the score's line before the list."""
    return counted(
        lang, report.rows_invalid,
        N_("%(count)s of %(read)s students left out: their row has an invalid value, so "
           "they get no support priority (correct the file and score again):"),
        N_("%(count)s of %(read)s students left out: their row has an invalid value, so "
           "this student gets no support priority (correct the file and score again):"),
        read=report.rows_read)

