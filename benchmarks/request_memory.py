"""Benchmark: the local host's peak memory for one request at the readings limit.

    python benchmarks/request_memory.py      # 500,000 readings in one insert-sensor-readings

Starts its own `dtbase-local` (with its own embedded PostgreSQL in a temporary directory),
then prints the host process's peak resident memory (VmHWM) after start-up and after the
request, and the request's time. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ADMIN_PASSWORD, Api, start_host

START = datetime(2020, 1, 1, tzinfo=UTC)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dtbase-memory-") as tmp:
        Path(tmp).chmod(0o755)
        host = start_host(None, Path(tmp) / "host")
        try:
            api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
            measure = {"name": "v", "units": None, "datatype": "float"}
            api.ok("/sensor/insert-sensor-type", {"name": "b", "measures": [measure]}, 201)
            api.ok("/sensor/insert-sensor", {"type_name": "b", "unique_identifier": "b-1"}, 201)
            body = orjson.dumps(
                {
                    "measure_name": "v",
                    "unique_identifier": "b-1",
                    "readings": [i * 0.5 for i in range(args.readings)],
                    "timestamps": [
                        (START + timedelta(seconds=i)).isoformat() for i in range(args.readings)
                    ],
                }
            )
            before = peak_rss_mb(host.process.pid)
            started = time.monotonic()
            reply = api.post(
                "/sensor/insert-sensor-readings",
                content=body,
                headers={"content-type": "application/json"},
            )
            took = time.monotonic() - started
            assert reply.status_code == 201, reply.text
            after = peak_rss_mb(host.process.pid)
            print(
                f"{args.readings} readings, {len(body) / 1e6:.1f} MB of JSON: host peak RSS "
                f"{before:.0f} MB after start-up, {after:.0f} MB after the request "
                f"(+{after - before:.0f} MB); {took:.1f} s"
            )
        finally:
            host.stop()


if __name__ == "__main__":
    main()
