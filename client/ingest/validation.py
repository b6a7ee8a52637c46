"""Validation of harmonised rows against the schema, with pandera.

The pandera schema is built from ``common.schema.COLUMNS`` (types, ranges, whole
numbers, vocabularies, required and non-null columns, unique student ids), so there
is no second list of rules to keep in step. Before pandera runs, each column is read
into its schema type (``client.ingest.values``); cells that cannot be read are row
problems like any failed check. Invalid rows are dropped, never repaired.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from client.ingest.report import RowProblem
from client.ingest.values import as_boolean, as_number, as_text
from common.i18n.catalogue import N_
from common.schema import COLUMN_BY_NAME, COLUMNS, SCHEMA_VERSION, STUDENT_ID, Column, Kind

_DTYPES = {Kind.NUMERIC: "float64", Kind.BOOLEAN: "boolean"}
# The reasons of an invalid cell, as the report shows them (translated when shown).
_PANDERA_REASONS = {
    "field_uniqueness": N_("student id on several rows (all of them are excluded)"),
    "not_nullable": N_("missing, but required"),
}
NOT_WHOLE = N_("not a whole number")


def _range_reason(column: Column) -> str:
    return N_("outside %(low)s to %(high)s", low=format(column.low, "g"),
              high=format(column.high, "g"))


def _vocabulary_reason(column: Column) -> str:
    return N_("not one of %(allowed)s", allowed=", ".join(column.vocabulary))


@cache
def _check_reasons() -> dict[str, str]:
    """pandera's check messages (English text) -> the reason with its parameters."""
    reasons = [_range_reason(c) for c in COLUMNS if c.kind is Kind.NUMERIC]
    reasons += [_vocabulary_reason(c) for c in COLUMNS if c.kind is Kind.CATEGORICAL]
    return {str(reason): reason for reason in reasons}


def _checks(column: Column) -> list[pa.Check]:
    if column.kind is Kind.NUMERIC:
        low, high = column.low, column.high
        checks = [pa.Check.in_range(low, high, error=str(_range_reason(column)))]
        if column.integer:
            checks.append(
                pa.Check(lambda s: s % 1 == 0, name="whole_number", error=NOT_WHOLE)
            )
        return checks
    if column.kind is Kind.CATEGORICAL:
        return [pa.Check.isin(list(column.vocabulary), error=str(_vocabulary_reason(column)))]
    return []


@cache
def harmonised_schema() -> pa.DataFrameSchema:
    """The pandera schema of a validated harmonised frame, from ``common.schema``."""
    return pa.DataFrameSchema(
        {
            column.name: pa.Column(
                _DTYPES.get(column.kind, "string"),
                checks=_checks(column),
                nullable=column.nullable,
                required=column.required,
                unique=column.name == STUDENT_ID,
                description=column.description,
            )
            for column in COLUMNS
        },
        strict=True,
        name=f"harmonised record {SCHEMA_VERSION}",
    )


def to_schema_types(
    frame: pd.DataFrame, decimal: str = "."
) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Read every harmonised column of ``frame`` into its schema type.

    Numbers become float64 (NaN when missing), yes/no values nullable booleans,
    categories and identifiers text; a category matching the vocabulary up to case
    takes the vocabulary's spelling. Cells that cannot be read are returned as problems.
    """
    typed: dict[str, pd.Series] = {}
    problems: list[RowProblem] = []
    for name in frame.columns:
        column, series = COLUMN_BY_NAME[name], frame[name]
        if column.kind is Kind.NUMERIC:
            values, failed = as_number(series, decimal)
            reason = N_("not a number")
        elif column.kind is Kind.BOOLEAN:
            values, failed = as_boolean(series)
            reason = N_("not a yes/no value")
        else:
            values = as_text(series)
            failed = pd.Series(False, index=series.index)
            reason = ""
            if column.kind is Kind.CATEGORICAL:
                spelling = {v.lower(): v for v in column.vocabulary}
                canonical = values.str.lower().map(spelling)
                values = values.where(canonical.isna(), canonical).astype("string")
        typed[name] = values
        problems += [
            RowProblem(int(i) + 1, name, str(series.at[i]), reason)
            for i in failed.index[failed.to_numpy()]
        ]
    return pd.DataFrame(typed, index=frame.index), problems


def validate_rows(frame: pd.DataFrame, decimal: str = ".") -> tuple[pd.DataFrame, list[RowProblem]]:
    """The valid rows of a harmonised frame, typed, and the problems of the others.

    ``frame`` holds harmonised columns only (any subset; required ones are checked by
    the caller first), indexed 0..n-1 in file order.
    """
    typed, problems = to_schema_types(frame, decimal)
    schema = harmonised_schema()
    try:
        schema.validate(typed, lazy=True)
    except SchemaErrors as exc:
        problems += _row_problems(exc.failure_cases)
    bad_rows = sorted({p.row - 1 for p in problems})
    valid = typed.drop(index=bad_rows)
    try:
        valid = schema.validate(valid, lazy=False)
    except SchemaError as exc:  # pragma: no cover - a row problem slipped through
        raise AssertionError(f"rows left after validation still fail: {exc}") from exc
    return valid, problems


def _row_problems(cases: pd.DataFrame) -> list[RowProblem]:
    schema_wide = cases[cases["index"].isna()]
    if not schema_wide.empty:  # columns, types and checks that could not run: our bug
        raise AssertionError(f"schema-wide validation failure:\n{schema_wide.to_string()}")
    return [
        RowProblem(
            int(case["index"]) + 1,
            str(case["column"]),
            str(case["failure_case"]),
            _PANDERA_REASONS.get(str(case["check"])) or _check_reasons().get(
                str(case["check"]), str(case["check"])),
        )
        for case in cases.to_dict("records")
    ]
