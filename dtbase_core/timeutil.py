"""UTC everywhere (docs/api.md, Datetimes): naive input is read as UTC, output is ISO with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

# The API's JSON: aware datetimes in UTC end in `Z`; a dict's keys may be other than strings.
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC by definition here; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """`2023-03-29T00:00:00Z`; microseconds only when non-zero, as DTBase writes them."""
    return as_utc(value).isoformat().replace("+00:00", "Z")
