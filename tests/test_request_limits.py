"""Readings per request are bounded: DT_MAX_READINGS_PER_REQUEST, a 413 naming the limit
on every path that carries readings, checked before the body is validated (README,
Configuration)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.support import ADMIN_PASSWORD, Api, TestDatabase

LIMIT = 10
SENSOR_TYPE = {"name": "t", "measures": [{"name": "m", "units": None, "datatype": "float"}]}


def series(count: int, uid: str = "s-1", start: int = 0) -> dict[str, Any]:
    return {
        "measure_name": "m",
        "unique_identifier": uid,
        "readings": [float(i) for i in range(count)],
        "timestamps": [
            f"2024-01-01T00:{(start + i) // 60:02d}:{(start + i) % 60:02d}Z" for i in range(count)
        ],
    }


def stored(database: TestDatabase) -> int:
    with database.engine.connect() as conn:
        return int(conn.scalar(sa.text("select count(*) from sensor_float_reading")) or 0)


@pytest.fixture
def limited(admin: Api, host_factory) -> Api:
    """A host allowing LIMIT readings per request, with one sensor to write to."""
    admin.ok("/sensor/insert-sensor-type", SENSOR_TYPE, 201)
    for uid in ("s-1", "s-2"):
        admin.ok("/sensor/insert-sensor", {"type_name": "t", "unique_identifier": uid}, 201)
    host = host_factory({"DT_MAX_READINGS_PER_REQUEST": str(LIMIT)})
    return Api(host.api, host.admin_email, ADMIN_PASSWORD)


def assert_too_many(reply: Any, count: int, limit: int = LIMIT) -> None:
    assert reply.status_code == 413, reply.text
    assert reply.json() == {
        "detail": f"Too many readings in one request: {count} (the limit is {limit}, "
        "DT_MAX_READINGS_PER_REQUEST); send them in several requests"
    }


def test_insert_sensor_readings_is_bounded(limited: Api, database: TestDatabase) -> None:
    assert_too_many(limited.post("/sensor/insert-sensor-readings", series(LIMIT + 1)), LIMIT + 1)
    # The longer list counts, even when the two differ in length.
    body = {**series(1), "readings": [1.0] * (LIMIT + 5)}
    assert_too_many(limited.post("/sensor/insert-sensor-readings", body), LIMIT + 5)
    assert stored(database) == 0
    limited.ok("/sensor/insert-sensor-readings", series(LIMIT), 201)
    assert stored(database) == LIMIT


def test_insert_readings_bulk_counts_every_series(limited: Api, database: TestDatabase) -> None:
    half = LIMIT // 2
    body = {"series": [series(half), series(half + 1, uid="s-2")]}
    assert_too_many(limited.post("/sensor/insert-readings-bulk", body), LIMIT + 1)
    assert stored(database) == 0
    body = {"series": [series(half), series(half, uid="s-2")]}
    assert limited.ok("/sensor/insert-readings-bulk", body, 201)["inserted"] == LIMIT


def test_insert_model_run_counts_every_product(limited: Api, database: TestDatabase) -> None:
    product = {"measure_name": "x", "values": [1.0] * 6, "timestamps": []}
    body = {
        "model_name": "Arima",
        "scenario_description": "s",
        "measures_and_values": [product, product],
    }
    assert_too_many(limited.post("/model/insert-model-run", body), 12)
    with database.engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from model_run")) == 0


def test_the_default_limit_is_half_a_million(admin: Api) -> None:
    """Counted on the parsed JSON: half a million and one values are refused at once."""
    body = {**series(0), "readings": [0.0] * 500_001}
    assert_too_many(admin.post("/sensor/insert-sensor-readings", body), 500_001, 500_000)


def test_the_document_declares_the_413(anon: Api) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    for path in (
        "/sensor/insert-sensor-readings",
        "/sensor/insert-readings-bulk",
        "/model/insert-model-run",
    ):
        assert "413" in paths[path]["post"]["responses"], path
    assert "413" not in paths["/sensor/sensor-readings"]["post"]["responses"]
