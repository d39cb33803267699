"""The expressions of derived measures: parsed with Python's own grammar (`ast.parse`),
checked against a strict whitelist of node types, and translated into a SQLAlchemy SQL
expression whose constants are bound parameters. Nothing is ever `eval`ed and no SQL is
built from the text.

Allowed: numbers, the declared variables, `+ - * / **`, unary `-` and `+`, comparisons
(`< <= > >= == !=`, chained too), `and`, `or`, `not`, `a if condition else b`, and calls
of `exp`, `log` (natural), `sqrt`, `abs`, `min`, `max`. The arithmetic compiles to the
guarded `dt_*` SQL functions (migration 0016), which give NULL where there is no finite
result (division by zero, `log` of a non-positive number, overflow), so a bad point is
left out instead of failing the read.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dtbase_core.errors import Invalid

MAX_LENGTH = 500
MAX_NODES = 200
MAX_DEPTH = 20
MAX_INPUTS = 10
# A larger constant exponent would only overflow; powers of powers (`9**9**9`) are refused.
MAX_CONSTANT_EXPONENT = 100
MAX_CONSTANT = 1e100

FUNCTIONS: dict[str, tuple[int, int]] = {  # name: (fewest, most) arguments
    "exp": (1, 1),
    "log": (1, 1),
    "sqrt": (1, 1),
    "abs": (1, 1),
    "min": (2, 10),
    "max": (2, 10),
}
_GUARDED = {"exp": sa.func.dt_exp, "log": sa.func.dt_ln, "sqrt": sa.func.dt_sqrt}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: sa.func.dt_add,
    ast.Sub: sa.func.dt_sub,
    ast.Mult: sa.func.dt_mul,
    ast.Div: sa.func.dt_div,
    ast.Pow: sa.func.dt_pow,
}
_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}
_LOC = ("body", "expression")


def _refuse(message: str) -> Invalid:
    return Invalid(message, _LOC)


@dataclass(frozen=True)
class _Typed:
    sql: Any
    boolean: bool


def parse(expression: str, variables: Mapping[str, Any]) -> ast.Expression:
    """The checked syntax tree of `expression` over `variables`; Invalid (422, naming
    the expression) for anything outside the whitelist."""
    if len(expression) > MAX_LENGTH:
        raise _refuse(f"The expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise _refuse(f"The expression is not valid: {error}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise _refuse(f"The expression has more than {MAX_NODES} parts")
    if _depth(tree) > MAX_DEPTH:
        raise _refuse(f"The expression nests deeper than {MAX_DEPTH} levels")
    used = {node.id for node in nodes if isinstance(node, ast.Name)} - set(FUNCTIONS)
    for name in sorted(used - set(variables)):
        raise _refuse(f"Unknown name '{name}': declare it in inputs")
    # Translating once checks every node and the types (numbers vs conditions).
    to_sql(tree, {name: sa.literal(0.0) for name in variables})
    for name in sorted(set(variables) - used):
        raise Invalid(f"Input '{name}' is not used in the expression", ("body", "inputs", name))
    return tree


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + max((_depth(child) for child in children), default=0)


def to_sql(tree: ast.Expression, columns: Mapping[str, Any]) -> Any:
    """The SQL expression (float8) of a tree `parse` accepted, over `columns`."""
    result = _translate(tree.body, columns)
    if result.boolean:
        raise _refuse("The expression is a condition, not a number: use `a if condition else b`")
    return result.sql


def _number(node: ast.expr, columns: Mapping[str, Any]) -> Any:
    result = _translate(node, columns)
    if result.boolean:
        raise _refuse(f"A number is needed, not a condition: '{ast.unparse(node)}'")
    return result.sql


def _condition(node: ast.expr, columns: Mapping[str, Any]) -> Any:
    result = _translate(node, columns)
    if not result.boolean:
        raise _refuse(f"A condition is needed, not a number: '{ast.unparse(node)}'")
    return result.sql


def _translate(node: ast.expr, columns: Mapping[str, Any]) -> _Typed:
    match node:
        case ast.Constant(value=bool()) | ast.Constant(value=None):
            raise _refuse(f"Only numbers are allowed as constants, not '{ast.unparse(node)}'")
        case ast.Constant(value=int() | float() as value):
            number = float(value) if abs(value) <= MAX_CONSTANT else math.inf
            if not math.isfinite(number) or abs(number) > MAX_CONSTANT:
                raise _refuse(f"The constant '{ast.unparse(node)}' is too large")
            return _Typed(sa.literal(number, sa.Double), False)
        case ast.Constant():
            raise _refuse(f"Only numbers are allowed as constants, not '{ast.unparse(node)}'")
        case ast.Name(id=name) if name in columns:
            return _Typed(sa.cast(columns[name], sa.Double), False)
        case ast.Name(id=name):
            raise _refuse(f"Unknown name '{name}'")
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return _Typed(-_number(operand, columns), False)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _Typed(_number(operand, columns), False)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return _Typed(sa.not_(_condition(operand, columns)), True)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _ARITHMETIC:
            if isinstance(op, ast.Pow):
                _check_exponent(right)
            function = _ARITHMETIC[type(op)]
            return _Typed(function(_number(left, columns), _number(right, columns)), False)
        case ast.BoolOp(op=op, values=values):
            conditions = [_condition(value, columns) for value in values]
            combine = sa.and_ if isinstance(op, ast.And) else sa.or_
            return _Typed(combine(*conditions), True)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            if not all(type(op) in _COMPARISONS for op in ops):
                raise _refuse(f"Unsupported comparison in '{ast.unparse(node)}'")
            operands = [_number(left, columns), *(_number(c, columns) for c in comparators)]
            parts = [
                _COMPARISONS[type(op)](a, b)
                for op, a, b in zip(ops, operands, operands[1:], strict=False)
            ]
            return _Typed(sa.and_(*parts) if len(parts) > 1 else parts[0], True)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _Typed(
                sa.case(
                    (_condition(test, columns), _number(body, columns)),
                    else_=_number(orelse, columns),
                ),
                False,
            )
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            fewest, most = FUNCTIONS[name]
            if not fewest <= len(args) <= most or any(isinstance(a, ast.Starred) for a in args):
                wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
                raise _refuse(f"{name}() takes {wanted} arguments")
            values = [_number(arg, columns) for arg in args]
            if name in _GUARDED:
                return _Typed(_GUARDED[name](values[0]), False)
            if name == "abs":
                return _Typed(sa.func.abs(values[0]), False)
            return _Typed((sa.func.least if name == "min" else sa.func.greatest)(*values), False)
        case ast.Call(func=ast.Name(id=name)) if name in FUNCTIONS:
            raise _refuse(f"{name}() takes no keyword arguments")
        case ast.Call():
            allowed = ", ".join(FUNCTIONS)
            raise _refuse(f"Only the functions {allowed} can be called: '{ast.unparse(node)}'")
        case ast.Attribute():
            raise _refuse(f"Attribute access is not allowed: '{ast.unparse(node)}'")
        case ast.Subscript():
            raise _refuse(f"Subscripts are not allowed: '{ast.unparse(node)}'")
        case ast.BinOp():
            raise _refuse(f"Unsupported operator in '{ast.unparse(node)}'")
    raise _refuse(f"'{type(node).__name__}' is not allowed in an expression: '{ast.unparse(node)}'")


def _check_exponent(exponent: ast.expr) -> None:
    if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(exponent)):
        raise _refuse("A power may not have a power in its exponent")
    value: Any = None
    if isinstance(exponent, ast.Constant):
        value = exponent.value
    elif isinstance(exponent, ast.UnaryOp) and isinstance(exponent.operand, ast.Constant):
        value = exponent.operand.value
    if isinstance(value, int | float) and abs(value) > MAX_CONSTANT_EXPONENT:
        raise _refuse(
            f"The exponent {ast.unparse(exponent)} is larger than {MAX_CONSTANT_EXPONENT}"
        )
