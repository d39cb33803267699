"""Benchmark: a large CSV file imported through the API, staged in parts as the import page
sends it.

    python benchmarks/csv_import.py              # a 200 MB file
    python benchmarks/csv_import.py --mb 20      # a smaller one
    python benchmarks/csv_import.py --mb 20 --profile   # where an import's time goes

Starts its own `dtbase-local` on a fresh database (embedded PostgreSQL, or the server that
DT_TEST_DATABASE_URL names), writes a file of one-minute readings of one sensor (ISO
timestamps, two float columns) to a temporary directory, uploads it to
`/sensor/upload-csv-part` in parts of at most 8 MB cut at line ends, then times a dry run
and the import of `/sensor/import-readings-csv`. Prints rows/s and the host's peak resident
memory (VmHWM) before and after. `--profile` instead imports the file in this process
under cProfile (the file staged directly) and prints the top of the profile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ADMIN_PASSWORD, Api, TestDatabase, start_host

START = datetime(2000, 1, 1, tzinfo=UTC)
PART_BYTES = 8 * 1024 * 1024
HEADER = "time,temperature,humidity\n"


def write_file(path: Path, megabytes: float) -> int:
    """One-minute rows until the file holds `megabytes`; returns the number of rows."""
    rows = 0
    minute = START
    with path.open("w") as out:
        out.write(HEADER)
        while out.tell() < megabytes * 1e6:
            lines = []
            for _ in range(10_000):
                stamp = minute.strftime("%Y-%m-%dT%H:%M:%SZ")
                lines.append(f"{stamp},{(rows % 400) / 10 - 5:.2f},{rows % 1000 / 10:.1f}\n")
                minute += timedelta(minutes=1)
                rows += 1
            out.write("".join(lines))
    return rows


def parts(path: Path) -> Iterator[str]:
    """The file's parts: at most PART_BYTES each, cut after a newline."""
    with path.open("rb") as source:
        carry = b""
        while chunk := source.read(PART_BYTES - len(carry)):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            yield data[:cut].decode()
            carry = data[cut:]
        if carry:
            yield carry.decode()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


MAPPING = {
    "timestamp_column": "time",
    "unique_identifier": "bench-1",
    "columns": {"temperature": "temperature", "humidity": "humidity"},
}


def set_up(api: Api) -> None:
    measures = [
        {"name": "temperature", "units": "degC", "datatype": "float"},
        {"name": "humidity", "units": "%", "datatype": "float"},
    ]
    api.ok("/sensor/insert-sensor-type", {"name": "bench", "measures": measures}, 201)
    api.ok("/sensor/insert-sensor", {"type_name": "bench", "unique_identifier": "bench-1"}, 201)


def over_http(path: Path, rows: int, size: int, tmp: Path) -> None:
    database = TestDatabase()
    host = start_host(database.url, tmp / "host")
    try:
        api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
        set_up(api)
        http = httpx.Client(base_url=host.api, timeout=1200, headers=api._headers(None))
        before = peak_rss_mb(host.process.pid)
        upload_id = str(uuid.uuid4())
        started = time.perf_counter()
        count = 0
        for count, text in enumerate(parts(path), 1):
            reply = http.post(
                "/sensor/upload-csv-part",
                content=text.encode(),
                headers={"Content-Type": "text/csv"},
                params={"upload_id": upload_id, "part_number": count},
            )
            assert reply.status_code == 201, reply.text
        uploaded = time.perf_counter() - started
        print(f"uploaded {count} parts in {uploaded:.1f} s ({size / 1e6 / uploaded:.0f} MB/s)")
        for dry_run in (True, False):
            body = {"upload_id": upload_id, "mapping": MAPPING, "dry_run": dry_run}
            started = time.perf_counter()
            reply = http.post("/sensor/import-readings-csv", json=body)
            elapsed = time.perf_counter() - started
            assert reply.status_code == (200 if dry_run else 201), reply.text
            report = reply.json()
            assert report["rows_accepted"] == rows, report
            what = "dry run" if dry_run else "import "
            print(
                f"{what}: {rows:,} rows ({report['readings']:,} readings) in {elapsed:.1f} s, "
                f"{rows / elapsed:,.0f} rows/s"
            )
        print(
            f"host peak RSS: {before:.0f} MB before the upload, "
            f"{peak_rss_mb(host.process.pid):.0f} MB after the import"
        )
        api.close()
    finally:
        host.stop()
        database.close()


def profiled(path: Path, rows: int, tmp: Path) -> None:
    from sqlalchemy.orm import Session

    from dtbase_core import csv_import
    from dtbase_core.schemas.csv_import import CsvMapping

    database = TestDatabase()
    host = start_host(database.url, tmp / "host")  # migrates the database
    try:
        api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
        set_up(api)
        upload_id = uuid.uuid4()
        with Session(database.engine) as session, session.begin():
            for number, text in enumerate(parts(path), 1):
                now = datetime.now(UTC)
                csv_import.stage_part(
                    session, owner="me", upload_id=upload_id, part_number=number, csv=text, now=now
                )
        mapping = CsvMapping.model_validate(MAPPING)
        profile = cProfile.Profile()
        started = time.perf_counter()
        with Session(database.engine) as session, session.begin():
            profile.enable()
            csv_import.import_csv(session, owner="me", mapping=mapping, upload_id=upload_id)
            profile.disable()
        elapsed = time.perf_counter() - started
        print(f"{rows:,} rows in {elapsed:.1f} s in process, {rows / elapsed:,.0f} rows/s")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    finally:
        host.stop()
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="the file's size in MB")
    parser.add_argument("--profile", action="store_true", help="profile an import in process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dtbase-csv-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "readings.csv"
        rows = write_file(path, args.mb)
        size = path.stat().st_size
        print(f"file: {size / 1e6:.0f} MB, {rows:,} rows of one-minute readings")
        if args.profile:
            profiled(path, rows, tmp)
        else:
            over_http(path, rows, size, tmp)


if __name__ == "__main__":
    main()
