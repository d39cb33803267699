"""Benchmark: SensorThings Observations of one Datastream in a one-week window.

    python benchmarks/sensorthings.py                 # 10 sensors x a year of one-minute readings
    python benchmarks/sensorthings.py --sensors 2 --days 30

Runs the core in this process on a fresh database (embedded PostgreSQL, or the server that
DT_TEST_DATABASE_URL names): fills the float readings table with SQL, then answers
`Datastreams('<mid sensor>-1')/Observations` with a one-week `$filter` on phenomenonTime,
`$orderby=phenomenonTime` and `$top=1000` a few times, printing the statements each answer
ran, its time, and PostgreSQL's plan of the observations query (EXPLAIN ANALYZE).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtbase_core.migrations import upgrade
from dtbase_core.sta import query
from tests.support import TestDatabase

BASE = "http://localhost/api/sta/v1.1/"
WEEK = "phenomenonTime ge 2024-06-01T00:00:00Z and phenomenonTime lt 2024-06-08T00:00:00Z"


def fill(db: TestDatabase, sensors: int, days: int) -> int:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into sensor_measure (name, units, datatype) values ('t', 'degC', 'float');"
                "insert into sensor_type (name) values ('station');"
                "insert into sensor_type_measure_relation (type_id, measure_id) values (1, 1)"
            )
        )
        conn.execute(
            sa.text(
                "insert into sensor (type_id, unique_identifier) "
                "select 1, 's' || n from generate_series(1, :n) n"
            ),
            {"n": sensors},
        )
        conn.execute(
            sa.text(
                "insert into sensor_float_reading select s, 1, ts, random() "
                "from generate_series(1, :n) s, generate_series('2024-01-01'::timestamptz, "
                "'2024-01-01'::timestamptz + make_interval(days => :days) - interval '1 minute', "
                "'1 minute') ts"
            ),
            {"n": sensors, "days": days},
        )
        conn.execute(sa.text("analyze"))
        return int(conn.execute(sa.text("select count(*) from sensor_float_reading")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=10)
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    db = TestDatabase()
    try:
        upgrade(db.url)
        total = fill(db, args.sensors, args.days)
        print(f"{total:,} readings of {args.sensors} sensors")
        statements: list[tuple[str, Any]] = []

        def record(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
            statements.append((statement, params))

        sa.event.listen(db.engine, "before_cursor_execute", record)
        path = f"Datastreams('{max(1, args.sensors // 2)}-1')/Observations"
        params = {"$filter": WEEK, "$orderby": "phenomenonTime asc", "$top": "1000"}
        times = []
        with Session(db.engine) as session:
            for _ in range(args.repeat):
                statements.clear()
                start = time.perf_counter()
                reply = query.read(session, path, params, BASE, BASE + path)
                times.append((time.perf_counter() - start) * 1000)
            observed = [s for s in statements if "sensor_float_reading" in s[0]]
            print(
                f"{len(reply['value'])} observations a page, {len(observed)} query of the "
                f"readings among {len(statements)} statements (with the Datastream's own and "
                f"savepoints); median {statistics.median(times):.1f} ms per answer, in Python"
            )
            cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("explain (analyze, buffers) " + observed[-1][0], observed[-1][1])
            for (line,) in cursor.fetchall():
                print(line)
    finally:
        db.close()


if __name__ == "__main__":
    main()
