"""The queries behind /sensor for sensor types, measures, sensors and their location
history (docs/api.md, Sensors). Readings are in `readings.py` and `aggregation.py`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core.errors import AlreadyExists, Conflict, Missing, NotFound
from dtbase_core.orm import (
    Datatype,
    Sensor,
    SensorLocation,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
)
from dtbase_core.readings import delete_sensor_readings
from dtbase_core.timeutil import utcnow

# --- sensor types and measures ------------------------------------------------------

# The key of the transaction-scoped advisory lock that serialises sensor type creation
# (the migrations use 7283401; readings use the two-key form, per series).
SENSOR_TYPE_CREATION_LOCK = 7283402


def insert_sensor_type(
    session: Session,
    *,
    name: str,
    description: str | None,
    measures: Sequence[dict[str, Any]],
    retention_days: int | None = None,
) -> None:
    """Create the type and any measure it names that does not exist yet (by name and
    units, a null unit being a value). Upserting each measure fixes DTBase's rollback
    bug (docs/api.md, Names and units together)."""
    # One creation of sensor types at a time: requests sharing measures would otherwise
    # lock the measures' rows in their bodies' orders and deadlock. Measures get their
    # ids in the body's order, which list-measures shows.
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(SENSOR_TYPE_CREATION_LOCK)))
    if session.scalar(sa.select(SensorType.id).where(SensorType.name == name)) is not None:
        raise AlreadyExists("Sensor type exists already")
    measure_ids: list[int] = []
    for index, measure in enumerate(measures):
        measure_id = _upsert_measure(session, index=index, **measure)
        if measure_id not in measure_ids:
            measure_ids.append(measure_id)
    type_id = session.execute(
        pg.insert(SensorType)
        .values(name=name, description=description, retention_days=retention_days)
        .on_conflict_do_nothing(index_elements=[SensorType.name])
        .returning(SensorType.id)
    ).scalar()
    if type_id is None:  # a concurrent request created it between our check and insert
        raise AlreadyExists("Sensor type exists already")
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
            SensorType.retention_days,
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
            row.id,
            {
                "name": row.name,
                "description": row.description,
                "measures": [],
                "retention_days": row.retention_days,
            },
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


def set_retention(session: Session, *, type_name: str, retention_days: int | None) -> None:
    """Keep the type's raw readings for `retention_days` (None: forever); the daily
    retention timer removes older ones (dtbase_core/retention.py)."""
    found = session.execute(
        sa.update(SensorType)
        .where(SensorType.name == type_name)
        .values(retention_days=retention_days)
        .returning(SensorType.id)
    ).first()
    if found is None:
        raise Missing(f"Sensor type '{type_name}' does not exist")


def retained_from(session: Session, *, unique_identifier: str, now: datetime) -> datetime | None:
    """The instant before which the sensor's raw readings are (or are about to be) removed
    by retention; None when its type keeps them forever."""
    found = session.execute(
        sa.select(SensorType.retention_days)
        .join(Sensor, Sensor.type_id == SensorType.id)
        .where(Sensor.unique_identifier == unique_identifier)
    ).first()
    if found is None:
        raise NotFound(f"Sensor '{unique_identifier}' does not exist")
    days = found.retention_days
    return None if days is None else now - timedelta(days=days)


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
        raise AlreadyExists("Sensor exists already")


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
    delete_sensor_readings(session, sensor_id)
    session.execute(sa.delete(Sensor).where(Sensor.id == sensor_id))


def find_sensor_id(session: Session, unique_identifier: str) -> int:
    """The sensor's id; NotFound naming it when there is none."""
    found = session.scalar(
        sa.select(Sensor.id).where(Sensor.unique_identifier == unique_identifier)
    )
    if found is None:
        raise NotFound(f"Sensor '{unique_identifier}' does not exist")
    return int(found)


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

    sensor_id = find_sensor_id(session, unique_identifier)
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
