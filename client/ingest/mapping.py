"""A centre's mapping: how its own columns and codes become the harmonised record.

The TOML format is documented in ``docs/DATA-INGESTION.md``. Each harmonised column
gets its values from one source column (``from``), a derived expression (``expr``) or
a constant (``value``); then, in this order, ``missing`` values are blanked,
``recode`` replaces codes, and ``scale``/``offset`` change units
(``value * scale + offset``). Types and ranges are checked afterwards, against the
schema, by ``client.ingest.validation``.
"""

from __future__ import annotations

import codecs
import difflib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from client.ingest.errors import IngestError, quote
from client.ingest.expressions import Expression, ExpressionError, evaluate, parse_expression
from client.ingest.reading import DELIMITER_NAMES, Extract, SourceHints
from client.ingest.report import RowProblem
from client.ingest.toml_files import read_toml
from client.ingest.values import as_number, as_text
from common.i18n.catalogue import N_, word
from common.schema import COLUMN_BY_NAME, COLUMNS, LABEL, Kind, Role, is_forbidden

_TOP_KEYS = {"name", "description", "centre_column", "passthrough", "source", "columns"}
_SOURCE_KEYS = {"format", "delimiter", "encoding", "decimal"}
_RULE_KEYS = {"from", "expr", "value", "missing", "recode", "scale", "offset", "note"}
_DELIMITER_WORDS = {name: char for char, name in DELIMITER_NAMES.items()}


@dataclass(frozen=True)
class ColumnRule:
    """How one harmonised column is filled (exactly one of source, expression, value)."""

    target: str
    source: str | None = None
    expression: Expression | None = None
    value: bool | int | float | str | None = None
    missing: frozenset[str] = frozenset()
    recode: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0
    offset: float = 0.0

    @property
    def reads(self) -> frozenset[str]:
        """The source columns this rule reads."""
        if self.source is not None:
            return frozenset({self.source})
        return self.expression.columns if self.expression is not None else frozenset()


@dataclass(frozen=True)
class Mapping:
    """A parsed, checked mapping file."""

    source: str
    name: str
    rules: tuple[ColumnRule, ...]
    hints: SourceHints = field(default_factory=SourceHints)
    centre_column: str | None = None
    passthrough: bool = True


@dataclass(frozen=True)
class MappedExtract:
    """Harmonised columns (values not yet typed) and what the mapping noticed."""

    frame: pd.DataFrame
    problems: list[RowProblem]
    ignored_columns: tuple[str, ...]
    forbidden_dropped: tuple[str, ...]
    centres: pd.Series | None  # centre of every row, as text, when the mapping names one
    #: The source columns each harmonised column was made from, in the file's order.
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The harmonised columns that are a source column's cells unchanged (a rename).
    copies: frozenset[str] = frozenset()


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping; every problem is listed before ``IngestError`` is raised."""
    raw = read_toml(path, N_("The mapping file"), N_("correct the file and validate again"))
    problems: list[str] = []
    problems += [N_("unknown key %(key)s", key=quote(k)) for k in sorted(set(raw) - _TOP_KEYS)]
    hints = _hints(raw.get("source", {}), problems)
    centre_column = raw.get("centre_column")
    if centre_column is not None and not isinstance(centre_column, str):
        problems.append(word(N_("centre_column must be the name of a column")))
    elif centre_column is not None and is_forbidden(centre_column):
        problems.append(
            N_("centre_column names the teacher or class column %(column)s, which is refused "
               "whatever the policy says", column=quote(centre_column))
        )
    passthrough = raw.get("passthrough", True)
    if not isinstance(passthrough, bool):
        problems.append(word(N_("passthrough must be true or false")))
    columns = raw.get("columns", {})
    rules: list[ColumnRule] = []
    if not isinstance(columns, dict):
        problems.append(word(N_("[columns] must be a table")))
    else:
        for target, spec in columns.items():
            rule = _rule(target, spec, problems)
            if rule is not None:
                rules.append(rule)
    problems += _leaks(rules)
    if problems:
        raise IngestError(
            N_("The mapping %(path)s cannot be used: %(problem)s; correct it and validate "
               "again.", path=path, problem=problems[0]),
            details=problems,
        )
    name = str(raw.get("name", path.stem))
    return Mapping(str(path), name, tuple(rules), hints, centre_column, bool(passthrough))


def _hints(source: Any, problems: list[str]) -> SourceHints:
    if not isinstance(source, dict):
        problems.append(word(N_("[source] must be a table")))
        return SourceHints()
    problems += [N_("unknown key %(key)s in [source]", key=quote(k))
                 for k in sorted(set(source) - _SOURCE_KEYS)]
    file_format = source.get("format")
    if file_format not in (None, "csv", "parquet"):
        problems.append(word(N_("[source] format must be 'csv' or 'parquet'")))
        file_format = None
    delimiter = source.get("delimiter")
    if delimiter is not None:
        delimiter = _DELIMITER_WORDS.get(str(delimiter), delimiter)
        if delimiter not in DELIMITER_NAMES:
            problems.append(
                word(N_("[source] delimiter must be one of ',', ';', 'tab' or '|'")))
            delimiter = None
    encoding = source.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(str(encoding))
        except LookupError:
            problems.append(N_("[source] encoding %(encoding)s is not a known encoding",
                                 encoding=quote(encoding)))
            encoding = None
    decimal = source.get("decimal")
    if decimal not in (None, ".", ","):
        problems.append(word(N_("[source] decimal must be '.' or ','")))
        decimal = None
    return SourceHints(file_format, delimiter, encoding, decimal)


def _rule(target: str, spec: Any, problems: list[str]) -> ColumnRule | None:
    where = f"[columns] {target}"
    if target not in COLUMN_BY_NAME:
        close = difflib.get_close_matches(target, COLUMN_BY_NAME, n=1)
        hint: str = N_(" (did you mean %(name)s?)", name=close[0]) if close else ""
        if is_forbidden(target):
            hint = word(N_(" (teacher and class data are refused whatever the policy says)"))
        problems.append(N_("%(where)s is not a column of the harmonised record%(hint)s",
                              where=where, hint=hint))
        return None
    if isinstance(spec, str):
        spec = {"from": spec}
    if not isinstance(spec, dict):
        problems.append(N_("%(where)s must be a source column name or a table", where=where))
        return None
    problems += [N_("%(where)s: unknown key %(key)s", where=where, key=quote(k))
                 for k in sorted(set(spec) - _RULE_KEYS)]
    given = [k for k in ("from", "expr", "value") if k in spec]
    if len(given) != 1:
        problems.append(N_("%(where)s needs exactly one of from, expr or value", where=where))
        return None
    column = COLUMN_BY_NAME[target]
    rule = ColumnRule(target)
    if "from" in spec:
        if not isinstance(spec["from"], str):
            problems.append(N_("%(where)s: from must be a column name", where=where))
            return None
        rule = ColumnRule(target, source=spec["from"].strip())
    elif "expr" in spec:
        try:
            rule = ColumnRule(target, expression=parse_expression(str(spec["expr"])))
        except ExpressionError as exc:
            problems.append(N_("%(where)s: the expression %(expression)s %(problem)s", where=where,
                               expression=quote(spec["expr"]), problem=_part(exc)))
            return None
    elif not isinstance(spec["value"], bool | int | float | str):
        problems.append(N_("%(where)s: value must be text, a number, true or false",
                              where=where))
        return None
    else:
        rule = ColumnRule(target, value=spec["value"])
    forbidden = sorted(c for c in rule.reads if is_forbidden(c))
    if forbidden:
        problems.append(
            N_("%(where)s reads the teacher or class column %(column)s, which is refused "
               "whatever the policy says", where=where, column=quote(forbidden[0]))
        )
    missing = spec.get("missing", [])
    recode = spec.get("recode", {})
    if not isinstance(missing, list):
        problems.append(N_("%(where)s: missing must be a list of values", where=where))
        missing = []
    if not isinstance(recode, dict):
        problems.append(N_("%(where)s: recode must be a table of source value = harmonised "
                              "value", where=where))
        recode = {}
    scale, offset = spec.get("scale", 1.0), spec.get("offset", 0.0)
    if "scale" in spec or "offset" in spec:
        if column.kind is not Kind.NUMERIC:
            problems.append(N_("%(where)s: scale and offset apply to numeric columns only",
                                  where=where))
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in (scale, offset)
        ):
            problems.append(N_("%(where)s: scale and offset must be finite numbers",
                                  where=where))
            scale, offset = 1.0, 0.0
    if "value" in spec and (missing or recode or "scale" in spec or "offset" in spec):
        problems.append(N_("%(where)s: a constant value takes no missing, recode, scale or "
                              "offset", where=where))
    return ColumnRule(
        target,
        rule.source,
        rule.expression,
        rule.value,
        frozenset(str(v).strip() for v in missing),
        {str(k).strip(): v for k, v in recode.items()},
        float(scale),
        float(offset),
    )


def _part(exc: ExpressionError) -> str:
    """The expression's problem as it was made (a ``Sentence`` is translated when shown)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)


def _leaks(rules: list[ColumnRule]) -> list[str]:
    """A predictor must not read a source column that defines the label."""
    label_reads = next((r.reads for r in rules if r.target == LABEL), frozenset())
    return [
        N_("[columns] %(target)s reads %(column)s, which also defines the label %(label)s: "
           "a predictor must not see the label's source", target=r.target,
           column=quote(sorted(r.reads & label_reads)[0]), label=LABEL)
        for r in rules
        if COLUMN_BY_NAME[r.target].role is Role.PREDICTOR and r.reads & label_reads
    ]


def identity_mapping(source: str = "harmonised") -> Mapping:
    """The mapping of a file whose columns already carry the harmonised names."""
    return Mapping(source, "harmonised", (), SourceHints(), None, True)


def apply_mapping(extract: Extract, mapping: Mapping) -> MappedExtract:
    """Build the harmonised columns of ``extract``; raise ``IngestError`` when the file
    lacks a column the mapping reads."""
    raw = extract.frame
    forbidden = tuple(c for c in raw.columns if is_forbidden(c))
    raw = raw.drop(columns=list(forbidden))
    rules = {rule.target: rule for rule in mapping.rules}
    if mapping.passthrough:
        for column in COLUMNS:
            if column.name not in rules and column.name in raw.columns:
                rules[column.name] = ColumnRule(column.name, source=column.name)
    _require_columns(extract, raw, mapping, list(rules.values()))
    problems: list[RowProblem] = []
    harmonised: dict[str, pd.Series] = {}
    for column in COLUMNS:
        if column.name in rules:
            values, found = _fill(rules[column.name], raw, extract.decimal)
            harmonised[column.name] = values
            problems += found
    frame = pd.DataFrame(harmonised, index=raw.index)
    read = {c for rule in rules.values() for c in rule.reads} | {mapping.centre_column}
    ignored = tuple(c for c in raw.columns if c not in read)
    centres = as_text(raw[mapping.centre_column]) if mapping.centre_column else None
    sources = {target: tuple(c for c in raw.columns if c in rule.reads)
               for target, rule in rules.items()}
    copies = frozenset(target for target, rule in rules.items() if rule.source is not None
                       and not (rule.missing or rule.recode or rule.scale != 1.0
                                or rule.offset != 0.0))
    return MappedExtract(frame, problems, ignored, forbidden, centres, sources, copies)


def _require_columns(
    extract: Extract, raw: pd.DataFrame, mapping: Mapping, rules: list[ColumnRule]
) -> None:
    needed = {c: r.target for r in rules for c in sorted(r.reads)}
    if mapping.centre_column:
        needed.setdefault(mapping.centre_column, "centre_column")
    absent = [(c, target) for c, target in needed.items() if c not in raw.columns]
    if not absent:
        return
    column, target = absent[0]
    close = difflib.get_close_matches(column, [str(c) for c in raw.columns], n=1)
    hint: str = N_(" (closest: %(name)s)", name=quote(close[0])) if close else ""
    if len(extract.frame.columns) == 1 and extract.file_format == "csv":
        # the file's own header: its one column may have been dropped as teacher/class data
        hint = N_(" (the file was read as a single column %(name)s: check its delimiter)",
                  name=quote(extract.frame.columns[0]))
    raise IngestError(
        N_("The file %(path)s has no column %(column)s, which the mapping %(mapping)s reads "
           "for %(target)s%(hint)s; correct the mapping or the export.", path=extract.source,
           column=quote(column), mapping=mapping.source, target=target, hint=hint),
        details=[N_("%(column)s (for %(target)s) is not in the file", column=c, target=t)
                 for c, t in absent]
        + [N_("columns in the file: %(names)s",
              names=", ".join(quote(c) for c in raw.columns))],
    )


def _fill(rule: ColumnRule, raw: pd.DataFrame, decimal: str) -> tuple[pd.Series, list[RowProblem]]:
    """One harmonised column's values: obtain, then missing, recode, scale and offset."""
    problems: list[RowProblem] = []
    if rule.source is not None:
        values = raw[rule.source].rename(rule.source)
    elif rule.expression is not None:
        try:
            values, found = evaluate(rule.expression, raw, decimal)
            problems = [replace(p, target=rule.target) for p in found]
        except ExpressionError as exc:
            raise IngestError(N_("The expression for %(target)s %(problem)s; correct the "
                                 "mapping.", target=rule.target, problem=_part(exc))) from exc
    else:
        return pd.Series([rule.value] * len(raw), index=raw.index, dtype=object), problems
    if rule.missing or rule.recode:
        text = as_text(values)
        blank = text.isin(rule.missing).fillna(False).astype(bool)
        hits = text.isin(list(rule.recode)).fillna(False).astype(bool) & ~blank
        values = values.astype(object).mask(blank, pd.NA)
        values = values.where(~hits, text.map(rule.recode))
    if rule.scale != 1.0 or rule.offset != 0.0:
        numbers, failed = as_number(values, decimal)
        name = rule.source or rule.target
        problems += [
            RowProblem(int(i) + 1, name, str(values.at[i]), N_("not a number"),
                       target=rule.target)
            for i in failed.index[failed.to_numpy()]
        ]
        values = numbers * rule.scale + rule.offset
    return values.rename(rule.target), problems
