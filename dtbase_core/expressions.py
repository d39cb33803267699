"""The expressions of derived measures: parsed with Python's own grammar (`ast.parse`),
checked against a strict whitelist of node types, and translated into SQLAlchemy SQL
expressions whose constants are bound parameters. Nothing is ever `eval`ed and no SQL is
built from the text.

Allowed: numbers, the declared variables, `+ - * / **`, unary `-` and `+`, comparisons
(`< <= > >= == !=`, chained too), `and`, `or`, `not`, `a if condition else b`, and calls
of `exp`, `log` (natural), `sqrt`, `abs`, `min`, `max`. The arithmetic is guarded: NULL
where PostgreSQL would raise an error (division by zero, `log` of a non-positive number,
overflow), so a bad point is left out instead of failing the read.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable
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


Arg = str | float  # a column of the plan (a variable or a computed part), or a constant


@dataclass(frozen=True)
class _Typed:
    ref: Arg
    boolean: bool


@dataclass(frozen=True)
class _Part:
    height: int
    build: Callable[..., Any]
    args: tuple[Arg, ...]


@dataclass
class Plan:
    """A checked expression as parts, each computed once per row: every part is a column,
    and the parts of one height form one layer, a subquery over the layer below.
    (One inline SQL expression would repeat each guarded operand in its CASE, so nested
    guards would grow exponentially and be evaluated many times a row.)"""

    variables: tuple[str, ...]
    parts: dict[str, _Part]
    root: Arg

    def rows(self, base: Any) -> Any:
        """SELECT timestamp, value, from `base`: a SELECT of `timestamp` and one column
        per variable, labelled by column_of(variable). The value is NULL where it has no
        finite result; the rows keep `base`'s order."""
        layer = base.subquery("layer_0")
        for height in range(1, max((p.height for p in self.parts.values()), default=0) + 1):
            columns = layer.c
            new = [
                part.build(*(_sql(arg, columns) for arg in part.args)).label(name)
                for name, part in self.parts.items()
                if part.height == height
            ]
            # OFFSET 0 keeps PostgreSQL from merging the layers back into one expression.
            layer = sa.select(*columns, *new).offset(0).subquery(f"layer_{height}")
        return sa.select(layer.c.timestamp, _sql(self.root, layer.c).label("value"))


def column_of(variable: str) -> str:
    """The column a variable's values come in (apart from `timestamp` and the parts)."""
    return f"var_{variable}"


def _sql(arg: Arg, columns: Any) -> Any:
    return sa.literal(arg, sa.Double) if isinstance(arg, float) else columns[arg]


def parse(expression: str, variables: Iterable[str]) -> Plan:
    """The checked plan of `expression` over `variables`; Invalid (422, naming the
    expression) for anything outside the whitelist."""
    variables = tuple(variables)
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
    plan = Plan(variables, {}, 0.0)
    result = _Translator(plan).number(tree.body, whole=True)
    for name in sorted(set(variables) - used):
        raise Invalid(f"Input '{name}' is not used in the expression", ("body", "inputs", name))
    plan.root = result
    return plan


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + max((_depth(child) for child in children), default=0)


# The guarded operations: NULL where PostgreSQL would raise an error (a division by zero,
# the log of a number <= 0, an overflow), 0 where a result underflows. ln(max float8) is
# 709.78 and ln(the smallest normal float8) -708.40. CASE evaluates its arms in order, so
# ln() never sees a zero.
_BIG = 8.9e307  # two numbers below it add up to a finite float


def _zero() -> Any:
    return sa.literal(0.0, sa.Double)


def _by_logs(log_magnitude: Any, result: Any, *zero_when: Any) -> Any:
    return sa.case(
        (sa.or_(*zero_when), _zero()),
        (log_magnitude > 709, sa.null()),
        (log_magnitude < -708, _zero()),
        else_=result,
    )


def _ln_abs(x: Any) -> Any:
    return sa.func.ln(sa.func.abs(x))


def _add(a: Any, b: Any) -> Any:
    return sa.case((sa.and_(sa.func.abs(a) < _BIG, sa.func.abs(b) < _BIG), a + b))


def _sub(a: Any, b: Any) -> Any:
    return sa.case((sa.and_(sa.func.abs(a) < _BIG, sa.func.abs(b) < _BIG), a - b))


def _mul(a: Any, b: Any) -> Any:
    return _by_logs(_ln_abs(a) + _ln_abs(b), a * b, a == 0, b == 0)


def _div(a: Any, b: Any) -> Any:
    return sa.case((b == 0, sa.null()), else_=_by_logs(_ln_abs(a) - _ln_abs(b), a / b, a == 0))


def _pow(a: Any, b: Any) -> Any:
    return sa.case(
        (b == 0, sa.literal(1.0, sa.Double)),
        (a == 0, sa.case((b > 0, _zero()))),
        (sa.and_(a < 0, b != sa.func.trunc(b)), sa.null()),
        (sa.func.abs(b) > 1e300, sa.null()),
        else_=_by_logs(b * _ln_abs(a), sa.func.power(a, b)),
    )


def _exp(x: Any) -> Any:
    return sa.case((x > 709, sa.null()), (x < -708, _zero()), else_=sa.func.exp(x))


def _log(x: Any) -> Any:
    return sa.case((x > 0, sa.func.ln(x)))


def _sqrt(x: Any) -> Any:
    return sa.case((x >= 0, sa.func.sqrt(x)))


_GUARDED: dict[str, Callable[[Any], Any]] = {"exp": _exp, "log": _log, "sqrt": _sqrt}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: _sub,
    ast.Mult: _mul,
    ast.Div: _div,
    ast.Pow: _pow,
}


class _Translator:
    """Walks a syntax tree, refusing anything outside the whitelist, and adds each
    operation to the plan as a part over its operands' columns."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.heights: dict[str, int] = {column_of(v): 0 for v in plan.variables}

    def part(self, build: Callable[..., Any], *args: Arg, boolean: bool = False) -> _Typed:
        height = 1 + max((self.heights[a] for a in args if isinstance(a, str)), default=0)
        name = f"part_{len(self.plan.parts)}"
        self.plan.parts[name] = _Part(height, build, args)
        self.heights[name] = height
        return _Typed(name, boolean)

    def number(self, node: ast.expr, *, whole: bool = False) -> Arg:
        result = self.translate(node)
        if result.boolean:
            if whole:
                raise _refuse(
                    "The expression is a condition, not a number: use `a if condition else b`"
                )
            raise _refuse(f"A number is needed, not a condition: '{ast.unparse(node)}'")
        return result.ref

    def condition(self, node: ast.expr) -> Arg:
        result = self.translate(node)
        if not result.boolean:
            raise _refuse(f"A condition is needed, not a number: '{ast.unparse(node)}'")
        return result.ref

    def translate(self, node: ast.expr) -> _Typed:
        match node:
            case ast.Constant(value=bool()) | ast.Constant(value=None):
                raise _refuse(f"Only numbers are allowed as constants, not '{ast.unparse(node)}'")
            case ast.Constant(value=int() | float() as value):
                number = float(value) if abs(value) <= MAX_CONSTANT else math.inf
                if not math.isfinite(number) or abs(number) > MAX_CONSTANT:
                    raise _refuse(f"The constant '{ast.unparse(node)}' is too large")
                return _Typed(number, False)
            case ast.Constant():
                raise _refuse(f"Only numbers are allowed as constants, not '{ast.unparse(node)}'")
            case ast.Name(id=name) if name in self.plan.variables:
                return _Typed(column_of(name), False)
            case ast.Name(id=name):
                raise _refuse(f"Unknown name '{name}'")
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return self.part(lambda x: -x, self.number(operand))
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                return _Typed(self.number(operand), False)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return self.part(sa.not_, self.condition(operand), boolean=True)
            case ast.BinOp(op=op, left=left, right=right) if type(op) in _ARITHMETIC:
                if isinstance(op, ast.Pow):
                    _check_exponent(right)
                return self.part(_ARITHMETIC[type(op)], self.number(left), self.number(right))
            case ast.BoolOp(op=op, values=values):
                conditions = [self.condition(value) for value in values]
                combine = sa.and_ if isinstance(op, ast.And) else sa.or_
                return self.part(combine, *conditions, boolean=True)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                if not all(type(op) in _COMPARISONS for op in ops):
                    raise _refuse(f"Unsupported comparison in '{ast.unparse(node)}'")
                operands = [self.number(left), *(self.number(c) for c in comparators)]
                compare = [_COMPARISONS[type(op)] for op in ops]

                def chained(*values: Any) -> Any:
                    pairs = zip(compare, values, values[1:], strict=False)
                    return sa.and_(*(test(a, b) for test, a, b in pairs))

                return self.part(chained, *operands, boolean=True)
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self.part(
                    lambda c, a, b: sa.case((c, a), else_=b),
                    self.condition(test),
                    self.number(body),
                    self.number(orelse),
                )
            case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
                fewest, most = FUNCTIONS[name]
                if not fewest <= len(args) <= most or any(isinstance(a, ast.Starred) for a in args):
                    wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
                    raise _refuse(f"{name}() takes {wanted} arguments")
                numbers = [self.number(arg) for arg in args]
                if name in _GUARDED:
                    return self.part(_GUARDED[name], *numbers)
                if name == "abs":
                    return self.part(sa.func.abs, *numbers)
                return self.part(sa.func.least if name == "min" else sa.func.greatest, *numbers)
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
        raise _refuse(
            f"'{type(node).__name__}' is not allowed in an expression: '{ast.unparse(node)}'"
        )


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
