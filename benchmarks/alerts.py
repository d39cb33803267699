"""Benchmark: one alert evaluation tick with 1,000 rules over 1,000 sensors and 10 million
stored readings.

    python benchmarks/alerts.py                       # 1,000 sensors x 10,000 readings, 10 ticks
    python benchmarks/alerts.py --sensors 100 --readings-per-sensor 1000 --ticks 5

Runs the core in this process on a fresh database (embedded PostgreSQL, or the server that
DT_TEST_DATABASE_URL names). The readings (one a minute per sensor, a week of them) go in
with one binary COPY per chunk of sensors, and their hourly rollups with one statement, as
the write path would have left them. The rules, one per sensor: 600 thresholds (a third
with `for_seconds`, a third with hysteresis), 200 `no_data`, 150 `rate_of_change` and 50
`forecast_deviation` against a model run with bounds. Then each tick stores the next
minute's reading of every sensor and times one evaluation (its whole transaction, commit
included) at that minute; the first tick, which starts every series (one backwards index
step each and the last hour), is reported on its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtbase_core import instants, models, pgcopy, sensors
from dtbase_core.alerts import evaluator
from dtbase_core.db import normalise_url
from dtbase_core.migrations import upgrade
from dtbase_core.orm import AlertRule
from dtbase_core.schemas.models import ProductIn, SensorMeasureRef
from tests.support import TestDatabase

STEP = timedelta(minutes=1)
END = datetime(2026, 3, 1, tzinfo=UTC)  # the last stored reading; ticks follow it
COPY_SENSORS = 50  # sensors per COPY
COPY = (
    "copy sensor_float_reading (sensor_id, measure_id, timestamp, value) from stdin (format binary)"
)


def values_of(sensor: int, index: np.ndarray) -> np.ndarray:
    """A daily cycle around 20 with noise; every 10th sensor drifts higher in its last day."""
    rng = np.random.default_rng(sensor)
    day = 2 * np.pi * index / 1440
    values = 20 + 5 * np.sin(day + sensor) + rng.normal(0, 0.5, len(index))
    if sensor % 10 == 0:
        values += np.clip(index - index.max() + 1440, 0, None) / 100
    return values


def load(url: str, count: int, per_sensor: int) -> tuple[list[int], int]:
    """Sensors, their readings (COPY) and rollups; their ids and the measure's id."""
    with Session(_engine(url)) as session, session.begin():
        sensors.insert_sensor_type(
            session,
            name="bench",
            description=None,
            measures=[{"name": "value", "units": "u", "datatype": "float"}],
        )
    conn_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conn_url) as conn:
        type_id, measure_id = conn.execute(
            "select type_id, measure_id from sensor_type_measure_relation"
        ).fetchone()
        ids = [
            row[0]
            for row in conn.execute(
                "insert into sensor (type_id, unique_identifier) "
                "select %s, 'bench-' || g from generate_series(0, %s - 1) g returning id",
                (type_id, count),
            ).fetchall()
        ]
        index = np.arange(per_sensor)
        first = instants.micros(END - (per_sensor - 1) * STEP)
        stamps = first + index * (STEP // timedelta(microseconds=1))
        for at in range(0, count, COPY_SENSORS):
            chunk = ids[at : at + COPY_SENSORS]
            with conn.cursor() as cur, cur.copy(COPY) as out:
                out.write(pgcopy.HEADER)
                for number, sensor_id in enumerate(chunk, start=at):
                    columns = [
                        ("int4", sensor_id),
                        ("int4", measure_id),
                        ("timestamptz", stamps),
                        ("float8", values_of(number, index)),
                    ]
                    out.write(pgcopy.rows(columns, per_sensor))
                out.write(pgcopy.TRAILER)
        conn.execute(
            """
            insert into sensor_reading_hourly
            select sensor_id, measure_id, date_bin('1 hour', timestamp, 'epoch'), count(*),
                   sum(value), min(value), max(value), min(timestamp),
                   (array_agg(value order by timestamp))[1], max(timestamp),
                   (array_agg(value order by timestamp desc))[1]
            from sensor_float_reading group by 1, 2, 3
            """
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("vacuum analyze sensor_float_reading")
    return ids, measure_id


_engines: dict[str, sa.Engine] = {}


def _engine(url: str) -> sa.Engine:
    if url not in _engines:
        _engines[url] = sa.create_engine(
            normalise_url(url), connect_args={"options": "-c timezone=UTC"}
        )
    return _engines[url]


def add_rules(url: str, count: int) -> None:
    """One rule per sensor, of every kind, and a forecast for the forecast rules' sensors."""
    forecast_from = int(count * 0.95)
    with Session(_engine(url)) as session, session.begin():
        models.insert_model(session, name="bench-model")
        for name in ("Lower Bound value", "Upper Bound value"):
            models.insert_model_measure(session, name=name, units="u", datatype="float")
        times = [END - timedelta(hours=1) + i * timedelta(minutes=10) for i in range(24 * 6)]
        for number in range(count):
            share = number / count
            params: dict[str, object]
            if share < 0.6:
                kind, params = "threshold", {"above": 24.5}
                if number % 3 == 1:
                    params["for_seconds"] = 180
                elif number % 3 == 2:
                    params["clear_above"] = 23.5
            elif share < 0.8:
                kind, params = "no_data", {"no_data_seconds": 600}
            elif share < 0.95:
                kind, params = "rate_of_change", {"max_change_per_hour": 200}
            else:
                kind, params = "forecast_deviation", {"consecutive_points": 3}
                models.insert_model_run(
                    session,
                    model_name="bench-model",
                    scenario_description="bench",
                    create_scenario=True,
                    time_created=END - timedelta(hours=1, minutes=number - forecast_from),
                    sensor_unique_id=f"bench-{number}",
                    sensor_measure=SensorMeasureRef(name="value", units="u"),
                    measures_and_values=[
                        ProductIn(measure_name=name, values=[bound] * len(times), timestamps=times)
                        for name, bound in (
                            ("Lower Bound value", 15.0),
                            ("Upper Bound value", 24.0),
                        )
                    ],
                )
            session.add(
                AlertRule(
                    name=f"rule-{number}",
                    kind=kind,
                    measure_name="value",
                    unique_identifier=f"bench-{number}",
                    params=params,
                    severity=("info", "warning", "critical")[number % 3],
                    channels=[],
                    enabled=True,
                )
            )


def add_minute(url: str, ids: list[int], measure_id: int, minute: int, per_sensor: int) -> None:
    """Every sensor's reading for `minute` minutes after END (one in 20 sensors stays quiet)."""
    at = instants.micros(END + minute * STEP)
    live = [(n, s) for n, s in enumerate(ids) if n % 20 != 7]
    conn_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conn_url) as conn, conn.cursor() as cur, cur.copy(COPY) as out:
        out.write(pgcopy.HEADER)
        for number, sensor_id in live:
            value = values_of(number, np.array([per_sensor - 1 + minute]))
            columns = [
                ("int4", sensor_id),
                ("int4", measure_id),
                ("timestamptz", at),
                ("float8", value),
            ]
            out.write(pgcopy.rows(columns, 1))
        out.write(pgcopy.TRAILER)


def tick(url: str, minute: int) -> tuple[float, int, int]:
    started = time.perf_counter()
    with Session(_engine(url)) as session, session.begin():
        result = evaluator.evaluate(session, now=END + minute * STEP + timedelta(seconds=5))
    return time.perf_counter() - started, result["evaluated"], len(result["transitions"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--readings-per-sensor", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=10)
    args = parser.parse_args()
    db = TestDatabase()
    try:
        print(f"database: {db.kind}")
        upgrade(db.url)
        started = time.perf_counter()
        ids, measure_id = load(db.url, args.sensors, args.readings_per_sensor)
        add_rules(db.url, args.sensors)
        total = args.sensors * args.readings_per_sensor
        loaded = time.perf_counter() - started
        print(f"loaded {total:,} readings and {args.sensors:,} rules in {loaded:.1f} s")
        first, evaluated, made = tick(db.url, 0)
        print(
            f"first tick (starts {evaluated:,} series): {first * 1000:.0f} ms, {made} transitions"
        )
        times = []
        for minute in range(1, args.ticks + 1):
            add_minute(db.url, ids, measure_id, minute, args.readings_per_sensor)
            seconds, evaluated, made = tick(db.url, minute)
            times.append(seconds)
            print(f"tick {minute}: {seconds * 1000:.0f} ms, {made} transitions")
        print(
            f"{evaluated:,} series over {total:,} readings: min {min(times) * 1000:.0f} ms, "
            f"median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms per tick"
        )
    finally:
        for engine in _engines.values():
            engine.dispose()
        db.close()


if __name__ == "__main__":
    main()
