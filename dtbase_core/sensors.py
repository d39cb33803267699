"""The queries behind /sensor (API.md §2.4, Part A, Part C).

Readings are written with one statement per (sensor, measure) series, whatever its
length (`INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`), and read with one
indexed query on the readings table's primary key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core.errors import Conflict, Invalid, NotFound
from dtbase_core.orm import (
    Datatype,
    Sensor,
    SensorLocation,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    reading_tables,
)
from dtbase_core.orm.base import UtcDateTime
from dtbase_core.timeutil import utcnow
from dtbase_core.values import check_same_length, check_values

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

# --- sensor types and measures ------------------------------------------------------


def insert_sensor_type(
    session: Session, *, name: str, description: str | None, measures: Sequence[dict[str, Any]]
) -> None:
    """Create the type and any measure it names that does not exist yet (by name and
    units, a null unit being a value). Upserting each measure fixes DTBase's rollback
    bug (API.md §8.1 item 6)."""
    if session.scalar(sa.select(SensorType.id).where(SensorType.name == name)) is not None:
        raise Conflict("Sensor type exists already")
    measure_ids: list[int] = []
    for index, measure in enumerate(measures):
        measure_id = _upsert_measure(session, index=index, **measure)
        if measure_id not in measure_ids:
            measure_ids.append(measure_id)
    type_id = session.execute(
        pg.insert(SensorType)
        .values(name=name, description=description)
        .on_conflict_do_nothing(index_elements=[SensorType.name])
        .returning(SensorType.id)
    ).scalar()
    if type_id is None:  # a concurrent request created it between our check and insert
        raise Conflict("Sensor type exists already")
    if measure_ids:
        session.execute(
            sa.insert(SensorTypeMeasure),
            [{"type_id": type_id, "measure_id": mid} for mid in measure_ids],
        )


def _upsert_measure(
    session: Session, *, index: int, name: str, units: str | None, datatype: Datatype
) -> int:
    session.execute(
        pg.insert(SensorMeasure)
        .values(name=name, units=units, datatype=datatype)
        .on_conflict_do_nothing(index_elements=[SensorMeasure.name, SensorMeasure.units])
    )
    found = session.execute(
        sa.select(SensorMeasure.id, SensorMeasure.datatype).where(
            SensorMeasure.name == name, SensorMeasure.units.is_not_distinct_from(units)
        )
    ).one()
    if found.datatype != datatype:
        raise Conflict(
            f"Measure '{name}' ({units}) exists already with datatype "
            f"'{found.datatype.value}', not '{datatype.value}'"
        )
    return int(found.id)


def list_sensor_types(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(
            SensorType.id,
            SensorType.name,
            SensorType.description,
            SensorMeasure.name.label("m_name"),
            SensorMeasure.units,
            SensorMeasure.datatype,
        )
        .outerjoin(SensorTypeMeasure, SensorTypeMeasure.type_id == SensorType.id)
        .outerjoin(SensorMeasure, SensorMeasure.id == SensorTypeMeasure.measure_id)
        .order_by(SensorType.id, SensorTypeMeasure.id)
    )
    types: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = types.setdefault(
            row.id, {"name": row.name, "description": row.description, "measures": []}
        )
        if row.m_name is not None:
            entry["measures"].append(
                {"name": row.m_name, "units": row.units, "datatype": row.datatype.value}
            )
    return list(types.values())


def list_measures(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(SensorMeasure.name, SensorMeasure.units, SensorMeasure.datatype).order_by(
            SensorMeasure.id
        )
    )
    return [{"name": r.name, "units": r.units, "datatype": r.datatype.value} for r in rows]


def delete_sensor_type(session: Session, *, type_name: str) -> None:
    type_id = session.scalar(
        sa.select(SensorType.id).where(SensorType.name == type_name).with_for_update()
    )
    if type_id is None:
        raise NotFound(f"Sensor type '{type_name}' does not exist")
    in_use = session.scalar(sa.select(sa.func.count()).where(Sensor.type_id == type_id))
    if in_use:
        raise Conflict(f"Sensor type '{type_name}' still has {in_use} sensor(s); delete them first")
    session.execute(sa.delete(SensorType).where(SensorType.id == type_id))


# --- sensors ---------------------------------------------------------------------------


def insert_sensor(
    session: Session,
    *,
    type_name: str,
    unique_identifier: str,
    name: str | None = None,
    notes: str | None = None,
) -> None:
    type_id = session.scalar(sa.select(SensorType.id).where(SensorType.name == type_name))
    if type_id is None:
        raise NotFound(f"Sensor type '{type_name}' does not exist")
    inserted = session.execute(
        pg.insert(Sensor)
        .values(type_id=type_id, unique_identifier=unique_identifier, name=name, notes=notes)
        .on_conflict_do_nothing(index_elements=[Sensor.unique_identifier])
        .returning(Sensor.id)
    ).scalar()
    if inserted is None:
        raise Conflict("Sensor exists already")


def list_sensors(session: Session, *, type_name: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(Sensor.unique_identifier, Sensor.name, Sensor.notes).order_by(Sensor.id)
    if type_name is not None:
        query = query.join(SensorType, SensorType.id == Sensor.type_id).where(
            SensorType.name == type_name
        )
    return [dict(row._mapping) for row in session.execute(query)]


def edit_sensor(session: Session, *, unique_identifier: str, name: str, notes: str) -> None:
    updated = session.scalar(
        sa.update(Sensor)
        .where(Sensor.unique_identifier == unique_identifier)
        .values(name=name, notes=notes)
        .returning(Sensor.id)
    )
    if updated is None:
        raise NotFound("Sensor does not exist")


def delete_sensor(session: Session, *, unique_identifier: str) -> None:
    """The sensor's readings and location history go with it; model runs that compared
    against it keep their data and lose the reference."""
    sensor_id = session.scalar(
        sa.select(Sensor.id).where(Sensor.unique_identifier == unique_identifier).with_for_update()
    )
    if sensor_id is None:
        raise NotFound("Sensor does not exist")
    # The readings tables carry no foreign key (see orm/sensors.py): delete them here.
    for table in reading_tables.values():
        session.execute(sa.delete(table).where(table.c.sensor_id == sensor_id))
    session.execute(sa.delete(Sensor).where(Sensor.id == sensor_id))


def _sensor_id(session: Session, unique_identifier: str) -> int:
    sensor_id = session.scalar(
        sa.select(Sensor.id).where(Sensor.unique_identifier == unique_identifier)
    )
    if sensor_id is None:
        raise NotFound(f"Sensor '{unique_identifier}' does not exist")
    return int(sensor_id)


# --- sensor locations --------------------------------------------------------------------


def insert_sensor_location(
    session: Session,
    *,
    unique_identifier: str,
    schema_name: str,
    coordinates: dict[str, Any],
    installation_datetime: datetime | None = None,
) -> None:
    from dtbase_core.locations import find_location_id

    sensor_id = _sensor_id(session, unique_identifier)
    location_id = find_location_id(session, schema_name=schema_name, coordinates=coordinates)
    inserted = session.execute(
        pg.insert(SensorLocation)
        .values(
            sensor_id=sensor_id,
            location_id=location_id,
            installation_datetime=installation_datetime or utcnow(),
        )
        .on_conflict_do_nothing(
            index_elements=[SensorLocation.sensor_id, SensorLocation.installation_datetime]
        )
        .returning(SensorLocation.id)
    ).scalar()
    if inserted is None:
        raise Conflict(
            f"Sensor '{unique_identifier}' already has a location installed at that datetime"
        )


def list_sensor_locations(session: Session, *, unique_identifier: str) -> list[dict[str, Any]]:
    """The location history, newest installation first (as DTBase: element 0 is where
    the sensor is now)."""
    from dtbase_core.locations import location_coordinates

    rows = session.execute(
        sa.select(SensorLocation.location_id, SensorLocation.installation_datetime)
        .join(Sensor, Sensor.id == SensorLocation.sensor_id)
        .where(Sensor.unique_identifier == unique_identifier)
        .order_by(SensorLocation.installation_datetime.desc())
    ).all()
    coordinates = location_coordinates(session, [row.location_id for row in rows])
    return [
        {
            "id": row.location_id,
            **coordinates.get(row.location_id, {}),
            "installation_datetime": row.installation_datetime,
        }
        for row in rows
    ]


# --- readings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesTarget:
    sensor_id: int
    measure_id: int
    datatype: Datatype
    units: str | None


def _series_target(
    session: Session, unique_identifier: str, measure_name: str, *, for_write: bool = False
) -> SeriesTarget:
    """The sensor and the measure of its type called `measure_name`. For a write, the
    sensor row is held FOR KEY SHARE until commit, so it cannot be deleted under us."""
    query = (
        sa.select(
            Sensor.id.label("sensor_id"),
            SensorType.name.label("type_name"),
            SensorMeasure.id.label("measure_id"),
            SensorMeasure.name,
            SensorMeasure.units,
            SensorMeasure.datatype,
        )
        .join(SensorType, SensorType.id == Sensor.type_id)
        .outerjoin(SensorTypeMeasure, SensorTypeMeasure.type_id == Sensor.type_id)
        .outerjoin(
            SensorMeasure,
            sa.and_(
                SensorMeasure.id == SensorTypeMeasure.measure_id,
                SensorMeasure.name == measure_name,
            ),
        )
        .where(Sensor.unique_identifier == unique_identifier)
    )
    if for_write:
        query = query.with_for_update(read=True, key_share=True, of=Sensor)
    rows = session.execute(query).all()
    if not rows:
        raise NotFound(f"Sensor '{unique_identifier}' does not exist")
    matches = [row for row in rows if row.measure_id is not None]
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
    return SeriesTarget(row.sensor_id, row.measure_id, row.datatype, row.units)


def _insert_series(
    session: Session, target: SeriesTarget, values: list[Any], timestamps: list[datetime]
) -> int:
    """One statement for the whole series; returns how many rows were new."""
    if not values:
        return 0
    table = reading_tables[target.datatype]
    # Instants travel as integer microseconds since the epoch: psycopg adapts a list of
    # ints several times faster than a list of datetimes, and the conversion is exact.
    micros = [(ts - EPOCH) // ONE_MICROSECOND for ts in timestamps]
    arrays = sa.select(
        sa.func.unnest(sa.bindparam("us", micros, type_=pg.ARRAY(sa.BigInteger))).label("us"),
        sa.func.unnest(sa.bindparam("vs", values, type_=pg.ARRAY(table.c.value.type))).label("v"),
    ).subquery()
    instant = sa.literal(EPOCH, UtcDateTime) + arrays.c.us * sa.literal(ONE_MICROSECOND)
    statement = (
        pg.insert(table)
        .from_select(
            ["sensor_id", "measure_id", "timestamp", "value"],
            sa.select(
                sa.literal(target.sensor_id), sa.literal(target.measure_id), instant, arrays.c.v
            ),
        )
        .on_conflict_do_nothing()
        .returning(sa.literal(1))
        .cte("inserted")
    )
    # Count in the database: rowcount is not reliable for INSERT ... SELECT here, and
    # RETURNING every row would send them all back.
    return int(session.scalar(sa.select(sa.func.count()).select_from(statement)) or 0)


def insert_sensor_readings(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    readings: list[Any],
    timestamps: list[datetime],
    loc: tuple[str | int, ...] = (),
) -> tuple[int, int]:
    """Insert one series; a timestamp stored already is kept as it was (DTBase's
    idempotency, which the ingress relies on). Returns (inserted, duplicates). `loc`
    is where the series sits in the body, for error messages."""
    check_same_length(timestamps, readings, "timestamps", (*loc, "readings"))
    target = _series_target(session, unique_identifier, measure_name, for_write=True)
    values = check_values(readings, target.datatype, (*loc, "readings"))
    inserted = _insert_series(session, target, values, timestamps)
    return inserted, len(values) - inserted


def insert_readings_bulk(session: Session, *, series: list[dict[str, Any]]) -> dict[str, int]:
    """Many series in one transaction: all of them are written, or none."""
    inserted = duplicates = 0
    for index, one in enumerate(series):
        new, dup = insert_sensor_readings(session, **one, loc=("series", index))
        inserted += new
        duplicates += dup
    return {"inserted": inserted, "duplicates": duplicates}


def _measure_for_read(
    session: Session, unique_identifier: str, measure_name: str
) -> SeriesTarget | None:
    """None when the sensor does not exist (DTBase answers `[]` then)."""
    try:
        return _series_target(session, unique_identifier, measure_name)
    except NotFound:
        if (
            session.scalar(
                sa.select(Sensor.id).where(Sensor.unique_identifier == unique_identifier)
            )
            is None
        ):
            return None
        raise


def sensor_readings(
    session: Session,
    *,
    measure_name: str,
    unique_identifier: str,
    dt_from: datetime,
    dt_to: datetime,
) -> list[dict[str, Any]]:
    target = _measure_for_read(session, unique_identifier, measure_name)
    if target is None:
        return []
    table = reading_tables[target.datatype]
    rows = session.execute(
        sa.select(table.c.value, table.c.timestamp)
        .where(
            table.c.sensor_id == target.sensor_id,
            table.c.measure_id == target.measure_id,
            table.c.timestamp.between(dt_from, dt_to),
        )
        .order_by(table.c.timestamp)
    )
    return [{"value": value, "timestamp": ts} for value, ts in rows]


ARITHMETIC = {"mean", "min", "max", "sum"}
NUMERIC = (Datatype.FLOAT, Datatype.INTEGER)


def _aggregate(aggregation: str, column: Any, datatype: Datatype) -> Any:
    """The SQL aggregate; means are floats, sums keep the measure's type."""
    if aggregation == "count":
        return sa.func.count(column)
    if aggregation == "mean":
        return sa.cast(sa.func.avg(column), sa.Double)
    if aggregation == "sum":
        return sa.cast(
            sa.func.sum(column), sa.Double if datatype is Datatype.FLOAT else sa.BigInteger
        )
    return getattr(sa.func, aggregation)(column)


def parse_interval(text: str) -> timedelta:
    from dtbase_core.schemas.sensors import INTERVAL_PATTERN, INTERVAL_UNITS

    match = INTERVAL_PATTERN.match(text)
    if match is None:
        raise Invalid(f"Invalid interval {text!r}", loc=("body", "interval"))
    return timedelta(**{INTERVAL_UNITS[match.group(2)]: int(match.group(1))})


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
    """Readings in buckets of `interval` from `dt_from`, aggregated in the database."""
    target = _measure_for_read(session, unique_identifier, measure_name)
    if target is None:
        return []
    if aggregation in ARITHMETIC and target.datatype not in NUMERIC:
        raise Invalid(
            f"aggregation '{aggregation}' needs a numeric measure; '{measure_name}' is "
            f"{target.datatype.value}",
            loc=("body", "aggregation"),
        )
    step = parse_interval(interval)
    table = reading_tables[target.datatype]
    bucket = sa.func.date_bin(step, table.c.timestamp, dt_from).label("bucket")
    where = (
        table.c.sensor_id == target.sensor_id,
        table.c.measure_id == target.measure_id,
        table.c.timestamp.between(dt_from, dt_to),
    )
    if aggregation in ("first", "last"):
        order = table.c.timestamp if aggregation == "first" else table.c.timestamp.desc()
        query = (
            sa.select(bucket, table.c.value).where(*where).distinct(bucket).order_by(bucket, order)
        )
    else:
        value = _aggregate(aggregation, table.c.value, target.datatype)
        query = (
            sa.select(bucket, value.label("value")).where(*where).group_by(bucket).order_by(bucket)
        )
    return [{"timestamp": ts, "value": v} for ts, v in session.execute(query)]


def latest_readings(session: Session, *, type_name: str | None = None) -> list[dict[str, Any]]:
    """The newest reading of every (sensor, measure) that has one, in one query: a
    backwards index scan per pair, across the four typed tables."""
    parts = []
    for datatype, table in reading_tables.items():
        latest = (
            sa.select(sa.func.to_jsonb(table.c.value).label("value"), table.c.timestamp)
            .where(
                table.c.sensor_id == Sensor.id,
                table.c.measure_id == SensorMeasure.id,
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
            .where(SensorMeasure.datatype == datatype)
        )
        if type_name is not None:
            query = query.join(SensorType, SensorType.id == Sensor.type_id).where(
                SensorType.name == type_name
            )
        parts.append(query)
    union = sa.union_all(*parts).subquery()
    rows = session.execute(
        sa.select(
            union.c.unique_identifier,
            union.c.measure_name,
            union.c.units,
            union.c.value,
            union.c.timestamp,
        ).order_by(union.c.sensor_id, union.c.relation_id)
    )
    return [dict(row._mapping) for row in rows]


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
    targets: list[tuple[str, str, SeriesTarget]] = []
    for uid in dict.fromkeys(sensors_named):
        for name in dict.fromkeys(measures_named):
            target = _measure_for_read(session, uid, name)
            if target is None:
                raise NotFound(f"Sensor '{uid}' does not exist")
            targets.append((uid, name, target))
    for uid, name, target in targets:
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
