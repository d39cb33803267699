"""Every instant is UTC, whatever the database's own zone (docs/api.md, Datetimes)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.support import ADMIN_PASSWORD, Api, TestDatabase


def test_naive_input_is_utc_whatever_the_session_zone(
    admin: Api, database: TestDatabase, host_factory
) -> None:
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            sa.text(f"alter database \"{database.name}\" set timezone to 'Pacific/Auckland'")
        )
    try:
        host = host_factory()  # new connections pick the database's zone up
        api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
        api.ok(
            "/sensor/insert-sensor-type",
            {"name": "t", "measures": [{"name": "m", "units": None, "datatype": "integer"}]},
            201,
        )
        api.ok("/sensor/insert-sensor", {"type_name": "t", "unique_identifier": "s"}, 201)
        api.ok(
            "/sensor/insert-sensor-readings",
            {
                "measure_name": "m",
                "unique_identifier": "s",
                "readings": [1, 2],
                "timestamps": ["2024-06-01T12:00:00", "2024-06-01T13:00:00+02:00"],
            },
            201,
        )
        rows = api.ok(
            "/sensor/sensor-readings",
            {
                "measure_name": "m",
                "unique_identifier": "s",
                "dt_from": "2024-06-01T11:00:00",
                "dt_to": "2024-06-01T12:00:00",
            },
        )
        assert rows == [
            {"value": 2, "timestamp": "2024-06-01T11:00:00Z"},
            {"value": 1, "timestamp": "2024-06-01T12:00:00Z"},
        ]
        with database.engine.connect() as conn:
            stored = conn.scalar(
                sa.text("select min(timestamp) at time zone 'UTC' from sensor_integer_reading")
            )
        assert stored.isoformat() == "2024-06-01T11:00:00"
    finally:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'alter database "{database.name}" reset timezone'))
