"""Readings aggregated per time bucket, in the database (`sensor-readings-aggregated`;
docs/api.md, Sensors).

Two ways to the same answer:
- from the hourly rollups, when every bucket is made of whole hours (a numeric measure,
  an interval that is a multiple of an hour, and `dt_from` on the hour): the whole hours
  come from `sensor_reading_hourly`, the part of an hour at the end of the range from the
  readings themselves, and the partial aggregates are then combined per bucket;
- from the readings, for anything else.
A derived measure (derived.py) has no rollups: its values are computed from its inputs'
readings in the range and aggregated per bucket in the same statement.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import derived
from dtbase_core.errors import Invalid
from dtbase_core.orm import Datatype, reading_rollup, reading_tables
from dtbase_core.readings import EPOCH, NUMERIC, SeriesTarget, resolve_for_read
from dtbase_core.schemas.sensors import parse_interval
from dtbase_core.values import INT64

ARITHMETIC = {"mean", "min", "max", "sum"}
HOUR = timedelta(hours=1)


def aggregated_readings(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    dt_from: datetime,
    dt_to: datetime,
    interval: str,
    aggregation: str,
) -> list[dict[str, Any]]:
    """Readings in buckets of `interval` starting at `dt_from`; both bounds inclusive."""
    target = resolve_for_read(session, unique_identifier, measure_name)
    if target is None:
        return []
    if isinstance(target, derived.DerivedSeries):
        query = _from_derived(target, dt_from, dt_to, parse_interval(interval), aggregation)
        return [{"timestamp": ts, "value": v} for ts, v in session.execute(query)]
    if aggregation in ARITHMETIC and target.datatype not in NUMERIC:
        raise Invalid(
            f"aggregation '{aggregation}' needs a numeric measure; '{measure_name}' is "
            f"{target.datatype.value}",
            loc=("body", "aggregation"),
        )
    step = parse_interval(interval)
    whole_hours = (
        target.datatype in NUMERIC
        and step % HOUR == timedelta(0)
        and (dt_from - EPOCH) % HOUR == timedelta(0)
    )
    query = (
        _from_rollups(target, dt_from, dt_to, step, aggregation)
        if whole_hours
        else _from_readings(target, dt_from, dt_to, step, aggregation)
    )
    return [{"timestamp": ts, "value": _json_number(v)} for ts, v in session.execute(query)]


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
    target: SeriesTarget, dt_from: datetime, dt_to: datetime, step: timedelta, aggregation: str
) -> Any:
    table = reading_tables[target.datatype]
    value = table.c.value
    bucket = sa.func.date_bin(step, table.c.timestamp, dt_from).label("bucket")
    where = (
        table.c.sensor_id == target.sensor_id,
        table.c.measure_id == target.measure_id,
        table.c.timestamp.between(dt_from, dt_to),
    )
    if aggregation in ("first", "last"):
        order = table.c.timestamp if aggregation == "first" else table.c.timestamp.desc()
        return sa.select(bucket, value).where(*where).distinct(bucket).order_by(bucket, order)
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
    step: timedelta,
    aggregation: str,
) -> Any:
    rows = derived.derived_rows(series, since=dt_from, until=dt_to).subquery()
    bucket = sa.func.date_bin(step, rows.c.timestamp, dt_from).label("bucket")
    if aggregation in ("first", "last"):
        order = rows.c.timestamp if aggregation == "first" else rows.c.timestamp.desc()
        return sa.select(bucket, rows.c.value).distinct(bucket).order_by(bucket, order)
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
    target: SeriesTarget, dt_from: datetime, dt_to: datetime, step: timedelta, aggregation: str
) -> Any:
    # Whole hours inside [dt_from, dt_to] come from the rollups; the readings from the
    # start of dt_to's hour to dt_to (less than an hour of them) are folded in as one
    # more partial, so the end bound stays exact.
    tail_start = max(dt_from, EPOCH + (dt_to - EPOCH) // HOUR * HOUR)
    r = reading_rollup.c
    whole = sa.select(
        r.hour,
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
        r.hour >= dt_from,
        r.hour < tail_start,
    )
    table = reading_tables[target.datatype]
    ts, value = table.c.timestamp, table.c.value
    tail_hour = sa.func.date_bin(HOUR, ts, EPOCH)
    tail = (
        sa.select(
            tail_hour,
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
            ts.between(tail_start, dt_to),
        )
        .group_by(tail_hour)
    )
    p = sa.union_all(whole, tail).subquery("partials")
    bucket = sa.func.date_bin(step, p.c.hour, dt_from).label("bucket")
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
