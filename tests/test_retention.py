"""Retention (docs/api.md, Retention): a sensor type's retention_days, the removal of
expired raw readings in batches with the rollups kept, the pruning of old operational rows,
the routes' validation and the daily timer's function."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from dtbase_core import retention
from tests.support import Api, TestDatabase

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=35)  # readings every 10 minutes for 10 days from here
CUTOFF = NOW - timedelta(days=30)  # the "short" type keeps 30 days
PER_SERIES = 10 * 144
EXPIRED = 5 * 144  # per series, before the cutoff
MEASURES = [
    {"name": "temperature", "units": "degC", "datatype": "float"},
    {"name": "count", "units": None, "datatype": "integer"},
    {"name": "raining", "units": None, "datatype": "boolean"},
]
AGGREGATIONS = ["mean", "min", "max", "sum", "count", "first", "last"]


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def stamps(start: datetime, count: int) -> list[str]:
    return [iso(start + timedelta(minutes=10 * i)) for i in range(count)]


def fill(api: Api, uid: str, start: datetime = START, count: int = PER_SERIES) -> None:
    """Ten days of readings of every measure of the sensor."""
    values: dict[str, list[Any]] = {
        "temperature": [round(i * 0.37 % 23, 2) for i in range(count)],
        "count": [i % 17 for i in range(count)],
        "raining": [i % 3 == 0 for i in range(count)],
    }
    for measure, readings in values.items():
        api.ok(
            "/sensor/insert-sensor-readings",
            {
                "unique_identifier": uid,
                "measure_name": measure,
                "readings": readings,
                "timestamps": stamps(start, count),
            },
            201,
        )


def sensor_type(api: Api, name: str, retention_days: int | None, *uids: str) -> None:
    body: dict[str, Any] = {"name": name, "measures": MEASURES}
    if retention_days is not None:
        body["retention_days"] = retention_days
    api.ok("/sensor/insert-sensor-type", body, 201)
    for uid in uids:
        api.ok("/sensor/insert-sensor", {"type_name": name, "unique_identifier": uid}, 201)


def raw(api: Api, uid: str, measure: str, dt_from: datetime, dt_to: datetime) -> list[Any]:
    body = {"unique_identifier": uid, "measure_name": measure}
    return api.ok(  # type: ignore[no-any-return]
        "/sensor/sensor-readings", {**body, "dt_from": iso(dt_from), "dt_to": iso(dt_to)}
    )


def hourly(api: Api, uid: str, measure: str, aggregation: str) -> list[Any]:
    """Hourly buckets over the whole span, the removed part included."""
    return api.ok(  # type: ignore[no-any-return]
        "/sensor/sensor-readings-aggregated",
        {
            "unique_identifier": uid,
            "measure_name": measure,
            "dt_from": iso(START),
            "dt_to": iso(START + timedelta(days=10)),
            "interval": "1h",
            "aggregation": aggregation,
        },
    )


class Transactions:
    """A `session_scope` over the test database that counts the transactions it opened."""

    def __init__(self, db: TestDatabase) -> None:
        self.factory = sessionmaker(db.engine)
        self.opened = 0
        self.lock = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        with self.lock:
            self.opened += 1
        with self.factory() as session, session.begin():
            yield session


def count_rows(db: TestDatabase, table: str, where: str = "true", **params: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(sa.text(f"select count(*) from {table} where {where}"), params))


@pytest.fixture
def twin(admin: Api) -> Api:
    """Sensor type "short" (30 days) with s-1 and s-2, "keep" (forever) with k-1, each with
    ten days of readings from 35 days before NOW."""
    sensor_type(admin, "short", None, "s-1", "s-2")
    sensor_type(admin, "keep", None, "k-1")
    for uid in ("s-1", "s-2", "k-1"):
        fill(admin, uid)
    retain(admin, "short", 30)
    return admin


def retain(api: Api, type_name: str, days: int) -> None:
    """Set the retention after the readings went in: older ones are refused at ingest (the
    tests' NOW lies months before the clock's)."""
    api.ok("/sensor/set-retention", {"type_name": type_name, "retention_days": days})


# --- readings -------------------------------------------------------------------------------


def test_expired_readings_go_and_the_rest_stays(twin: Api, clean_db: TestDatabase) -> None:
    before = {
        (uid, measure["name"], aggregation): hourly(twin, uid, measure["name"], aggregation)
        for uid in ("s-1", "k-1")
        for measure in MEASURES[:2]
        for aggregation in AGGREGATIONS
    }
    kept = raw(twin, "s-1", "temperature", CUTOFF, NOW)
    rollups = count_rows(clean_db, "sensor_reading_hourly")

    removed = retention.remove_expired_readings(Transactions(clean_db), now=NOW)

    assert removed == {"short": 2 * 3 * EXPIRED}
    for uid in ("s-1", "s-2"):
        for measure in MEASURES:
            # dt_to is inclusive: up to just before the cutoff.
            before_cutoff = CUTOFF - timedelta(microseconds=1)
            assert raw(twin, uid, measure["name"], START, before_cutoff) == []
            assert len(raw(twin, uid, measure["name"], CUTOFF, NOW)) == PER_SERIES - EXPIRED
    # The reading at the cutoff itself is not older than it: it stays.
    assert (
        kept[0]["timestamp"] == iso(CUTOFF) and raw(twin, "s-1", "temperature", CUTOFF, NOW) == kept
    )
    # Another type's readings, and every rollup, are untouched.
    for measure in MEASURES:
        assert len(raw(twin, "k-1", measure["name"], START, NOW)) == PER_SERIES
    assert count_rows(clean_db, "sensor_reading_hourly") == rollups
    # Hourly aggregates over the removed range read the rollups: the same values as before.
    for (uid, measure, aggregation), buckets in before.items():
        assert len(buckets) == 240
        assert hourly(twin, uid, measure, aggregation) == buckets, (uid, measure, aggregation)
    # Idempotent: nothing is due a second time.
    assert retention.remove_expired_readings(Transactions(clean_db), now=NOW) == {"short": 0}


def test_removal_goes_in_batches_of_primary_key_ranges(admin: Api, clean_db: TestDatabase) -> None:
    sensor_type(admin, "short", None, "s-1")
    fill(admin, "s-1")
    retain(admin, "short", 30)
    transactions = Transactions(clean_db)
    removed = retention.remove_expired_readings(transactions, now=NOW, batch_rows=100)
    assert removed == {"short": 3 * EXPIRED}
    # One transaction listing the series, then per series 7 full batches of 100 and the
    # last 20: each batch a transaction of its own.
    assert EXPIRED == 720
    assert transactions.opened == 1 + 3 * 8
    assert count_rows(clean_db, "sensor_float_reading") == PER_SERIES - EXPIRED


def test_two_runs_at_once_remove_each_row_once(twin: Api, clean_db: TestDatabase) -> None:
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            results.append(
                retention.remove_expired_readings(Transactions(clean_db), now=NOW, batch_rows=50)
            )
        except BaseException as exc:  # reported below, with the other thread's outcome
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(result["short"] for result in results) == 2 * 3 * EXPIRED
    assert count_rows(clean_db, "sensor_float_reading") == 3 * PER_SERIES - 2 * EXPIRED


def test_a_batch_waits_for_the_series_write_lock(admin: Api, clean_db: TestDatabase) -> None:
    """The removal takes the lock an insert of the series holds (dtbase_core/readings.py),
    so a write and a batch take turns."""
    sensor_type(admin, "short", None, "s-1")
    fill(admin, "s-1")
    retain(admin, "short", 30)
    with clean_db.engine.connect() as conn:
        sensor_id, measure_id = conn.execute(
            sa.text(
                "select s.id, m.id from sensor s, sensor_measure m "
                "where s.unique_identifier = 's-1' and m.name = 'temperature'"
            )
        ).one()
    holder = clean_db.engine.connect()
    holder.begin()
    holder.execute(
        sa.text("select pg_advisory_xact_lock(:s, :m)"), {"s": sensor_id, "m": measure_id}
    )
    results: list[dict[str, int]] = []
    worker = threading.Thread(
        target=lambda: results.append(
            retention.remove_expired_readings(Transactions(clean_db), now=NOW)
        )
    )
    worker.start()
    try:
        waiting = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        with clean_db.engine.connect() as conn:
            for _ in range(600):  # until the worker queues behind the lock (at most a minute)
                if conn.scalar(sa.text(waiting)):
                    break
                worker.join(0.1)
            assert conn.scalar(sa.text(waiting)) == 1
        assert results == []  # blocked, not done
    finally:
        holder.rollback()
        holder.close()
        worker.join()
    assert results == [{"short": 3 * EXPIRED}]


def test_readings_older_than_the_retention_are_refused_on_every_ingest_path(
    admin: Api, clean_db: TestDatabase
) -> None:
    """Their raw rows may have been removed while the rollups keep them: stored again, they
    would count twice there."""
    sensor_type(admin, "short", 30, "s-1")
    now = datetime.now(UTC)
    fresh, old = iso(now - timedelta(days=29)), iso(now - timedelta(days=31))
    one = {"unique_identifier": "s-1", "measure_name": "temperature", "readings": [1.0, 2.0]}
    reply = admin.post("/sensor/insert-sensor-readings", {**one, "timestamps": [fresh, old]})
    assert reply.status_code == 422, reply.text
    (error,) = reply.json()["detail"]
    assert error["loc"] == ["body", "timestamps", 1]
    assert "older than the sensor type's retention of 30 days" in error["msg"]
    bulk = {
        "series": [{**one, "timestamps": [fresh, iso(now)]}, {**one, "timestamps": [old, fresh]}]
    }
    reply = admin.post("/sensor/insert-readings-bulk", bulk)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "series", 1, "timestamps", 0]
    assert count_rows(clean_db, "sensor_float_reading") == 0  # nothing of either request
    admin.ok("/sensor/insert-sensor-readings", {**one, "timestamps": [fresh, iso(now)]}, 201)
    assert count_rows(clean_db, "sensor_float_reading") == 2


def test_types_without_retention_or_sensors(admin: Api, clean_db: TestDatabase) -> None:
    sensor_type(admin, "keep", None, "k-1")
    sensor_type(admin, "empty", 1)
    fill(admin, "k-1")
    assert retention.remove_expired_readings(Transactions(clean_db), now=NOW) == {"empty": 0}
    assert count_rows(clean_db, "sensor_integer_reading") == PER_SERIES


# --- operational rows -----------------------------------------------------------------------


def old_rows(db: TestDatabase) -> None:
    """Audit events, deliveries and dead letters on either side of their default ages."""
    with db.engine.begin() as conn:
        for days in (366, 366, 400, 364):
            conn.execute(
                sa.text(
                    "insert into audit_event (at, actor_kind, actor, method, route, status) "
                    "values (:at, 'user', 'a@b', 'POST', 'sensor/insert-sensor', 201)"
                ),
                {"at": NOW - timedelta(days=days)},
            )
        for days, status in [
            (91, "delivered"),
            (120, "delivered"),
            (91, "dead"),
            (89, "delivered"),
            (89, "dead"),
            (200, "pending"),  # never pruned, however old
            (91, "pending"),
        ]:
            created = NOW - timedelta(days=days)
            delivery_id = conn.scalar(
                sa.text(
                    "insert into notification_delivery (channel_name, event, status, "
                    "next_attempt_at, created_at, delivered_at) values ('ops', '{}', :status, "
                    ":created, :created, :delivered) returning id"
                ),
                {
                    "status": status,
                    "created": created,
                    "delivered": created if status == "delivered" else None,
                },
            )
            conn.execute(
                sa.text(
                    "insert into notification_attempt (delivery_id, at, duration_ms) "
                    "values (:id, :at, 5)"
                ),
                {"id": delivery_id, "at": created},
            )
        for index, days in enumerate((31, 45, 29)):
            conn.execute(
                sa.text(
                    "insert into telemetry_dead_letter (received_at, source, payload, "
                    "payload_bytes, reason, digest) values (:at, 'mqtt', 'x', 1, 'bad', :digest)"
                ),
                {"at": NOW - timedelta(days=days), "digest": bytes([index]) * 32},
            )


def prune(transactions: Callable[[], AbstractContextManager[Session]], rows: int) -> Any:
    return retention.prune_operational(
        transactions,
        now=NOW,
        audit_days=365,
        delivery_days=90,
        dead_letter_days=30,
        batch_rows=rows,
    )


def test_old_operational_rows_are_pruned_pending_work_never(clean_db: TestDatabase) -> None:
    old_rows(clean_db)
    transactions = Transactions(clean_db)
    assert prune(transactions, 2) == {
        "audit_event": 3,
        "notification_delivery": 3,
        "telemetry_dead_letter": 2,
    }
    # Batches of 2: audit 2 + 1, deliveries 2 + 1, dead letters 2 + 0.
    assert transactions.opened == 6
    assert count_rows(clean_db, "audit_event", "at < :t", t=NOW - timedelta(days=365)) == 0
    assert count_rows(clean_db, "audit_event") == 1
    with clean_db.engine.connect() as conn:
        left = conn.execute(
            sa.text(
                "select status, extract(day from :now - created_at)::int from "
                "notification_delivery order by 2, 1"
            ),
            {"now": NOW},
        ).all()
    assert [tuple(row) for row in left] == [
        ("dead", 89),
        ("delivered", 89),
        ("pending", 91),
        ("pending", 200),
    ]
    assert count_rows(clean_db, "notification_attempt") == 4  # the pruned ones' went along
    assert count_rows(clean_db, "telemetry_dead_letter") == 1
    assert prune(transactions, 2) == {
        "audit_event": 0,
        "notification_delivery": 0,
        "telemetry_dead_letter": 0,
    }


def test_two_prunes_at_once_count_each_row_once(clean_db: TestDatabase) -> None:
    old_rows(clean_db)
    results: list[dict[str, int]] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        results.append(prune(Transactions(clean_db), 1))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    totals = {table: sum(result[table] for result in results) for table in results[0]}
    assert totals == {"audit_event": 3, "notification_delivery": 3, "telemetry_dead_letter": 2}


# --- the routes -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, "30", True, 36501, [30]])
def test_retention_days_must_be_a_whole_number_of_days(admin: Api, bad: Any) -> None:
    reply = admin.post(
        "/sensor/insert-sensor-type", {"name": "t", "measures": [], "retention_days": bad}
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "retention_days"]
    admin.ok("/sensor/insert-sensor-type", {"name": "t", "measures": []}, 201)
    reply = admin.post("/sensor/set-retention", {"type_name": "t", "retention_days": bad})
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "retention_days"]
    assert admin.get("/sensor/list-sensor-types").json()[0]["retention_days"] is None


def test_set_retention(admin: Api, clean_db: TestDatabase) -> None:
    admin.ok(
        "/sensor/insert-sensor-type", {"name": "t", "measures": [], "retention_days": 36500}, 201
    )
    assert admin.get("/sensor/list-sensor-types").json()[0]["retention_days"] == 36500
    body = {"type_name": "t", "retention_days": 30}
    assert admin.ok("/sensor/set-retention", body) == {"detail": "Retention set"}
    assert admin.get("/sensor/list-sensor-types").json()[0]["retention_days"] == 30
    # Required, so that a forgotten field does not clear it; null keeps readings forever.
    missing = admin.post("/sensor/set-retention", {"type_name": "t"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "body",
        "retention_days",
    ]
    admin.ok("/sensor/set-retention", {"type_name": "t", "retention_days": None})
    assert admin.get("/sensor/list-sensor-types").json()[0]["retention_days"] is None
    unknown = admin.post("/sensor/set-retention", {"type_name": "ghost", "retention_days": 3})
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Sensor type 'ghost' does not exist"}
    # Recorded in the audit log as a write.
    events = admin.ok("/audit/list-events", {"action": "sensor/set-retention"})
    assert [(e["status"], e["target"]) for e in events][-1] == (200, "type_name=t")
    assert {e["status"] for e in events} == {200, 404, 422}


def test_set_retention_is_for_admins(admin: Api) -> None:
    admin.ok("/sensor/insert-sensor-type", {"name": "t", "measures": []}, 201)
    admin.ok(
        "/user/create-user",
        {"email": "ed@example.com", "password": "editor-password-1", "role": "editor"},
        201,
    )
    editor = Api(admin.base, "ed@example.com", "editor-password-1")
    try:
        reply = editor.post("/sensor/set-retention", {"type_name": "t", "retention_days": 3})
        assert reply.status_code == 403
        assert reply.json() == {"detail": "Only admins may set a sensor type's retention"}
        assert editor.get("/sensor/list-sensor-types").json()[0]["retention_days"] is None
    finally:
        editor.close()


def test_readings_retained_from(admin: Api) -> None:
    sensor_type(admin, "short", 30, "s-1")
    sensor_type(admin, "keep", None, "k-1")
    reply = admin.ok("/sensor/readings-retained-from", {"unique_identifier": "s-1"})
    retained = datetime.fromisoformat(reply["retained_from"])
    expected = datetime.now(UTC) - timedelta(days=30)
    assert abs(retained - expected) < timedelta(minutes=5)
    assert reply["retained_from"].endswith("Z")
    assert admin.ok("/sensor/readings-retained-from", {"unique_identifier": "k-1"}) == {
        "retained_from": None
    }
    unknown = admin.post("/sensor/readings-retained-from", {"unique_identifier": "ghost"})
    assert unknown.status_code == 400
    assert unknown.json() == {"detail": "Sensor 'ghost' does not exist"}
    # A read: not in the audit log.
    events = admin.ok("/audit/list-events", {"action": "sensor/readings-retained-from"})
    assert events == []


# --- the timer ------------------------------------------------------------------------------


def test_the_timer_function_removes_and_prunes(
    admin: Api,
    clean_db: TestDatabase,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The timer's function, called as the local scheduler (or Azure) calls it, on the
    real clock: readings from 40 days ago for a type keeping 30."""
    import azure.functions.timer as timer

    from dtbase_core.config import reset_settings
    from dtbase_core.db import dispose_engine
    from function_app.retention import retention_timer

    assert retention_timer._function.get_trigger().schedule == "%DT_RETENTION_SCHEDULE%"
    sensor_type(admin, "short", None, "s-1")
    now = datetime.now(UTC).replace(microsecond=0)
    fill(admin, "s-1", start=now - timedelta(days=40), count=144)  # one day, all expired
    fill(admin, "s-1", start=now - timedelta(days=1), count=6)  # an hour, kept
    retain(admin, "short", 30)
    with clean_db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit_event (at, actor_kind, actor, method, route, status) "
                "values (:at, 'user', 'a@b', 'POST', 'x', 200)"
            ),
            {"at": now - timedelta(days=11)},
        )
    monkeypatch.setenv("DT_DATABASE_URL", clean_db.url)
    monkeypatch.setenv("DT_JWT_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DT_RETENTION_BATCH_ROWS", "50")
    monkeypatch.setenv("DT_RETENTION_AUDIT_DAYS", "10")
    reset_settings()
    dispose_engine()
    caplog.set_level(logging.INFO, logger="function_app.retention")
    try:
        retention_timer(timer.TimerRequest(past_due=False))
    finally:
        monkeypatch.undo()
        reset_settings()
        dispose_engine()
    for measure in MEASURES:
        left = raw(admin, "s-1", measure["name"], now - timedelta(days=41), now)
        assert len(left) == 6
    assert "retention: 432 raw readings of sensor type 'short' removed" in caplog.messages
    assert any("'audit_event': 1" in message for message in caplog.messages)
    assert count_rows(clean_db, "audit_event", "route = 'x'") == 0
