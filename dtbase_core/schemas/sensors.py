"""Bodies of /sensor (docs/api.md, Sensors)."""

from __future__ import annotations

import functools
import keyword
import re
import zoneinfo
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    TypeAdapter,
    field_validator,
)

from dtbase_core import expressions, instants
from dtbase_core.instants import Micros
from dtbase_core.orm.base import Datatype
from dtbase_core.schemas.common import (
    Body,
    Name,
    ReadingsBody,
    Units,
    UtcDatetime,
    Value,
    each,
    longest_list,
)


class MeasureIn(Body):
    name: Name
    # Required but nullable, as DTBase's `Optional[str]` without a default (docs/api.md,
    # Names, units and nulls).
    units: Units | None
    datatype: Datatype


# Days of raw readings a sensor type keeps (docs/api.md, Retention): a whole number, up to
# a hundred years; strict, so that 1.5, "30" or true are refused rather than coerced.
RetentionDays = Annotated[StrictInt, Field(ge=1, le=36500)]


class SensorTypeIn(Body):
    name: Name
    description: str | None = None
    measures: list[MeasureIn]
    retention_days: RetentionDays | None = None


class SetRetentionIn(Body):
    type_name: Name
    # Required, so that a body that forgot it does not clear a type's retention.
    retention_days: RetentionDays | None


class RetainedFromOut(BaseModel):
    retained_from: AwareDatetime | None


class SensorIn(Body):
    type_name: Name
    unique_identifier: Name
    name: Annotated[str, Field(max_length=100)] | None = None
    notes: str | None = None


class SensorLocationIn(Body):
    unique_identifier: Name
    schema_name: Name
    coordinates: dict[str, Value]
    installation_datetime: UtcDatetime | None = None


class UniqueIdentifierIn(Body):
    unique_identifier: Name


class TypeNameIn(Body):
    type_name: Name


class ListSensorsIn(Body):
    type_name: str | None = None


class LatestReadingsIn(Body):
    type_name: str | None = None


# What a write does with a timestamp stored already: keep the stored value (DTBase's
# behaviour) or overwrite it.
OnConflict = Literal["ignore", "update"]


_values = TypeAdapter(list[Value])
_instants = TypeAdapter(list[UtcDatetime])
_SCALARS = {float, int, bool, str}


def _readings(raw: Any) -> list[Any]:
    """The list itself when every element is a scalar (the datatype check comes with the
    measure, in the core); else pydantic names each bad element."""
    if type(raw) is list and set(map(type, raw)) <= _SCALARS:
        return raw
    return _values.validate_python(raw)


def _timestamps(raw: Any) -> Micros:
    """Microseconds since the epoch: ISO strings of one shape in bulk (instants.py), anything
    else element by element, which names each bad element."""
    if type(raw) is list and (fast := instants.parse_iso(raw)) is not None:
        return fast
    return instants.as_micros(_instants.validate_python(raw))


# Readings travel as they came, timestamps as an int64 array: the write path needs no
# Python object per reading (docs/architecture.md, Ingest). The documents show the JSON.
Readings = Annotated[list[Any], PlainValidator(_readings, json_schema_input_type=list[Value])]
Timestamps = Annotated[
    Micros, PlainValidator(_timestamps, json_schema_input_type=list[UtcDatetime])
]


class SeriesIn(ReadingsBody):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    measure_name: Name
    unique_identifier: Name
    readings: Readings
    timestamps: Timestamps

    @classmethod
    def count_readings(cls, raw: Any) -> int:
        return longest_list(raw, "readings", "timestamps")


class ReadingsIn(SeriesIn):
    on_conflict: OnConflict = "ignore"


class BulkReadingsIn(ReadingsBody):
    series: Annotated[list[SeriesIn], Field(min_length=1)]
    on_conflict: OnConflict = "ignore"

    @classmethod
    def count_readings(cls, raw: Any) -> int:
        return sum(SeriesIn.count_readings(one) for one in each(raw, "series"))


class ReadingsQuery(Body):
    measure_name: Name
    unique_identifier: Name
    dt_from: UtcDatetime
    dt_to: UtcDatetime


class ExportQuery(Body):
    """As ReadingsQuery, but each of the two names may also be a list."""

    measure_name: Name | Annotated[list[Name], Field(min_length=1)]
    unique_identifier: Name | Annotated[list[Name], Field(min_length=1)]
    dt_from: UtcDatetime
    dt_to: UtcDatetime


INTERVAL_PATTERN = re.compile(r"^\s*(\d+)\s*(s|sec|min|m|h|d|w)\s*$")
INTERVAL_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "min": "minutes",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}

# No bucket is longer than the accepted range of instants (years 1 to 9999).
MAX_INTERVAL = timedelta(days=3_652_059)

Aggregation = Literal["mean", "min", "max", "sum", "count", "first", "last"]


def parse_interval(text: str) -> timedelta:
    """`"15min"` as a timedelta; ValueError for anything else, or too long."""
    match = INTERVAL_PATTERN.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError("interval must be a positive count and a unit, such as 15min, 1h or 1d")
    try:
        step = timedelta(**{INTERVAL_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        step = MAX_INTERVAL + timedelta(days=1)
    if step > MAX_INTERVAL:
        raise ValueError(f"interval must be at most {MAX_INTERVAL.days}d (the years 1 to 9999)")
    return step


@functools.cache
def _zone_names() -> frozenset[str]:
    # "localtime" is a file of the host's zone directory, not an IANA name.
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


class AggregatedQuery(ReadingsQuery):
    interval: str
    aggregation: Aggregation
    # The IANA zone whose calendar the buckets follow (aggregation.py).
    timezone: str = "UTC"

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_interval(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value != "UTC" and value not in _zone_names():
            raise ValueError(
                f"unknown time zone {value[:64]!r}: an IANA name such as Europe/London"
            )
        return value


class EditSensorIn(Body):
    unique_identifier: Name
    name: Annotated[str, Field(max_length=100)]
    notes: str


class MeasureOut(BaseModel):
    name: str
    units: str | None
    datatype: str


class SensorTypeOut(BaseModel):
    name: str
    description: str | None
    measures: list[MeasureOut]
    retention_days: int | None


class SensorOut(BaseModel):
    unique_identifier: str
    name: str | None
    notes: str | None


class ReadingOut(BaseModel):
    value: Value
    timestamp: str


class AggregateOut(BaseModel):
    timestamp: str
    value: Value | None


class LatestReadingOut(BaseModel):
    unique_identifier: str
    measure_name: str
    units: str | None
    value: Value
    timestamp: str


class BulkInsertOut(BaseModel):
    detail: str
    inserted: int
    duplicates: int


# A variable of a derived measure's expression: a plain identifier, never a dunder or a
# function's name (dtbase_core/expressions.py checks the expression itself).
Variable = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")]


class DerivedMeasureIn(Body):
    type_name: Name
    name: Name
    units: Units | None
    expression: Annotated[str, Field(min_length=1, max_length=expressions.MAX_LENGTH)]
    inputs: Annotated[dict[Variable, Name], Field(min_length=1, max_length=expressions.MAX_INPUTS)]

    @field_validator("inputs")
    @classmethod
    def _no_reserved_names(cls, inputs: dict[str, str]) -> dict[str, str]:
        for variable in inputs:
            if variable in expressions.FUNCTIONS or keyword.iskeyword(variable):
                raise ValueError(f"'{variable}' is reserved and cannot name an input")
        return inputs


class DerivedMeasureKey(Body):
    type_name: Name
    name: Name


class DerivedMeasureOut(BaseModel):
    type_name: str
    name: str
    units: str | None
    expression: str
    inputs: dict[str, str]
