"""Checking values against a declared datatype (API.md §1.4, Part A 2).

Every value is checked, not only the first. A JSON integer is accepted for a float (and
stored as one); a bool is never accepted as a number. Types are kept: output is exactly
what was stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dtbase_core.errors import Invalid
from dtbase_core.orm.base import Datatype

INT64 = 2**63


def _fits(value: Any, datatype: Datatype) -> bool:
    kind = type(value)
    if datatype is Datatype.FLOAT:
        return kind is float or (kind is int and -INT64 <= value < INT64)
    if datatype is Datatype.INTEGER:
        return kind is int and -INT64 <= value < INT64
    if datatype is Datatype.BOOLEAN:
        return kind is bool
    return kind is str and "\x00" not in value


def check_value(value: Any, datatype: Datatype, loc: tuple[str | int, ...]) -> Any:
    """The value as stored (an int for a float becomes a float), or Invalid naming `loc`."""
    if not _fits(value, datatype):
        raise Invalid(
            f"{'.'.join(str(p) for p in loc[1:])}: {value!r} is not a valid {datatype.value} value",
            loc=loc,
        )
    return float(value) if datatype is Datatype.FLOAT else value


def _loc(field: str | tuple[str | int, ...]) -> tuple[str | int, ...]:
    return ("body", field) if isinstance(field, str) else ("body", *field)


def check_values(
    values: Sequence[Any], datatype: Datatype, field: str | tuple[str | int, ...]
) -> list[Any]:
    """Check a whole list; the error names the first bad element by index. `field` is
    a key of the body, or a path to one (`("series", 2, "readings")`)."""
    if datatype is Datatype.FLOAT and all(type(v) is float for v in values):
        return list(values)  # the bulk path: nothing to convert
    loc = _loc(field)
    return [check_value(v, datatype, (*loc, i)) for i, v in enumerate(values)]


def check_same_length(
    a: Sequence[Any], b: Sequence[Any], a_name: str, b_name: str | tuple[str | int, ...]
) -> None:
    if len(a) != len(b):
        loc = _loc(b_name)
        raise Invalid(
            f"{a_name} and {'.'.join(str(p) for p in loc[1:])} must have the same length "
            f"({len(a)} != {len(b)})",
            loc=loc,
        )
