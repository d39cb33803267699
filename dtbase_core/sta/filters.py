"""$filter and $orderby expressions as SQLAlchemy Core, by odata-query's parser.

odata-query parses OData v4 expressions; SensorThings v1.1 also names OData v3's
`substringof(needle, haystack)`, registered here. Identifiers resolve through the entity
set's properties (`dtbase_core/sta/entities.py`), and a path through a navigation
property to one entity (`Datastream/name`, `Datastream/Thing/name`) becomes a correlated
scalar subquery, so that filtering stays in SQL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from odata_query import ast
from odata_query import exceptions as odata_errors
from odata_query.grammar import ODATA_FUNCTIONS, ODataLexer, ODataParser
from odata_query.sqlalchemy.common import _CommonVisitors

from dtbase_core.sta.errors import BadQuery

if TYPE_CHECKING:
    from dtbase_core.sta.entities import EntitySet

# OData v3's substring test, which SensorThings v1.1 lists among its functions.
ODATA_FUNCTIONS.setdefault("substringof", 2)

# `@iot.id` may stand for `id` in an expression (the lexer knows no `@`).
_IOT_ID = re.compile(r"@iot\.id\b")
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def parse(text: str) -> ast._Node:
    """The expression's syntax tree; a `BadQuery` naming the problem if it has none."""
    # Replace `@iot.id` outside string literals only.
    pieces, pos = [], 0
    for literal in _STRING_LITERAL.finditer(text):
        pieces.append(_IOT_ID.sub("id", text[pos : literal.start()]) + literal.group(0))
        pos = literal.end()
    pieces.append(_IOT_ID.sub("id", text[pos:]))
    try:
        tree: ast._Node = ODataParser().parse(ODataLexer().tokenize("".join(pieces)))
    except odata_errors.ODataException as exc:
        raise BadQuery(f"{text!r}: {exc}") from None
    if tree is None:
        raise BadQuery("empty expression")
    return tree


class SqlCompiler(_CommonVisitors):
    """An expression on `entity` (its rows selected from `source`) as a SQL expression."""

    def __init__(self, entity: EntitySet, source: Any) -> None:
        self.entity = entity
        self.source = source

    def compile(self, tree: ast._Node) -> Any:
        try:
            return self.visit(tree)
        except odata_errors.ODataException as exc:
            raise BadQuery(str(exc)) from None
        except (TypeError, NotImplementedError) as exc:
            raise BadQuery(f"unsupported expression: {exc}") from None

    # --- names -----------------------------------------------------------------------

    def visit_Identifier(self, node: ast.Identifier) -> Any:
        return self.entity.column(self.source, [node.name])

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        return self.entity.column(self.source, _segments(node))

    # --- operators the common visitor leaves to the database as it is ------------------

    def visit_Mod(self, node: ast.Mod) -> Callable[[Any, Any], Any]:
        # PostgreSQL has no % on double precision: compute it in numeric.
        return lambda a, b: sa.func.mod(sa.cast(a, sa.Numeric), sa.cast(b, sa.Numeric))

    def visit_Div(self, node: ast.Div) -> Callable[[Any, Any], Any]:
        # Division of whole numbers in SQL truncates; OData's `div` on numbers does not.
        return lambda a, b: sa.cast(a, sa.Double) / sa.cast(b, sa.Double)

    def visit_Compare(self, node: ast.Compare) -> Any:
        left, right = self._operand(node.left, node.right), self._operand(node.right, node.left)
        return self.visit(node.comparator)(left, right)

    def _operand(self, node: ast._Node, other: ast._Node) -> Any:
        """A property compared with a literal of another kind takes that kind's column
        where the entity has one (an Observation's `result` compared with a string)."""
        if isinstance(node, ast.Identifier) and isinstance(other, ast.String | ast.Boolean):
            kind = "string" if isinstance(other, ast.String) else "boolean"
            typed = self.entity.typed_column(self.source, node.name, kind)
            if typed is not None:
                return typed
        return self.visit(node)

    # --- functions ---------------------------------------------------------------------

    def _substr_function(self, field: ast._Node, substr: ast._Node, func: str) -> Any:
        # A literal's % and _ are matched as themselves.
        if isinstance(substr, ast.String):
            return getattr(self.visit(field), func)(substr.py_val, autoescape=True)
        return getattr(self.visit(field), func)(self.visit(substr))

    def func_substringof(self, substr: ast._Node, field: ast._Node) -> Any:
        return self._substr_function(field, substr, "contains")

    def func_fractionalseconds(self, field: ast._Node) -> Any:
        return sa.extract("microseconds", self.visit(field)) % 1000000 / 1e6

    def func_mindatetime(self, field: ast._Node) -> Any:
        return self.visit(field)

    def func_maxdatetime(self, field: ast._Node) -> Any:
        return self.visit(field)

    def func_totaloffsetminutes(self, field: ast._Node) -> Any:
        # Every time here is stored and answered in UTC.
        return sa.literal(0)


def _segments(node: ast._Node) -> list[str]:
    if isinstance(node, ast.Identifier):
        return [node.name]
    if isinstance(node, ast.Attribute):
        return [*_segments(node.owner), node.attr]
    raise BadQuery(f"not a property path: {node}")


def where(entity: EntitySet, source: Any, text: str) -> Any:
    """`$filter=text` on `entity` as a WHERE clause."""
    return SqlCompiler(entity, source).compile(parse(text))


def order_by(entity: EntitySet, source: Any, text: str) -> list[Any]:
    """`$orderby=text` (expressions, each optionally `asc` or `desc`) as ORDER BY terms."""
    terms = []
    for item in split_top_level(text, ","):
        expression, _, direction = item.strip().rpartition(" ")
        if direction.lower() not in ("asc", "desc"):
            expression, direction = item.strip(), "asc"
        if not expression.strip():
            raise BadQuery(f"$orderby: no expression in {item!r}")
        column = SqlCompiler(entity, source).compile(parse(expression))
        order = operator.methodcaller("desc" if direction.lower() == "desc" else "asc")
        terms.append(order(column).nulls_last() if direction.lower() == "asc" else order(column))
    return terms


def split_top_level(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside parentheses and string literals."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise BadQuery(f"unbalanced parentheses in {text!r}")
        elif char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise BadQuery(f"unbalanced parentheses or quotes in {text!r}")
    parts.append(text[start:])
    return [part for part in parts if part.strip()]
