"""/sensor endpoints (docs/api.md, Sensors)."""

from __future__ import annotations

import csv
import io
from typing import Any

import azure.functions as func

from dtbase_core import aggregation, audit, derived, readings, sensors
from dtbase_core.apikeys import Scope
from dtbase_core.roles import Role
from dtbase_core.schemas.common import Value
from dtbase_core.schemas.sensors import (
    AggregatedQuery,
    AggregateOut,
    BulkInsertOut,
    BulkReadingsIn,
    DerivedMeasureIn,
    DerivedMeasureKey,
    DerivedMeasureOut,
    EditSensorIn,
    ExportQuery,
    LatestReadingOut,
    LatestReadingsIn,
    ListSensorsIn,
    MeasureOut,
    ReadingOut,
    ReadingsIn,
    ReadingsQuery,
    RetainedFromOut,
    SensorIn,
    SensorLocationIn,
    SensorOut,
    SensorTypeIn,
    SensorTypeOut,
    SetRetentionIn,
    TypeNameIn,
    UniqueIdentifierIn,
)
from dtbase_core.timeutil import iso_z, utcnow
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp,
    "sensor/insert-sensor-type",
    body=SensorTypeIn,
    status=201,
    errors={409: "Sensor type exists already, or a measure exists with another datatype"},
)
def insert_sensor_type(call: Call[SensorTypeIn]) -> Any:
    """Create a sensor type with its measures (existing ones are reused by name and units)."""
    sensors.insert_sensor_type(call.session, **call.body.model_dump())
    return {"detail": "Sensor type inserted"}


@endpoint(
    bp,
    "sensor/list-sensor-types",
    method="GET",
    response=list[SensorTypeOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_sensor_types(call: Call[None]) -> Any:
    """Every sensor type with its measures."""
    return sensors.list_sensor_types(call.session)


@endpoint(
    bp,
    "sensor/list-measures",
    method="GET",
    response=list[MeasureOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_measures(call: Call[None]) -> Any:
    """Every sensor measure."""
    return sensors.list_measures(call.session)


@endpoint(
    bp,
    "sensor/delete-sensor-type",
    body=TypeNameIn,
    errors={400: "Sensor type does not exist", 409: "Sensors of this type still exist"},
)
def delete_sensor_type(call: Call[TypeNameIn]) -> Any:
    """Delete a sensor type that no sensor uses (its measures stay)."""
    sensors.delete_sensor_type(call.session, type_name=call.body.type_name)
    return {"detail": "Sensor type deleted"}


@endpoint(
    bp,
    "sensor/set-retention",
    body=SetRetentionIn,
    role=Role.ADMIN,
    errors={
        403: "Only admins may set a sensor type's retention",
        404: "Sensor type does not exist",
        422: "retention_days is not a whole number from 1 to 36500, or null",
    },
)
def set_retention(call: Call[SetRetentionIn]) -> Any:
    """Keep a sensor type's raw readings for `retention_days` days (null: forever); the
    daily retention timer removes older ones, its hourly rollups stay."""
    sensors.set_retention(call.session, **call.body.model_dump())
    return {"detail": "Retention set"}


@endpoint(
    bp,
    "sensor/readings-retained-from",
    body=UniqueIdentifierIn,
    response=RetainedFromOut,
    role=Role.VIEWER,
    scope=Scope.READ,
    errors={400: "Sensor does not exist"},
)
def readings_retained_from(call: Call[UniqueIdentifierIn]) -> Any:
    """The instant before which the sensor's raw readings have been removed by its type's
    retention (null: kept forever)."""
    instant = sensors.retained_from(
        call.session, unique_identifier=call.body.unique_identifier, now=utcnow()
    )
    return {"retained_from": None if instant is None else iso_z(instant)}


@endpoint(
    bp,
    "sensor/insert-sensor",
    body=SensorIn,
    status=201,
    errors={400: "Sensor type does not exist", 409: "Sensor exists already"},
)
def insert_sensor(call: Call[SensorIn]) -> Any:
    """Create a sensor of a type."""
    sensors.insert_sensor(call.session, **call.body.model_dump())
    return {"detail": "Sensor inserted"}


@endpoint(
    bp,
    "sensor/list-sensors",
    body=ListSensorsIn,
    response=list[SensorOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_sensors(call: Call[ListSensorsIn]) -> Any:
    """Every sensor, or those of one type (the body may be `{}`)."""
    return sensors.list_sensors(call.session, type_name=call.body.type_name)


@endpoint(bp, "sensor/edit-sensor", body=EditSensorIn, errors={400: "Sensor does not exist"})
def edit_sensor(call: Call[EditSensorIn]) -> Any:
    """Change a sensor's name and notes."""
    sensors.edit_sensor(call.session, **call.body.model_dump())
    return {"detail": "Sensor edited"}


@endpoint(
    bp, "sensor/delete-sensor", body=UniqueIdentifierIn, errors={400: "Sensor does not exist"}
)
def delete_sensor(call: Call[UniqueIdentifierIn]) -> Any:
    """Delete a sensor with its readings and location history."""
    sensors.delete_sensor(call.session, unique_identifier=call.body.unique_identifier)
    return {"detail": "Sensor deleted"}


@endpoint(
    bp,
    "sensor/insert-sensor-location",
    body=SensorLocationIn,
    status=201,
    errors={
        400: "Sensor, schema or location does not exist",
        409: "The sensor already has a location at that installation datetime",
    },
)
def insert_sensor_location(call: Call[SensorLocationIn]) -> Any:
    """Record that a sensor was installed at a location (default: now)."""
    sensors.insert_sensor_location(call.session, **call.body.model_dump())
    return {"detail": "Sensor location inserted"}


@endpoint(
    bp,
    "sensor/list-sensor-locations",
    body=UniqueIdentifierIn,
    response=list[dict[str, Value]],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_sensor_locations(call: Call[UniqueIdentifierIn]) -> Any:
    """A sensor's location history, newest installation first."""
    return sensors.list_sensor_locations(
        call.session, unique_identifier=call.body.unique_identifier
    )


@endpoint(
    bp,
    "sensor/insert-sensor-readings",
    body=ReadingsIn,
    scope=Scope.READINGS_WRITE,
    sensors=lambda body: [body.unique_identifier],
    status=201,
    response=BulkInsertOut,
    errors={400: "Sensor does not exist, or the measure is not of its type"},
)
def insert_sensor_readings(call: Call[ReadingsIn]) -> Any:
    """Insert a series of readings; timestamps stored already keep their values, unless
    `on_conflict` is `update`. Replies with how many were inserted and were duplicates."""
    # dict(), not model_dump(): the readings' arrays pass through without a copy.
    counts = readings.insert_sensor_readings(call.session, **dict(call.body))
    return {"detail": "Sensor readings inserted", **counts}


@endpoint(
    bp,
    "sensor/insert-readings-bulk",
    body=BulkReadingsIn,
    scope=Scope.READINGS_WRITE,
    sensors=lambda body: [series.unique_identifier for series in body.series],
    target=lambda body: audit.describe_sensors(
        [series.unique_identifier for series in body.series],
        sum(len(series.readings) for series in body.series),
    ),
    status=201,
    response=BulkInsertOut,
    errors={400: "A sensor or measure does not exist"},
)
def insert_readings_bulk(call: Call[BulkReadingsIn]) -> Any:
    """Insert many (sensor, measure) series at once, all or nothing; counts duplicates."""
    body = call.body
    series = [dict(one) for one in body.series]
    counts = readings.insert_readings_bulk(
        call.session, series=series, on_conflict=body.on_conflict
    )
    return {"detail": "Sensor readings inserted", **counts}


@endpoint(
    bp,
    "sensor/sensor-readings",
    body=ReadingsQuery,
    response=list[ReadingOut],
    errors={400: "The sensor or the measure does not exist"},
    role=Role.VIEWER,
    scope=Scope.READ,
)
def sensor_readings(call: Call[ReadingsQuery]) -> Any:
    """A sensor's readings of one measure between two instants (both inclusive)."""
    return readings.sensor_readings_json(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "sensor/sensor-readings-aggregated",
    body=AggregatedQuery,
    response=list[AggregateOut],
    errors={400: "The sensor or the measure does not exist"},
    role=Role.VIEWER,
    scope=Scope.READ,
)
def sensor_readings_aggregated(call: Call[AggregatedQuery]) -> Any:
    """Readings aggregated per time bucket (mean, min, max, sum, count, first, last)."""
    return aggregation.aggregated_readings(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "sensor/latest-readings",
    body=LatestReadingsIn,
    body_required=False,
    response=list[LatestReadingOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def latest_readings(call: Call[LatestReadingsIn]) -> Any:
    """The newest reading of every (sensor, measure), optionally for one sensor type."""
    return readings.latest_readings(call.session, type_name=call.body.type_name)


def _csv_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


@endpoint(
    bp,
    "sensor/export-readings",
    body=ExportQuery,
    response=str,
    media_type="text/csv",
    errors={400: "A sensor or measure does not exist"},
    role=Role.VIEWER,
    scope=Scope.READ,
)
def export_readings(call: Call[ExportQuery]) -> Any:
    """Readings of several sensors and measures as CSV, with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(readings.CSV_HEADER)
    for uid, measure, units, ts, value in readings.export_readings(
        call.session, **call.body.model_dump()
    ):
        writer.writerow((uid, measure, units, iso_z(ts), _csv_text(value)))
    return func.HttpResponse(
        buffer.getvalue().encode(),
        mimetype="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="readings.csv"'},
    )


@endpoint(
    bp,
    "sensor/insert-derived-measure",
    body=DerivedMeasureIn,
    status=201,
    errors={
        400: "Sensor type does not exist",
        409: "The type has a derived measure of that name already",
    },
)
def insert_derived_measure(call: Call[DerivedMeasureIn]) -> Any:
    """Define a measure of a sensor type computed from its numeric measures by an
    expression (arithmetic, exp, log, sqrt, abs, min, max, comparisons, `a if c else b`),
    at the timestamps where every input has a reading."""
    derived.insert_derived_measure(call.session, **call.body.model_dump())
    return {"detail": "Derived measure inserted"}


@endpoint(
    bp,
    "sensor/list-derived-measures",
    body=ListSensorsIn,
    body_required=False,
    response=list[DerivedMeasureOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_derived_measures(call: Call[ListSensorsIn]) -> Any:
    """Every derived measure, or those of one type, with expression, inputs and units."""
    return derived.list_derived_measures(call.session, type_name=call.body.type_name)


@endpoint(
    bp,
    "sensor/delete-derived-measure",
    body=DerivedMeasureKey,
    errors={400: "The type has no derived measure of that name"},
)
def delete_derived_measure(call: Call[DerivedMeasureKey]) -> Any:
    """Delete a derived measure (nothing is stored for it but its definition)."""
    derived.delete_derived_measure(call.session, **call.body.model_dump())
    return {"detail": "Derived measure deleted"}
