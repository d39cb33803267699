"""What the evaluator and the backtest read: the series a rule watches, readings past a
watermark (one indexed range scan per series, never the history before it), the reading
at or before an instant (one backwards index step per series: the latest-readings path
of dtbase_core/readings.py), and the bounds of model runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import derived, shards
from dtbase_core.orm import (
    AlertRule,
    Datatype,
    DerivedMeasure,
    Model,
    ModelMeasure,
    ModelProduct,
    ModelRun,
    Sensor,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    model_value_tables,
    reading_tables,
)

# Each datatype's values as numbers (booleans 0/1; strings have none: only `no_data`
# looks at them, by their timestamps).
_AS_NUMBER = {
    Datatype.FLOAT: "r.value",
    Datatype.INTEGER: "r.value::float8",
    Datatype.BOOLEAN: "r.value::int::float8",
    Datatype.STRING: "null::float8",
}


@dataclass(frozen=True)
class Watched:
    """One series a rule watches."""

    rule_id: int
    sensor_id: int
    unique_identifier: str
    measure_id: int
    datatype: Datatype


def watched_series(
    session: Session,
    *,
    scope: tuple[str | None, str | None, str, str | None] | None = None,
) -> list[Watched]:
    """The (sensor, measure) pairs of the enabled rules, or of one unsaved rule's
    `scope` (unique_identifier, type_name, measure_name, units): a type's sensors as they
    are now, so a sensor added later is watched from the next evaluation on."""
    if scope is not None:
        uid, type_name, measure_name, units = scope
        rules = sa.select(
            sa.literal(0).label("id"),
            sa.literal(uid, sa.String).label("unique_identifier"),
            sa.literal(type_name, sa.String).label("type_name"),
            sa.literal(measure_name, sa.String).label("measure_name"),
            sa.literal(units, sa.String).label("units"),
        ).subquery()
    else:
        rules = (
            sa.select(
                AlertRule.id,
                AlertRule.unique_identifier,
                AlertRule.type_name,
                AlertRule.measure_name,
                AlertRule.units,
            )
            .where(AlertRule.enabled)
            .subquery()
        )
    # Each scope in its own branch, every join on the same rows: joining the rules back
    # to the pairs they give made PostgreSQL compare every rule with every pair.
    branches = []
    for by_type in (False, True):
        branch = sa.select(
            rules.c.id,
            Sensor.id,
            Sensor.unique_identifier,
            SensorMeasure.id,
            SensorMeasure.datatype,
        ).select_from(rules)
        if by_type:
            branch = branch.join(SensorType, SensorType.name == rules.c.type_name).join(
                Sensor, Sensor.type_id == SensorType.id
            )
        else:
            branch = branch.join(Sensor, Sensor.unique_identifier == rules.c.unique_identifier)
        branches.append(
            branch.join(SensorTypeMeasure, SensorTypeMeasure.type_id == Sensor.type_id).join(
                SensorMeasure,
                sa.and_(
                    SensorMeasure.id == SensorTypeMeasure.measure_id,
                    SensorMeasure.name == rules.c.measure_name,
                    sa.or_(rules.c.units.is_(None), SensorMeasure.units == rules.c.units),
                ),
            )
        )
        # A derived measure of the sensor's type (dtbase_core/derived.py), keyed by the
        # negative of its id: it never meets a stored measure's.
        derived_branch = sa.select(
            rules.c.id,
            Sensor.id,
            Sensor.unique_identifier,
            -DerivedMeasure.id,
            sa.cast(sa.literal(Datatype.FLOAT.value), SensorMeasure.datatype.type),
        ).select_from(rules)
        if by_type:
            derived_branch = derived_branch.join(
                SensorType, SensorType.name == rules.c.type_name
            ).join(Sensor, Sensor.type_id == SensorType.id)
        else:
            derived_branch = derived_branch.join(
                Sensor, Sensor.unique_identifier == rules.c.unique_identifier
            )
        branches.append(
            derived_branch.join(
                DerivedMeasure,
                sa.and_(
                    DerivedMeasure.type_id == Sensor.type_id,
                    DerivedMeasure.name == rules.c.measure_name,
                    sa.or_(rules.c.units.is_(None), DerivedMeasure.units == rules.c.units),
                ),
            )
        )
    query = sa.union_all(*branches).order_by(sa.text("1, 2, 4"))
    return [Watched(*row) for row in session.execute(query)]


Reading = tuple[datetime, float | None]
SeriesKey = tuple[int, int]  # sensor_id, measure_id


def _by_datatype(
    keys: Iterable[tuple[SeriesKey, Datatype, datetime]],
) -> dict[Datatype, dict[SeriesKey, datetime]]:
    grouped: dict[Datatype, dict[SeriesKey, datetime]] = defaultdict(dict)
    for key, datatype, at in keys:
        known = grouped[datatype].get(key)
        grouped[datatype][key] = at if known is None else min(known, at)
    return grouped


def _per_series(
    session: Session, sql: str, instants: dict[SeriesKey, datetime], name: str, **params: Any
) -> Iterable[Any]:
    """Rows of a statement whose lateral join reads each series of `instants` from its
    instant: `sql` unnests `:sids`, `:mids` and `:<name>`, with `{pin}` beside its
    `r.sensor_id` join. Once on plain PostgreSQL, once per shard on Citus
    (dtbase_core/shards.py)."""
    for pin in shards.pins(session, (key[0] for key in instants)):
        pinned = None if pin is None else set(pin)
        chosen = [key for key in instants if pinned is None or key[0] in pinned]
        yield from session.execute(
            sa.text(sql.format(pin=shards.pin_sql("r", pin))),
            {
                "sids": [key[0] for key in chosen],
                "mids": [key[1] for key in chosen],
                name: [instants[key] for key in chosen],
                "pin": pin,
                **params,
            },
        )


def _split_derived(
    session: Session, keys: Iterable[tuple[SeriesKey, Datatype, datetime]]
) -> tuple[
    list[tuple[SeriesKey, Datatype, datetime]],
    list[tuple[SeriesKey, derived.DerivedSeries, datetime]],
]:
    """The stored series' keys, and the derived ones (a negative measure id) with their
    definitions; each derived series is then read with one statement of its own."""
    stored: list[tuple[SeriesKey, Datatype, datetime]] = []
    wanted: list[tuple[SeriesKey, Datatype, datetime]] = []
    for key, datatype, at in keys:
        (wanted if key[1] < 0 else stored).append((key, datatype, at))
    definitions = derived.series_of(session, [(key[0], -key[1]) for key, _, _ in wanted])
    return stored, [
        (key, series, at) for (key, _, at), series in zip(wanted, definitions, strict=True)
    ]


def readings_after(
    session: Session,
    keys: Iterable[tuple[SeriesKey, Datatype, datetime]],
    *,
    until: datetime,
    limit: int,
) -> dict[SeriesKey, list[Reading]]:
    """Each series' readings after its instant and up to `until`, oldest first, at most
    `limit` of them: one statement per datatype, one index range scan per series."""
    found: dict[SeriesKey, list[Reading]] = defaultdict(list)
    keys, computed = _split_derived(session, keys)
    for key, series, at in computed:
        query = derived.derived_rows(series, after=at, until=until)
        at_col = query.selected_columns.timestamp
        found[key] = [tuple(row) for row in session.execute(query.order_by(at_col).limit(limit))]
    for datatype, after in _by_datatype(keys).items():
        table = reading_tables[datatype].name
        rows = _per_series(
            session,
            f"""
            select k.sensor_id, k.measure_id, r.timestamp, {_AS_NUMBER[datatype]}
            from unnest(cast(:sids as int[]), cast(:mids as int[]),
                        cast(:after as timestamptz[])) as k(sensor_id, measure_id, after)
            cross join lateral (
                select timestamp, value from {table} r
                where r.sensor_id = k.sensor_id and r.measure_id = k.measure_id {{pin}}
                  and r.timestamp > k.after and r.timestamp <= :until
                order by r.timestamp limit :limit
            ) r
            order by k.sensor_id, k.measure_id, r.timestamp
            """,
            after,
            "after",
            until=until,
            limit=limit,
        )
        for sensor_id, measure_id, at, value in rows:
            found[(sensor_id, measure_id)].append((at, value))
    return found


def reading_at_or_before(
    session: Session, keys: Iterable[tuple[SeriesKey, Datatype, datetime]]
) -> dict[SeriesKey, Reading]:
    """Each series' latest reading at or before its instant (a backwards index step)."""
    found: dict[SeriesKey, Reading] = {}
    keys, computed = _split_derived(session, keys)
    for key, series, at in computed:
        query = derived.derived_rows(series, until=at, newest_first=True)
        latest = session.execute(
            query.order_by(query.selected_columns.timestamp.desc()).limit(1)
        ).one_or_none()
        if latest is not None:
            found[key] = (latest[0], latest[1])
    for datatype, before in _by_datatype(keys).items():
        table = reading_tables[datatype].name
        rows = _per_series(
            session,
            f"""
            select k.sensor_id, k.measure_id, r.timestamp, {_AS_NUMBER[datatype]}
            from unnest(cast(:sids as int[]), cast(:mids as int[]),
                        cast(:before as timestamptz[])) as k(sensor_id, measure_id, before)
            cross join lateral (
                select timestamp, value from {table} r
                where r.sensor_id = k.sensor_id and r.measure_id = k.measure_id {{pin}}
                  and r.timestamp <= k.before
                order by r.timestamp desc limit 1
            ) r
            """,
            before,
            "before",
        )
        for sensor_id, measure_id, at, value in rows:
            found[(sensor_id, measure_id)] = (at, value)
    return found


def quiet_hours(
    session: Session,
    keys: Iterable[SeriesKey],
    *,
    after: datetime,
    until: datetime,
    quiet: Callable[[float, float], bool],
) -> tuple[dict[SeriesKey, list[tuple[datetime, Reading, int]]], dict[SeriesKey, list[datetime]]]:
    """From the hourly rollups of numeric series, over (after, until]: the hours that lie
    wholly in the range and whose [min, max] is `quiet`, each as (hour, its first reading,
    its count of readings), and the other hours that hold readings (to read in full)."""
    keys = list(dict.fromkeys(keys))
    quiet_found: dict[SeriesKey, list[tuple[datetime, Reading, int]]] = defaultdict(list)
    busy: dict[SeriesKey, list[datetime]] = defaultdict(list)
    if not keys:
        return quiet_found, busy
    rows = session.execute(
        sa.text(
            """
            select k.sensor_id, k.measure_id, h.hour, h.count, h.min, h.max,
                   h.first_timestamp, h.first_value
            from unnest(cast(:sids as int[]), cast(:mids as int[])) as k(sensor_id, measure_id)
            cross join lateral (
                select * from sensor_reading_hourly h
                where h.sensor_id = k.sensor_id and h.measure_id = k.measure_id
                  and h.hour > cast(:after as timestamptz) - interval '1 hour'
                  and h.hour <= :until
                order by h.hour
            ) h
            """
        ),
        {
            "sids": [k[0] for k in keys],
            "mids": [k[1] for k in keys],
            "after": after,
            "until": until,
        },
    )
    for sensor_id, measure_id, hour, count, low, high, first_at, first_value in rows:
        key = (sensor_id, measure_id)
        inside = hour > after and until - hour >= timedelta(hours=1)
        if inside and quiet(low, high):
            quiet_found[key].append((hour, (first_at, first_value), count))
        else:
            busy[key].append(hour)
    return quiet_found, busy


def readings_in_hours(
    session: Session,
    hours: dict[SeriesKey, list[datetime]],
    datatype_of: dict[SeriesKey, Datatype],
    *,
    after: datetime,
    until: datetime,
) -> dict[SeriesKey, list[Reading]]:
    """The readings of the given hours of each series within (after, until], oldest first."""
    found: dict[SeriesKey, list[Reading]] = defaultdict(list)
    by_datatype: dict[Datatype, list[tuple[SeriesKey, datetime]]] = defaultdict(list)
    for key, starts in hours.items():
        by_datatype[datatype_of[key]] += [(key, start) for start in starts]
    for datatype, pairs in by_datatype.items():
        table = reading_tables[datatype].name
        rows = session.execute(
            sa.text(
                f"""
                select k.sensor_id, k.measure_id, r.timestamp, {_AS_NUMBER[datatype]}
                from unnest(cast(:sids as int[]), cast(:mids as int[]),
                            cast(:hours as timestamptz[])) as k(sensor_id, measure_id, hour)
                cross join lateral (
                    select timestamp, value from {table} r
                    where r.sensor_id = k.sensor_id and r.measure_id = k.measure_id
                      and r.timestamp >= k.hour and r.timestamp < k.hour + interval '1 hour'
                      and r.timestamp > :after and r.timestamp <= :until
                ) r
                order by k.sensor_id, k.measure_id, r.timestamp
                """
            ),
            {
                "sids": [p[0][0] for p in pairs],
                "mids": [p[0][1] for p in pairs],
                "hours": [p[1] for p in pairs],
                "after": after,
                "until": until,
            },
        )
        for sensor_id, measure_id, at, value in rows:
            found[(sensor_id, measure_id)].append((at, value))
    return found


# --- forecasts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """One model run's lower and upper bounds over the instants it forecasts."""

    created: datetime
    micros: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def at(self, when: datetime) -> tuple[float, float] | None:
        us = _micros(when)
        if not len(self.micros) or us < self.micros[0] or us > self.micros[-1]:
            return None
        lower = float(np.interp(us, self.micros, self.lower))
        upper = float(np.interp(us, self.micros, self.upper))
        return lower, upper


def _micros(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=when.tzinfo)) // timedelta(microseconds=1)


def _bound_kind(name: str) -> str | None:
    """ "lower" / "upper" for a product holding a bound: `lower`, `Lower Bound`, or the
    ARIMA's `Lower Bound <measure>` (and the same for upper)."""
    lowered = name.lower()
    for kind in ("lower", "upper"):
        if lowered in (kind, f"{kind} bound") or lowered.startswith(f"{kind} bound "):
            return kind
    return None


def forecast_bands(
    session: Session,
    *,
    sensor_id: int,
    measure_id: int,
    model_name: str | None,
    created_to: datetime,
) -> list[Band]:
    """The bounds of every run forecasting the series created by `created_to` (the
    newest 500), oldest first. A run without both bounds is left out."""
    runs = sa.select(ModelRun.id, ModelRun.time_created).where(
        ModelRun.sensor_id == sensor_id,
        ModelRun.sensor_measure_id == measure_id,
        ModelRun.time_created <= created_to,
    )
    if model_name is not None:
        runs = runs.join(Model, Model.id == ModelRun.model_id).where(Model.name == model_name)
    found = session.execute(runs.order_by(ModelRun.time_created.desc()).limit(500)).all()
    bands = _bands(session, {run_id: created for run_id, created in found})
    return [bands[run_id] for run_id, _ in reversed(found) if run_id in bands]


def latest_bands(
    session: Session, series: Sequence[tuple[int, int, str | None]], *, created_to: datetime
) -> dict[tuple[int, int, str | None], Band]:
    """For each (sensor_id, measure_id, model name or None): the bounds of the latest run
    forecasting it created by `created_to`, in two statements for all of them."""
    wanted = list(dict.fromkeys(series))
    if not wanted:
        return {}
    rows = session.execute(
        sa.text(
            """
            select k.sensor_id, k.measure_id, k.model_name, r.id, r.time_created
            from unnest(cast(:sids as int[]), cast(:mids as int[]), cast(:names as text[]))
                 as k(sensor_id, measure_id, model_name)
            cross join lateral (
                select run.id, run.time_created from model_run run
                join model on model.id = run.model_id
                where run.sensor_id = k.sensor_id and run.sensor_measure_id = k.measure_id
                  and run.time_created <= :created_to
                  and (k.model_name is null or model.name = k.model_name)
                order by run.time_created desc limit 1
            ) r
            """
        ),
        {
            "sids": [w[0] for w in wanted],
            "mids": [w[1] for w in wanted],
            "names": [w[2] for w in wanted],
            "created_to": created_to,
        },
    ).all()
    bands = _bands(session, {row[3]: row[4] for row in rows})
    return {(row[0], row[1], row[2]): bands[row[3]] for row in rows if row[3] in bands}


def _bands(session: Session, runs: dict[int, datetime]) -> dict[int, Band]:
    """The lower and upper bounds of `runs` (id: creation), read in one statement per
    value datatype; a run without both is left out."""
    if not runs:
        return {}
    values: dict[int, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for datatype in (Datatype.FLOAT, Datatype.INTEGER):
        table = model_value_tables[datatype]
        rows = session.execute(
            sa.select(ModelProduct.run_id, ModelMeasure.name, table.c.timestamp, table.c.value)
            .join(ModelMeasure, ModelMeasure.id == ModelProduct.measure_id)
            .join(table, table.c.product_id == ModelProduct.id)
            .where(
                ModelProduct.run_id.in_(list(runs)),
                sa.or_(
                    sa.func.lower(ModelMeasure.name).like("lower%"),
                    sa.func.lower(ModelMeasure.name).like("upper%"),
                ),
            )
        )
        for run_id, name, at, value in rows:
            kind = _bound_kind(name)
            if kind is not None:
                values[run_id][kind][_micros(at)] = float(value)
    bands = {}
    for run_id, bounds in values.items():
        if "lower" not in bounds or "upper" not in bounds:
            continue
        common = sorted(bounds["lower"].keys() & bounds["upper"].keys())
        bands[run_id] = Band(
            runs[run_id],
            np.array(common, dtype=np.int64),
            np.array([bounds["lower"][us] for us in common]),
            np.array([bounds["upper"][us] for us in common]),
        )
    return bands


def bounds_of(
    bands: list[Band], *, as_of_creation: bool
) -> Callable[[datetime], tuple[float, float] | None]:
    """The bounds at an instant: from the newest band covering it (with `as_of_creation`,
    the newest created by then, as a backtest must: a later run was not known yet)."""

    def bounds(when: datetime) -> tuple[float, float] | None:
        for band in reversed(bands):
            if as_of_creation and band.created > when:
                continue
            found = band.at(when)
            if found is not None:
                return found
        return None

    return bounds
