"""Sensor readings: written in bulk, read with one indexed query (docs/api.md, Sensors).

A series (one sensor, one measure) arrives as arrays (timestamps as microseconds,
instants.py) and is written whatever its length with one COPY or one statement:
- new readings (none stored in their span, none twice), the usual case, go in with a
  binary COPY (pgcopy.py), PostgreSQL's fastest path, and their hours' and days' rollups
  (`aggregation.py`) are folded from the span they fill;
- otherwise `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`, which folds
  exactly the rows it inserted into the rollups;
- with `on_conflict="update"` stored values are overwritten, and the rollups of the hours
  touched are recomputed from the readings, then those of the days from the hours.

Concurrent writers of one series take turns: each holds a transaction-scoped advisory lock
on (sensor, measure), taken in one order for all the series of a request, so they can
neither deadlock on the readings or rollup rows nor fold a stale rollup.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import derived, pgcopy, shards
from dtbase_core.errors import Invalid, NotFound
from dtbase_core.instants import (
    EPOCH,
    ONE_MICROSECOND,
    Micros,
    as_micros,
    from_micros,
    micros,
)
from dtbase_core.orm import (
    Datatype,
    Sensor,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    reading_rollup,
    reading_rollup_daily,
    reading_tables,
)
from dtbase_core.orm.base import UtcDateTime
from dtbase_core.schemas.sensors import OnConflict
from dtbase_core.timeutil import JSON_OPTIONS, utcnow
from dtbase_core.values import check_same_length, check_values

ONE_SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
HOUR_MICROS = HOUR // ONE_MICROSECOND
DAY = timedelta(days=1)
DAY_MICROS = DAY // ONE_MICROSECOND
COPY_CHUNK = 65_536  # rows per piece of a COPY (about 2 MB)
NUMERIC = (Datatype.FLOAT, Datatype.INTEGER)
# The largest magnitude of a float reading. An hour holds at most 3.6e9 readings (one per
# microsecond) and the accepted range of instants about 8.8e7 hours, so no sum of readings,
# in a rollup or over any bucket, can overflow a float8 (which would abort the insert or
# the query): 3.6e9 * 8.8e7 * 1e290 < 1.8e308.
MAX_FLOAT_READING = 1e290


@dataclass(frozen=True)
class SeriesTarget:
    sensor_id: int
    measure_id: int
    datatype: Datatype
    units: str | None
    retention_days: int | None = None  # its sensor type's (docs/api.md, Retention)


# The write path's statements are built once, with bound parameters: for a batch of a
# thousand readings, building a statement like the rollup's costs more than running it.


@functools.cache
def _target_query(for_write: bool) -> Any:
    query = (
        sa.select(
            Sensor.id.label("sensor_id"),
            SensorType.name.label("type_name"),
            SensorMeasure.id.label("measure_id"),
            SensorMeasure.name,
            SensorMeasure.units,
            SensorMeasure.datatype,
            SensorType.retention_days,
        )
        .join(SensorType, SensorType.id == Sensor.type_id)
        .outerjoin(SensorTypeMeasure, SensorTypeMeasure.type_id == Sensor.type_id)
        .outerjoin(
            SensorMeasure,
            sa.and_(
                SensorMeasure.id == SensorTypeMeasure.measure_id,
                SensorMeasure.name == sa.bindparam("measure_name"),
            ),
        )
        .where(Sensor.unique_identifier == sa.bindparam("unique_identifier"))
    )
    if for_write:
        query = query.with_for_update(read=True, key_share=True, of=Sensor)
    return query


def series_target(
    session: Session, unique_identifier: str, measure_name: str, *, for_write: bool = False
) -> SeriesTarget:
    """The sensor and the measure of its type called `measure_name`. For a write, the
    sensor row is held FOR KEY SHARE until commit, so it cannot be deleted under us."""
    rows = session.execute(
        _target_query(for_write),
        {"unique_identifier": unique_identifier, "measure_name": measure_name},
    ).all()
    if not rows:
        raise NotFound(f"Sensor '{unique_identifier}' does not exist")
    matches = [row for row in rows if row.measure_id is not None]
    if not matches and for_write and derived.find_series(session, unique_identifier, measure_name):
        raise Invalid(
            f"'{measure_name}' is a derived measure of sensor type '{rows[0].type_name}': its "
            "readings are computed from its inputs' readings, not written",
            loc=("body", "measure_name"),
        )
    if not matches:
        raise NotFound(
            f"Measure '{measure_name}' is not a measure of sensor type '{rows[0].type_name}'"
        )
    if len(matches) > 1:
        raise Invalid(
            f"Sensor type '{rows[0].type_name}' has several measures called '{measure_name}'",
            loc=("body", "measure_name"),
        )
    row = matches[0]
    return SeriesTarget(row.sensor_id, row.measure_id, row.datatype, row.units, row.retention_days)


def target_for_read(
    session: Session, unique_identifier: str, measure_name: str
) -> SeriesTarget | None:
    """None when the measure exists but the sensor's type lacks it: its readings are `[]`,
    as in DTBase, whose ARIMA reads every measure of every sensor (docs/api.md, Readings).
    An unknown sensor or measure is still a NotFound."""
    try:
        return series_target(session, unique_identifier, measure_name)
    except NotFound:
        sensor = sa.select(Sensor.id).where(Sensor.unique_identifier == unique_identifier)
        measure = sa.select(SensorMeasure.id).where(SensorMeasure.name == measure_name)
        if session.scalar(sa.select(sensor.exists() & measure.exists())):
            return None
        raise


def resolve_for_read(
    session: Session, unique_identifier: str, measure_name: str
) -> SeriesTarget | derived.DerivedSeries | None:
    """The stored series, or the derived measure of that name of the sensor's type (a
    type's derived and stored measures never share a name), or None as target_for_read."""
    try:
        target = target_for_read(session, unique_identifier, measure_name)
    except NotFound:
        found = derived.find_series(session, unique_identifier, measure_name)
        if found is None:
            raise
        return found
    return target or derived.find_series(session, unique_identifier, measure_name)


# --- writing ---------------------------------------------------------------------------


def _sql_partials(rows: Any, target: SeriesTarget | None = None) -> Any:
    """SELECT the hourly partials (the rollup's columns) of `rows` (timestamp, value), of
    `target`'s series, or of parameters `sensor_id` and `measure_id`."""
    sensor_id, measure_id = (
        (sa.literal(target.sensor_id), sa.literal(target.measure_id))
        if target
        else (
            sa.bindparam("sensor_id", type_=sa.Integer),
            sa.bindparam("measure_id", type_=sa.Integer),
        )
    )
    hour = sa.func.date_bin(HOUR, rows.c.timestamp, EPOCH)
    first = pg.array_agg(pg.aggregate_order_by(rows.c.value, rows.c.timestamp))
    last = pg.array_agg(pg.aggregate_order_by(rows.c.value, rows.c.timestamp.desc()))
    columns = (
        sensor_id,
        measure_id,
        hour,
        sa.func.count(),
        sa.func.sum(rows.c.value),
        sa.func.min(rows.c.value),
        sa.func.max(rows.c.value),
        sa.func.min(rows.c.timestamp),
        first[1],
        sa.func.max(rows.c.timestamp),
        last[1],
    )
    return (
        sa.select(*(c.label(n) for c, n in zip(columns, _HOURLY_COLUMNS, strict=True)))
        .group_by(hour)
        .order_by(hour)  # rollup rows are locked in hour order
    )


_HOURLY_COLUMNS = [c.name for c in reading_rollup.c]


def _daily_partials(hourly: Any) -> Any:
    """SELECT the daily partials (UTC days) of `hourly`, rows with the hourly rollup's
    columns: partials combine as the readings' aggregates would."""
    h = hourly.c
    day = sa.func.date_bin(DAY, h.hour, EPOCH)
    return (
        sa.select(
            h.sensor_id,
            h.measure_id,
            day,
            sa.func.sum(h.count),
            sa.func.sum(h.sum),
            sa.func.min(h.min),
            sa.func.max(h.max),
            sa.func.min(h.first_timestamp),
            pg.array_agg(pg.aggregate_order_by(h.first_value, h.first_timestamp))[1],
            sa.func.max(h.last_timestamp),
            pg.array_agg(pg.aggregate_order_by(h.last_value, h.last_timestamp.desc()))[1],
        )
        .group_by(h.sensor_id, h.measure_id, day)
        .order_by(day)
    )


# The hourly partials' columns as arrays, computed here for readings written by COPY.
_PARTIAL_ARRAYS = {
    "hour": sa.BigInteger,
    "count": sa.BigInteger,
    "sum": sa.Double,
    "min": sa.Double,
    "max": sa.Double,
    "first_timestamp": sa.BigInteger,
    "first_value": sa.Double,
    "last_timestamp": sa.BigInteger,
    "last_value": sa.Double,
}


@functools.cache
def _array_rollup() -> Any:
    """Fold the partials of _array_partials' parameters into the rollups."""
    arrays = sa.select(
        *(
            sa.func.unnest(sa.bindparam(name, type_=pg.ARRAY(kind))).label(name)
            for name, kind in _PARTIAL_ARRAYS.items()
        )
    ).subquery()
    instants = {"hour", "first_timestamp", "last_timestamp"}
    partials = sa.select(
        sa.bindparam("sensor_id", type_=sa.Integer).label("sensor_id"),
        sa.bindparam("measure_id", type_=sa.Integer).label("measure_id"),
        *(
            (_instant_sql(arrays.c[n]) if n in instants else arrays.c[n]).label(n)
            for n in _PARTIAL_ARRAYS
        ),
    ).order_by(arrays.c.hour)
    return _rollup_upsert(partials)


def _array_partials(
    target: SeriesTarget, us: Micros, values: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """The parameters of _array_rollup(): the hourly partials of float readings, computed
    with one sort and a few whole-array reductions rather than a second pass in the
    database. (A sum adds in another order than PostgreSQL's, as merged partials do.)"""
    order = np.argsort(us, kind="stable")
    us, values = us[order], values[order]
    hours = us // HOUR_MICROS
    starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
    ends = np.r_[starts[1:], len(us)] - 1
    partials = {
        "hour": hours[starts] * HOUR_MICROS,
        "count": np.diff(np.r_[starts, len(us)]),
        "sum": np.add.reduceat(values, starts),
        "min": np.minimum.reduceat(values, starts),
        "max": np.maximum.reduceat(values, starts),
        "first_timestamp": us[starts],
        "first_value": values[starts],
        "last_timestamp": us[ends],
        "last_value": values[ends],
    }
    return {
        "sensor_id": target.sensor_id,
        "measure_id": target.measure_id,
        **{name: array.tolist() for name, array in partials.items()},
    }


def _rollup_ctes(partials: Any) -> list[Any]:
    """The statements folding hourly `partials` (_sql_partials, _array_partials) into the
    hourly rollups and their days into the daily ones, as CTEs of one statement: PostgreSQL
    runs a data-modifying CTE whether or not anything reads it. (Both read the partials,
    which the hourly fold does not see changed: the statement has one snapshot.)"""
    p = partials.cte("partials")
    hourly = _upsert(reading_rollup, sa.select(p).order_by(p.c.hour))
    daily = _upsert(reading_rollup_daily, _daily_partials(p))
    return [hourly.cte("rolled_up"), daily.cte("rolled_up_daily")]


def _rollup_upsert(partials: Any) -> Any:
    """One statement folding hourly `partials` into both rollups (_rollup_ctes)."""
    return sa.select(sa.literal(1)).add_cte(*_rollup_ctes(partials))


def _upsert(table: sa.Table, partials: Any, *, replace: bool = False) -> Any:
    """Fold `partials` (rows with `table`'s columns) into `table`: added to what is
    there, or, with `replace`, instead of it."""
    statement = pg.insert(table).from_select([c.name for c in table.c], partials)
    old, new = table.c, statement.excluded
    keys = list(table.primary_key.columns)
    if replace:
        columns = [c.name for c in table.c if not c.primary_key]
        return statement.on_conflict_do_update(
            index_elements=keys, set_={name: new[name] for name in columns}
        )
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={
            "count": old.count + new.count,
            "sum": old.sum + new.sum,
            "min": sa.func.least(old.min, new.min),
            "max": sa.func.greatest(old.max, new.max),
            "first_value": sa.case(
                (new.first_timestamp < old.first_timestamp, new.first_value),
                else_=old.first_value,
            ),
            "first_timestamp": sa.func.least(old.first_timestamp, new.first_timestamp),
            "last_value": sa.case(
                (new.last_timestamp > old.last_timestamp, new.last_value),
                else_=old.last_value,
            ),
            "last_timestamp": sa.func.greatest(old.last_timestamp, new.last_timestamp),
        },
    )


@functools.cache
def _days_from_hours() -> Any:
    """Recompute the daily rollups of the series' days `days` from its hourly ones (after
    on_conflict=update replaced some of those)."""
    touched = sa.select(
        sa.func.unnest(sa.bindparam("days", type_=pg.ARRAY(UtcDateTime))).label("day")
    ).subquery()
    r = reading_rollup.c
    hours = (
        sa.select(reading_rollup)
        .join(touched, sa.and_(r.hour >= touched.c.day, r.hour < touched.c.day + sa.literal(DAY)))
        .where(
            r.sensor_id == sa.bindparam("sensor_id", type_=sa.Integer),
            r.measure_id == sa.bindparam("measure_id", type_=sa.Integer),
        )
        .subquery()
    )
    return _upsert(reading_rollup_daily, _daily_partials(hours), replace=True)


_LOCK = sa.select(
    sa.func.pg_advisory_xact_lock(
        sa.bindparam("sensor_id", type_=sa.Integer), sa.bindparam("measure_id", type_=sa.Integer)
    )
)


def lock_series(session: Session, sensor_id: int, measure_id: int) -> None:
    """Take the series' write lock until commit (see the module's docstring); whatever
    writes or removes a series' readings takes it (retention.py too)."""
    session.execute(_LOCK, {"sensor_id": sensor_id, "measure_id": measure_id})


def _instant_sql(us: Any) -> Any:
    """Microseconds since the epoch (a bigint expression) as a timestamptz. Whole seconds
    and the microseconds left, each exact: `interval * bigint` multiplies in float8, which
    cannot hold microseconds since the epoch far from 1970. Both operators truncate, so the
    two parts always add up to `us`."""
    return (
        sa.literal(EPOCH, UtcDateTime)
        + (us // 1_000_000) * sa.literal(ONE_SECOND)
        + (us % 1_000_000) * sa.literal(ONE_MICROSECOND)
    )


def _series_rows(target: SeriesTarget, values: list[Any], micros: list[int]) -> Any:
    """SELECT (sensor_id, measure_id, timestamp, value) from the two arrays."""
    table = reading_tables[target.datatype]
    arrays = sa.select(
        sa.func.unnest(sa.bindparam("us", micros, type_=pg.ARRAY(sa.BigInteger))).label("us"),
        sa.func.unnest(sa.bindparam("vs", values, type_=pg.ARRAY(table.c.value.type))).label("v"),
    ).subquery()
    return sa.select(
        sa.literal(target.sensor_id),
        sa.literal(target.measure_id),
        _instant_sql(arrays.c.us),
        arrays.c.v,
    )


@functools.cache
def _span(datatype: Datatype) -> Any:
    """A series' stored (timestamp, value) rows from `lo` to `hi`."""
    table = reading_tables[datatype]
    return sa.select(table.c.timestamp, table.c.value).where(
        table.c.sensor_id == sa.bindparam("sensor_id"),
        table.c.measure_id == sa.bindparam("measure_id"),
        table.c.timestamp.between(sa.bindparam("lo"), sa.bindparam("hi")),
    )


@functools.cache
def _span_is_empty(datatype: Datatype) -> Any:
    return sa.select(~_span(datatype).exists())


@functools.cache
def _span_rollup(datatype: Datatype) -> Any:
    """Fold the whole span into the rollups (the rows of a COPY that filled it)."""
    return _rollup_upsert(_sql_partials(_span(datatype).subquery()))


def _span_params(target: SeriesTarget, us: Micros) -> dict[str, Any]:
    return {
        "sensor_id": target.sensor_id,
        "measure_id": target.measure_id,
        "lo": from_micros(int(us.min())),
        "hi": from_micros(int(us.max())),
    }


def _copyable(session: Session, target: SeriesTarget, us: Micros) -> bool:
    """Whether the readings can go in with a plain COPY: a fixed-width datatype, no
    timestamp twice in the request, and none stored in its span (checked under the series
    lock, so nothing can arrive there before the COPY)."""
    if target.datatype not in pgcopy.VALUE_WIRE:
        return False
    if not (us[1:] > us[:-1]).all() and np.unique(us).size != us.size:
        return False
    return bool(session.scalar(_span_is_empty(target.datatype), _span_params(target, us)))


def _copy_series(session: Session, target: SeriesTarget, values: Any, us: Micros) -> int:
    """New readings in one binary COPY, then their hours' partials folded into the
    rollups: float ones computed here, integer ones (whose sums must stay exact beyond
    2**53) from the span the COPY filled, which held nothing else before it."""
    table = reading_tables[target.datatype]
    kind = pgcopy.VALUE_WIRE[target.datatype]
    statement = (
        f"COPY {table.name} (sensor_id, measure_id, timestamp, value) FROM STDIN (FORMAT binary)"
    )
    with _driver(session).cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(pgcopy.HEADER)
        # In chunks: a request's rows are never all held again in the wire format.
        for at in range(0, len(us), COPY_CHUNK):
            chunk = slice(at, at + COPY_CHUNK)
            ids = [("int4", target.sensor_id), ("int4", target.measure_id)]
            columns = [*ids, ("timestamptz", us[chunk]), (kind, values[chunk])]
            copy.write(pgcopy.rows(columns, len(us[chunk])))
        copy.write(pgcopy.TRAILER)
    if target.datatype is Datatype.FLOAT:
        session.execute(_array_rollup(), _array_partials(target, us, values))
    elif target.datatype is Datatype.INTEGER:
        session.execute(_span_rollup(target.datatype), _span_params(target, us))
    return len(us)


def _insert_series(session: Session, target: SeriesTarget, values: Any, us: Micros) -> int:
    """Readings some of which may be stored already: one INSERT ... ON CONFLICT DO NOTHING
    for the whole series, which folds exactly the rows it inserted into the rollups.
    Returns how many rows were new."""
    if not len(us):
        return 0
    if _copyable(session, target, us):
        return _copy_series(session, target, values, us)
    table = reading_tables[target.datatype]
    inserted = (
        pg.insert(table)
        .from_select(
            ["sensor_id", "measure_id", "timestamp", "value"],
            _series_rows(target, _as_list(values), us.tolist()),
        )
        .on_conflict_do_nothing()
        .returning(table.c.timestamp, table.c.value)
        .cte("inserted")
    )
    # Count in the database: rowcount is not reliable for INSERT ... SELECT here, and
    # sending every inserted row back would cost as much as the insert.
    count = sa.select(sa.func.count()).select_from(inserted)
    if target.datatype in NUMERIC:
        count = count.add_cte(*_rollup_ctes(_sql_partials(inserted, target)))
    return int(session.scalar(count) or 0)


def _upsert_series(session: Session, target: SeriesTarget, values: Any, us: Micros) -> int:
    """Insert or overwrite; the touched hours' rollups are recomputed from the readings.
    Returns how many timestamps were new."""
    if not len(us):
        return 0
    table = reading_tables[target.datatype]
    # The last value sent for a timestamp wins (a row may be updated once per statement).
    latest = dict(zip(us.tolist(), _as_list(values), strict=True))
    micros = list(latest)
    rows = _series_rows(target, list(latest.values()), micros)
    key = (table.c.sensor_id == target.sensor_id, table.c.measure_id == target.measure_id)
    # Under the series lock nothing else writes these rows between the count and the upsert.
    stored = session.scalar(
        sa.select(sa.func.count())
        .select_from(table)
        .where(*key, table.c.timestamp.in_(sa.select(rows.subquery().c[2])))
    )
    statement = pg.insert(table).from_select(
        ["sensor_id", "measure_id", "timestamp", "value"], rows
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.sensor_id, table.c.measure_id, table.c.timestamp],
            set_={"value": statement.excluded.value},
        )
    )
    if target.datatype in NUMERIC:
        hours = sorted({from_micros(us // HOUR_MICROS * HOUR_MICROS) for us in micros})
        touched = sa.select(
            sa.func.unnest(sa.bindparam("hours", hours, type_=pg.ARRAY(UtcDateTime))).label("hour")
        ).subquery()
        in_touched_hours = (
            sa.select(table.c.timestamp, table.c.value)
            .join(
                touched,
                sa.and_(
                    table.c.timestamp >= touched.c.hour,
                    table.c.timestamp < touched.c.hour + sa.literal(HOUR),
                ),
            )
            .where(*key)
            .subquery()
        )
        session.execute(
            _upsert(reading_rollup, _sql_partials(in_touched_hours, target), replace=True)
        )
        days = sorted({from_micros(us // DAY_MICROS * DAY_MICROS) for us in micros})
        session.execute(
            _days_from_hours(),
            {"days": days, "sensor_id": target.sensor_id, "measure_id": target.measure_id},
        )
    return len(micros) - int(stored or 0)


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


Series = dict[str, Any]  # measure_name, unique_identifier, readings, timestamps


def insert_sensor_readings(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    readings: Sequence[Any],
    timestamps: Sequence[datetime] | Micros,
    on_conflict: OnConflict = "ignore",
) -> dict[str, int]:
    """Insert one series. A timestamp stored already keeps its value (DTBase's
    idempotency, which the ingress relies on), or with `on_conflict="update"` gets the
    new one. Returns the counts of inserted and duplicate readings. Timestamps are aware
    datetimes or microseconds since the epoch (instants.py)."""
    one = {
        "measure_name": measure_name,
        "unique_identifier": unique_identifier,
        "readings": readings,
        "timestamps": timestamps,
    }
    return _write(session, [(one, ())], on_conflict)


def insert_readings_bulk(
    session: Session, *, series: Sequence[Series], on_conflict: OnConflict = "ignore"
) -> dict[str, int]:
    """Many series in one transaction: all of them are written, or none."""
    return _write(session, [(one, ("series", i)) for i, one in enumerate(series)], on_conflict)


def _check_retained(
    target: SeriesTarget, us: Micros, loc: tuple[str | int, ...], now: datetime
) -> None:
    """Refuse readings older than the type's retention: the retention timer removes such raw
    readings but keeps their rollups, so storing one again would count it twice there."""
    if target.retention_days is None or not len(us):
        return
    cutoff = now - timedelta(days=target.retention_days)
    old = np.flatnonzero(us < micros(cutoff))
    if old.size:
        where = ("body", *loc, int(old[0]))
        raise Invalid(
            f"{'.'.join(map(str, where[1:]))}: {from_micros(int(us[old[0]])).isoformat()} is "
            f"older than the sensor type's retention of {target.retention_days} days (raw "
            f"readings before {cutoff.isoformat()} are removed; their rollups are kept)",
            loc=where,
        )


def _write(
    session: Session,
    series: list[tuple[Series, tuple[str | int, ...]]],
    on_conflict: OnConflict,
    now: datetime | None = None,
) -> dict[str, int]:
    """Check every series (each with where it sits in the body, for error messages), then
    merge those of the same sensor and measure and write them in (sensor, measure) order,
    each under its series lock."""
    now = now or utcnow()  # one instant for every series' retention check
    merged: dict[SeriesTarget, tuple[list[Any], list[Micros]]] = {}
    for one, loc in series:
        check_same_length(one["timestamps"], one["readings"], "timestamps", (*loc, "readings"))
        target = series_target(
            session, one["unique_identifier"], one["measure_name"], for_write=True
        )
        parts, instants = merged.setdefault(target, ([], []))
        checked = check_values(
            one["readings"], target.datatype, (*loc, "readings"), max_float=MAX_FLOAT_READING
        )
        parts.append(checked)
        us = as_micros(one["timestamps"])
        _check_retained(target, us, (*loc, "timestamps"), now)
        instants.append(us)
    write = _upsert_series if on_conflict == "update" else _insert_series
    inserted = total = 0
    for target in sorted(merged, key=lambda t: (t.sensor_id, t.measure_id)):
        parts, instants = merged[target]
        us = np.concatenate(instants) if len(instants) > 1 else instants[0]
        wire = pgcopy.VALUE_WIRE.get(target.datatype)
        values: Any = (
            np.concatenate([np.asarray(p, pgcopy.WIRE[wire]) for p in parts])
            if wire
            else [v for p in parts for v in p]
        )
        lock_series(session, target.sensor_id, target.measure_id)
        inserted += write(session, target, values, us)
        total += len(us)
    return {"inserted": inserted, "duplicates": total - inserted}


def delete_sensor_readings(session: Session, sensor_id: int) -> None:
    """The readings tables carry no foreign key (orm/sensors.py): a sensor's delete
    calls this in its transaction."""
    for table in (*reading_tables.values(), reading_rollup, reading_rollup_daily):
        session.execute(sa.delete(table).where(table.c.sensor_id == sensor_id))


# --- reading -----------------------------------------------------------------------------


def sensor_readings(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    dt_from: datetime,
    dt_to: datetime,
) -> list[dict[str, Any]]:
    """A series' readings as values, for callers in this process (service_base.py); the
    API's reply is sensor_readings_json."""
    target = resolve_for_read(session, unique_identifier, measure_name)
    return [] if target is None else _readings(session, target, dt_from, dt_to)


def _readings(
    session: Session,
    target: SeriesTarget | derived.DerivedSeries,
    dt_from: datetime,
    dt_to: datetime,
) -> list[dict[str, Any]]:
    if isinstance(target, derived.DerivedSeries):
        computed = _fetch_binary(session, derived.readings_between(target, dt_from, dt_to))
        return [{"value": value, "timestamp": ts} for ts, value in computed]
    table = reading_tables[target.datatype]
    rows = _fetch_binary(
        session,
        sa.select(table.c.value, table.c.timestamp)
        .where(
            table.c.sensor_id == target.sensor_id,
            table.c.measure_id == target.measure_id,
            table.c.timestamp.between(dt_from, dt_to),
        )
        .order_by(table.c.timestamp),
    )
    return [{"value": value, "timestamp": ts} for value, ts in rows]


def sensor_readings_json(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    dt_from: datetime,
    dt_to: datetime,
) -> bytes:
    """The reply of /sensor/sensor-readings: sensor_readings' list as JSON, byte for byte as
    the API's encoder writes it (JSON_OPTIONS). PostgreSQL writes the text of a stored
    number or boolean series (_json_readings), which comes as one value and is finished
    here with a few passes over its bytes: no Python object per reading (but for floats
    from 2**53 up). Strings, and derived readings, computed, are encoded in Python."""
    target = resolve_for_read(session, unique_identifier, measure_name)
    if target is None:
        return b"[]"
    if isinstance(target, derived.DerivedSeries) or target.datatype not in _VALUE_TEXT:
        return orjson.dumps(_readings(session, target, dt_from, dt_to), option=JSON_OPTIONS)
    params = {
        "sensor_id": target.sensor_id,
        "measure_id": target.measure_id,
        "lo": dt_from,
        "hi": dt_to,
    }
    with _driver(session).cursor(binary=True) as cursor:
        cursor.execute(_json_readings(target.datatype), params)
        row = cursor.fetchone()
    assert row is not None, "an aggregate has one row"
    text, whole = row
    if text is None:
        return b"[]"
    # `0.5"2020-01-01T00:00:00+00:00"1.5"...+00:00"`: every quote opens a timestamp but
    # those after +00:00, which close one.
    text = text.replace(b'"', b',"timestamp":"').replace(b'+00:00,"timestamp":"', NEXT)
    if whole:
        # Each PLACEHOLDER (a float series' text has no other) gets orjson's text of its float.
        parts = text.split(PLACEHOLDER)
        filled = [parts[0]]
        for value, part in zip(whole, parts[1:], strict=True):
            filled += (orjson.dumps(value), part)
        text = b"".join(filled)
    # It ends with NEXT: the reading after the last is dropped, in the one copy made here.
    return b"".join((b'[{"value":', memoryview(text)[: 3 - len(NEXT)], b"]"))


# Floats from 2**53 up (all whole numbers) are encoded in Python: PostgreSQL writes some
# of them with more digits than needed (1.9999999999999998e+23 for 2e+23).
WHOLE_FLOATS = 2**53
PLACEHOLDER = b"#"
NEXT = b'Z"},{"value":'  # from the end of one reading's timestamp to the next's value
# Each reading's value as orjson writes it, from `v` and its text `t` (_json_readings).
# Below 2**53 a float8's text (extra_float_digits 1, db.py) has the shortest digits that
# read back the same, as orjson's; only the form differs: PostgreSQL writes
# 1e-4 <= |v| < 1e15 in full and others with a signed exponent of at least two digits
# (1e+15, 1.5e-05); orjson writes 1e-5 <= |v| < 1e16 in full, a whole number with `.0`
# (1.0, -0.0), and others as 1e+16 or 1.5e-6. Comparisons with powers of ten sort values
# exactly as their shortest texts do; a numeric's text has no exponent.
_VALUE_TEXT = {
    Datatype.FLOAT: f"""CASE
        WHEN abs(v) >= 1e-4 AND abs(v) < 1e15 OR v = 0 THEN
            CASE WHEN v = trunc(v) THEN t || '.0' ELSE t END
        WHEN abs(v) >= {WHOLE_FLOATS} THEN '{PLACEHOLDER.decode()}'
        WHEN abs(v) >= 1e-5 THEN
            CASE WHEN v = trunc(v) THEN t::numeric::text || '.0' ELSE t::numeric::text END
        ELSE replace(t, 'e-0', 'e-')
    END""",
    Datatype.INTEGER: "t",
    Datatype.BOOLEAN: "t",  # true, false
}


@functools.cache
def _json_readings(datatype: Datatype) -> str:
    """The statement of sensor_readings_json: every reading's value then its timestamp as
    one text, nothing between them (UTF-8 bytes), and the floats that stand as PLACEHOLDER
    in it, in order. Each value goes in as string_agg's separator, which comes before each
    timestamp but the first (whose value `first` gives): concatenating each reading's
    parts would cost a third more. The JSON text of a timestamp's UTC wall time is
    `"2020-01-01T00:00:00"`, its fraction of a second without trailing zeros (`.5`),
    which orjson writes `.500000`; `+00:00` follows. UTC is named, not left to the
    session's zone (db.py): on Citus the statement runs in a worker's session, whose zone
    is the worker database's."""
    value = _VALUE_TEXT[datatype]
    timestamp = (
        "CASE WHEN octet_length(j) = 21 THEN left(j, -1) ELSE rpad(left(j, -1), 27, '0') END"
        " || '+00:00\"'"
    )
    whole = (
        f"array_agg(v ORDER BY ts) FILTER (WHERE abs(v) >= {WHOLE_FLOATS})"
        if datatype is Datatype.FLOAT
        else "NULL"
    )
    readings = (
        "SELECT value AS v, value::text AS t, timestamp AS ts, "
        "to_json(timestamp AT TIME ZONE 'UTC')::text AS j "
        f"FROM {reading_tables[datatype].name} "
        "WHERE sensor_id = %(sensor_id)s AND measure_id = %(measure_id)s "
        "AND timestamp BETWEEN %(lo)s AND %(hi)s ORDER BY timestamp"
    )
    first = f"SELECT {value} FROM ({readings} LIMIT 1) AS first"
    return (
        f"SELECT convert_to(({first}) || string_agg({timestamp}, {value} ORDER BY ts), 'UTF8'), "
        f"{whole} FROM ({readings}) AS readings"
    )


def _driver(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's, in its transaction."""
    driver = session.connection().connection.driver_connection
    assert driver is not None, "a live connection has its driver connection"
    return cast("psycopg.Connection[Any]", driver)


def _fetch_binary(session: Session, statement: Any) -> list[tuple[Any, ...]]:
    """Run a read of many rows over the driver's binary protocol, in the session's
    transaction. Decoding 10,000 timestamps and values this way takes a third of the time
    SQLAlchemy's result rows over the text protocol do."""
    compiled = statement.compile(dialect=session.get_bind().dialect)
    with _driver(session).cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def _latest_stored(type_name: str | None, pin: list[int] | None) -> Any:
    """The newest stored reading of each (sensor, measure), of a type or of all (and of
    the sensors in `pin`, if pinned), ordered by sensor and measure."""
    parts = []
    for datatype, table in reading_tables.items():
        latest = (
            sa.select(sa.func.to_jsonb(table.c.value).label("value"), table.c.timestamp)
            .where(
                table.c.sensor_id == Sensor.id,
                table.c.measure_id == SensorMeasure.id,
                shards.pin_clause(table.c.sensor_id, pin),
            )
            .order_by(table.c.timestamp.desc())
            .limit(1)
            .lateral()
        )
        query = (
            sa.select(
                Sensor.id.label("sensor_id"),
                SensorTypeMeasure.id.label("relation_id"),
                Sensor.unique_identifier,
                SensorMeasure.name.label("measure_name"),
                SensorMeasure.units,
                latest.c.value,
                latest.c.timestamp,
            )
            .join(SensorTypeMeasure, SensorTypeMeasure.type_id == Sensor.type_id)
            .join(SensorMeasure, SensorMeasure.id == SensorTypeMeasure.measure_id)
            .join(latest, sa.true())
            # The pin again on the outer side: each pinned statement visits its own sensors.
            .where(SensorMeasure.datatype == datatype, shards.pin_clause(Sensor.id, pin))
        )
        if type_name is not None:
            query = query.join(SensorType, SensorType.id == Sensor.type_id).where(
                SensorType.name == type_name
            )
        parts.append(query)
    union = sa.union_all(*parts).subquery()
    return sa.select(
        union.c.sensor_id,
        union.c.unique_identifier,
        union.c.measure_name,
        union.c.units,
        union.c.value,
        union.c.timestamp,
    ).order_by(union.c.sensor_id, union.c.relation_id)


def latest_readings(session: Session, *, type_name: str | None = None) -> list[dict[str, Any]]:
    """The newest reading of every (sensor, measure) that has one, in one query (one per
    shard on Citus): a backwards index scan per pair, across the four typed tables; then
    those of derived measures (derived.latest_derived)."""
    sensors = sa.select(Sensor.id)
    if type_name is not None:
        sensors = sensors.join(SensorType, SensorType.id == Sensor.type_id).where(
            SensorType.name == type_name
        )
    stored: list[dict[str, Any]] = []
    # One statement on plain PostgreSQL; on Citus one a shard (dtbase_core/shards.py).
    for pin in shards.pins(session, sensors):
        rows = session.execute(_latest_stored(type_name, pin))
        stored += [dict(row._mapping) for row in rows]
    # Each sensor's derived measures follow its stored ones (a stable sort by sensor).
    computed = derived.latest_derived(session, type_name=type_name)
    every = sorted([*stored, *computed], key=lambda row: row["sensor_id"])
    keys = ("unique_identifier", "measure_name", "units", "value", "timestamp")
    return [{key: row[key] for key in keys} for row in every]


CSV_HEADER = ("unique_identifier", "measure_name", "units", "timestamp", "value")


def export_readings(
    session: Session,
    *,
    measure_name: str | list[str],
    unique_identifier: str | list[str],
    dt_from: datetime,
    dt_to: datetime,
    batch_size: int = 5000,
) -> Iterator[tuple[Any, ...]]:
    """Rows for a CSV export of every (sensor, measure) pair named, by sensor, measure
    and time; fetched in batches from a server-side cursor, never all at once."""
    sensors_named = [unique_identifier] if isinstance(unique_identifier, str) else unique_identifier
    measures_named = [measure_name] if isinstance(measure_name, str) else measure_name
    targets: list[tuple[str, str, SeriesTarget | derived.DerivedSeries]] = []
    for uid in dict.fromkeys(sensors_named):
        for name in dict.fromkeys(measures_named):
            target = resolve_for_read(session, uid, name)
            if target is not None:  # None: the sensor's type lacks the measure
                targets.append((uid, name, target))
    for uid, name, target in targets:
        if isinstance(target, derived.DerivedSeries):
            computed = session.execute(
                derived.readings_between(target, dt_from, dt_to).execution_options(
                    yield_per=batch_size
                )
            )
            for ts, value in computed:
                yield (uid, name, target.units, ts, value)
            continue
        table = reading_tables[target.datatype]
        result = session.execute(
            sa.select(table.c.timestamp, table.c.value)
            .where(
                table.c.sensor_id == target.sensor_id,
                table.c.measure_id == target.measure_id,
                table.c.timestamp.between(dt_from, dt_to),
            )
            .order_by(table.c.timestamp)
            .execution_options(yield_per=batch_size)
        )
        for ts, value in result:
            yield (uid, name, target.units, ts, value)
