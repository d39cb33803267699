"""The write path's two ways in (dtbase_core/readings.py): new readings by binary COPY,
anything else by INSERT ... ON CONFLICT, with the same results and exact rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import readings
from dtbase_core.orm.base import Datatype
from tests.support import TestDatabase
from tests.test_writes import assert_rollups_exact

START = datetime(2021, 6, 1, 23, 30, tzinfo=UTC)
BIG = 2**63 - 1


@pytest.fixture
def session(sensor_per_datatype: Session) -> Session:
    return sensor_per_datatype


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many readings each COPY wrote, in order."""
    written: list[int] = []
    copy = readings._copy_series

    def counted(*args: Any) -> int:
        written.append(copy(*args))
        return written[-1]

    monkeypatch.setattr(readings, "_copy_series", counted)
    return written


def insert(session: Session, datatype: Datatype, values: list[Any], seconds: list[int]) -> Any:
    counts = readings.insert_sensor_readings(
        session,
        measure_name=datatype.value,
        unique_identifier=datatype.value,
        readings=values,
        timestamps=[START + timedelta(seconds=s) for s in seconds],
    )
    session.commit()
    return counts


def stored(session: Session, datatype: Datatype) -> list[tuple[datetime, Any]]:
    rows = readings.sensor_readings(
        session,
        measure_name=datatype.value,
        unique_identifier=datatype.value,
        dt_from=START - timedelta(days=1),
        dt_to=START + timedelta(days=10),
    )
    return [(row["timestamp"], row["value"]) for row in rows]


def test_new_readings_go_by_copy_in_chunks_and_fill_the_rollups(
    session: Session, database: TestDatabase, copies: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readings, "COPY_CHUNK", 7)
    seconds = [s * 97 for s in range(200)][::-1]  # out of order, across six hours
    values = [s / 4 - 1e3 for s in range(200)][::-1]
    assert insert(session, Datatype.FLOAT, values, seconds) == {"inserted": 200, "duplicates": 0}
    assert copies == [200]
    want = sorted((START + timedelta(seconds=s), v) for s, v in zip(seconds, values, strict=True))
    assert stored(session, Datatype.FLOAT) == want
    assert assert_rollups_exact(database) == 6


def test_readings_meeting_stored_ones_go_by_insert_and_count_the_duplicates(
    session: Session, database: TestDatabase, copies: list[int]
) -> None:
    insert(session, Datatype.FLOAT, [1.0, 2.0], [0, 3600])
    # Overlaps the stored span, though no timestamp is stored: not a COPY either.
    counts = insert(session, Datatype.FLOAT, [9.0, 5.0, 6.0], [3600, 1800, 7200])
    assert counts == {"inserted": 2, "duplicates": 1}
    assert copies == [2]
    assert [v for _, v in stored(session, Datatype.FLOAT)] == [1.0, 5.0, 2.0, 6.0]
    assert assert_rollups_exact(database) == 3


def test_a_timestamp_twice_in_one_request_is_stored_once(
    session: Session, database: TestDatabase, copies: list[int]
) -> None:
    assert insert(session, Datatype.FLOAT, [1.0, 2.0, 3.0], [5, 9, 5]) == {
        "inserted": 2,
        "duplicates": 1,
    }
    assert copies == []
    assert [v for _, v in stored(session, Datatype.FLOAT)] == [1.0, 2.0]
    assert_rollups_exact(database)


def test_integers_keep_every_bit_and_their_sums_stay_exact(
    session: Session, database: TestDatabase, copies: list[int]
) -> None:
    values = [BIG, BIG, -BIG - 1, 3, -(2**53) - 1]
    assert insert(session, Datatype.INTEGER, values, [0, 1, 2, 3, 4])["inserted"] == 5
    assert copies == [5]
    assert [v for _, v in stored(session, Datatype.INTEGER)] == values
    assert_rollups_exact(database, "sensor_integer_reading")
    with database.engine.connect() as conn:
        total = conn.scalar(sa.text("select sum from sensor_reading_hourly"))
    assert total == float(sum(values))


def test_booleans_by_copy_and_strings_by_insert(
    session: Session, database: TestDatabase, copies: list[int]
) -> None:
    assert insert(session, Datatype.BOOLEAN, [True, False, True], [0, 1, 2])["inserted"] == 3
    assert insert(session, Datatype.STRING, ["a", "", "é\tb"], [0, 1, 2])["inserted"] == 3
    assert copies == [3]
    assert [v for _, v in stored(session, Datatype.BOOLEAN)] == [True, False, True]
    assert [v for _, v in stored(session, Datatype.STRING)] == ["a", "", "é\tb"]
    with database.engine.connect() as conn:  # no rollups for either
        assert conn.scalar(sa.text("select count(*) from sensor_reading_hourly")) == 0


def test_a_failed_request_leaves_nothing(session: Session, copies: list[int]) -> None:
    from dtbase_core.errors import Invalid

    series = [
        {
            "measure_name": "float",
            "unique_identifier": "float",
            "readings": [1.0, 2.0],
            "timestamps": [START, START + timedelta(seconds=1)],
        },
        {
            "measure_name": "integer",
            "unique_identifier": "integer",
            "readings": [1, 2.5],
            "timestamps": [START, START + timedelta(seconds=1)],
        },
    ]
    with pytest.raises(Invalid, match=r"series\.1\.readings\.1: 2\.5 is not a valid integer"):
        readings.insert_readings_bulk(session, series=series)
    session.rollback()
    assert stored(session, Datatype.FLOAT) == []
