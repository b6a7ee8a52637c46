"""Derived fields of a mapping: small, safe expressions over the source columns.

The language is a subset of Python expressions, parsed with ``ast`` and evaluated
column-wise by pandas; nothing is ever passed to ``eval``. Column names are bare
identifiers (``G3``) or in backticks for any other name (`` `Curricular units 1st sem
(grade)` ``). Allowed: numbers, 'text', true/false, ``missing``; ``+ - * / // %``;
comparisons (``== != < <= > >=``, ``in [..]``, ``not in [..]``); ``and or not``; and
the functions in ``FUNCTIONS``. A missing operand makes the result missing (a
comparison with a missing grade gives a missing label, not false).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from client.ingest.report import RowProblem
from client.ingest.values import as_boolean, as_number, as_text, is_textual, text_of
from common.errors import PerseveranceError
from common.i18n.catalogue import N_, word

MAX_LENGTH = 1000
# Bounds that keep parsing and evaluation finite and recursion-free for any text: a
# real derived field nests a few levels (where(...) inside where(...)) and uses numbers
# of a few digits. Deeper or larger is refused when the mapping is loaded.
MAX_DEPTH = 100  # nodes inside each other (each unary minus, operator, call is one;
# a + b + c nests one level per term, so a sum of 90 columns still passes)
MAX_NODES = 400  # nodes in all
MAX_MAGNITUDE = 1e15  # largest number literal (above it floats lose whole-number precision)
# name: (min args, max args or None for any), what it does (for the docs and errors)
FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "where": (3, 3, "where(condition, a, b): a where the condition holds, else b"),
    "isna": (1, 1, "isna(x): true where x is missing"),
    "notna": (1, 1, "notna(x): true where x has a value"),
    "concat": (1, None, "concat(a, b, ...): the values joined as text"),
    "row_number": (0, 0, "row_number(): 1 for the first record of the extract, 2, ..."),
    "abs": (1, 1, "abs(x)"),
    "min": (2, None, "min(a, b, ...): smallest value (missing if any is missing)"),
    "max": (2, None, "max(a, b, ...): largest value (missing if any is missing)"),
    "round": (1, 2, "round(x, digits=0)"),
}
_CONSTANTS: dict[str, Any] = {"missing": pd.NA, "true": True, "false": False}
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_ORDER: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_BACKTICKS = re.compile(r"`([^`]*)`")


class ExpressionError(PerseveranceError, ValueError):
    """An expression that cannot be parsed or evaluated; the message is a sentence part."""


@dataclass(frozen=True)
class Expression:
    """A parsed expression and the source columns it reads."""

    text: str
    tree: ast.expr = field(repr=False)
    aliases: dict[str, str] = field(repr=False)  # placeholder identifier -> column name
    columns: frozenset[str] = frozenset()


def parse_expression(text: str) -> Expression:
    """Parse and check an expression; raise ``ExpressionError`` when it is not allowed."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(N_("is longer than %(limit)s characters", limit=MAX_LENGTH))
    aliases: dict[str, str] = {}

    def alias(match: re.Match[str]) -> str:
        name = f"__column_{len(aliases)}__"
        aliases[name] = match.group(1).strip()
        return name

    try:
        tree = ast.parse(_BACKTICKS.sub(alias, text).strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(word(N_("is not a valid expression"))) from exc
    _check_size(tree)
    columns = frozenset(_check(tree, aliases))
    return Expression(text, tree, aliases, columns)


def _check_size(tree: ast.expr) -> None:
    """Refuse trees too deep or too large to evaluate, and out-of-range numbers; walked
    iteratively, so that the check itself cannot exhaust the stack."""
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ExpressionError(N_("nests operations more than %(depth)s deep",
                                     depth=MAX_DEPTH))
        if nodes > MAX_NODES:
            raise ExpressionError(N_("has more than %(limit)s parts; split it or simplify it",
                                     limit=MAX_NODES))
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            value = node.value  # abs() first: math.isfinite overflows on a huge int
            if abs(value) > MAX_MAGNITUDE or not math.isfinite(value):
                raise ExpressionError(N_(
                    "uses a number beyond %(limit)s in size, which no column needs",
                    limit=format(MAX_MAGNITUDE, ".0e")))
        stack.extend(
            (child, depth + 1)
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, ast.expr_context)
        )


def _check(node: ast.AST, aliases: dict[str, str]) -> set[str]:
    """Reject what the language does not allow; return the column names read."""
    columns: set[str] = set()
    if isinstance(node, ast.Name):
        if node.id in aliases:
            columns.add(aliases[node.id])
        elif node.id in FUNCTIONS:
            raise ExpressionError(N_("uses the function %(name)s without calling it",
                                     name=node.id))
        elif node.id not in _CONSTANTS:
            columns.add(node.id)
        return columns
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            raise ExpressionError(
                N_("calls %(name)s, which is not one of the functions %(known)s",
                   name=repr(ast.unparse(node.func)), known=", ".join(FUNCTIONS))
            )
        low, high = FUNCTIONS[name][:2]
        if node.keywords or not low <= len(node.args) <= (high or len(node.args)):
            raise ExpressionError(N_("calls %(name)s with the wrong arguments (%(usage)s)",
                                     name=name, usage=FUNCTIONS[name][2]))
        for arg in node.args:
            columns |= _check(arg, aliases)
        return columns
    if isinstance(node, ast.Compare):
        has_in = any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
        if has_in and len(node.ops) > 1:
            raise ExpressionError(word(N_("chains 'in' with another comparison")))
        for op, right in zip(node.ops, node.comparators, strict=True):
            if not isinstance(op, ast.In | ast.NotIn):
                columns |= _check(right, aliases)
            elif not (
                isinstance(right, ast.List | ast.Tuple)
                and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, int | float | str)
                    for e in right.elts
                )
            ):
                raise ExpressionError(
                    word(N_("uses 'in' with something other than a list of values")))
        return columns | _check(node.left, aliases)
    allowed: tuple[type, ...] = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub)
    allowed += (ast.UAdd, ast.BinOp, *_ARITHMETIC)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float | str):  # bool is an int
            raise ExpressionError(N_("uses the value %(value)s", value=repr(node.value)))
        return columns
    if ((isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not | ast.USub | ast.UAdd))
            or (isinstance(node, ast.BinOp) and type(node.op) not in _ARITHMETIC)):
        raise ExpressionError(N_("uses the operator in %(part)s, which is not allowed",
                                 part=repr(ast.unparse(node))))
    if not isinstance(node, allowed):
        raise ExpressionError(N_("uses %(part)s, which mapping expressions do not allow",
                                 part=repr(ast.unparse(node))))
    for child in ast.iter_child_nodes(node):
        columns |= _check(child, aliases)
    return columns


def evaluate(
    expression: Expression, frame: pd.DataFrame, decimal: str = "."
) -> tuple[pd.Series, list[RowProblem]]:
    """The expression's value on every row of ``frame``, and the cells it could not read.

    Raises ``ExpressionError`` when the expression reads a column ``frame`` lacks.
    """
    missing = sorted(c for c in expression.columns if c not in frame.columns)
    if missing:
        raise ExpressionError(N_("reads the column %(column)s, which the file does not have",
                                 column=repr(missing[0])))
    evaluator = _Evaluator(frame, expression, decimal)
    try:
        with np.errstate(all="ignore"):
            value = evaluator.visit(expression.tree)
    except (RecursionError, OverflowError, MemoryError) as exc:  # bounded by parse_expression
        raise ExpressionError(word(N_("is too large to evaluate; simplify it"))) from exc
    return evaluator.series(value), evaluator.problems


class _Evaluator:
    """Walks a checked tree; values are pandas Series or Python scalars (pd.NA for missing)."""

    def __init__(self, frame: pd.DataFrame, expression: Expression, decimal: str) -> None:
        self.frame = frame
        self.expression = expression
        self.decimal = decimal
        self.problems: list[RowProblem] = []
        self._noted: set[tuple[int, str, str]] = set()

    # -- conversions ------------------------------------------------------------
    def series(self, value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            return value
        if value is pd.NA:
            return pd.Series(pd.NA, index=self.frame.index, dtype="object")
        return pd.Series([value] * len(self.frame), index=self.frame.index)

    def number(self, value: Any) -> pd.Series:
        if not isinstance(value, pd.Series):
            if value is pd.NA:
                return pd.Series(np.nan, index=self.frame.index)
            if isinstance(value, str):
                raise ExpressionError(N_("uses the text %(value)s where a number is needed",
                                         value=repr(value)))
            return pd.Series(float(value), index=self.frame.index)
        numbers, failed = as_number(value, self.decimal)
        self._note(value, failed, N_("not a number"))
        return numbers

    def boolean(self, value: Any) -> pd.Series:
        if not isinstance(value, pd.Series):
            if value is not pd.NA and not isinstance(value, bool):
                raise ExpressionError(N_("uses %(value)s where true or false is needed",
                                         value=repr(value)))
            return pd.Series(value, index=self.frame.index, dtype="boolean")
        truth, failed = as_boolean(value)
        self._note(value, failed, N_("not a yes/no value"))
        return truth

    def _note(self, source: pd.Series, failed: pd.Series, reason: str) -> None:
        column = source.name if isinstance(source.name, str) else self.expression.text
        for index in failed.index[failed.to_numpy()]:
            if (int(index), column, reason) not in self._noted:
                self._noted.add((int(index), column, reason))
                value = str(source.at[index])
                self.problems.append(RowProblem(int(index) + 1, column, value, reason))

    # -- nodes ------------------------------------------------------------------
    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            column = self.expression.aliases.get(node.id, node.id)
            return self.frame[column].rename(column)
        if isinstance(node, ast.BinOp):
            op = _ARITHMETIC[type(node.op)]
            return op(self.number(self.visit(node.left)), self.number(self.visit(node.right)))
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return ~self.boolean(operand)
            numbers = self.number(operand)
            return -numbers if isinstance(node.op, ast.USub) else numbers
        if isinstance(node, ast.BoolOp):
            values = [self.boolean(self.visit(v)) for v in node.values]
            result = values[0]
            for value in values[1:]:
                result = result & value if isinstance(node.op, ast.And) else result | value
            return result
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return getattr(self, f"_call_{node.func.id}")(*node.args)
        raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check rejects the rest

    def _compare(self, node: ast.Compare) -> pd.Series:
        result: pd.Series | None = None
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                assert isinstance(right_node, ast.List | ast.Tuple)
                values = [e.value for e in right_node.elts if isinstance(e, ast.Constant)]
                part = self._isin(left, values)
                if isinstance(op, ast.NotIn):
                    part = ~part
                right: Any = None
            else:
                right = self.visit(right_node)
                part = self._order(type(op), left, right)
            result = part if result is None else result & part
            left = right
        assert result is not None
        return result

    def _order(self, op: type, left: Any, right: Any) -> pd.Series:
        function = _ORDER[op]
        mode = _comparison_mode(left, right) if op in (ast.Eq, ast.NotEq) else "number"
        if mode == "text":
            a, b = self._text(left), self._text(right)
            outcome = function(a.astype(object), b.astype(object))
        elif mode == "boolean":
            a, b = self.boolean(left), self.boolean(right)
            outcome = function(a, b)
        else:
            a, b = self.number(left), self.number(right)
            outcome = function(a, b)
        result = pd.Series(outcome, index=self.frame.index).astype("boolean")
        return result.mask(a.isna() | b.isna())

    def _isin(self, left: Any, values: list[Any]) -> pd.Series:
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            a = self.number(left)
            result = a.isin([float(v) for v in values])
        else:
            a = self._text(left)
            result = a.isin([text_of(v) for v in values])
        return pd.Series(result, index=self.frame.index).astype("boolean").mask(a.isna())

    def _text(self, value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            return as_text(value)
        return pd.Series(text_of(value), index=self.frame.index, dtype="string")

    # -- functions --------------------------------------------------------------
    def _call_where(self, condition: ast.expr, a: ast.expr, b: ast.expr) -> pd.Series:
        cond = self.boolean(self.visit(condition))
        yes, no = self.visit(a), self.visit(b)
        kinds = [v for v in (yes, no) if v is not pd.NA]
        if all(_is_numeric(v) for v in kinds):
            out = self.number(yes).where(cond.fillna(False).astype(bool), self.number(no))
        else:
            out = (
                self.series(yes)
                .astype(object)
                .where(cond.fillna(False).astype(bool), self.series(no).astype(object))
            )
        return out.mask(cond.isna())

    def _call_isna(self, x: ast.expr) -> pd.Series:
        return self.series(self.visit(x)).isna().astype("boolean")

    def _call_notna(self, x: ast.expr) -> pd.Series:
        return self.series(self.visit(x)).notna().astype("boolean")

    def _call_concat(self, *parts: ast.expr) -> pd.Series:
        texts = [self._text(self.visit(p)) for p in parts]
        out = texts[0]
        for text in texts[1:]:
            out = out + text
        return out

    def _call_row_number(self) -> pd.Series:
        return pd.Series(np.arange(1, len(self.frame) + 1), index=self.frame.index)

    def _call_abs(self, x: ast.expr) -> pd.Series:
        return self.number(self.visit(x)).abs()

    def _call_min(self, *xs: ast.expr) -> pd.Series:
        columns = pd.concat([self.number(self.visit(x)) for x in xs], axis=1)
        return columns.min(axis=1, skipna=False)

    def _call_max(self, *xs: ast.expr) -> pd.Series:
        columns = pd.concat([self.number(self.visit(x)) for x in xs], axis=1)
        return columns.max(axis=1, skipna=False)

    def _call_round(self, x: ast.expr, digits: ast.expr | None = None) -> pd.Series:
        places = 0
        if digits is not None:
            if not (isinstance(digits, ast.Constant) and isinstance(digits.value, int)):
                raise ExpressionError(
                    word(N_("calls round with digits that are not a whole number")))
            places = max(0, min(int(digits.value), 15))
        return self.number(self.visit(x)).round(places)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, pd.Series):
        return not is_textual(value) and not pd.api.types.is_bool_dtype(value.dtype)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparison_mode(left: Any, right: Any) -> str:
    """How ``==`` compares: as yes/no values next to true/false, as text next to a text
    literal, as numbers next to a number or a numeric column, else as text."""
    sides = (left, right)
    if any(isinstance(v, bool) for v in sides):
        return "boolean"
    if any(isinstance(v, str) for v in sides):
        return "text"
    if any(_is_numeric(v) for v in sides):
        return "number"
    if any(isinstance(v, pd.Series) and pd.api.types.is_bool_dtype(v.dtype) for v in sides):
        return "boolean"
    return "text"
