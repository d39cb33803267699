"""Retention (docs/api.md, Retention): raw readings older than their sensor type's
`retention_days`, and old operational rows (the audit log, finished notification deliveries,
telemetry dead letters), removed by the daily retention timer.

Everything goes in batches, each its own short transaction, so that a large backlog never
holds one long transaction or its locks. The functions therefore take a `transaction`
factory (`session_scope`, or a test's) instead of one session. Two runs at once are safe:
a series' batches take the series' write lock, as inserts do, and a run that finds a
series' old rows gone counts nothing; operational rows are claimed with SKIP LOCKED. The
hourly and daily rollups are never touched, so aggregates over removed ranges keep their values.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import readings
from dtbase_core.orm import (
    AuditEvent,
    Sensor,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    TelemetryDeadLetter,
    reading_tables,
)
from dtbase_core.orm.notifications import DeliveryStatus, NotificationDelivery

Transaction = Callable[[], AbstractContextManager[Session]]

# Rows one statement (and one transaction) removes.
DEFAULT_BATCH_ROWS = 50_000


def remove_expired_readings(
    transaction: Transaction, *, now: datetime, batch_rows: int = DEFAULT_BATCH_ROWS
) -> dict[str, int]:
    """Remove the raw readings older than `now - retention_days` of every sensor of each
    type with a retention; how many went, per type name (0 for a type with nothing due)."""
    with transaction() as session:
        types = session.execute(
            sa.select(SensorType.name, SensorType.retention_days)
            .where(SensorType.retention_days.is_not(None))
            .order_by(SensorType.name)
        ).all()
        series = session.execute(
            sa.select(
                SensorType.name,
                Sensor.id,
                SensorMeasure.id.label("measure_id"),
                SensorMeasure.datatype,
            )
            .join(Sensor, Sensor.type_id == SensorType.id)
            .join(SensorTypeMeasure, SensorTypeMeasure.type_id == SensorType.id)
            .join(SensorMeasure, SensorMeasure.id == SensorTypeMeasure.measure_id)
            .where(SensorType.retention_days.is_not(None))
            .order_by(Sensor.id, SensorMeasure.id)
        ).all()
    cutoffs = {name: now - timedelta(days=days or 0) for name, days in types}
    removed = dict.fromkeys(cutoffs, 0)
    for type_name, sensor_id, measure_id, datatype in series:
        removed[type_name] += _remove_series(
            transaction,
            table=reading_tables[datatype],
            sensor_id=sensor_id,
            measure_id=measure_id,
            before=cutoffs[type_name],
            batch_rows=batch_rows,
        )
    return removed


def _remove_series(
    transaction: Transaction,
    *,
    table: sa.Table,
    sensor_id: int,
    measure_id: int,
    before: datetime,
    batch_rows: int,
) -> int:
    """One series' readings before `before`, oldest first, a primary-key range of at most
    `batch_rows` rows per transaction."""
    in_series = sa.and_(table.c.sensor_id == sensor_id, table.c.measure_id == measure_id)
    total = 0
    while True:
        with transaction() as session:
            # An insert and this batch, or two retention runs, take turns on the series.
            readings.lock_series(session, sensor_id, measure_id)
            # The batch's last key: the range (series, -inf .. last] holds batch_rows rows.
            last = session.scalar(
                sa.select(table.c.timestamp)
                .where(in_series, table.c.timestamp < before)
                .order_by(table.c.timestamp)
                .offset(batch_rows - 1)
                .limit(1)
            )
            bound = table.c.timestamp <= last if last is not None else table.c.timestamp < before
            count = _rowcount(session.execute(sa.delete(table).where(in_series, bound)))
        total += count
        if last is None:  # the last (partial or empty) batch of the series
            return total


def prune_operational(
    transaction: Transaction,
    *,
    now: datetime,
    audit_days: int,
    delivery_days: int,
    dead_letter_days: int,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> dict[str, int]:
    """Remove audit log rows, delivered or dead notification deliveries (with their
    attempts, by the foreign key's cascade) and telemetry dead letters older than their ages
    in days; pending deliveries are never removed. How many went, per table."""
    audit, delivery, letter = (
        cast(sa.Table, orm.__table__).c
        for orm in (AuditEvent, NotificationDelivery, TelemetryDeadLetter)
    )
    finished = (DeliveryStatus.DELIVERED.value, DeliveryStatus.DEAD.value)
    return {
        "audit_event": _prune(
            transaction, audit.id, audit.at < now - timedelta(days=audit_days), batch_rows
        ),
        # A finished delivery's age is its creation's: a dead one dies within hours of it.
        "notification_delivery": _prune(
            transaction,
            delivery.id,
            sa.and_(
                delivery.status.in_(finished),
                delivery.created_at < now - timedelta(days=delivery_days),
            ),
            batch_rows,
        ),
        "telemetry_dead_letter": _prune(
            transaction,
            letter.id,
            letter.received_at < now - timedelta(days=dead_letter_days),
            batch_rows,
        ),
    }


def _prune(
    transaction: Transaction, key: sa.ColumnElement[Any], due: sa.ColumnElement[bool], rows: int
) -> int:
    """Delete the rows matching `due`, `rows` at a time; rows another run holds are left to
    it (SKIP LOCKED), so two runs never wait on each other or count a row twice."""
    batch = sa.select(key).where(due).order_by(key).limit(rows).with_for_update(skip_locked=True)
    remove = sa.delete(cast(sa.Column[Any], key).table).where(key.in_(batch.scalar_subquery()))
    total = 0
    while True:
        with transaction() as session:
            count = _rowcount(session.execute(remove))
        total += count
        if count < rows:
            return total


def _rowcount(result: sa.Result[Any]) -> int:
    """A DELETE's row count (exact for a DELETE, unlike INSERT ... SELECT's)."""
    return int(cast(sa.CursorResult[Any], result).rowcount)
