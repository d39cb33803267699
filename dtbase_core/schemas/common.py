"""Types shared by every area's bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from dtbase_core.timeutil import as_utc

Scalar = bool | int | float | str


def _scalar(value: Any) -> Any:
    # One message for null, a list or an object, rather than one per member of the union.
    if type(value) not in (bool, int, float, str):
        raise PydanticCustomError("scalar_type", "Input should be a number, a boolean or a string")
    return value


# Each JSON value keeps its type: 1 is an int, 1.0 a float, true a bool (docs/api.md,
# Values and datatypes).
Value = Annotated[Scalar, PlainValidator(_scalar, json_schema_input_type=Scalar)]


def _not_date_only(value: Any) -> Any:
    """DTBase (pydantic 2.5) refused "2023-01-01" for a datetime; newer pydantic reads it
    as midnight. Keep refusing it: a date alone is too easily a mistake (docs/api.md, Datetimes)."""
    if isinstance(value, str) and len(value.strip()) <= 10:
        raise ValueError("Input should be a valid datetime, a date alone is not enough")
    return value


def _name(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if not value.strip():
        raise ValueError("must not be blank")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


# Instants are accepted from year 1 to year 9999, once converted to UTC: what both Python
# and the JSON replies can represent.
TIME_RANGE = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


def _to_utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError(f"Input should be in {TIME_RANGE} once converted to UTC") from None


# Naive input is UTC; aware input is converted to UTC (docs/api.md, Order and time).
# Numbers are Unix seconds.
UtcDatetime = Annotated[datetime, BeforeValidator(_not_date_only), AfterValidator(_to_utc)]

# Every name of a thing: sensor types, sensors, measures, models, services, schemas...
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]
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
