"""Instants in bulk: timestamps as int64 microseconds since 1970-01-01T00:00:00Z.

Readings travel through the write path as arrays of microseconds, which are exact over the
whole accepted range (years 1 to 9999) and cost nothing per element to compare, sort or
send in PostgreSQL's binary COPY format. One datetime object per reading costs more than
storing the reading.

`parse_iso` converts a list of ISO 8601 strings over whole arrays when they all share one
shape, `YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|±HH:MM]`, the shape every client sends; numpy
reads the calendar part and refuses 30 February or hour 24. Anything else (numbers, mixed
shapes, a bad element, a year outside the range) gives None, and the caller validates
element by element, which names each bad element. Both paths give the same instants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
Micros = npt.NDArray[np.int64]


def micros(instant: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact, unlike `timestamp()`)."""
    return (instant - EPOCH) // ONE_MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + us * ONE_MICROSECOND


def as_micros(instants: Sequence[datetime] | Micros) -> Micros:
    """Aware datetimes (or an array already) as an int64 array of microseconds."""
    if isinstance(instants, np.ndarray):
        return instants.astype(np.int64, copy=False)
    return np.fromiter((micros(t) for t in instants), np.int64, len(instants))


MIN_MICROS = micros(datetime(1, 1, 1, tzinfo=UTC))
MAX_MICROS = micros(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))

_SHAPE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,6})?(?P<zone>Z|[+-]\d\d:\d\d)?")
_ZERO, _NINE, _PLUS, _MINUS = ord("0"), ord("9"), ord("+"), ord("-")


def _two_digits(grid: npt.NDArray[np.uint8], at: int) -> npt.NDArray[np.int64]:
    return (grid[:, at].astype(np.int64) - _ZERO) * 10 + grid[:, at + 1] - _ZERO


def parse_iso(values: Sequence[Any]) -> Micros | None:
    """Every string of `values` as microseconds (UTC; naive means UTC), or None when they
    are not all strings of the first one's shape, or any is not a valid instant."""
    if not values:
        return np.empty(0, np.int64)
    first = values[0]
    if type(first) is not str or not (shape := _SHAPE.fullmatch(first)):
        return None
    if set(map(type, values)) != {str}:
        return None
    width = len(first)
    try:
        text = np.array(values, dtype=f"S{width + 1}")  # one byte more: longer ones show
    except UnicodeEncodeError:
        return None
    if (np.char.str_len(text) != width).any():
        return None
    grid = text.view(np.uint8).reshape(len(values), width + 1)[:, :width]
    template = np.frombuffer(first.encode(), np.uint8)
    digits = (template >= _ZERO) & (template <= _NINE)
    zone_at = shape.start("zone") if shape.group("zone") not in (None, "Z") else -1
    fixed = ~digits
    if zone_at >= 0:
        fixed[zone_at] = False  # the offset's sign may differ between strings
    column = grid[:, digits]
    if not ((column >= _ZERO) & (column <= _NINE)).all():
        return None
    if not (grid[:, fixed] == template[fixed]).all():
        return None
    if (grid[:, :4] == _ZERO).all(axis=1).any():
        return None  # year 0: numpy reads it, Python's datetime (and so pydantic) does not
    end = shape.start("zone") if shape.group("zone") else width
    calendar = np.ascontiguousarray(grid[:, :end]).view(f"S{end}").ravel()
    try:
        us = calendar.astype("datetime64[us]").view(np.int64)
    except ValueError:
        return None  # a day or hour out of range: the slow path names it
    if zone_at >= 0:
        sign = grid[:, zone_at]
        if not np.isin(sign, (_PLUS, _MINUS)).all():
            return None
        hours, minutes = _two_digits(grid, zone_at + 1), _two_digits(grid, zone_at + 4)
        if (hours > 23).any() or (minutes > 59).any():
            return None
        offset = (hours * 60 + minutes) * 60_000_000
        us = us - np.where(sign == _PLUS, offset, -offset)
    if us.min() < MIN_MICROS or us.max() > MAX_MICROS:
        return None
    return us
