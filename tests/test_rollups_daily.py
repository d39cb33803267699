"""Daily rollups kept with the hourly ones, and calendar buckets in a time zone
(aggregation.py, docs/api.md, Sensors)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from dtbase_core import aggregation
from dtbase_core.aggregation import Buckets, choose_source
from dtbase_core.errors import Invalid
from dtbase_core.migrations import alembic_config
from dtbase_core.orm import Datatype
from dtbase_core.schemas.sensors import parse_interval
from tests.support import Api, TestDatabase
from tests.test_migrations import _engine, scratch_database
from tests.test_writes import assert_rollups_exact

AGGREGATIONS = ("mean", "min", "max", "sum", "count", "first", "last")


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def make_series(api: Api, datatype: str = "float", uid: str = "s") -> None:
    api.ok(
        "/sensor/insert-sensor-type",
        {"name": f"t-{uid}", "measures": [{"name": "m", "units": "C", "datatype": datatype}]},
        201,
    )
    api.ok("/sensor/insert-sensor", {"type_name": f"t-{uid}", "unique_identifier": uid}, 201)


def write(api: Api, stamps: list[datetime], values: list[Any], uid: str = "s", **extra: Any) -> Any:
    return api.ok(
        "/sensor/insert-sensor-readings",
        {
            "measure_name": "m",
            "unique_identifier": uid,
            "readings": values,
            "timestamps": [iso(t) for t in stamps],
            **extra,
        },
        201,
    )


def aggregated(api: Api, dt_from: datetime, dt_to: datetime, **body: Any) -> list[Any]:
    rows = api.ok(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "m",
            "unique_identifier": "s",
            "dt_from": iso(dt_from),
            "dt_to": iso(dt_to),
            **body,
        },
    )
    return [(r["timestamp"], r["value"]) for r in rows]


# --- daily rollups follow every write ------------------------------------------------------


@pytest.mark.parametrize("datatype", ["float", "integer"])
def test_daily_rollups_equal_the_readings_after_every_kind_of_write(
    admin: Api, clean_db: TestDatabase, datatype: str
) -> None:
    make_series(admin, datatype)
    rng = random.Random(3)
    value = (lambda: rng.randint(-99, 99)) if datatype == "integer" else (lambda: rng.random())
    start = datetime(2025, 3, 28, 21, 17, tzinfo=UTC)
    minutes = list(range(0, 4 * 24 * 60, 13))  # four days: the COPY path
    write(admin, [start + timedelta(minutes=m) for m in minutes], [value() for _ in minutes])
    assert_rollups_exact(clean_db, f"sensor_{datatype}_reading")
    # Duplicates mixed with new readings, across days: INSERT ... ON CONFLICT DO NOTHING.
    mixed = rng.sample(minutes, 50) + [m + 5 for m in rng.sample(minutes, 50)]
    reply = write(admin, [start + timedelta(minutes=m) for m in mixed], [value() for _ in mixed])
    assert reply["duplicates"] == 50
    assert_rollups_exact(clean_db, f"sensor_{datatype}_reading")
    # Overwrites (new extremes, first and last values of days) and new readings.
    changed = [0, 13, 24 * 60 - 2, 24 * 60 + 4, minutes[-1], minutes[-1] + 600]
    write(
        admin,
        [start + timedelta(minutes=m) for m in changed],
        [1000 * (i + 1) for i in range(len(changed))],
        on_conflict="update",
    )
    assert assert_rollups_exact(clean_db, f"sensor_{datatype}_reading") > 96  # hours
    with clean_db.engine.connect() as conn:
        assert (
            conn.scalar(sa.text("select count(*) from sensor_reading_daily")) == 6
        )  # 28 Mar-2 Apr
        assert conn.scalar(sa.text("select max(max) from sensor_reading_daily")) == 6000
    # Deleting the sensor deletes its rollups too.
    admin.ok("/sensor/delete-sensor", {"unique_identifier": "s"})
    with clean_db.engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from sensor_reading_daily")) == 0


def test_the_migration_folds_the_hourly_rollups_into_days(database: TestDatabase) -> None:
    with scratch_database(database, "daily") as url:
        command.upgrade(alembic_config(url), "0017")
        engine = _engine(url)
        day = "2025-01-0"
        rows = [  # (hour, count, sum, min, max, first ts, first, last ts, last)
            (f"{day}1 00:00Z", 2, 3.0, 1.0, 2.0, f"{day}1 00:10Z", 1.0, f"{day}1 00:50Z", 2.0),
            (f"{day}1 23:00Z", 1, 7.0, 7.0, 7.0, f"{day}1 23:05Z", 7.0, f"{day}1 23:05Z", 7.0),
            (f"{day}2 00:00Z", 1, -1.0, -1.0, -1.0, f"{day}2 00:01Z", -1.0, f"{day}2 00:01Z", -1.0),
        ]
        with engine.begin() as conn:
            for row in rows:
                conn.execute(
                    sa.text(
                        "insert into sensor_reading_hourly values (1, 2, :h, :c, :s, :lo, :hi, "
                        ":ft, :f, :lt, :l)"
                    ),
                    dict(zip(("h", "c", "s", "lo", "hi", "ft", "f", "lt", "l"), row, strict=True)),
                )
        command.upgrade(alembic_config(url), "0019")
        with engine.connect() as conn:
            daily = conn.execute(
                sa.text(
                    "select to_char(day at time zone 'UTC', 'YYYY-MM-DD HH24:MI'), count, sum, "
                    "min, max, first_value, last_value from sensor_reading_daily order by day"
                )
            ).all()
        engine.dispose()
        assert [tuple(r) for r in daily] == [
            ("2025-01-01 00:00", 3, 10.0, 1.0, 7.0, 1.0, 7.0),
            ("2025-01-02 00:00", 1, -1.0, -1.0, -1.0, -1.0, -1.0),
        ]


# --- calendar buckets in a zone -------------------------------------------------------------


def test_day_buckets_are_local_days_across_dst(admin: Api) -> None:
    make_series(admin)
    start = datetime(2025, 3, 28, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(24 * 6)]
    write(admin, hours, [1.0] * len(hours))
    # Europe/London springs forward on 30 March: that local day has 23 hours.
    got = aggregated(
        admin,
        datetime(2025, 3, 29, tzinfo=UTC),
        datetime(2025, 4, 1, 12, tzinfo=UTC),
        interval="1d",
        aggregation="count",
        timezone="Europe/London",
    )
    assert got == [
        ("2025-03-29T00:00:00Z", 24),
        ("2025-03-30T00:00:00Z", 23),  # BST from 01:00 UTC: the next day starts 23:00 UTC
        ("2025-03-30T23:00:00Z", 24),
        ("2025-03-31T23:00:00Z", 14),  # to dt_to, inclusive
    ]
    # Asia/Kolkata (+5:30): days start at 18:30 UTC; the first bucket starts before dt_from.
    got = aggregated(
        admin,
        datetime(2025, 3, 29, tzinfo=UTC),
        datetime(2025, 3, 30, 23, tzinfo=UTC),
        interval="1d",
        aggregation="count",
        timezone="Asia/Kolkata",
    )
    assert got == [
        ("2025-03-28T18:30:00Z", 19),
        ("2025-03-29T18:30:00Z", 24),
        ("2025-03-30T18:30:00Z", 5),
    ]
    # Hours on the local hour: half past in UTC.
    got = aggregated(
        admin,
        datetime(2025, 3, 29, 2, 10, tzinfo=UTC),
        datetime(2025, 3, 29, 4, tzinfo=UTC),
        interval="1h",
        aggregation="count",
        timezone="Asia/Kolkata",
    )
    assert got == [("2025-03-29T02:30:00Z", 1), ("2025-03-29T03:30:00Z", 1)]
    # UTC by default: days from midnight UTC, not from dt_from (DTBase's buckets started
    # at dt_from).
    got = aggregated(
        admin,
        datetime(2025, 3, 29, 20, tzinfo=UTC),
        datetime(2025, 3, 30, 23, 59, tzinfo=UTC),
        interval="1d",
        aggregation="count",
    )
    assert got == [("2025-03-29T00:00:00Z", 4), ("2025-03-30T00:00:00Z", 24)]
    # Weeks start on Monday, local midnight.
    got = aggregated(
        admin,
        start,
        start + timedelta(days=5),
        interval="1w",
        aggregation="count",
        timezone="Europe/London",
    )
    assert got == [("2025-03-24T00:00:00Z", 71), ("2025-03-30T23:00:00Z", 50)]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "localtime", "", "utc+1", 5])
def test_an_unknown_zone_is_a_422_naming_the_field(admin: Api, zone: Any) -> None:
    make_series(admin)
    reply = admin.post(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "m",
            "unique_identifier": "s",
            "dt_from": "2025-01-01T00:00:00Z",
            "dt_to": "2025-01-02T00:00:00Z",
            "interval": "1d",
            "aggregation": "mean",
            "timezone": zone,
        },
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "timezone"]


def test_the_coarsest_rollup_that_fits_is_read() -> None:
    def source(
        interval: str,
        zone: str,
        dt_from: datetime,
        dt_to: datetime,
        datatype: Datatype = Datatype.FLOAT,
    ) -> str:
        return choose_source(
            datatype, Buckets.of(parse_interval(interval), zone, dt_from), dt_from, dt_to
        )

    year = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    assert source("1d", "UTC", *year) == "daily"
    assert source("1w", "UTC", *year) == "daily"
    assert source("1d", "UTC", year[0] + timedelta(hours=10, minutes=3), year[1]) == "daily"
    assert source("1d", "Europe/London", *year) == "hourly"  # offsets 0 and +1
    assert source("1w", "Europe/London", *year) == "hourly"
    assert source("6h", "UTC", *year) == "hourly"
    assert source("1h", "Europe/London", *year) == "hourly"
    assert source("1d", "Asia/Kolkata", *year) == "readings"  # +5:30
    assert source("1h", "Asia/Kolkata", *year) == "readings"
    assert source("15min", "UTC", *year) == "readings"
    assert source("90min", "UTC", *year) == "readings"
    assert source("1d", "UTC", *year, datatype=Datatype.STRING) == "readings"
    inside_an_hour = (year[0] + timedelta(minutes=5), year[0] + timedelta(minutes=50))
    assert source("1h", "UTC", *inside_an_hour) == "readings"
    inside_a_day = (year[0] + timedelta(hours=5), year[0] + timedelta(hours=20))
    assert source("1d", "UTC", *inside_a_day) == "hourly"


def expected_buckets(
    readings: list[tuple[datetime, float]],
    dt_from: datetime,
    dt_to: datetime,
    interval: str,
    zone: str,
    aggregation: str,
) -> list[tuple[datetime, float]]:
    """The aggregates computed here, from the readings alone, with zoneinfo's calendar."""
    tz, step = ZoneInfo(zone), parse_interval(interval)
    local_day = dt_from.astimezone(tz).date()

    def start(ts: datetime) -> datetime:
        if step % timedelta(days=1):
            origin = datetime.combine(local_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
            return origin + (ts - origin) // step * step
        day = ts.astimezone(tz).date()
        first = date(2000, 1, 3) if step % timedelta(weeks=1) == timedelta(0) else local_day
        bucket_day = first + (day - first) // step * step
        return datetime.combine(bucket_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)

    buckets: dict[datetime, list[tuple[datetime, float]]] = {}
    for ts, v in sorted(readings):
        if dt_from <= ts <= dt_to:
            buckets.setdefault(start(ts), []).append((ts, v))
    combine = {
        "count": len,
        "sum": lambda b: sum(v for _, v in b),
        "mean": lambda b: sum(v for _, v in b) / len(b),
        "min": lambda b: min(v for _, v in b),
        "max": lambda b: max(v for _, v in b),
        "first": lambda b: b[0][1],
        "last": lambda b: b[-1][1],
    }[aggregation]
    return [(at, combine(b)) for at, b in sorted(buckets.items())]


def test_rollup_and_reading_paths_equal_a_computation_from_the_readings(
    admin: Api, clean_db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random readings around both of London's 2025 DST changes, random ranges (on and
    off bucket boundaries), in three zones: whatever source is chosen, and the readings
    alone, give what zoneinfo's calendar and Python's arithmetic give."""
    make_series(admin)
    rng = random.Random(11)
    readings: list[tuple[datetime, float]] = []
    for first in (datetime(2025, 3, 26, tzinfo=UTC), datetime(2025, 10, 23, tzinfo=UTC)):
        seconds = sorted(rng.sample(range(8 * 24 * 3600), 1500))
        readings += [(first + timedelta(seconds=s), rng.uniform(-10, 10)) for s in seconds]
    for at in range(0, len(readings), 700):  # several writes: rollups folded repeatedly
        part = readings[at : at + 700]
        write(admin, [t for t, _ in part], [v for _, v in part])
    sources: set[str] = set()
    chosen = aggregation.choose_source

    def spy(*args: Any) -> str:
        found = chosen(*args)
        sources.add(found)
        return found

    for zone in ("UTC", "Europe/London", "Asia/Kolkata"):
        for interval in ("15min", "1h", "2h", "1d", "3d", "1w"):
            for _ in range(2):
                lo = datetime(2025, 3, 25, tzinfo=UTC) + timedelta(
                    hours=rng.choice([0, 23, 48, 71]), minutes=rng.choice([0, 0, 30, 17])
                )
                hi = lo + timedelta(days=rng.choice([1, 5, 220]), minutes=rng.choice([0, 41]))
                for forced in (None, "readings"):
                    monkeypatch.setattr(
                        aggregation,
                        "choose_source",
                        spy if forced is None else lambda *args: "readings",
                    )
                    with Session(clean_db.engine) as session:
                        for name in AGGREGATIONS:
                            got = aggregation.aggregated_readings(
                                session,
                                measure_name="m",
                                unique_identifier="s",
                                dt_from=lo,
                                dt_to=hi,
                                interval=interval,
                                aggregation=name,
                                timezone=zone,
                            )
                            want = expected_buckets(readings, lo, hi, interval, zone, name)
                            where = (zone, interval, iso(lo), iso(hi), name, forced)
                            assert [r["timestamp"] for r in got] == [t for t, _ in want], where
                            assert [r["value"] for r in got] == pytest.approx(
                                [v for _, v in want], rel=1e-9, abs=1e-9
                            ), where
    assert sources == {"daily", "hourly", "readings"}


def test_a_zone_unknown_to_python_or_to_postgresql_is_invalid(
    admin: Api, clean_db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the schema (the route's 422 above): a zone that the database's time zone data
    lacks, though this process's has it, is a 422 naming the field too."""
    make_series(admin)
    write(admin, [datetime(2025, 1, 1, tzinfo=UTC)], [1.0])
    query = {
        "measure_name": "m",
        "unique_identifier": "s",
        "dt_from": datetime(2025, 1, 1, tzinfo=UTC),
        "dt_to": datetime(2025, 1, 3, tzinfo=UTC),
        "interval": "1d",
        "aggregation": "mean",
    }
    with Session(clean_db.engine) as session:
        with pytest.raises(Invalid) as caught:
            aggregation.aggregated_readings(session, **query, timezone="Nowhere/Atlantis")
        assert caught.value.loc == ("body", "timezone")
    monkeypatch.setattr(aggregation, "ZoneInfo", lambda name: ZoneInfo("UTC"))
    with Session(clean_db.engine) as session:
        with pytest.raises(Invalid) as caught:
            aggregation.aggregated_readings(session, **query, timezone="Nowhere/Atlantis")
        assert caught.value.loc == ("body", "timezone")
        assert "Nowhere/Atlantis" in str(caught.value)
