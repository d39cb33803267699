"""Types shared by every area's bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from dtbase_core.timeutil import as_utc

# Each JSON value keeps its type: 1 is an int, 1.0 a float, true a bool (API.md §1.4).
# Pydantic's smart-mode union picks the exact type match.
Value = bool | int | float | str


def _not_date_only(value: Any) -> Any:
    """DTBase (pydantic 2.5) refused "2023-01-01" for a datetime; newer pydantic reads it
    as midnight. Keep refusing it: a date alone is too easily a mistake (API.md §1.3)."""
    if isinstance(value, str) and len(value.strip()) <= 10:
        raise ValueError("Input should be a valid datetime, a date alone is not enough")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# Naive input is UTC; aware input is converted to UTC (Part A 6). Numbers are Unix seconds.
UtcDatetime = Annotated[datetime, BeforeValidator(_not_date_only), AfterValidator(as_utc)]

Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Units = Annotated[str, Field(max_length=100)]


class Body(BaseModel):
    """Request bodies ignore undeclared keys, as DTBase's do (the frontend relies on it)."""

    model_config = ConfigDict(extra="ignore")


def longest_list(raw: Any, *keys: str) -> int:
    """The length of the longest of `raw`'s lists under `keys` (0 for anything else)."""
    if not isinstance(raw, dict):
        return 0
    return max((len(v) for k in keys if isinstance(v := raw.get(k), list)), default=0)


def each(raw: Any, key: str) -> list[Any]:
    """`raw[key]` when it is a list, else nothing."""
    items = raw.get(key) if isinstance(raw, dict) else None
    return items if isinstance(items, list) else []


class ReadingsBody(Body):
    """A body carrying readings (values with timestamps). The HTTP layer counts them in
    the parsed JSON, before validation builds a Python object per value, and refuses more
    than DT_MAX_READINGS_PER_REQUEST with a 413."""

    @classmethod
    def count_readings(cls, raw: Any) -> int:
        raise NotImplementedError


class Message(BaseModel):
    detail: str


class ErrorItem(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ValidationErrorReply(BaseModel):
    detail: list[ErrorItem]


class Health(BaseModel):
    """`GET /health`: whether the API and its database answer."""

    status: str
    database: str
