"""Benchmark: the API's ingest beside PostgreSQL's own COPY, on the same database.

    python benchmarks/ingest.py                      # 100,000 readings, batches of 10,000 and 1,000
    python benchmarks/ingest.py --batch 10000 --concurrency 1 2 4

Starts its own `dtbase-local` on a fresh database (embedded PostgreSQL, or the server that
DT_TEST_DATABASE_URL names). For each batch size and number of clients in flight it times:

- COPY: the same rows (sensor_id, measure_id, timestamp, value), prepared beforehand, copied
  into a table keyed like the readings table, one transaction per batch, over as many
  connections as there are clients: as text (what `psql \\copy` of a CSV does) and in
  PostgreSQL's binary format (no parsing at all: the server's own limit for these rows).
- API: the same rows posted to `insert-sensor-readings` as JSON, one batch per request.

and prints the rates and the API's ratio to each COPY. `--profile` then times the stages of
one request in this process (JSON parsing, validation, the write itself, the reply); what
the end-to-end figure adds to them is HTTP and the host.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtbase_core import instants, pgcopy
from tests.support import ADMIN_PASSWORD, Api, TestDatabase, start_host

START = datetime(2020, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=10)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def series(first: int, count: int) -> tuple[list[float], list[str]]:
    """Readings `first`..`first + count` of a benchmark series, values and ISO timestamps."""
    values = [float(i % 1000) + 0.25 for i in range(first, first + count)]
    stamps = [_iso(START + i * STEP) for i in range(first, first + count)]
    return values, stamps


def timed_parallel(work: Callable[[int], Any], jobs: int, clients: int) -> float:
    """Seconds for `work(0)`..`work(jobs - 1)` over `clients` threads."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(jobs)))
    return time.perf_counter() - started


class Bench:
    def __init__(self, database_url: str, api: Api, readings: int) -> None:
        self.url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.api = api
        self.readings = readings
        self.copy_runs = 0
        self.http = httpx.Client(base_url=api.base, timeout=600, headers=api._headers(None))
        measure = {"name": "value", "units": "unit", "datatype": "float"}
        api.ok("/sensor/insert-sensor-type", {"name": "bench", "measures": [measure]}, 201)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "create table if not exists bench_copy (like sensor_float_reading including all)"
            )

    def new_sensors(self, clients: int) -> list[str]:
        """One fresh sensor per client, so that no run meets another's rows."""
        names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(clients)]
        for name in names:
            self.api.ok(
                "/sensor/insert-sensor", {"type_name": "bench", "unique_identifier": name}, 201
            )
        return names

    def copy_rate(self, batch: int, clients: int, binary: bool) -> float:
        """Readings/s for COPY of prepared rows, one transaction per batch per client."""
        jobs = self.readings // batch
        blocks = []
        # Fresh keys per run and per client, like the API's new sensors; the table keeps
        # every run's rows, as the readings table does.
        self.copy_runs += 1
        for job in range(jobs):
            sensor = self.copy_runs * 100 + job % clients
            values, stamps = series(job * batch, batch)
            if binary:
                us = [instants.micros(datetime.fromisoformat(ts)) for ts in stamps]
                columns = [("int4", sensor), ("int4", 1), ("timestamptz", us), ("float8", values)]
                blocks.append(pgcopy.HEADER + pgcopy.rows(columns, batch) + pgcopy.TRAILER)
                continue
            text = "".join(
                f"{sensor}\t1\t{ts}\t{v!r}\n" for v, ts in zip(values, stamps, strict=True)
            )
            blocks.append(text.encode())
        copy_from = "copy bench_copy (sensor_id, measure_id, timestamp, value) from stdin"
        if binary:
            copy_from += " (format binary)"
        connections = [psycopg.connect(self.url) for _ in range(clients)]

        def copy(job: int) -> None:
            conn = connections[job % clients]
            with conn.cursor() as cur, cur.copy(copy_from) as out:
                out.write(blocks[job])
            conn.commit()

        # Each connection runs its own jobs in order: one thread per connection.
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(
                pool.map(
                    lambda c: [copy(j) for j in range(c, jobs, clients)],
                    range(clients),
                )
            )
        took = time.perf_counter() - started
        for conn in connections:
            conn.close()
        return jobs * batch / took

    def api_rate(self, batch: int, clients: int) -> float:
        jobs = self.readings // batch
        sensors = self.new_sensors(clients)
        bodies = []
        for job in range(jobs):
            values, stamps = series(job * batch, batch)
            body = {
                "measure_name": "value",
                "unique_identifier": sensors[job % clients],
                "readings": values,
                "timestamps": stamps,
            }
            bodies.append(orjson.dumps(body))

        def post(job: int) -> None:
            reply = self.http.post(
                "/sensor/insert-sensor-readings",
                content=bodies[job],
                headers={"content-type": "application/json"},
            )
            if reply.status_code != 201 or reply.json()["inserted"] != batch:
                raise RuntimeError(f"batch {job}: {reply.status_code} {reply.text[:300]}")

        return jobs * batch / timed_parallel(post, jobs, clients)


# The profile's requests, and those left out of its medians: psycopg prepares a statement
# on its fifth run on a connection, and the pool hands out its connections in turn.
PROFILE_RUNS, PROFILE_WARM_UP = 40, 20


def profile(database_url: str, batch: int) -> None:
    """The stages of one insert-sensor-readings request, timed in this process."""
    import os

    os.environ.setdefault("DT_LOCAL_MODE", "1")
    os.environ["DT_DATABASE_URL"] = database_url
    from sqlalchemy.orm import Session

    from dtbase_core import readings, sensors
    from dtbase_core.db import session_scope
    from dtbase_core.schemas.sensors import ReadingsIn
    from function_app.http import json_response

    stages: dict[str, list[float]] = {}
    parts: dict[str, list[float]] = {}  # of the write, timed by wrapping its functions

    def clock(name: str, started: float) -> float:
        now = time.perf_counter()
        stages.setdefault(name, []).append(now - started)
        return now

    def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                parts.setdefault(label, []).append(time.perf_counter() - started)

        return run

    rollup = readings._array_rollup()
    execute = Session.execute
    readings.series_target = timed("sensor lookup", readings.series_target)
    readings.lock_series = timed("series lock", readings.lock_series)
    readings._copyable = timed("span check", readings._copyable)
    readings._copy_series = timed("COPY and rollups", readings._copy_series)
    readings._array_partials = timed("  rollup partials (numpy)", readings._array_partials)
    rollup_statement = timed("  rollup statement", execute)
    Session.execute = lambda self, statement, *args, **kwargs: (  # type: ignore[method-assign]
        rollup_statement if statement is rollup else execute
    )(self, statement, *args, **kwargs)

    for run in range(PROFILE_RUNS):
        sensor = f"profile-{uuid.uuid4().hex[:8]}"
        values, stamps = series(run * batch, batch)
        raw = orjson.dumps(
            {
                "measure_name": "value",
                "unique_identifier": sensor,
                "readings": values,
                "timestamps": stamps,
            }
        )
        with session_scope() as session:
            sensors.insert_sensor(session, type_name="bench", unique_identifier=sensor)
        t = time.perf_counter()
        parsed = orjson.loads(raw)
        t = clock("JSON parsing", t)
        body = ReadingsIn.model_validate(parsed)
        t = clock("validation", t)
        with session_scope() as session:
            counts = readings.insert_sensor_readings(session, **body.model_dump())
            t = clock("write (statement and rollups)", t)
        t = clock("commit", t)
        json_response({"detail": "Sensor readings inserted", **counts}, 201)
        clock("reply", t)

    def median(values: list[float]) -> float:
        return statistics.median(values[PROFILE_WARM_UP:])

    total = sum(median(v) for v in stages.values())
    warm = PROFILE_RUNS - PROFILE_WARM_UP
    print(f"\nstages of one request of {batch:,} readings (median of {warm}, in process):")
    for name, values in stages.items():
        took = median(values)
        print(f"  {name:32} {took * 1000:8.2f} ms  {took / total:6.1%}")
    print(f"  {'total':32} {total * 1000:8.2f} ms  ({batch / total:,.0f} readings/s)")
    print("within the write:")
    for name, values in parts.items():
        print(f"  {name:32} {median(values) * 1000:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[10_000, 1_000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is shown")
    parser.add_argument("--profile", action="store_true", help="time one request's stages")
    args = parser.parse_args()
    database = TestDatabase()
    with tempfile.TemporaryDirectory(prefix="dtbase-ingest-") as tmp:
        Path(tmp).chmod(0o755)
        host = start_host(database.url, Path(tmp) / "host")
        try:
            api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
            bench = Bench(database.url, api, args.readings)
            print(
                f"{database.kind}; {args.readings:,} float readings per run, best of {args.repeat}"
            )
            print(
                f"{'batch':>7} {'clients':>7} {'COPY text/s':>12} {'binary/s':>10} {'API/s':>10}"
                f" {'API/text':>9} {'API/binary':>10}"
            )
            for batch in args.batch:
                for clients in args.concurrency:
                    runs = range(args.repeat)
                    text = max(bench.copy_rate(batch, clients, binary=False) for _ in runs)
                    binary = max(bench.copy_rate(batch, clients, binary=True) for _ in runs)
                    api_rate = max(bench.api_rate(batch, clients) for _ in runs)
                    print(
                        f"{batch:>7,} {clients:>7} {text:>12,.0f} {binary:>10,.0f}"
                        f" {api_rate:>10,.0f} {api_rate / text:>9.2f} {api_rate / binary:>10.2f}"
                    )
            if args.profile:
                profile(database.url, args.batch[0])
        finally:
            host.stop()
            database.close()


if __name__ == "__main__":
    main()
