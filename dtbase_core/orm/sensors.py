"""Sensors: measures, types, sensors, typed readings, location history, as DTBase's
sensor tables.

Readings tables have no surrogate id: their primary key (sensor_id, measure_id,
timestamp) is the uniqueness rule, the index every read uses, and leads with the column
a Citus deployment distributes them by (infra/README.md).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import (
    DATATYPE_ENUM,
    VALUE_COLUMN_TYPES,
    Base,
    Datatype,
    Timestamped,
    UtcDateTime,
)


class SensorMeasure(Timestamped, Base):
    __tablename__ = "sensor_measure"
    __table_args__ = (sa.UniqueConstraint("name", "units", postgresql_nulls_not_distinct=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    units: Mapped[str | None] = mapped_column(sa.String(100))
    datatype: Mapped[Datatype] = mapped_column(DATATYPE_ENUM)


class SensorType(Timestamped, Base):
    __tablename__ = "sensor_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    # Raw readings of its sensors older than this many days are removed by the daily
    # retention timer (dtbase_core/retention.py); null: kept forever. Rollups stay.
    retention_days: Mapped[int | None] = mapped_column(
        sa.Integer, sa.CheckConstraint("retention_days between 1 and 36500", name="retention_days")
    )


class SensorTypeMeasure(Timestamped, Base):
    __tablename__ = "sensor_type_measure_relation"
    __table_args__ = (sa.UniqueConstraint("type_id", "measure_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_type.id", ondelete="CASCADE"), index=True
    )
    measure_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_measure.id", ondelete="RESTRICT"), index=True
    )


class Sensor(Timestamped, Base):
    __tablename__ = "sensor"

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_type.id", ondelete="RESTRICT"), index=True
    )
    unique_identifier: Mapped[str] = mapped_column(sa.String(100), unique=True)
    name: Mapped[str | None] = mapped_column(sa.String(100))
    notes: Mapped[str | None] = mapped_column(sa.Text)


class SensorLocation(Timestamped, Base):
    __tablename__ = "sensor_location"
    __table_args__ = (sa.UniqueConstraint("sensor_id", "installation_datetime"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sensor_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(
        sa.ForeignKey("location.id", ondelete="RESTRICT"), index=True
    )
    installation_datetime: Mapped[datetime] = mapped_column(UtcDateTime)


def _reading_table(datatype: Datatype) -> sa.Table:
    # No foreign keys here, deliberately: checking two of them per row tripled the cost
    # of a bulk insert. The same guarantee is kept by the code that writes: an insert
    # holds the sensor row FOR KEY SHARE (what the FK trigger would take, once per
    # series instead of once per row; dtbase_core/readings.py), and deleting a sensor
    # deletes its readings in the same transaction (dtbase_core/sensors.py,
    # delete_sensor). Sensor measures are never deleted.
    return sa.Table(
        f"sensor_{datatype.value}_reading",
        Base.metadata,
        sa.Column("sensor_id", sa.Integer, primary_key=True),
        sa.Column("measure_id", sa.Integer, primary_key=True),
        sa.Column("timestamp", UtcDateTime, primary_key=True),
        sa.Column("value", VALUE_COLUMN_TYPES[datatype], nullable=False),
    )


reading_tables: dict[Datatype, sa.Table] = {dt: _reading_table(dt) for dt in Datatype}


def _rollup_table(name: str, bucket: str) -> sa.Table:
    """Partial aggregates of the numeric readings per `bucket`, keyed like the readings
    (so they distribute by sensor alike)."""
    return sa.Table(
        name,
        Base.metadata,
        sa.Column("sensor_id", sa.Integer, primary_key=True),
        sa.Column("measure_id", sa.Integer, primary_key=True),
        sa.Column(bucket, UtcDateTime, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("sum", sa.Double, nullable=False),
        sa.Column("min", sa.Double, nullable=False),
        sa.Column("max", sa.Double, nullable=False),
        sa.Column("first_timestamp", UtcDateTime, nullable=False),
        sa.Column("first_value", sa.Double, nullable=False),
        sa.Column("last_timestamp", UtcDateTime, nullable=False),
        sa.Column("last_value", sa.Double, nullable=False),
    )


# Hourly partials, kept up to date by the statement that writes the readings
# (dtbase_core/readings.py, _rollup_upsert); read by dtbase_core/aggregation.py.
# Aggregations over whole hours read these instead of every reading: an hourly mean over a
# year of one-minute data reads 8,760 rows, not 525,600.
reading_rollup = _rollup_table("sensor_reading_hourly", "hour")
# The same per UTC day, folded from the hourly ones by the same writes: a daily mean over
# a year reads 365 rows (aggregation.py reads the coarsest rollup that fits).
reading_rollup_daily = _rollup_table("sensor_reading_daily", "day")
