"""Readings aggregated per calendar bucket in a time zone, in the database
(`sensor-readings-aggregated`; docs/api.md, Sensors).

Three ways to the same answer, the coarsest that fits (choose_source):
- from the daily rollups (`sensor_reading_daily`, UTC days) when every bucket is made of
  whole UTC days, from the hourly ones when of whole hours: the rows wholly inside the range,
  and the readings before and after them (less than a row each) as partials of their rows,
  combined per bucket;
- from the readings, for anything else.
A derived measure (derived.py) has no rollups: its values are computed from its inputs'
readings in the range and aggregated per bucket in the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import derived
from dtbase_core.errors import Invalid
from dtbase_core.orm import Datatype, reading_rollup, reading_rollup_daily, reading_tables
from dtbase_core.orm.base import UtcDateTime
from dtbase_core.readings import EPOCH, NUMERIC, SeriesTarget, resolve_for_read
from dtbase_core.schemas.sensors import parse_interval
from dtbase_core.values import INT64

ARITHMETIC = {"mean", "min", "max", "sum"}
INVALID_PARAMETER_VALUE = "22023"  # PostgreSQL's error for a time zone it does not know
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Buckets:
    """How readings fall into buckets: calendar ones (a whole number of days) are bins of
    local dates in `zone`, from local midnight to local midnight (23 or 25 hours across a
    DST change), weeks from a Monday, other whole days from dt_from's local date; shorter
    (or not whole-day) ones are fixed lengths of time from the local midnight that starts
    dt_from's day (so hours start on the hour and 15min on quarter hours in every zone
    whose offset is whole hours)."""

    step: timedelta
    zone: str
    origin: datetime  # calendar: a local (naive) midnight; else a UTC instant
    calendar: bool

    @classmethod
    def of(cls, step: timedelta, zone: str, dt_from: datetime) -> Buckets:
        tz = ZoneInfo(zone)
        try:
            local_day = dt_from.astimezone(tz).date()
        except OverflowError:  # near the year 1 or 9999: its UTC day
            local_day = dt_from.date()
        if step % WEEK == timedelta(0):
            return cls(step, zone, MONDAY, True)
        if step % DAY == timedelta(0):
            return cls(step, zone, datetime.combine(local_day, time()), True)
        try:
            midnight = datetime.combine(local_day, time(), tzinfo=tz).astimezone(UTC)
        except OverflowError:
            midnight = datetime.combine(local_day, time(), tzinfo=UTC)
        return cls(step, zone, midnight, False)

    def start(self, ts: Any) -> Any:
        """The start (a timestamptz) of the bucket of the timestamptz `ts`."""
        if not self.calendar:
            return sa.func.date_bin(self.step, ts, self.origin)
        zone = sa.literal(self.zone, sa.Text)
        local = sa.func.timezone(zone, ts)
        origin = sa.literal(self.origin, sa.DateTime(timezone=False))
        return sa.func.timezone(zone, sa.func.date_bin(self.step, local, origin), type_=UtcDateTime)

    def aligned_to(self, grain: timedelta, dt_from: datetime, dt_to: datetime) -> bool:
        """Whether every bucket boundary from dt_from to dt_to is a multiple of `grain`
        (an hour or a day) from the epoch, so that each rollup row of that grain lies in
        one bucket."""
        if not self.calendar:
            return self.step % grain == timedelta(0) and (self.origin - EPOCH) % grain == ZERO
        offsets = _midnight_offsets(self.zone, dt_from, dt_to)
        return offsets is not None and all(offset % grain == ZERO for offset in offsets)


ZERO = timedelta(0)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)
MONDAY = datetime(2000, 1, 3)
MAX_CHECKED_DAYS = 40_000  # about 110 years of local midnights checked one by one


def _midnight_offsets(zone: str, dt_from: datetime, dt_to: datetime) -> set[timedelta] | None:
    """The zone's UTC offsets at the local midnights from dt_from's local day to dt_to's
    (the calendar buckets' boundaries), or None for a range too long to check."""
    tz = ZoneInfo(zone)
    try:
        first, last = dt_from.astimezone(tz).date(), dt_to.astimezone(tz).date()
    except OverflowError:
        return None
    days = (last - first).days + 2
    if days > MAX_CHECKED_DAYS:
        return None
    offsets = set()
    for n in range(days):
        try:
            midnight = datetime.combine(first + timedelta(days=n), time(), tzinfo=tz)
        except OverflowError:
            break
        offset = midnight.utcoffset()
        assert offset is not None, "a ZoneInfo has an offset at every instant"
        offsets.add(offset)
    return offsets


Source = Literal["daily", "hourly", "readings"]


def choose_source(
    datatype: Datatype, buckets: Buckets, dt_from: datetime, dt_to: datetime
) -> Source:
    """The coarsest rollup whose rows each lie in one bucket, or the readings."""
    if datatype not in NUMERIC:
        return "readings"
    for grain, source in ((DAY, "daily"), (HOUR, "hourly")):
        # A range inside one row (dt_from to dt_to) is read from the readings.
        if _ceil(dt_from, grain) <= _floor(dt_to, grain) and buckets.aligned_to(
            grain, dt_from, dt_to
        ):
            return cast("Source", source)
    return "readings"


def _floor(instant: datetime, grain: timedelta) -> datetime:
    return EPOCH + (instant - EPOCH) // grain * grain


def _ceil(instant: datetime, grain: timedelta) -> datetime:
    floor = _floor(instant, grain)
    return floor if floor == instant else floor + grain


def aggregated_readings(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    dt_from: datetime,
    dt_to: datetime,
    interval: str,
    aggregation: str,
    timezone: str = "UTC",
) -> list[dict[str, Any]]:
    """Readings from dt_from to dt_to (both inclusive) in the calendar buckets of
    `interval` in `timezone` (Buckets), each labelled with its start."""
    target = resolve_for_read(session, unique_identifier, measure_name)
    if target is None:
        return []
    step = parse_interval(interval)
    try:
        buckets = Buckets.of(step, timezone, dt_from)
    except (ZoneInfoNotFoundError, ValueError):
        raise _unknown_zone(timezone) from None
    if isinstance(target, derived.DerivedSeries):
        query = _from_derived(target, dt_from, dt_to, buckets, aggregation)
        return [{"timestamp": ts, "value": v} for ts, v in _run(session, query, timezone)]
    if aggregation in ARITHMETIC and target.datatype not in NUMERIC:
        raise Invalid(
            f"aggregation '{aggregation}' needs a numeric measure; '{measure_name}' is "
            f"{target.datatype.value}",
            loc=("body", "aggregation"),
        )
    source = choose_source(target.datatype, buckets, dt_from, dt_to)
    query = (
        _from_readings(target, dt_from, dt_to, buckets, aggregation)
        if source == "readings"
        else _from_rollups(target, dt_from, dt_to, buckets, aggregation, source)
    )
    rows = _run(session, query, timezone)
    return [{"timestamp": ts, "value": _json_number(v)} for ts, v in rows]


def _unknown_zone(zone: str) -> Invalid:
    return Invalid(f"unknown time zone {zone[:64]!r}", loc=("body", "timezone"))


def _run(session: Session, query: Any, zone: str) -> list[Any]:
    """The query's rows; a zone that this process knows but PostgreSQL's time zone data
    does not (one older than Python's) is the caller's 422, not a 500 (the request's
    transaction is rolled back, as for any error)."""
    try:
        return list(session.execute(query))
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == INVALID_PARAMETER_VALUE:
            raise _unknown_zone(zone) from None
        raise


def _json_number(value: Any) -> Any:
    """A sum of integers comes as a Decimal: an int while it fits in 64 bits (as the
    readings do), a float beyond."""
    if isinstance(value, Decimal):
        return int(value) if -INT64 <= value < INT64 else float(value)
    return value


def _typed(expression: Any, datatype: Datatype, aggregation: str) -> Any:
    """Means are floats, counts integers, the rest keep the measure's type (a sum of
    integers is exact, and may not fit in a bigint)."""
    if aggregation == "count":
        return sa.cast(expression, sa.BigInteger)
    if aggregation == "sum" and datatype is Datatype.INTEGER:
        # Through text: a float8 rollup sum cast to numeric directly keeps 15 digits only.
        return sa.cast(sa.cast(expression, sa.Text), sa.Numeric)
    if aggregation == "mean" or datatype is Datatype.FLOAT:
        return sa.cast(expression, sa.Double)
    return sa.cast(expression, sa.BigInteger)


def _from_readings(
    target: SeriesTarget, dt_from: datetime, dt_to: datetime, buckets: Buckets, aggregation: str
) -> Any:
    table = reading_tables[target.datatype]
    value = table.c.value
    bucket = buckets.start(table.c.timestamp).label("bucket")
    where = (
        table.c.sensor_id == target.sensor_id,
        table.c.measure_id == target.measure_id,
        table.c.timestamp.between(dt_from, dt_to),
    )
    if aggregation in ("first", "last"):
        order = table.c.timestamp if aggregation == "first" else table.c.timestamp.desc()
        return (
            sa.select(bucket, value)
            .where(*where)
            .ext(pg.distinct_on(bucket))
            .order_by(bucket, order)
        )
    aggregate = {
        "count": sa.func.count(value),
        "mean": sa.func.avg(value),
        "sum": sa.func.sum(value),
        "min": sa.func.min(value),
        "max": sa.func.max(value),
    }[aggregation]
    if target.datatype in NUMERIC:
        aggregate = _typed(aggregate, target.datatype, aggregation)
    return sa.select(bucket, aggregate).where(*where).group_by(bucket).order_by(bucket)


def _from_derived(
    series: derived.DerivedSeries,
    dt_from: datetime,
    dt_to: datetime,
    buckets: Buckets,
    aggregation: str,
) -> Any:
    rows = derived.derived_rows(series, since=dt_from, until=dt_to).subquery()
    bucket = buckets.start(rows.c.timestamp).label("bucket")
    if aggregation in ("first", "last"):
        order = rows.c.timestamp if aggregation == "first" else rows.c.timestamp.desc()
        return sa.select(bucket, rows.c.value).ext(pg.distinct_on(bucket)).order_by(bucket, order)
    aggregate = {
        "count": sa.func.count(rows.c.value),
        "mean": sa.func.avg(rows.c.value),
        "sum": sa.func.sum(rows.c.value),
        "min": sa.func.min(rows.c.value),
        "max": sa.func.max(rows.c.value),
    }[aggregation]
    typed = _typed(aggregate, Datatype.FLOAT, aggregation)
    return sa.select(bucket, typed).group_by(bucket).order_by(bucket)


def _from_rollups(
    target: SeriesTarget,
    dt_from: datetime,
    dt_to: datetime,
    buckets: Buckets,
    aggregation: str,
    source: Source,
) -> Any:
    # The rollup rows wholly inside [dt_from, dt_to] (from `whole_from` to `whole_to`),
    # and the readings before and after them (each less than a row of them) folded in as
    # partials of their rows, so both bounds stay exact. Each row, and each edge's
    # partial, lies in one bucket (choose_source), labelled by the bucket of its start.
    table_, key = (reading_rollup_daily, "day") if source == "daily" else (reading_rollup, "hour")
    grain = DAY if source == "daily" else HOUR
    whole_from, whole_to = _ceil(dt_from, grain), _floor(dt_to, grain)
    r = table_.c
    whole = sa.select(
        r[key].label("start"),
        r.count,
        r.sum,
        r.min,
        r.max,
        r.first_timestamp,
        r.first_value,
        r.last_timestamp,
        r.last_value,
    ).where(
        r.sensor_id == target.sensor_id,
        r.measure_id == target.measure_id,
        r[key] >= whole_from,
        r[key] < whole_to,
    )
    table = reading_tables[target.datatype]
    ts, value = table.c.timestamp, table.c.value
    row_start = sa.func.date_bin(grain, ts, EPOCH)
    edges = (
        sa.select(
            row_start,
            sa.func.count(),
            sa.func.sum(value),
            sa.func.min(value),
            sa.func.max(value),
            sa.func.min(ts),
            pg.array_agg(pg.aggregate_order_by(value, ts))[1],
            sa.func.max(ts),
            pg.array_agg(pg.aggregate_order_by(value, ts.desc()))[1],
        )
        .where(
            table.c.sensor_id == target.sensor_id,
            table.c.measure_id == target.measure_id,
            sa.or_(
                sa.and_(ts >= dt_from, ts < whole_from),
                sa.and_(ts >= whole_to, ts <= dt_to),
            ),
        )
        .group_by(row_start)
    )
    p = sa.union_all(whole, edges).subquery("partials")
    bucket = buckets.start(p.c.start).label("bucket")
    combined = {
        "count": sa.func.sum(p.c.count),
        "sum": sa.func.sum(p.c.sum),
        "mean": sa.func.sum(p.c.sum) / sa.func.sum(p.c.count),
        "min": sa.func.min(p.c.min),
        "max": sa.func.max(p.c.max),
        "first": pg.array_agg(pg.aggregate_order_by(p.c.first_value, p.c.first_timestamp))[1],
        "last": pg.array_agg(pg.aggregate_order_by(p.c.last_value, p.c.last_timestamp.desc()))[1],
    }[aggregation]
    return (
        sa.select(bucket, _typed(combined, target.datatype, aggregation))
        .select_from(p)
        .group_by(bucket)
        .order_by(bucket)
    )
