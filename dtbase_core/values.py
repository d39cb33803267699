"""Checking values against a declared datatype (docs/api.md, Values and datatypes; Types are kept).

Every value is checked, not only the first. A JSON integer is accepted for a float (and
stored as one); a bool is never accepted as a number. Types are kept: output is exactly
what was stored.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from dtbase_core.errors import Invalid
from dtbase_core.orm.base import Datatype

INT64 = 2**63
# The largest finite float: any float JSON gives. Readings have a smaller bound (readings.py).
MAX_FLOAT = sys.float_info.max
# A list with more bad values than this names the first ones and counts the rest.
MAX_REPORTED = 100


def _fits(value: Any, datatype: Datatype, max_float: float = MAX_FLOAT) -> bool:
    kind = type(value)
    if datatype is Datatype.FLOAT:
        return (kind is float and -max_float <= value <= max_float) or (
            kind is int and -INT64 <= value < INT64
        )
    if datatype is Datatype.INTEGER:
        return kind is int and -INT64 <= value < INT64
    if datatype is Datatype.BOOLEAN:
        return kind is bool
    return kind is str and "\x00" not in value


def _json(value: Any) -> str:
    """A value as its JSON text (`true`, `"2"`), for messages; shortened when long."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(
    value: Any, datatype: Datatype, loc: tuple[str | int, ...], max_float: float = MAX_FLOAT
) -> str:
    field = ".".join(str(p) for p in loc[1:])
    if datatype is Datatype.FLOAT and type(value) is float:
        return f"{field}: {_json(value)} is outside the accepted range (±{max_float:g})"
    return f"{field}: {_json(value)} is not a valid {datatype.value} value"


def check_value(value: Any, datatype: Datatype, loc: tuple[str | int, ...]) -> Any:
    """The value as stored (an int for a float becomes a float), or Invalid naming `loc`."""
    if not _fits(value, datatype):
        raise Invalid(_problem(value, datatype, loc), loc=loc)
    return float(value) if datatype is Datatype.FLOAT else value


def _loc(field: str | tuple[str | int, ...]) -> tuple[str | int, ...]:
    return ("body", field) if isinstance(field, str) else ("body", *field)


def check_values(
    values: Sequence[Any],
    datatype: Datatype,
    field: str | tuple[str | int, ...],
    *,
    max_float: float = MAX_FLOAT,
) -> list[Any]:
    """Check a whole list; the error names every bad element by index (the first
    MAX_REPORTED of them). `field` is a key of the body, or a path to one
    (`("series", 2, "readings")`); floats beyond ±`max_float` are refused."""
    # The bulk path: whole-array checks (NaN, from Python only, fails the comparison).
    if (
        datatype is Datatype.FLOAT
        and set(map(type, values)) == {float}
        and np.abs(np.asarray(values, np.float64)).max() <= max_float
    ):
        return list(values)
    loc = _loc(field)
    bad = [i for i, v in enumerate(values) if not _fits(v, datatype, max_float)]
    if bad:
        items = [
            ((*loc, i), _problem(values[i], datatype, (*loc, i), max_float))
            for i in bad[:MAX_REPORTED]
        ]
        if len(bad) > MAX_REPORTED:
            items.append((loc, f"and {len(bad) - MAX_REPORTED} more invalid values"))
        (first_loc, first), *more = items
        raise Invalid(first, first_loc, more=more)
    return [float(v) for v in values] if datatype is Datatype.FLOAT else list(values)


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
