"""Writes under concurrency, overwrites, and the bounds of what a reading may hold
(docs/api.md, Readings): real writers over real HTTP on one database."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from function_app import http
from tests.support import ADMIN_PASSWORD, Api, LocalHost, TestDatabase

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WRITERS = 8


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def make_sensor(api: Api, datatype: str = "float", uid: str = "s") -> None:
    api.ok(
        "/sensor/insert-sensor-type",
        {"name": f"t-{uid}", "measures": [{"name": "m", "units": datatype, "datatype": datatype}]},
        201,
    )
    api.ok("/sensor/insert-sensor", {"type_name": f"t-{uid}", "unique_identifier": uid}, 201)


def readings_body(values: list[Any], stamps: list[datetime], **extra: Any) -> dict[str, Any]:
    return {
        "measure_name": "m",
        "unique_identifier": "s",
        "readings": values,
        "timestamps": [iso(t) for t in stamps],
        **extra,
    }


def in_parallel(host: LocalHost, bodies: list[tuple[str, Any]]) -> list[httpx.Response]:
    """POST each (path, body) from its own thread and its own client, all released at once."""
    clients = [Api(host.api, host.admin_email, ADMIN_PASSWORD) for _ in bodies]
    start = threading.Barrier(len(bodies))
    replies: list[httpx.Response | None] = [None] * len(bodies)

    def run(index: int) -> None:
        path, body = bodies[index]
        start.wait()
        replies[index] = clients[index].post(path, body)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for client in clients:
        client.close()
    assert all(reply is not None for reply in replies)
    return [reply for reply in replies if reply is not None]


def assert_rollups_exact(database: TestDatabase, table: str = "sensor_float_reading") -> int:
    """The hourly and the daily rollups equal the aggregates of the stored readings;
    returns the number of hours compared."""
    compared = {}
    for unit, rollup, key in (("hour", "hourly", "hour"), ("day", "daily", "day")):
        aggregates = f"""
            select date_bin('1 {unit}', timestamp, timestamptz '1970-01-01Z') as start,
                   count(*), sum(value), min(value), max(value), min(timestamp),
                   (array_agg(value order by timestamp))[1], max(timestamp),
                   (array_agg(value order by timestamp desc))[1]
            from {table} group by 1 order by 1"""
        rollups = f"""
            select {key}, count, sum, min, max, first_timestamp, first_value, last_timestamp,
                   last_value from sensor_reading_{rollup} order by {key}"""
        with database.engine.connect() as conn:
            want = [tuple(row) for row in conn.execute(sa.text(aggregates))]
            got = [tuple(row) for row in conn.execute(sa.text(rollups))]
        assert [row[:2] for row in got] == [row[:2] for row in want], rollup
        for have, expected in zip(got, want, strict=True):
            assert have[2] == pytest.approx(float(expected[2]), rel=1e-12), (rollup, have[0])
            minimum, maximum, first_ts, first, last_ts, last = expected[3:]
            assert have[3:] == (
                float(minimum),
                float(maximum),
                first_ts,
                float(first),
                last_ts,
                float(last),
            ), (rollup, have[0])
        compared[unit] = len(want)
    return compared["hour"]


# --- concurrent writes -------------------------------------------------------------------


def test_shuffled_writers_of_the_same_timestamps_all_succeed(
    admin: Api, live_host: LocalHost, database: TestDatabase
) -> None:
    make_sensor(admin)
    # 39 hours of readings: enough for the writers to overlap (with 400, they did not, and
    # without the series locks and retries this test saw deadlocks).
    stamps = [T0 + timedelta(seconds=7 * i) for i in range(20000)]
    rng = random.Random(10)
    bodies = []
    for writer in range(WRITERS):
        order = rng.sample(stamps, len(stamps))
        values = [float(writer * 1000 + i) for i in range(len(order))]
        bodies.append(("/sensor/insert-sensor-readings", readings_body(values, order)))

    replies = in_parallel(live_host, bodies)

    assert [r.status_code for r in replies] == [201] * WRITERS, [r.text for r in replies]
    counts = [r.json() for r in replies]
    assert {c["detail"] for c in counts} == {"Sensor readings inserted"}
    assert sum(c["inserted"] for c in counts) == len(stamps)
    assert sum(c["duplicates"] for c in counts) == (WRITERS - 1) * len(stamps)
    with database.engine.connect() as conn:
        stored = conn.execute(sa.text("select timestamp from sensor_float_reading")).scalars()
        assert sorted(stored) == stamps  # every reading once
    assert assert_rollups_exact(database) == 39


def test_parallel_sensor_types_sharing_measures(admin: Api, live_host: LocalHost) -> None:
    measures = [{"name": f"m{i}", "units": "u", "datatype": "float"} for i in range(6)]

    def body(name: str, writer: int) -> tuple[str, Any]:
        order = measures if writer % 2 else measures[::-1]
        return ("/sensor/insert-sensor-type", {"name": name, "measures": order})

    # Different types sharing measures, in opposite orders: all created.
    replies = in_parallel(live_host, [body(f"type-{w}", w) for w in range(WRITERS)])
    assert [r.status_code for r in replies] == [201] * WRITERS, [r.text for r in replies]
    # The same type from every writer: one creates it, the others are told it exists.
    replies = in_parallel(live_host, [body("same", w) for w in range(WRITERS)])
    assert sorted(r.status_code for r in replies) == [201] + [409] * (WRITERS - 1)
    assert {r.json()["detail"] for r in replies if r.status_code == 409} == {
        "Sensor type exists already"
    }
    assert len(admin.get("/sensor/list-measures").json()) == len(measures)
    types = admin.get("/sensor/list-sensor-types").json()
    assert len(types) == WRITERS + 1
    assert all(len(t["measures"]) == len(measures) for t in types)


def _conflict(sqlstate_error: type[Exception]) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("insert ...", {}, sqlstate_error("conflict"))


def test_write_conflicts_are_retried_with_growing_jittered_backoff() -> None:
    errors = [psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure]
    slept: list[float] = []

    def attempt() -> str:
        if errors:
            raise _conflict(errors.pop(0))
        return "done"

    assert http.retry_conflicts(attempt, sleep=slept.append, jitter=lambda: 0.5) == "done"
    assert slept == [http.CONFLICT_BACKOFF, 2 * http.CONFLICT_BACKOFF]


def test_a_lasting_write_conflict_is_a_409_and_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def deadlocked() -> None:
        calls.append(1)
        raise _conflict(psycopg.errors.DeadlockDetected)

    with pytest.raises(sa_exc.OperationalError) as caught:
        http.retry_conflicts(deadlocked, sleep=lambda _: None)
    assert len(calls) == http.CONFLICT_ATTEMPTS
    reply = http.error_response(caught.value)
    assert reply.status_code == 409
    assert reply.get_body() == b'{"detail":"conflicting concurrent write, retry"}'

    unavailable: Callable[[], None] = lambda: (_ for _ in ()).throw(  # noqa: E731
        sa_exc.OperationalError("select 1", {}, psycopg.OperationalError("server closed"))
    )
    slept: list[float] = []
    with pytest.raises(sa_exc.OperationalError):
        http.retry_conflicts(unavailable, sleep=slept.append)
    assert slept == []


# --- honest replies: on_conflict ---------------------------------------------------------


@pytest.mark.parametrize("datatype", ["float", "integer"])
def test_on_conflict_update_overwrites_and_corrects_the_rollups(
    admin: Api, database: TestDatabase, datatype: str
) -> None:
    make_sensor(admin, datatype)
    stamps = [T0 + timedelta(minutes=10 * i) for i in range(18)]  # three hours
    first = [i * 2 for i in range(18)]
    reply = admin.ok("/sensor/insert-sensor-readings", readings_body(first, stamps), 201)
    assert reply == {"detail": "Sensor readings inserted", "inserted": 18, "duplicates": 0}
    # Default "ignore": stored values stay.
    reply = admin.ok("/sensor/insert-sensor-readings", readings_body([99] * 3, stamps[:3]), 201)
    assert (reply["inserted"], reply["duplicates"]) == (0, 3)

    # Overwrite the first, last, minimum and maximum of hours, add a new reading, and send
    # one timestamp twice (the last value wins).
    changed = {0: -50, 5: 500, 6: 7, 17: -1}
    new_stamp = T0 + timedelta(minutes=175)
    body = readings_body(
        [*changed.values(), 3, 4, 123],
        [*(stamps[i] for i in changed), stamps[8], stamps[8], new_stamp],
        on_conflict="update",
    )
    reply = admin.ok("/sensor/insert-sensor-readings", body, 201)
    assert reply == {"detail": "Sensor readings inserted", "inserted": 1, "duplicates": 6}

    expected = dict(zip(stamps, first, strict=True)) | {stamps[i]: v for i, v in changed.items()}
    expected |= {stamps[8]: 4, new_stamp: 123}
    rows = admin.ok(
        "/sensor/sensor-readings",
        {
            "measure_name": "m",
            "unique_identifier": "s",
            "dt_from": iso(T0),
            "dt_to": iso(T0 + timedelta(hours=3)),
        },
    )
    assert [(r["timestamp"], r["value"]) for r in rows] == [
        (iso(t), v) for t, v in sorted(expected.items())
    ]
    assert_rollups_exact(database, f"sensor_{datatype}_reading")
    # And the route reading the rollups agrees.
    sums = admin.ok(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "m",
            "unique_identifier": "s",
            "dt_from": iso(T0),
            "dt_to": iso(T0 + timedelta(hours=3)),
            "interval": "1h",
            "aggregation": "sum",
        },
    )
    assert [r["value"] for r in sums] == [
        sum(
            v
            for t, v in expected.items()
            if T0 + timedelta(hours=h) <= t < T0 + timedelta(hours=h + 1)
        )
        for h in range(3)
    ]


def test_bulk_insert_on_conflict_update_and_merged_series(
    admin: Api, database: TestDatabase
) -> None:
    make_sensor(admin)
    one = readings_body([1.0, 2.0], [T0, T0 + timedelta(minutes=1)])
    reply = admin.ok("/sensor/insert-readings-bulk", {"series": [one]}, 201)
    assert (reply["inserted"], reply["duplicates"]) == (2, 0)
    # Two series of the same sensor and measure, one overwriting the other's timestamps.
    again = readings_body([5.0, 6.0], [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)])
    reply = admin.ok(
        "/sensor/insert-readings-bulk", {"series": [one, again], "on_conflict": "update"}, 201
    )
    assert reply == {"detail": "Sensor readings inserted", "inserted": 1, "duplicates": 3}
    with database.engine.connect() as conn:
        values = conn.execute(
            sa.text("select value from sensor_float_reading order by timestamp")
        ).scalars()
        assert list(values) == [1.0, 5.0, 6.0]
    assert_rollups_exact(database)
    bad = admin.post("/sensor/insert-readings-bulk", {"series": [one], "on_conflict": "replace"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "on_conflict"]


# --- exact timestamps, bounded values ----------------------------------------------------


def test_timestamps_are_exact_across_the_accepted_range(admin: Api) -> None:
    make_sensor(admin)
    stamps = [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00.000001Z",
        "1000-06-01T12:00:00.123457Z",
        "1969-12-31T23:59:59.999999Z",
        "2024-01-01T00:00:00.000001Z",
        "5000-01-01T00:00:00.999999Z",
        "9999-12-31T23:59:59.999999Z",
    ]
    body = {**readings_body([float(i) for i in range(len(stamps))], []), "timestamps": stamps}
    admin.ok("/sensor/insert-sensor-readings", body, 201)
    # The same instants written with offsets are the same readings.
    shifted = ["9999-12-31T23:59:59.999999+00:00", "0001-01-01T01:00:00.000001+01:00"]
    reply = admin.ok(
        "/sensor/insert-sensor-readings", {**body, "readings": [9.0, 9.0], "timestamps": shifted}
    )
    assert (reply["inserted"], reply["duplicates"]) == (0, 2)
    rows = admin.ok(
        "/sensor/sensor-readings",
        {"measure_name": "m", "unique_identifier": "s", "dt_from": stamps[0], "dt_to": stamps[-1]},
    )
    assert [r["timestamp"] for r in rows] == stamps
    latest = admin.ok("/sensor/latest-readings", {})
    assert [(r["timestamp"], r["value"]) for r in latest] == [(stamps[-1], 6.0)]


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00", "10000-01-01T00:00:00Z"]
)
def test_instants_outside_the_accepted_range_are_a_422_naming_the_field(
    admin: Api, stamp: str
) -> None:
    make_sensor(admin)
    body = {**readings_body([1.0, 2.0], []), "timestamps": ["2024-01-01T00:00:00Z", stamp]}
    reply = admin.post("/sensor/insert-sensor-readings", body)
    assert reply.status_code == 422, reply.text
    assert [item["loc"] for item in reply.json()["detail"]] == [["body", "timestamps", 1]]
    query = {"measure_name": "m", "unique_identifier": "s", "dt_from": stamp, "dt_to": stamp}
    reply = admin.post("/sensor/sensor-readings", query)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "dt_from"]


@pytest.mark.parametrize("interval", ["99999999999w", "9999999999999999999999d", "3652060d"])
def test_too_long_intervals_are_a_422(admin: Api, interval: str) -> None:
    make_sensor(admin)
    reply = admin.post(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "m",
            "unique_identifier": "s",
            "dt_from": "0001-01-01T00:00:00Z",
            "dt_to": "9999-12-31T23:59:59Z",
            "interval": interval,
            "aggregation": "sum",
        },
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "interval"]


def test_readings_whose_sums_could_overflow_are_refused_and_big_integer_sums_are_exact(
    admin: Api,
) -> None:
    """Float readings are bounded by ±1e290, so that no sum of them can overflow; two
    1e308 in one hour are a 422 naming both. Sums of integers are exact, beyond 64 bits too."""
    make_sensor(admin)
    stamps = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    reply = admin.post(
        "/sensor/insert-sensor-readings", readings_body([1e308, 1.0, -1e308], stamps)
    )
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert [item["loc"] for item in detail] == [["body", "readings", 0], ["body", "readings", 2]]
    assert detail[0]["msg"] == "1e+308 is outside the accepted range (±1e+290)"
    admin.ok("/sensor/insert-sensor-readings", readings_body([1e290, 1e290, 1e290], stamps), 201)

    make_sensor(admin, "integer", uid="big")
    big = 2**63 - 1
    admin.ok(
        "/sensor/insert-sensor-readings",
        {**readings_body([big, big], stamps[:2]), "unique_identifier": "big"},
        201,
    )
    # From the rollups (whole hours) and from the readings (90min): one bucket, whose
    # sum does not fit in 64 bits and is answered as a float rather than failing.
    for interval in ("1h", "90min"):
        rows = admin.ok(
            "/sensor/sensor-readings-aggregated",
            {
                "measure_name": "m",
                "unique_identifier": "big",
                "dt_from": iso(T0),
                "dt_to": iso(T0 + timedelta(hours=1)),
                "interval": interval,
                "aggregation": "sum",
            },
        )
        assert [r["value"] for r in rows] == [float(2 * big)], interval
