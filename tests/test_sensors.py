"""/sensor over HTTP: DTBase's contract with this project's fixes, and the extensions
(docs/api.md)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import Api

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WEATHER = {
    "name": "weather",
    "description": "weather station",
    "measures": [
        {"name": "temperature", "units": "degC", "datatype": "float"},
        {"name": "count", "units": None, "datatype": "integer"},
        {"name": "raining", "units": None, "datatype": "boolean"},
        {"name": "icon", "units": "", "datatype": "string"},
    ],
}


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def station(admin: Api) -> Api:
    admin.ok("/sensor/insert-sensor-type", WEATHER, 201)
    admin.ok(
        "/sensor/insert-sensor",
        {"type_name": "weather", "unique_identifier": "ws-1", "name": "Station 1", "notes": "roof"},
        201,
    )
    return admin


def post_readings(api: Api, measure: str, values: list, start: datetime = T0, uid: str = "ws-1"):
    stamps = [iso(start + timedelta(minutes=i)) for i in range(len(values))]
    return api.post(
        "/sensor/insert-sensor-readings",
        {
            "measure_name": measure,
            "unique_identifier": uid,
            "readings": values,
            "timestamps": stamps,
        },
    )


def read(api: Api, measure: str, uid: str = "ws-1", dt_from=T0, dt_to=T0 + timedelta(days=1)):
    return api.ok(
        "/sensor/sensor-readings",
        {
            "measure_name": measure,
            "unique_identifier": uid,
            "dt_from": iso(dt_from),
            "dt_to": iso(dt_to),
        },
    )


def test_sensor_types_and_measures(station: Api) -> None:
    types = station.get("/sensor/list-sensor-types").json()
    assert types == [
        {
            "name": "weather",
            "description": "weather station",
            "measures": WEATHER["measures"],
            "retention_days": None,
        }
    ]
    assert station.get("/sensor/list-measures").json() == WEATHER["measures"]
    reply = station.post("/sensor/insert-sensor-type", WEATHER)
    assert (reply.status_code, reply.json()) == (409, {"detail": "Sensor type exists already"})
    # The frontend's extra key is ignored (docs/api.md, Requests and replies).
    station.ok(
        "/sensor/insert-sensor-type", {"name": "empty", "measures": [], "is_existing": 1}, 201
    )


def test_measures_are_shared_by_name_and_units(admin: Api) -> None:
    """A new measure listed before an existing one, and null units reused by a second
    type: both failed in DTBase (docs/api.md, Names and units together)."""
    admin.ok(
        "/sensor/insert-sensor-type",
        {"name": "a", "measures": [{"name": "rh", "units": None, "datatype": "float"}]},
        201,
    )
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "b",
            "measures": [
                {"name": "new", "units": "x", "datatype": "integer"},
                {"name": "rh", "units": None, "datatype": "float"},
            ],
        },
        201,
    )
    assert admin.get("/sensor/list-measures").json() == [
        {"name": "rh", "units": None, "datatype": "float"},
        {"name": "new", "units": "x", "datatype": "integer"},
    ]
    # Same name, other units: a different measure.
    admin.ok(
        "/sensor/insert-sensor-type",
        {"name": "c", "measures": [{"name": "rh", "units": "%", "datatype": "float"}]},
        201,
    )
    assert len(admin.get("/sensor/list-measures").json()) == 3
    # Same (name, units) with another datatype: refused, and nothing of the request stays.
    reply = admin.post(
        "/sensor/insert-sensor-type",
        {
            "name": "d",
            "measures": [
                {"name": "brand-new", "units": None, "datatype": "float"},
                {"name": "rh", "units": None, "datatype": "string"},
            ],
        },
    )
    assert reply.status_code == 409 and "rh" in reply.json()["detail"]
    assert [t["name"] for t in admin.get("/sensor/list-sensor-types").json()] == ["a", "b", "c"]
    assert "brand-new" not in [m["name"] for m in admin.get("/sensor/list-measures").json()]


def test_bad_sensor_type_bodies(admin: Api) -> None:
    bad = [
        {"name": "x", "measures": [{"name": "m", "units": None, "datatype": "decimal"}]},
        {"name": "x", "measures": [{"name": "m", "datatype": "float"}]},  # units required
        {"name": "x" * 101, "measures": []},
        {"name": "x", "measures": "not a list"},
    ]
    for body in bad:
        assert admin.post("/sensor/insert-sensor-type", body).status_code == 422, body
    assert admin.get("/sensor/list-sensor-types").json() == []


def test_sensors_crud(station: Api) -> None:
    reply = station.post(
        "/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": "ws-1"}
    )
    assert (reply.status_code, reply.json()) == (409, {"detail": "Sensor exists already"})
    reply = station.post(
        "/sensor/insert-sensor", {"type_name": "nope", "unique_identifier": "ws-2"}
    )
    assert reply.status_code == 400 and "nope" in reply.json()["detail"]
    station.ok("/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": "ws-2"}, 201)
    assert station.ok("/sensor/list-sensors", {}) == [
        {"unique_identifier": "ws-1", "name": "Station 1", "notes": "roof"},
        {"unique_identifier": "ws-2", "name": None, "notes": None},
    ]
    assert station.ok("/sensor/list-sensors", {"type_name": "other"}) == []
    assert station.post("/sensor/list-sensors").status_code == 422  # DTBase: body required

    assert station.ok(
        "/sensor/edit-sensor", {"unique_identifier": "ws-2", "name": "two", "notes": "n"}
    ) == {"detail": "Sensor edited"}
    reply = station.post(
        "/sensor/edit-sensor", {"unique_identifier": "zz", "name": "a", "notes": "b"}
    )
    assert (reply.status_code, reply.json()) == (400, {"detail": "Sensor does not exist"})

    reply = station.post("/sensor/delete-sensor-type", {"type_name": "weather"})
    assert reply.status_code == 409 and "2 sensor" in reply.json()["detail"]
    assert station.post("/sensor/delete-sensor-type", {"type_name": "nope"}).status_code == 400

    assert post_readings(station, "temperature", [1.5]).status_code == 201
    assert station.ok("/sensor/delete-sensor", {"unique_identifier": "ws-1"}) == {
        "detail": "Sensor deleted"
    }
    reply = station.post("/sensor/delete-sensor", {"unique_identifier": "ws-1"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Sensor does not exist"})
    station.ok("/sensor/delete-sensor", {"unique_identifier": "ws-2"})
    assert station.ok("/sensor/delete-sensor-type", {"type_name": "weather"}) == {
        "detail": "Sensor type deleted"
    }
    # The measures stay.
    assert len(station.get("/sensor/list-measures").json()) == 4


def test_readings_keep_their_types(station: Api) -> None:
    # DTBase's detail, plus the counts (docs/api.md, Readings).
    assert post_readings(station, "temperature", [1.5, 2, -0.25]).json() == {
        "detail": "Sensor readings inserted",
        "inserted": 3,
        "duplicates": 0,
    }
    assert post_readings(station, "count", [3, 0, 7]).status_code == 201
    assert post_readings(station, "raining", [True, False]).status_code == 201
    assert (
        post_readings(
            station, "icon", ["01d", "ünï©ødé ☔", "'; drop table sensor; --"]
        ).status_code
        == 201
    )
    assert [r["value"] for r in read(station, "temperature")] == [1.5, 2.0, -0.25]
    counts = read(station, "count")
    assert [r["value"] for r in counts] == [3, 0, 7]
    assert all(type(r["value"]) is int for r in counts)
    assert [r["value"] for r in read(station, "raining")] == [True, False]
    assert [r["value"] for r in read(station, "icon")] == [
        "01d",
        "ünï©ødé ☔",
        "'; drop table sensor; --",
    ]
    assert [r["timestamp"] for r in counts] == [
        iso(T0),
        iso(T0 + timedelta(minutes=1)),
        iso(T0 + timedelta(minutes=2)),
    ]


@pytest.mark.parametrize(
    ("measure", "values", "bad_index"),
    [
        ("count", [1, 2, True], 2),  # a bool is never an integer
        ("count", [1, 2.5], 1),
        ("temperature", [1.0, "2"], 1),
        ("temperature", [1.0, False], 1),
        ("raining", [True, 1], 1),
        ("icon", ["a", 5], 1),
    ],
)
def test_every_value_is_checked(station: Api, measure: str, values: list, bad_index: int) -> None:
    reply = post_readings(station, measure, values)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "readings", bad_index]
    assert read(station, measure) == []  # nothing half-written


def test_reading_errors(station: Api) -> None:
    body = {
        "measure_name": "temperature",
        "unique_identifier": "ws-1",
        "readings": [1.0, 2.0],
        "timestamps": [iso(T0)],
    }
    reply = station.post("/sensor/insert-sensor-readings", body)
    assert reply.status_code == 422 and "same length" in reply.json()["detail"][0]["msg"]
    reply = station.post(
        "/sensor/insert-sensor-readings",
        {**body, "timestamps": [iso(T0)] * 2, "unique_identifier": "ghost"},
    )
    assert reply.status_code == 400 and "ghost" in reply.json()["detail"]
    reply = station.post(
        "/sensor/insert-sensor-readings",
        {**body, "timestamps": [iso(T0)] * 2, "measure_name": "humidity"},
    )
    assert reply.status_code == 400 and "humidity" in reply.json()["detail"]
    reply = station.post(
        "/sensor/insert-sensor-readings", {**body, "timestamps": ["2023-01-01", "x"]}
    )
    assert reply.status_code == 422
    # Empty lists are fine (201), as in DTBase.
    assert (
        station.post(
            "/sensor/insert-sensor-readings", {**body, "readings": [], "timestamps": []}
        ).status_code
        == 201
    )
    # Reading an unknown sensor or measure is a 400 naming it (docs/api.md, Readings).
    for uid, measure in (("ghost", "temperature"), ("ws-1", "nope")):
        reply = station.post(
            "/sensor/sensor-readings",
            {
                "measure_name": measure,
                "unique_identifier": uid,
                "dt_from": iso(T0),
                "dt_to": iso(T0),
            },
        )
        assert reply.status_code == 400, reply.text
        assert f"'{uid if uid == 'ghost' else measure}'" in reply.json()["detail"]


def test_readings_of_a_measure_the_type_lacks_are_empty(station: Api) -> None:
    """DTBase's ARIMA reads every measure of every sensor it forecasts, across types: a
    measure the sensor's type lacks is `200 []` there, not an error (docs/api.md, Readings)."""
    station.ok(
        "/sensor/insert-sensor-type",
        {"name": "soil", "measures": [{"name": "moisture", "units": "%", "datatype": "float"}]},
        201,
    )
    station.ok("/sensor/insert-sensor", {"type_name": "soil", "unique_identifier": "soil-1"}, 201)
    assert post_readings(station, "moisture", [0.5], uid="soil-1").status_code == 201
    assert post_readings(station, "temperature", [1.5]).status_code == 201
    assert read(station, "moisture") == []  # ws-1 is a weather station
    assert read(station, "temperature", uid="soil-1") == []
    assert [r["value"] for r in read(station, "moisture", uid="soil-1")] == [0.5]
    body = {"unique_identifier": "ws-1", "measure_name": "moisture", "dt_from": iso(T0)}
    aggregated = {**body, "dt_to": iso(T0 + timedelta(hours=1)), "interval": "1h"}
    assert (
        station.ok("/sensor/sensor-readings-aggregated", {**aggregated, "aggregation": "mean"})
        == []
    )
    # Writing is still refused: the measure is not the type's.
    reply = post_readings(station, "moisture", [0.5])
    assert reply.status_code == 400 and "moisture" in reply.json()["detail"]


def test_duplicates_and_time_zones(station: Api) -> None:
    assert post_readings(station, "temperature", [1.0, 2.0]).status_code == 201
    # Re-sending a timestamp keeps the stored value (DTBase's idempotency).
    assert post_readings(station, "temperature", [9.0]).status_code == 201
    assert [r["value"] for r in read(station, "temperature")] == [1.0, 2.0]
    # The same instant written with an offset is a duplicate; naive input is UTC.
    station.ok(
        "/sensor/insert-sensor-readings",
        {
            "measure_name": "temperature",
            "unique_identifier": "ws-1",
            "readings": [5.0, 6.0],
            "timestamps": ["2024-01-01T01:00:00+01:00", "2024-01-01T00:05:00"],
        },
        201,
    )
    rows = read(station, "temperature")
    assert [(r["timestamp"], r["value"]) for r in rows] == [
        ("2024-01-01T00:00:00Z", 1.0),
        ("2024-01-01T00:01:00Z", 2.0),
        ("2024-01-01T00:05:00Z", 6.0),
    ]
    # Bounds are inclusive; microseconds are kept.
    station.ok(
        "/sensor/insert-sensor-readings",
        {
            "measure_name": "temperature",
            "unique_identifier": "ws-1",
            "readings": [7.0],
            "timestamps": ["2024-01-01T00:10:00.123456Z"],
        },
        201,
    )
    rows = read(
        station,
        "temperature",
        dt_from=T0 + timedelta(minutes=1),
        dt_to=datetime(2024, 1, 1, 0, 10, 0, 123456, tzinfo=UTC),
    )
    assert [r["timestamp"] for r in rows] == [
        "2024-01-01T00:01:00Z",
        "2024-01-01T00:05:00Z",
        "2024-01-01T00:10:00.123456Z",
    ]


def test_large_series_and_json_integers(station: Api) -> None:
    n = 100_000
    values = [float(i) if i % 2 else i for i in range(n)]  # a JavaScript client sends 2 for 2.0
    assert post_readings(station, "temperature", values).status_code == 201
    rows = read(station, "temperature", dt_to=T0 + timedelta(days=100))
    assert len(rows) == n and rows[-1]["value"] == float(n - 1)
    assert all(type(r["value"]) is float for r in rows[:10])
    bad = values[:]
    bad[n - 1] = "oops"
    reply = post_readings(station, "temperature", bad, start=T0 + timedelta(days=200))
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == [
        "body",
        "readings",
        n - 1,
    ]


def test_bulk_insert_is_all_or_nothing(station: Api) -> None:
    station.ok("/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": "ws-2"}, 201)
    good = {
        "measure_name": "temperature",
        "unique_identifier": "ws-1",
        "readings": [1.0, 2.0],
        "timestamps": [iso(T0), iso(T0 + timedelta(minutes=1))],
    }
    other = {**good, "unique_identifier": "ws-2"}
    bad = {**good, "unique_identifier": "ws-2", "measure_name": "count", "readings": [1, "x"]}
    reply = station.post("/sensor/insert-readings-bulk", {"series": [good, other, bad]})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "series", 2, "readings", 1]
    assert read(station, "temperature") == [] and read(station, "temperature", uid="ws-2") == []
    reply = station.post("/sensor/insert-readings-bulk", {"series": [good, other]})
    assert reply.status_code == 201
    assert reply.json() == {"detail": "Sensor readings inserted", "inserted": 4, "duplicates": 0}
    reply = station.post("/sensor/insert-readings-bulk", {"series": [good]})
    assert reply.json() == {"detail": "Sensor readings inserted", "inserted": 0, "duplicates": 2}
    assert station.post("/sensor/insert-readings-bulk", {"series": []}).status_code == 422


def test_aggregated_readings(station: Api) -> None:
    values = [float(i) for i in range(120)]  # two hours of one-minute readings
    post_readings(station, "temperature", values)
    post_readings(station, "icon", ["a", "b", "c"])
    body = {
        "measure_name": "temperature",
        "unique_identifier": "ws-1",
        "dt_from": iso(T0),
        "dt_to": iso(T0 + timedelta(hours=3)),
        "interval": "1h",
    }
    expected = {
        "mean": [29.5, 89.5],
        "min": [0.0, 60.0],
        "max": [59.0, 119.0],
        "sum": [sum(range(60)) * 1.0, sum(range(60, 120)) * 1.0],
        "count": [60, 60],
        "first": [0.0, 60.0],
        "last": [59.0, 119.0],
    }
    for aggregation, want in expected.items():
        rows = station.ok(
            "/sensor/sensor-readings-aggregated", {**body, "aggregation": aggregation}
        )
        assert [r["value"] for r in rows] == want, aggregation
        assert [r["timestamp"] for r in rows] == [iso(T0), iso(T0 + timedelta(hours=1))]
    rows = station.ok(
        "/sensor/sensor-readings-aggregated", {**body, "interval": "15min", "aggregation": "count"}
    )
    assert [r["value"] for r in rows] == [15] * 8
    string_body = {**body, "measure_name": "icon"}
    reply = station.post(
        "/sensor/sensor-readings-aggregated", {**string_body, "aggregation": "mean"}
    )
    assert reply.status_code == 422 and "numeric" in reply.json()["detail"][0]["msg"]
    rows = station.ok("/sensor/sensor-readings-aggregated", {**string_body, "aggregation": "last"})
    assert [r["value"] for r in rows] == ["c"]
    for bad in ({"interval": "fortnight"}, {"interval": "0h"}, {"aggregation": "median"}):
        reply = station.post(
            "/sensor/sensor-readings-aggregated", {**body, "aggregation": "mean", **bad}
        )
        assert reply.status_code == 422, bad


def test_latest_readings(station: Api) -> None:
    station.ok(
        "/sensor/insert-sensor-type",
        {"name": "door", "measures": [{"name": "open", "units": None, "datatype": "boolean"}]},
        201,
    )
    station.ok("/sensor/insert-sensor", {"type_name": "door", "unique_identifier": "d-1"}, 201)
    post_readings(station, "temperature", [1.0, 2.0, 3.0])
    post_readings(station, "count", [4])
    post_readings(station, "open", [False, True], uid="d-1")
    rows = station.ok("/sensor/latest-readings", {})
    assert rows == [
        {
            "unique_identifier": "ws-1",
            "measure_name": "temperature",
            "units": "degC",
            "value": 3.0,
            "timestamp": iso(T0 + timedelta(minutes=2)),
        },
        {
            "unique_identifier": "ws-1",
            "measure_name": "count",
            "units": None,
            "value": 4,
            "timestamp": iso(T0),
        },
        {
            "unique_identifier": "d-1",
            "measure_name": "open",
            "units": None,
            "value": True,
            "timestamp": iso(T0 + timedelta(minutes=1)),
        },
    ]
    assert [
        r["unique_identifier"] for r in station.ok("/sensor/latest-readings", {"type_name": "door"})
    ] == ["d-1"]
    assert station.post("/sensor/latest-readings").status_code == 200


def test_export_readings_csv(station: Api) -> None:
    station.ok("/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": "ws-2"}, 201)
    post_readings(station, "temperature", [1.5, 2.5])
    post_readings(station, "raining", [True])
    post_readings(station, "temperature", [7.0], uid="ws-2")
    reply = station.post(
        "/sensor/export-readings",
        {
            "measure_name": ["temperature", "raining"],
            "unique_identifier": ["ws-1", "ws-2"],
            "dt_from": iso(T0),
            "dt_to": iso(T0 + timedelta(days=1)),
        },
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows == [
        ["unique_identifier", "measure_name", "units", "timestamp", "value"],
        ["ws-1", "temperature", "degC", "2024-01-01T00:00:00Z", "1.5"],
        ["ws-1", "temperature", "degC", "2024-01-01T00:01:00Z", "2.5"],
        ["ws-1", "raining", "", "2024-01-01T00:00:00Z", "true"],
        ["ws-2", "temperature", "degC", "2024-01-01T00:00:00Z", "7.0"],
    ]
    reply = station.post(
        "/sensor/export-readings",
        {
            "measure_name": "temperature",
            "unique_identifier": "ghost",
            "dt_from": iso(T0),
            "dt_to": iso(T0),
        },
    )
    assert reply.status_code == 400 and "ghost" in reply.json()["detail"]


def test_sensor_locations(station: Api) -> None:
    station.ok(
        "/location/insert-location-schema",
        {
            "name": "xy",
            "description": None,
            "identifiers": [
                {"name": "x", "units": "m", "datatype": "float"},
                {"name": "y", "units": "m", "datatype": "float"},
            ],
        },
        201,
    )
    for x in (1.0, 2.0):
        station.ok(
            "/location/insert-location-for-schema",
            {"schema_name": "xy", "coordinates": {"x": x, "y": 0.5}},
            201,
        )
    body = {
        "unique_identifier": "ws-1",
        "schema_name": "xy",
        "coordinates": {"x": 1.0, "y": 0.5},
        "installation_datetime": "2024-01-01T00:00:00Z",
    }
    assert station.ok("/sensor/insert-sensor-location", body, 201) == {
        "detail": "Sensor location inserted"
    }
    station.ok(
        "/sensor/insert-sensor-location",
        {**body, "coordinates": {"x": 2, "y": 0.5}, "installation_datetime": "2024-02-01T00:00:00"},
        201,
    )
    reply = station.post("/sensor/insert-sensor-location", body)
    assert reply.status_code == 409
    for bad, status in (
        ({"unique_identifier": "ghost"}, 400),
        ({"schema_name": "nope"}, 400),
        ({"coordinates": {"x": 9.0, "y": 0.5}}, 400),
        ({"coordinates": {"x": 1.0}}, 422),
        ({"coordinates": {"x": "1", "y": 0.5}}, 422),
    ):
        reply = station.post(
            "/sensor/insert-sensor-location",
            {**body, **bad, "installation_datetime": "2025-01-01T00:00:00Z"},
        )
        assert reply.status_code == status, (bad, reply.text)
    history = station.ok("/sensor/list-sensor-locations", {"unique_identifier": "ws-1"})
    assert history == [
        {"id": 2, "x": 2.0, "y": 0.5, "installation_datetime": "2024-02-01T00:00:00Z"},
        {"id": 1, "x": 1.0, "y": 0.5, "installation_datetime": "2024-01-01T00:00:00Z"},
    ]
    assert station.ok("/sensor/list-sensor-locations", {"unique_identifier": "ghost"}) == []
    # A location a sensor was installed at cannot be deleted from under its history.
    reply = station.post(
        "/location/delete-location", {"schema_name": "xy", "coordinates": {"x": 1.0, "y": 0.5}}
    )
    assert reply.status_code == 409
    # Deleting the sensor takes its history (and readings) with it.
    post_readings(station, "temperature", [1.0])
    station.ok("/sensor/delete-sensor", {"unique_identifier": "ws-1"})
    station.ok(
        "/location/delete-location", {"schema_name": "xy", "coordinates": {"x": 1.0, "y": 0.5}}
    )
    station.ok("/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": "ws-1"}, 201)
    assert read(station, "temperature") == []


@pytest.mark.parametrize("datatype", ["float", "integer"])
def test_aggregates_from_rollups_match_the_readings(admin: Api, datatype: str) -> None:
    """Whole-hour buckets come from the hourly rollups kept at insert time; the result
    must equal aggregating the stored readings, whatever order and duplicates the
    readings arrived in, with the end bound falling inside an hour."""
    import random

    admin.ok(
        "/sensor/insert-sensor-type",
        {"name": "t", "measures": [{"name": "m", "units": None, "datatype": datatype}]},
        201,
    )
    admin.ok("/sensor/insert-sensor", {"type_name": "t", "unique_identifier": "s"}, 201)
    rng = random.Random(7)
    minutes = list(range(0, 3 * 24 * 60, 7))  # three days, every seven minutes
    value = (
        (lambda: rng.randint(-50, 50)) if datatype == "integer" else (lambda: rng.uniform(-5, 5))
    )
    stored: dict[int, float] = {}
    batches = [minutes[1::2], minutes[::2], rng.sample(minutes, 200)]  # late, early, repeats
    for batch in batches:
        values = [value() for _ in batch]
        for m, v in zip(batch, values, strict=True):
            stored.setdefault(m, v)  # a re-sent timestamp keeps its first value
        admin.ok(
            "/sensor/insert-sensor-readings",
            {
                "measure_name": "m",
                "unique_identifier": "s",
                "readings": values,
                "timestamps": [iso(T0 + timedelta(minutes=m)) for m in batch],
            },
            201,
        )

    dt_to = T0 + timedelta(days=2, hours=5, minutes=30)
    for interval, hours in (("1h", 1), ("3h", 3), ("1d", 24), ("90min", 1.5)):
        width = int(hours * 60)
        buckets: dict[int, list[tuple[int, float]]] = {}
        for m in sorted(stored):
            if T0 + timedelta(minutes=m) <= dt_to:
                buckets.setdefault(m // width, []).append((m, stored[m]))
        expected = {
            "count": [len(b) for b in buckets.values()],
            "sum": [sum(v for _, v in b) for b in buckets.values()],
            "mean": [sum(v for _, v in b) / len(b) for b in buckets.values()],
            "min": [min(v for _, v in b) for b in buckets.values()],
            "max": [max(v for _, v in b) for b in buckets.values()],
            "first": [b[0][1] for b in buckets.values()],
            "last": [b[-1][1] for b in buckets.values()],
        }
        for aggregation, want in expected.items():
            rows = admin.ok(
                "/sensor/sensor-readings-aggregated",
                {
                    "measure_name": "m",
                    "unique_identifier": "s",
                    "dt_from": iso(T0),
                    "dt_to": iso(dt_to),
                    "interval": interval,
                    "aggregation": aggregation,
                },
            )
            assert [r["timestamp"] for r in rows] == [
                iso(T0 + timedelta(minutes=k * width)) for k in buckets
            ], (interval, aggregation)
            got = [r["value"] for r in rows]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (interval, aggregation)
            if datatype == "integer" and aggregation != "mean":
                assert all(type(v) is int for v in got), (interval, aggregation)
