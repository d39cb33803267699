"""Benchmark: the retention timer's removal of expired raw readings.

    python benchmarks/retention.py                    # 2,000,000 readings, batches of 50,000
    python benchmarks/retention.py --readings 500000 --batch 10000

On a fresh database (embedded PostgreSQL, or the server DT_TEST_DATABASE_URL names): one
sensor of a type keeping 30 days, with float readings evenly over 60 days, the older half of
them expired, generated in the database. Times `remove_expired_readings` and its longest batch
(the longest transaction, and so the longest a write to that series waits), and checks
that exactly the expired half went.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtbase_core import retention, sensors
from dtbase_core.migrations import upgrade
from dtbase_core.orm import Datatype
from tests.support import TestDatabase

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=retention.DEFAULT_BATCH_ROWS)
    args = parser.parse_args()
    db = TestDatabase()
    try:
        upgrade(db.url)
        factory = sessionmaker(db.engine)
        with factory() as session, session.begin():
            measure = {"name": "temperature", "units": "degC", "datatype": Datatype.FLOAT}
            sensors.insert_sensor_type(
                session, name="t", description=None, measures=[measure], retention_days=30
            )
            sensors.insert_sensor(session, type_name="t", unique_identifier="s")
            # Readings evenly over the 60 days before NOW: the older half has expired.
            step = 60 * 86400 / args.readings
            session.execute(
                sa.text(
                    "insert into sensor_float_reading (sensor_id, measure_id, timestamp, value) "
                    "select s.id, m.id, :start + make_interval(secs => g * :step), g "
                    "from sensor s, sensor_measure m, generate_series(0, :n - 1) g"
                ),
                {"start": NOW - timedelta(days=60), "step": step, "n": args.readings},
            )
        with db.engine.connect() as conn:
            expired = conn.scalar(
                sa.text("select count(*) from sensor_float_reading where timestamp < :cut"),
                {"cut": NOW - timedelta(days=30)},
            )
        batches: list[float] = []

        @contextmanager
        def timed() -> Iterator[Session]:
            began = time.perf_counter()
            with factory() as session, session.begin():
                yield session
            batches.append(time.perf_counter() - began)

        began = time.perf_counter()
        removed = retention.remove_expired_readings(timed, now=NOW, batch_rows=args.batch)
        elapsed = time.perf_counter() - began
        assert removed == {"t": expired}, (removed, expired)
        print(
            f"{args.readings:,} readings, {expired:,} expired, batches of {args.batch:,} "
            f"({db.kind}): "
            f"{elapsed:.2f} s, {expired / elapsed:,.0f} rows/s; "
            f"{len(batches) - 1} batches, the longest {max(batches[1:]) * 1000:.0f} ms"
        )
    finally:
        db.close()


if __name__ == "__main__":
    main()
