"""Benchmark: daily means over a year of one-minute readings, from each source.

    DT_TEST_DATABASE_URL=postgresql://... python benchmarks/aggregated.py

Fills a fresh database (embedded PostgreSQL, or the server DT_TEST_DATABASE_URL names) with a
year of one-minute float readings of one sensor (525,600, by the write path and its rollups),
then times `aggregation.aggregated_readings` in this process, without HTTP: daily means over
the year in UTC from the daily rollups (the source chosen), from the hourly rollups (what
was read before the daily ones existed) and from the readings; and local days in
Europe/London (hourly rollups). Median of `--repeat` runs each, after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtbase_core import aggregation, readings, sensors
from dtbase_core.migrations import alembic_config
from tests.support import TestDatabase

START = datetime(2025, 1, 1, tzinfo=UTC)
MINUTES = 365 * 24 * 60
MINUTE_US = 60_000_000


def fill(database: TestDatabase) -> None:
    with Session(database.engine) as session, session.begin():
        sensors.insert_sensor_type(
            session,
            name="logger",
            description=None,
            measures=[{"name": "t", "units": "C", "datatype": "float"}],
        )
        sensors.insert_sensor(session, type_name="logger", unique_identifier="s")
    start_us = int((START - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    minutes = np.arange(MINUTES, dtype=np.int64)
    values = 10 + 8 * np.sin(2 * np.pi * minutes / MINUTES) + 3 * np.sin(2 * np.pi * minutes / 1440)
    for at in range(0, MINUTES, 50_000):
        part = slice(at, at + 50_000)
        with Session(database.engine) as session, session.begin():
            readings.insert_sensor_readings(
                session,
                measure_name="t",
                unique_identifier="s",
                readings=values[part].tolist(),
                timestamps=start_us + minutes[part] * MINUTE_US,
            )


def timed(database: TestDatabase, repeat: int, zone: str, source: str | None) -> tuple[float, int]:
    """Median ms of daily means over the year, and the number of buckets."""
    chosen = aggregation.choose_source
    aggregation.choose_source = (lambda *a: source) if source else chosen  # type: ignore[assignment]
    try:
        times = []
        rows: list[Any] = []
        for _ in range(repeat + 1):
            with Session(database.engine) as session:
                started = time.perf_counter()
                rows = aggregation.aggregated_readings(
                    session,
                    measure_name="t",
                    unique_identifier="s",
                    dt_from=START,
                    dt_to=START + timedelta(days=365) - timedelta(microseconds=1),
                    interval="1d",
                    aggregation="mean",
                    timezone=zone,
                )
                times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times[1:]), len(rows)
    finally:
        aggregation.choose_source = chosen  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    database = TestDatabase()
    try:
        command.upgrade(alembic_config(database.url), "heads")
        started = time.perf_counter()
        fill(database)
        print(f"{database.kind}; {MINUTES:,} readings in {time.perf_counter() - started:.1f} s")
        for label, zone, source in (
            ("UTC, daily rollups (chosen)", "UTC", None),
            ("UTC, hourly rollups (before)", "UTC", "hourly"),
            ("UTC, readings", "UTC", "readings"),
            ("Europe/London, hourly rollups (chosen)", "Europe/London", None),
        ):
            ms, buckets = timed(database, args.repeat, zone, source)
            print(f"{label:>40}: {ms:7.1f} ms, {buckets} buckets")
    finally:
        database.close()


if __name__ == "__main__":
    main()
