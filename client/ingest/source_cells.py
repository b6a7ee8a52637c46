"""Each invalid cell traced back to the file: the source cells it was made from.

Validation runs on harmonised columns (``absence_rate = -0.0222``); a centre corrects
its file, where the cell reads ``Jours absents = -4``. This module gives every row
problem the source cells behind it, as the file holds them (the mapping's ``from``
column, or every column its expression reads), and the row's student id, and keeps one
problem per row and harmonised column: a cell that cannot be read (``consent =
peut-être``) is not listed a second time as a missing required value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pandas as pd

from client.ingest.mapping import MappedExtract
from client.ingest.report import RowProblem
from client.ingest.values import text_of
from common.schema import STUDENT_ID


def locate(problems: Iterable[RowProblem], raw: pd.DataFrame,
           mapped: MappedExtract) -> list[RowProblem]:
    """``problems`` with their source cells and student id, sorted by row; for each row
    and harmonised column, the first explanation only (the order given: the mapping's
    problems, then the types', then the schema's)."""
    kept: dict[tuple[int, str, str], RowProblem] = {}
    listed: set[tuple[int, str]] = set()  # (row, harmonised column) already explained
    for problem in problems:
        index = problem.row - 1
        if problem.column != problem.harmonised:  # a source cell an expression read
            columns: tuple[str, ...] = (problem.column,)
        elif (problem.row, problem.harmonised) in listed:
            continue  # the value failed already (not a number): not "missing" as well
        else:
            columns = mapped.sources.get(problem.harmonised, ())
        key = (problem.row, problem.harmonised, problem.column)
        if key in kept:
            continue
        listed.add((problem.row, problem.harmonised))
        kept[key] = replace(
            problem,
            cells=tuple((c, _cell(raw, c, index)) for c in columns if c in raw.columns),
            student=_student(mapped.frame, index))
    return sorted(kept.values(), key=lambda p: p.row)


def _cell(raw: pd.DataFrame, column: str, index: int) -> str | None:
    """The cell as read: text in a CSV (None where the file has no value)."""
    if not 0 <= index < len(raw):
        return None
    return text_of(raw[column].iat[index])


def _student(frame: pd.DataFrame, index: int) -> str | None:
    if STUDENT_ID not in frame.columns or not 0 <= index < len(frame):
        return None
    return text_of(frame[STUDENT_ID].iat[index])
