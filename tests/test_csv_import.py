"""CSV import over HTTP: a text/csv body with query parameters, the JSON form, dry-run
reports, all or nothing, duplicates, files staged in parts, and the memory an import of a
staged file takes (docs/api.md, CSV import)."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import csv_import
from dtbase_core.orm import CsvUploadPart, reading_tables
from dtbase_core.orm.base import Datatype
from dtbase_core.schemas.csv_import import CsvMapping
from tests.support import Api, TestDatabase

T0 = datetime(2024, 3, 1, tzinfo=UTC)
STATION = {
    "name": "station",
    "measures": [
        {"name": "temperature", "units": "degC", "datatype": "float"},
        {"name": "count", "units": None, "datatype": "integer"},
        {"name": "raining", "units": None, "datatype": "boolean"},
    ],
}
CSV_HEADERS = {"Content-Type": "text/csv"}


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def station(admin: Api) -> Api:
    admin.ok("/sensor/insert-sensor-type", STATION, 201)
    for uid in ("st-1", "st-2"):
        admin.ok("/sensor/insert-sensor", {"type_name": "station", "unique_identifier": uid}, 201)
    return admin


def minute_csv(rows: int, start: datetime = T0) -> str:
    lines = ["time,temp_c,n"]
    lines += [f"{iso(start + timedelta(minutes=i))},{i / 10},{i}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def read(api: Api, measure: str, uid: str = "st-1", days: int = 400) -> list[dict]:
    return api.ok(
        "/sensor/sensor-readings",
        {
            "measure_name": measure,
            "unique_identifier": uid,
            "dt_from": iso(T0 - timedelta(days=1)),
            "dt_to": iso(T0 + timedelta(days=days)),
        },
    )


def import_text(api: Api, text: str, **params: str):
    return api.post(
        "/sensor/import-readings-csv", content=text.encode(), headers=CSV_HEADERS, params=params
    )


FIXED = {
    "timestamp_column": "time",
    "unique_identifier": "st-1",
    "columns": "temp_c:temperature,n:count",
}


def test_a_text_csv_body_with_query_parameters(station: Api) -> None:
    reply = import_text(station, minute_csv(100), **FIXED)
    assert reply.status_code == 201, reply.text
    report = reply.json()
    assert report["rows"] == report["rows_accepted"] == 100
    assert (report["inserted"], report["duplicates"], report["error_count"]) == (200, 0, 0)
    temps = read(station, "temperature")
    assert len(temps) == 100
    assert temps[5] == {"value": 0.5, "timestamp": iso(T0 + timedelta(minutes=5))}
    assert [r["value"] for r in read(station, "count")][:3] == [0, 1, 2]


def test_the_json_form_with_a_sensor_column_a_format_and_a_zone(station: Api) -> None:
    text = (
        "when;sensor;wet;ignored\n"
        "01/07/2024 12:00;st-1;yes;x\n"
        "01/07/2024 12:00;st-2;0;y\n"
        "\n"  # a blank line is skipped
        "01/07/2024 13:30;st-2;TRUE;z\n"
    )
    body = {
        "csv": text,
        "mapping": {
            "timestamp_column": "when",
            "timestamp_format": "%d/%m/%Y %H:%M",
            "timezone": "Europe/London",  # British Summer Time: UTC+1
            "sensor_column": "sensor",
            "columns": {"wet": "raining"},
            "delimiter": ";",
        },
    }
    report = station.ok("/sensor/import-readings-csv", body, 201)
    assert (report["rows"], report["inserted"]) == (3, 3)
    assert read(station, "raining", "st-1") == [
        {"value": True, "timestamp": "2024-07-01T11:00:00Z"}
    ]
    assert read(station, "raining", "st-2") == [
        {"value": False, "timestamp": "2024-07-01T11:00:00Z"},
        {"value": True, "timestamp": "2024-07-01T12:30:00Z"},
    ]
    # Epoch seconds and milliseconds.
    for fmt, scale in (("epoch_s", 1), ("epoch_ms", 1000)):
        start = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * scale
        text = "t,c\n" + "".join(f"{start + i * 60 * scale},{i}\n" for i in range(3))
        body = {
            "csv": text,
            "mapping": {
                "timestamp_column": "t",
                "timestamp_format": fmt,
                "unique_identifier": "st-2",
                "columns": {"c": "count"},
            },
        }
        report = station.ok("/sensor/import-readings-csv", body, 201)
        assert report["inserted"] == (3 if fmt == "epoch_s" else 0)
        assert report["duplicates"] == (0 if fmt == "epoch_s" else 3)
    assert [r["timestamp"] for r in read(station, "count", "st-2")] == [
        iso(T0 + timedelta(minutes=i)) for i in range(3)
    ]


def test_a_dry_run_reports_every_bad_line_and_column_and_writes_nothing(station: Api) -> None:
    text = (
        "time,sensor,temp_c,n\n"
        f"{iso(T0)},st-1,1.5,3\n"  # line 2: good
        f"not-a-time,st-1,1.5,3\n"  # line 3
        f"{iso(T0)},st-1,warm,3.5\n"  # line 4: two bad cells
        f"{iso(T0)},nobody,1,1\n"  # line 5: unknown sensor
        f"{iso(T0)},st-1,1\n"  # line 6: a field short
        f"{iso(T0)},st-2,,\n"  # line 7: empty cells are no readings
    )
    body = {
        "csv": text,
        "dry_run": True,
        "mapping": {
            "timestamp_column": "time",
            "sensor_column": "sensor",
            "columns": {"temp_c": "temperature", "n": "count"},
        },
    }
    report = station.ok("/sensor/import-readings-csv", body, 200)
    assert report["dry_run"] is True
    assert (report["rows"], report["rows_accepted"], report["readings"]) == (6, 2, 2)
    assert report["inserted"] == 0
    where = [(e["line"], e["column"]) for e in report["errors"]]
    assert where == [
        (3, "time"),
        (4, "temp_c"),
        (4, "n"),
        (5, "sensor"),
        (5, "sensor"),
        (6, None),
    ]
    assert report["error_count"] == 6
    assert "'warm' is not a valid float value" in report["errors"][1]["message"]
    assert "Sensor 'nobody' does not exist" in report["errors"][3]["message"]
    assert read(station, "temperature") == []

    # The same mapping in the query: a thousand errors listed, all of them counted.
    bad = "time,temp_c\n" + "".join(f"{iso(T0)},x{i}\n" for i in range(1500))
    reply = import_text(
        station,
        bad,
        timestamp_column="time",
        unique_identifier="st-1",
        columns="temp_c:temperature",
        dry_run="true",
    )
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["error_count"] == 1500 and len(report["errors"]) == 1000
    assert report["errors"][-1] == {
        "line": 1001,
        "column": "temp_c",
        "message": "'x999' is not a valid float value",
    }


def test_a_mapping_that_does_not_fit_the_file_is_a_4xx(station: Api) -> None:
    reply = import_text(station, minute_csv(2), **{**FIXED, "timestamp_column": "ts"})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "mapping", "timestamp_column"]
    reply = import_text(station, minute_csv(2), **{**FIXED, "unique_identifier": "nobody"})
    assert (reply.status_code, reply.json()["detail"]) == (400, "Sensor 'nobody' does not exist")
    for zone in ("Mars/Olympus", "America"):
        reply = import_text(station, minute_csv(2), **{**FIXED, "timezone": zone})
        assert reply.status_code == 422, reply.text
        assert reply.json()["detail"][0]["loc"] == ["body", "mapping", "timezone"]
    reply = station.post(
        "/sensor/import-readings-csv",
        content=b"time,temp_c\n\xff\n",
        headers=CSV_HEADERS,
        params=FIXED,
    )
    assert reply.status_code == 422 and "not UTF-8" in reply.text
    no_sensor = {"csv": "a\n", "mapping": {"timestamp_column": "a", "columns": {"a": "count"}}}
    assert station.post("/sensor/import-readings-csv", no_sensor).status_code == 422


def test_one_bad_row_after_many_imports_nothing(station: Api) -> None:
    rows = csv_import.BATCH_ROWS + 10_000  # past the first batch's write
    text = minute_csv(rows) + f"{iso(T0 + timedelta(minutes=rows))},1.0,NaN\n"
    reply = import_text(station, text, **FIXED)
    assert reply.status_code == 422, reply.text
    (item,) = reply.json()["detail"]
    assert item["loc"] == ["body", "csv", rows + 2, "n"]
    assert item["msg"] == f"line {rows + 2}, column 'n': 'NaN' is not a valid integer value"
    assert read(station, "temperature") == [] and read(station, "count") == []
    hourly = station.ok(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "temperature",
            "unique_identifier": "st-1",
            "dt_from": iso(T0),
            "dt_to": iso(T0 + timedelta(days=60)),
            "interval": "1h",
            "aggregation": "count",
        },
    )
    assert hourly == []


def test_duplicates_are_counted_and_ignored_and_rollups_stay_exact(station: Api) -> None:
    first = import_text(station, minute_csv(120), **FIXED).json()
    assert (first["inserted"], first["duplicates"]) == (240, 0)
    # Overlapping the first hour's second half, with one timestamp twice in the file.
    start = T0 + timedelta(minutes=90)
    text = minute_csv(60, start) + f"{iso(start)},99.0,99\n"
    second = import_text(station, text, **FIXED)
    assert second.status_code == 201, second.text
    assert (second.json()["inserted"], second.json()["duplicates"]) == (2 * 30, 2 * 31)
    temps = read(station, "temperature")
    assert len(temps) == 150
    assert temps[90]["value"] == 9.0  # the stored value was kept
    sums = station.ok(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "count",
            "unique_identifier": "st-1",
            "dt_from": iso(T0),
            "dt_to": iso(T0 + timedelta(hours=3)),
            "interval": "1h",
            "aggregation": "sum",
        },
    )
    assert [b["value"] for b in sums] == [sum(range(60)), sum(range(60, 120)), sum(range(30, 60))]


def stage(api: Api, upload_id: str, number: int, text: str):
    return api.post(
        "/sensor/upload-csv-part",
        content=text.encode(),
        headers=CSV_HEADERS,
        params={"upload_id": upload_id, "part_number": str(number)},
    )


def test_a_file_staged_in_parts(station: Api) -> None:
    text = minute_csv(3000)
    cut1 = text.index("\n", 20_000) + 1  # at a line end
    cut2 = 50_000  # mid-line: the import joins the line up
    parts = [text[:cut1], text[cut1:cut2], text[cut2:]]
    upload_id = str(uuid.uuid4())
    for number, part in reversed(list(enumerate(parts, 1))):  # in any order
        reply = stage(station, upload_id, number, part)
        assert reply.status_code == 201, reply.text
        assert reply.json()["characters"] == len(part)
    body = {"upload_id": upload_id, "parts": 3, "mapping": {**FIXED, "columns": {"n": "count"}}}
    dry = station.ok("/sensor/import-readings-csv", {**body, "dry_run": True}, 200)
    assert (dry["rows_accepted"], dry["readings"], dry["error_count"]) == (3000, 3000, 0)
    assert station.ok("/sensor/import-readings-csv", {**body, "parts": 4}, 422)
    report = station.ok("/sensor/import-readings-csv", body, 201)
    assert report["inserted"] == 3000
    assert [r["value"] for r in read(station, "count")] == list(range(3000))
    # Imported parts are deleted.
    again = station.post("/sensor/import-readings-csv", body)
    assert again.status_code == 400 and "has no parts" in again.json()["detail"]

    # A missing part is named; a part over 8 MB is refused.
    other = str(uuid.uuid4())
    stage(station, other, 1, parts[0])
    stage(station, other, 3, parts[2])
    reply = station.post("/sensor/import-readings-csv", {**body, "upload_id": other, "parts": None})
    assert reply.status_code == 422 and "part 2 of upload" in reply.text
    reply = stage(station, other, 2, "x" * (8 * 1024 * 1024 + 1))
    assert reply.status_code == 422


def test_only_the_user_who_started_an_upload_may_add_to_it_or_import_it(
    station: Api, live_host
) -> None:
    station.ok("/user/create-user", {"email": "ed@example.com", "password": "pw-editor-1"}, 201)
    other = Api(live_host.api, "ed@example.com", "pw-editor-1")
    upload_id = str(uuid.uuid4())
    text = minute_csv(10)
    assert stage(station, upload_id, 1, text).status_code == 201
    body = {"upload_id": upload_id, "mapping": {**FIXED, "columns": {"n": "count"}}}
    for reply in (
        stage(other, upload_id, 1, "time,n\n2020-01-01T00:00:00Z,666\n"),
        stage(other, upload_id, 2, "2020-01-01T00:00:00Z,666\n"),
        other.post("/sensor/import-readings-csv", body),
    ):
        assert reply.status_code == 403, reply.text
        assert reply.json()["detail"] == f"Upload '{upload_id}' was started by another user"
    other.close()
    # The owner's file is untouched and imports.
    assert station.ok("/sensor/import-readings-csv", body, 201)["inserted"] == 10
    assert [r["value"] for r in read(station, "count")] == list(range(10))
    # The audit log names the upload and the sensor, and the refused attempts.
    events = station.ok("/audit/list-events", {"action": "sensor/import-readings-csv"})
    assert [(e["status"], e["actor"], e["target"]) for e in events] == [
        (201, live_host.admin_email, f"unique_identifier=st-1, upload_id={upload_id}"),
        (403, "ed@example.com", f"unique_identifier=st-1, upload_id={upload_id}"),
    ]
    parts = station.ok("/audit/list-events", {"action": "sensor/upload-csv-part"})
    assert [e["target"] for e in parts][-1] == f"upload_id={upload_id}, part 1"


def test_staged_parts_expire_after_a_day(station: Api, clean_db: TestDatabase) -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    with Session(clean_db.engine) as session, session.begin():
        now = datetime.now(UTC)
        csv_import.stage_part(
            session,
            owner="me",
            upload_id=old,
            part_number=1,
            csv="a\n",
            now=now - timedelta(hours=25),
        )
        csv_import.stage_part(session, owner="me", upload_id=new, part_number=1, csv="a\n", now=now)
    with Session(clean_db.engine) as session:
        assert set(session.scalars(sa.select(CsvUploadPart.upload_id))) == {new}


def test_importing_a_staged_file_holds_far_less_than_the_file(
    station: Api, clean_db: TestDatabase
) -> None:
    """An import reads one part and one batch at a time: its peak Python allocation stays
    a fraction of the file, however large the file."""
    upload_id = uuid.uuid4()
    rows, part_rows = 500_000, 10_000
    size = 0
    with Session(clean_db.engine) as session, session.begin():
        for number, at in enumerate(range(0, rows, part_rows), 1):
            part = minute_csv(part_rows, T0 + timedelta(minutes=at))
            if number > 1:
                part = part.split("\n", 1)[1]  # the header once
            size += len(part)
            csv_import.stage_part(
                session,
                owner="me",
                upload_id=upload_id,
                part_number=number,
                csv=part,
                now=datetime.now(UTC),
            )
    assert size > 15_000_000
    mapping = CsvMapping.model_validate({**FIXED, "columns": {"temp_c": "temperature"}})
    # A small import first, as a running host has done: the modules it imports and the
    # statements it compiles once are no part of what a file costs.
    with Session(clean_db.engine) as session, session.begin():
        warm_up = csv_import.import_csv(
            session, owner="me", mapping=mapping, csv_text=minute_csv(10, T0 - timedelta(days=1))
        )
        assert warm_up["inserted"] == 10
    tracemalloc.start()
    try:
        with Session(clean_db.engine) as session, session.begin():
            report = csv_import.import_csv(
                session, owner="me", mapping=mapping, upload_id=upload_id
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"file {size / 1e6:.1f} MB, peak Python allocation {peak / 1e6:.1f} MB")
    assert report["inserted"] == rows
    assert peak < size / 3
    with Session(clean_db.engine) as session:
        table = reading_tables[Datatype.FLOAT]
        assert session.scalar(sa.select(sa.func.count()).select_from(table)) == rows + 10
