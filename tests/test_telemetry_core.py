"""store_telemetry on its own, in one session on the test database: what the transports
cannot show deterministically (docs/architecture.md, Device telemetry)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import readings, sensors, telemetry
from dtbase_core.migrations import upgrade
from dtbase_core.orm import TelemetryDeadLetter
from tests import support

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def migrated(database: support.TestDatabase) -> support.TestDatabase:
    upgrade(database.url)
    return database


@pytest.fixture
def session(migrated: support.TestDatabase) -> Iterator[Session]:
    migrated.truncate_all()
    with Session(migrated.engine) as session:
        sensors.insert_sensor_type(
            session,
            name="weather",
            description=None,
            measures=[{"name": "temperature", "units": "degC", "datatype": "float"}],
        )
        for uid in ("dev-1", "dev-2", "dev-3"):
            sensors.insert_sensor(session, type_name="weather", unique_identifier=uid)
        yield session
        session.rollback()


def message(uid: str, second: int, value: float) -> telemetry.Delivery:
    body = {
        "timestamp": (T0 + timedelta(seconds=second)).isoformat(),
        "values": {"temperature": value},
    }
    return telemetry.Delivery(orjson.dumps(body), uid)


def stored(session: Session, uid: str) -> list[Any]:
    rows = readings.sensor_readings(
        session,
        measure_name="temperature",
        unique_identifier=uid,
        dt_from=T0,
        dt_to=T0 + timedelta(hours=1),
    )
    return [row["value"] for row in rows]


def test_a_sensor_deleted_after_the_check_sinks_only_its_own_messages(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk write fails on it; the batch is then written message by message, and the
    deleted sensor's message is dead-lettered."""
    checked = telemetry._targets

    def check_then_delete(session: Session, uids: set[str]) -> Any:
        found = checked(session, uids)
        sensors.delete_sensor(session, unique_identifier="dev-2")  # as a concurrent delete
        return found

    monkeypatch.setattr(telemetry, "_targets", check_then_delete)
    summary = telemetry.store_telemetry(
        session,
        deliveries=[message("dev-1", 0, 1.0), message("dev-2", 0, 2.0), message("dev-3", 0, 3.0)],
        source="iothub",
        now=T0,
    )
    assert summary.as_dict() == {
        "messages": 3,
        "stored": 2,
        "inserted": 2,
        "duplicates": 0,
        "dead_lettered": 1,
    }
    assert stored(session, "dev-1") == [1.0] and stored(session, "dev-3") == [3.0]
    (letter,) = session.scalars(sa.select(TelemetryDeadLetter)).all()
    assert letter.device_id == "dev-2" and letter.reason == "Sensor 'dev-2' does not exist"


def test_one_bulk_write_for_the_whole_batch(
    session: Session, migrated: support.TestDatabase
) -> None:
    """Messages of one sensor merge into one series: the statements do not grow with them."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(migrated.engine, "before_cursor_execute", count)
    try:
        telemetry.store_telemetry(
            session,
            deliveries=[message("dev-1", i, float(i)) for i in range(200)],
            source="mqtt",
            now=T0,
        )
    finally:
        sa.event.remove(migrated.engine, "before_cursor_execute", count)
    assert stored(session, "dev-1") == [float(i) for i in range(200)]
    assert len(statements) <= 8, statements
