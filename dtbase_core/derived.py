"""Derived measures (docs/api.md, Derived measures): a sensor type's measure computed from
its stored numeric measures by an expression (expressions.py), read like a stored measure.

Readings at different instants are matched exactly: a derived value exists at each
timestamp where every input measure of the sensor has a reading at that same instant
(an inner join of the inputs' readings on sensor and timestamp), and the expression gives
a finite number there. One SQL statement computes a window of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import expressions, shards
from dtbase_core.errors import AlreadyExists, Invalid, NotFound
from dtbase_core.orm import (
    Datatype,
    DerivedMeasure,
    Sensor,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    reading_tables,
)

NUMERIC = (Datatype.FLOAT, Datatype.INTEGER)
# Derived values beyond this magnitude are left out, as float readings beyond it are
# refused (readings.MAX_FLOAT_READING): no sum of them over a bucket can overflow.
MAX_VALUE = 1e290


@dataclass(frozen=True)
class DerivedSeries:
    """One sensor's derived measure, with what its readings are computed from."""

    sensor_id: int
    derived_id: int
    units: str | None
    expression: str
    inputs: tuple[tuple[str, int, Datatype], ...]  # variable, measure id, datatype


def insert_derived_measure(
    session: Session,
    *,
    type_name: str,
    name: str,
    units: str | None,
    expression: str,
    inputs: dict[str, str],
) -> None:
    type_id = session.scalar(
        sa.select(SensorType.id).where(SensorType.name == type_name).with_for_update()
    )
    if type_id is None:
        raise NotFound(f"Sensor type '{type_name}' does not exist")
    rows = session.execute(
        sa.select(SensorMeasure.name, SensorMeasure.datatype)
        .join(SensorTypeMeasure, SensorTypeMeasure.measure_id == SensorMeasure.id)
        .where(SensorTypeMeasure.type_id == type_id)
    ).all()
    stored = {row.name: row.datatype for row in rows}
    names = [row.name for row in rows]
    if name in stored:
        raise Invalid(
            f"Sensor type '{type_name}' has a stored measure called '{name}'", ("body", "name")
        )
    for variable, measure in inputs.items():
        loc = ("body", "inputs", variable)
        if measure not in stored:
            raise Invalid(f"'{measure}' is not a measure of sensor type '{type_name}'", loc)
        if names.count(measure) > 1:
            raise Invalid(f"Sensor type '{type_name}' has several measures called '{measure}'", loc)
        if stored[measure] not in NUMERIC:
            raise Invalid(f"'{measure}' holds {stored[measure].value}s, not numbers", loc)
    expressions.parse(expression, inputs)
    inserted = session.execute(
        pg.insert(DerivedMeasure)
        .values(type_id=type_id, name=name, units=units, expression=expression, inputs=inputs)
        .on_conflict_do_nothing(index_elements=[DerivedMeasure.type_id, DerivedMeasure.name])
        .returning(DerivedMeasure.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists(f"Sensor type '{type_name}' has a derived measure '{name}' already")


def list_derived_measures(
    session: Session, *, type_name: str | None = None
) -> list[dict[str, Any]]:
    query = (
        sa.select(
            SensorType.name.label("type_name"),
            DerivedMeasure.name,
            DerivedMeasure.units,
            DerivedMeasure.expression,
            DerivedMeasure.inputs,
        )
        .join(SensorType, SensorType.id == DerivedMeasure.type_id)
        .order_by(SensorType.id, DerivedMeasure.id)
    )
    if type_name is not None:
        query = query.where(SensorType.name == type_name)
    return [dict(row._mapping) for row in session.execute(query)]


def delete_derived_measure(session: Session, *, type_name: str, name: str) -> None:
    deleted = session.scalar(
        sa.delete(DerivedMeasure)
        .where(
            DerivedMeasure.name == name,
            DerivedMeasure.type_id
            == sa.select(SensorType.id).where(SensorType.name == type_name).scalar_subquery(),
        )
        .returning(DerivedMeasure.id)
    )
    if deleted is None:
        raise NotFound(f"Sensor type '{type_name}' has no derived measure '{name}'")


# --- reading -----------------------------------------------------------------------------


def find_series(session: Session, unique_identifier: str, name: str) -> DerivedSeries | None:
    """The derived measure `name` of the sensor's type, or None when there is none."""
    row = session.execute(
        sa.select(Sensor.id, DerivedMeasure.id)
        .join(DerivedMeasure, DerivedMeasure.type_id == Sensor.type_id)
        .where(Sensor.unique_identifier == unique_identifier, DerivedMeasure.name == name)
    ).one_or_none()
    if row is None:
        return None
    return series_of(session, [(row[0], row[1])])[0]


def series_of(session: Session, pairs: list[tuple[int, int]]) -> list[DerivedSeries]:
    """DerivedSeries for (sensor id, derived measure id) pairs, in their order, with the
    input variables resolved to the sensor type's measures."""
    ids = {derived_id for _, derived_id in pairs}
    if not ids:
        return []
    rows = session.execute(
        sa.select(
            DerivedMeasure.id,
            DerivedMeasure.type_id,
            DerivedMeasure.units,
            DerivedMeasure.expression,
            DerivedMeasure.inputs,
        ).where(DerivedMeasure.id.in_(ids))
    ).all()
    measures = {
        (row.type_id, row.name): (row.id, row.datatype)
        for row in session.execute(
            sa.select(
                SensorTypeMeasure.type_id,
                SensorMeasure.id,
                SensorMeasure.name,
                SensorMeasure.datatype,
            )
            .join(SensorMeasure, SensorMeasure.id == SensorTypeMeasure.measure_id)
            .where(SensorTypeMeasure.type_id.in_({row.type_id for row in rows}))
        )
    }
    by_id = {}
    for row in rows:
        inputs = tuple(
            (variable, *measures[(row.type_id, measure)])
            for variable, measure in row.inputs.items()
        )
        by_id[row.id] = (row.units, row.expression, inputs)
    return [
        DerivedSeries(sensor_id, derived_id, *by_id[derived_id]) for sensor_id, derived_id in pairs
    ]


def derived_rows(
    series: DerivedSeries,
    *,
    since: datetime | None = None,
    after: datetime | None = None,
    until: datetime | None = None,
    sensor: Any = None,
    newest_first: bool = False,
    pin: list[int] | None = None,
) -> Any:
    """SELECT timestamp, value: the series' derived readings, the inputs' readings
    inner-joined on sensor and timestamp, at instants from `since` (inclusive) or `after`
    (exclusive) to `until` (inclusive), where the expression has a value within
    ±MAX_VALUE (not NULL). The first input's index is read in time order (backwards
    with `newest_first`); callers order the result. `sensor` (a column, for a lateral
    join over many sensors) stands for the series' own sensor; `pin` keeps such a join to
    one shard's sensors on Citus (dtbase_core/shards.py)."""
    sensor_id = series.sensor_id if sensor is None else sensor
    (_, first_measure, first_datatype), *others = series.inputs
    first = reading_tables[first_datatype].alias("input_0")
    # Each further input's reading at the first one's instant: one primary-key lookup a
    # row, a plan that does not hang on the planner's row estimates (LIMIT 1 keeps it a
    # lateral lookup; with a fresh table's estimates a plain join could scan per row).
    lookups = []
    for index, (_, measure_id, datatype) in enumerate(others, start=1):
        table = reading_tables[datatype].alias(f"input_{index}")
        lookups.append(
            sa.select(table.c.value)
            .where(
                table.c.sensor_id == sensor_id,
                table.c.measure_id == measure_id,
                table.c.timestamp == first.c.timestamp,
                shards.pin_clause(table.c.sensor_id, pin),
            )
            .limit(1)
            .lateral(f"match_{index}")
        )
    joined: Any = first
    for lookup in lookups:
        joined = joined.join(lookup, sa.true())
    values = [first.c.value, *(lookup.c.value for lookup in lookups)]
    plan = expressions.parse(series.expression, [variable for variable, _, _ in series.inputs])
    base = (
        sa.select(
            first.c.timestamp,
            *(
                sa.cast(value, sa.Double).label(expressions.column_of(variable))
                for (variable, _, _), value in zip(series.inputs, values, strict=True)
            ),
        )
        .select_from(joined)
        .where(
            first.c.sensor_id == sensor_id,
            first.c.measure_id == first_measure,
            shards.pin_clause(first.c.sensor_id, pin),
            *([] if since is None else [first.c.timestamp >= since]),
            *([] if after is None else [first.c.timestamp > after]),
            *([] if until is None else [first.c.timestamp <= until]),
        )
        .order_by(first.c.timestamp.desc() if newest_first else first.c.timestamp)
    )
    computed = plan.rows(base).subquery("computed")
    return sa.select(computed.c.timestamp, computed.c.value).where(
        computed.c.value.between(-MAX_VALUE, MAX_VALUE)
    )


def readings_between(series: DerivedSeries, dt_from: datetime, dt_to: datetime) -> Any:
    """The derived readings in [dt_from, dt_to], oldest first."""
    query = derived_rows(series, since=dt_from, until=dt_to)
    return query.order_by(query.selected_columns.timestamp)


def latest_derived(session: Session, *, type_name: str | None = None) -> list[dict[str, Any]]:
    """The latest derived reading of every sensor and derived measure that has one (of a
    type, or of all): one statement per derived measure, a lateral backwards scan per
    sensor. Each row carries `sensor_id` and `derived_id`, to merge with stored ones."""
    query = sa.select(DerivedMeasure.id, DerivedMeasure.type_id, DerivedMeasure.name)
    if type_name is not None:
        query = query.join(SensorType, SensorType.id == DerivedMeasure.type_id).where(
            SensorType.name == type_name
        )
    definitions = session.execute(query.order_by(DerivedMeasure.id)).all()
    found: list[dict[str, Any]] = []
    for template, row in zip(
        series_of(session, [(0, d.id) for d in definitions]), definitions, strict=True
    ):
        sensors = sa.select(Sensor.id).where(Sensor.type_id == row.type_id)
        for pin in shards.pins(session, sensors):
            rows = derived_rows(template, sensor=Sensor.id, newest_first=True, pin=pin)
            latest = rows.order_by(rows.selected_columns.timestamp.desc()).limit(1).lateral()
            found += [
                {
                    "sensor_id": sensor_id,
                    "derived_id": row.id,
                    "unique_identifier": uid,
                    "measure_name": row.name,
                    "units": template.units,
                    "value": value,
                    "timestamp": at,
                }
                for sensor_id, uid, value, at in session.execute(
                    sa.select(
                        Sensor.id, Sensor.unique_identifier, latest.c.value, latest.c.timestamp
                    )
                    .join(latest, sa.true())
                    .where(Sensor.type_id == row.type_id, shards.pin_clause(Sensor.id, pin))
                )
            ]
    return found
