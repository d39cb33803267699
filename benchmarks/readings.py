"""Benchmark: ingest and query readings through a running local host (or any deployment).

    dtbase-local &                      # or: make run
    python benchmarks/readings.py       # 1,000,000 float readings in batches of 10,000

Prints readings/s for the ingest through `insert-sensor-readings`, then ms per query for
`sensor-readings` over 1 day, 1 week and the whole range, and for hourly means over the
whole range with `sensor-readings-aggregated` (median of several runs each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from tqdm import tqdm

START = datetime(2020, 1, 1, tzinfo=UTC)


def _password(data_dir: Path) -> str:
    if os.environ.get("DT_DEFAULT_USER_PASS"):
        return os.environ["DT_DEFAULT_USER_PASS"]
    secrets = data_dir / "local-secrets.json"
    if secrets.exists():
        return str(json.loads(secrets.read_text())["DT_DEFAULT_USER_PASS"])
    sys.exit("benchmark: set DT_DEFAULT_USER_PASS or point --data-dir at the host's data dir")


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def ingest(client: httpx.Client, sensor: str, args: argparse.Namespace) -> None:
    """Create the sensor and insert its readings, reporting readings/s."""
    client.post(
        "/sensor/insert-sensor-type",
        json={
            "name": "benchmark",
            "measures": [{"name": "value", "units": "unit", "datatype": "float"}],
        },
    )  # 409 on a second run: fine
    client.post(
        "/sensor/insert-sensor", json={"type_name": "benchmark", "unique_identifier": sensor}
    ).raise_for_status()

    def batch_body(first: int) -> bytes:
        count = min(args.batch, args.readings - first)
        return orjson.dumps(
            {
                "measure_name": "value",
                "unique_identifier": sensor,
                "readings": [float(i % 1000) + 0.5 for i in range(first, first + count)],
                "timestamps": [
                    _iso(START + timedelta(minutes=i)) for i in range(first, first + count)
                ],
            }
        )

    def send(first: int) -> int:
        body = batch_body(first)
        response = client.post(
            "/sensor/insert-sensor-readings",
            content=body,
            headers={"content-type": "application/json"},
        )
        if response.status_code != 201:
            raise RuntimeError(f"batch at {first}: {response.status_code} {response.text[:200]}")
        return min(args.batch, args.readings - first)

    print(
        f"ingesting {args.readings:,} float readings in batches of {args.batch:,} "
        f"({args.concurrency} in flight) into sensor {sensor}"
    )
    started = time.perf_counter()
    with (
        ThreadPoolExecutor(args.concurrency) as pool,
        tqdm(total=args.readings, unit="rd", unit_scale=True) as bar,
    ):
        for done in pool.map(send, range(0, args.readings, args.batch)):
            bar.update(done)
    elapsed = time.perf_counter() - started
    print(f"ingest: {args.readings / elapsed:,.0f} readings/s ({elapsed:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:7071/api")
    parser.add_argument("--data-dir", type=Path, default=Path(".dtbase-local"))
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight at once")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query; the median is shown")
    parser.add_argument("--sensor", help="time the queries only, on this benchmark sensor's data")
    args = parser.parse_args()

    client = httpx.Client(base_url=args.api, timeout=600)
    reply = client.post(
        "/auth/login",
        json={"email": "default_user@localhost", "password": _password(args.data_dir)},
    )
    reply.raise_for_status()
    client.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"

    if args.sensor:
        sensor = args.sensor
    else:
        sensor = f"bench-{uuid.uuid4().hex[:8]}"
        ingest(client, sensor, args)

    end = START + timedelta(minutes=args.readings - 1)
    queries = [
        ("sensor-readings, 1 day", "/sensor/sensor-readings", START, START + timedelta(days=1), {}),
        (
            "sensor-readings, 1 week",
            "/sensor/sensor-readings",
            START,
            START + timedelta(weeks=1),
            {},
        ),
        ("sensor-readings, whole range", "/sensor/sensor-readings", START, end, {}),
        (
            "hourly mean, whole range",
            "/sensor/sensor-readings-aggregated",
            START,
            end,
            {"interval": "1h", "aggregation": "mean"},
        ),
    ]
    for label, path, dt_from, dt_to, extra in queries:
        body = {
            "measure_name": "value",
            "unique_identifier": sensor,
            "dt_from": _iso(dt_from),
            "dt_to": _iso(dt_to),
            **extra,
        }
        times, rows = [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            response = client.post(path, json=body)
            response.raise_for_status()
            rows = len(orjson.loads(response.content))  # the client's decode is timed too
            times.append((time.perf_counter() - t) * 1000)
        print(
            f"{label:32s} {rows:>9,} rows  median {statistics.median(times):8.1f} ms  "
            f"(min {min(times):.1f}, max {max(times):.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
