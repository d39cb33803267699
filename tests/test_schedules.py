"""Schedules in the core (dtbase_core/schedules.py), with the clock injected: each
occurrence starts once, with two dispatchers on one database too; after downtime a
schedule runs once; disabled schedules do not fire; the next fire times and the last run
are listed. Also the NCRONTAB parser (dtbase_core/cron.py).

Times are in 2031, after any real clock the suite's hosts run on: their dispatchers
(every minute, on the same database) never find these schedules due."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import schedules, services
from dtbase_core.cron import Cron, CronError
from dtbase_core.errors import AlreadyExists, Conflict, Invalid, NotFound
from dtbase_core.orm import ServiceRunLog, ServiceSchedule, ServiceScheduleOccurrence
from dtbase_core.orm.base import HttpMethod
from tests.support import TestDatabase

T0 = datetime(2031, 3, 1, 12, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def db(database: TestDatabase) -> Iterator[TestDatabase]:
    from dtbase_core.migrations import upgrade

    upgrade(database.url)
    database.truncate_all()
    yield database


def _session(db: TestDatabase) -> Session:
    return Session(db.engine)


def _service(db: TestDatabase, name: str = "svc", schema: dict | None = None) -> None:
    with _session(db) as session, session.begin():
        services.insert_service(
            session,
            name=name,
            url="http://127.0.0.1:9/run",
            http_method=HttpMethod.POST,
            parameters_schema=schema,
        )


def _schedule(db: TestDatabase, name: str, cron: str, *, now: datetime = T0, **kw) -> None:
    with _session(db) as session, session.begin():
        schedules.insert_schedule(
            session, service_name=kw.pop("service", "svc"), name=name, cron=cron, now=now, **kw
        )


def _dispatch(db: TestDatabase, now: datetime) -> list[schedules.Started]:
    with _session(db) as session, session.begin():
        return schedules.dispatch(session, now=now)


def _count(db: TestDatabase, table: type) -> int:
    with _session(db) as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


# --- the parser -----------------------------------------------------------------------


def test_cron_is_six_field_ncrontab() -> None:
    cron = Cron("0 */15 * * * *")
    assert cron.next_times(T0, 3) == [
        datetime(2031, 3, 1, 12, 15, tzinfo=UTC),
        datetime(2031, 3, 1, 12, 30, tzinfo=UTC),
        datetime(2031, 3, 1, 12, 45, tzinfo=UTC),
    ]
    assert cron.latest_at_or_before(T0) == datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
    # At an occurrence exactly: that occurrence.
    assert cron.latest_at_or_before(datetime(2031, 3, 1, 12, 15, tzinfo=UTC)) == datetime(
        2031, 3, 1, 12, 15, tzinfo=UTC
    )
    # Seconds first: 30 past each minute.
    assert Cron("30 * * * * *").next_after(T0) == T0 + MINUTE
    # NCrontab: the day must match day-of-month AND day-of-week (1 March 2031 is a
    # Saturday; the first Monday the 1st after it is 1 September 2031).
    assert Cron("0 0 0 1 * MON").next_after(T0) == datetime(2031, 9, 1, tzinfo=UTC)
    for bad in ("* * * * *", "0 0 25 * * *", "x * * * * *", "0 0 0 31 2 * 1", "0 0 0 30 2 *"):
        with pytest.raises(CronError, match="NCRONTAB"):
            Cron(bad)
    # Valid fields that no date satisfies (the 5th Sunday of a 7th of January or February).
    with pytest.raises(CronError, match="never fires"):
        Cron("0 0 0 7 1,2 SUN#5")
    assert len(Cron("0 0 0 29 2 *").next_times(T0, 3)) == 3  # leap days only


# --- schedules ------------------------------------------------------------------------


def test_each_occurrence_starts_once(db: TestDatabase) -> None:
    _service(db)
    _schedule(db, "every minute", "0 * * * * *")
    assert _dispatch(db, T0 + timedelta(seconds=10)) == []  # nothing due since creation
    at = datetime(2031, 3, 1, 12, 1, 0, 200_000, tzinfo=UTC)
    started = _dispatch(db, at)
    assert [(s.schedule, s.occurrence) for s in started] == [
        ("every minute", datetime(2031, 3, 1, 12, 1, tzinfo=UTC))
    ]
    assert started[0].target.url == "http://127.0.0.1:9/run"
    assert _dispatch(db, at + timedelta(seconds=5)) == []  # the same occurrence: not again
    assert _dispatch(db, at + timedelta(seconds=59)) == []
    again = _dispatch(db, at + MINUTE)
    assert [s.occurrence for s in again] == [datetime(2031, 3, 1, 12, 2, tzinfo=UTC)]
    with _session(db) as session:
        runs = services.list_runs(session, service_name="svc")
    assert [(r["status"], r["schedule_name"]) for r in runs] == [
        ("running", "every minute"),
        ("running", "every minute"),
    ]
    assert [r["run_id"] for r in runs] == [started[0].run_id, again[0].run_id]


def test_the_occurrence_row_decides_even_with_a_stale_watermark(db: TestDatabase) -> None:
    """A dispatcher that read the schedule before another moved its watermark still cannot
    start the occurrence again: its insert of (schedule, occurrence) finds the row."""
    _service(db)
    _schedule(db, "s", "0 * * * * *")
    at = T0 + MINUTE
    assert len(_dispatch(db, at)) == 1
    with _session(db) as session, session.begin():
        session.execute(sa.update(ServiceSchedule).values(watermark=T0))
    assert _dispatch(db, at) == []
    assert _count(db, ServiceRunLog) == 1 and _count(db, ServiceScheduleOccurrence) == 1


def _dispatch_together(db: TestDatabase, now: datetime) -> list[schedules.Started]:
    """Two dispatchers, each in its own transaction, dispatching at the same moment."""
    barrier = threading.Barrier(2)
    results: list[list[schedules.Started]] = [[], []]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with _session(db) as session, session.begin():
                barrier.wait(10)
                results[index] = schedules.dispatch(session, now=now)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    return results[0] + results[1]


def test_two_dispatchers_at_once_start_each_occurrence_once(db: TestDatabase) -> None:
    _service(db)
    names = [f"s{i}" for i in range(12)]
    for name in names:
        _schedule(db, name, "0 * * * * *")
    at = T0 + MINUTE
    for tick in range(3):
        started = _dispatch_together(db, at + tick * MINUTE)
        assert sorted(s.schedule for s in started) == sorted(names), tick
    assert _count(db, ServiceRunLog) == 3 * len(names)
    assert _count(db, ServiceScheduleOccurrence) == 3 * len(names)


def test_after_downtime_a_schedule_runs_once_for_its_latest_occurrence(db: TestDatabase) -> None:
    _service(db)
    _schedule(db, "minutely", "0 * * * * *")
    _schedule(db, "hourly", "0 0 * * * *")
    back = T0 + timedelta(hours=5, seconds=7)  # down for five hours
    started = {s.schedule: s.occurrence for s in _dispatch(db, back)}
    assert started == {
        "minutely": datetime(2031, 3, 1, 17, 0, tzinfo=UTC),
        "hourly": datetime(2031, 3, 1, 17, 0, tzinfo=UTC),
    }
    assert _dispatch(db, back + timedelta(seconds=20)) == []
    assert [s.schedule for s in _dispatch(db, back + MINUTE)] == ["minutely"]
    assert _count(db, ServiceRunLog) == 3
    # A week later: the occurrence rows of a week ago go (the run log keeps them).
    later = back + schedules.KEEP_OCCURRENCES + timedelta(minutes=2)
    assert len(_dispatch(db, later)) == 2
    with _session(db) as session:
        kept = session.scalars(
            sa.select(ServiceScheduleOccurrence.occurrence).order_by(
                ServiceScheduleOccurrence.occurrence
            )
        ).all()
    # The minutely schedule's two rows of 1 March went; the hourly's is just a week old.
    assert kept == [
        datetime(2031, 3, 1, 17, 0, tzinfo=UTC),
        datetime(2031, 3, 8, 17, 0, tzinfo=UTC),
        datetime(2031, 3, 8, 17, 2, tzinfo=UTC),
    ]
    assert _count(db, ServiceRunLog) == 5


def test_disabled_schedules_do_not_fire_and_start_afresh_when_enabled(db: TestDatabase) -> None:
    _service(db)
    _schedule(db, "off", "0 * * * * *", enabled=False)
    assert _dispatch(db, T0 + 10 * MINUTE) == []
    enabled_at = T0 + timedelta(minutes=20)
    with _session(db) as session, session.begin():
        schedules.update_schedule(
            session, service_name="svc", name="off", changes={"enabled": True}, now=enabled_at
        )
    # What it would have run while disabled is not caught up.
    assert _dispatch(db, enabled_at + timedelta(seconds=5)) == []
    assert [s.occurrence for s in _dispatch(db, enabled_at + MINUTE)] == [
        datetime(2031, 3, 1, 12, 21, tzinfo=UTC)
    ]
    with _session(db) as session, session.begin():
        schedules.update_schedule(
            session, service_name="svc", name="off", changes={"enabled": False}, now=enabled_at
        )
    assert _dispatch(db, enabled_at + 5 * MINUTE) == []


def test_listing_shows_the_next_three_fire_times_and_the_last_run(db: TestDatabase) -> None:
    _service(db)
    with _session(db) as session, session.begin():
        services.insert_parameter_set(session, service_name="svc", name="p", parameters={"a": 1})
    _schedule(db, "daily", "0 30 6 * * *", parameter_set_name="p")
    _schedule(db, "paused", "0 0 * * * *", enabled=False)
    with _session(db) as session:
        listed = schedules.list_schedules(session, now=T0)
    assert listed == [
        {
            "service_name": "svc",
            "name": "daily",
            "parameter_set_name": "p",
            "cron": "0 30 6 * * *",
            "enabled": True,
            "next_fire_times": [
                datetime(2031, 3, 2, 6, 30, tzinfo=UTC),
                datetime(2031, 3, 3, 6, 30, tzinfo=UTC),
                datetime(2031, 3, 4, 6, 30, tzinfo=UTC),
            ],
            "last_run": None,
        },
        {
            "service_name": "svc",
            "name": "paused",
            "parameter_set_name": None,
            "cron": "0 0 * * * *",
            "enabled": False,
            "next_fire_times": [],
            "last_run": None,
        },
    ]
    first = _dispatch(db, datetime(2031, 3, 2, 6, 30, 1, tzinfo=UTC))
    second = _dispatch(db, datetime(2031, 3, 3, 6, 30, 1, tzinfo=UTC))
    with _session(db) as session:
        daily = schedules.list_schedules(session, service_name="svc", now=T0)[0]
        run = services.run_status(session, run_id=second[0].run_id)
    assert first[0].run_id != second[0].run_id
    assert daily["last_run"] == {
        "run_id": second[0].run_id,
        "status": "running",
        "status_code": 202,
        "timestamp": daily["last_run"]["timestamp"],
    }
    assert run["parameter_set_name"] == "p" and run["parameters"] == {"a": 1}


def test_bad_input_names_the_field(db: TestDatabase) -> None:
    _service(db)
    with _session(db) as session:
        with pytest.raises(Invalid) as bad:
            schedules.insert_schedule(session, service_name="svc", name="x", cron="* * * * *")
        assert bad.value.loc == ("body", "cron") and "six fields" in bad.value.detail
        with pytest.raises(NotFound, match="Service does not exist"):
            schedules.insert_schedule(session, service_name="nope", name="x", cron="0 * * * * *")
        with pytest.raises(NotFound, match="Parameter set does not exist"):
            schedules.insert_schedule(
                session, service_name="svc", name="x", cron="0 * * * * *", parameter_set_name="q"
            )
        with pytest.raises(NotFound, match="Schedule does not exist"):
            schedules.update_schedule(session, service_name="svc", name="x", changes={})
        with pytest.raises(NotFound, match="Schedule does not exist"):
            schedules.delete_schedule(session, service_name="svc", name="x")
    _schedule(db, "x", "0 * * * * *")
    with _session(db) as session, pytest.raises(AlreadyExists):
        schedules.insert_schedule(session, service_name="svc", name="x", cron="0 0 * * * *")


def test_a_scheduled_set_cannot_be_deleted_and_a_deleted_schedule_keeps_its_runs(
    db: TestDatabase,
) -> None:
    _service(db)
    with _session(db) as session, session.begin():
        services.insert_parameter_set(session, service_name="svc", name="p", parameters={})
    _schedule(db, "uses p", "0 * * * * *", parameter_set_name="p")
    with _session(db) as session, pytest.raises(Conflict, match="'uses p'"):
        services.delete_parameter_set(session, service_name="svc", name="p")
    assert len(_dispatch(db, T0 + MINUTE)) == 1
    with _session(db) as session, session.begin():
        schedules.delete_schedule(session, service_name="svc", name="uses p")
        services.delete_parameter_set(session, service_name="svc", name="p")
    with _session(db) as session:
        runs = services.list_runs(session)
    assert len(runs) == 1 and "schedule_name" not in runs[0]


def test_a_set_the_schema_now_refuses_is_a_failed_run_not_a_call(db: TestDatabase) -> None:
    """The schema changed after the set was scheduled: the run is logged as failed (422,
    naming the path) and nothing is started."""
    _service(db, schema={"type": "object"})
    with _session(db) as session, session.begin():
        services.insert_parameter_set(
            session, service_name="svc", name="p", parameters={"days": -3}
        )
    _schedule(db, "s", "0 * * * * *", parameter_set_name="p")
    with _session(db) as session, session.begin():
        session.execute(
            sa.text(
                "update service set parameters_schema = "
                """'{"properties": {"days": {"type": "integer", "minimum": 1}}}'"""
            )
        )
    assert _dispatch(db, T0 + MINUTE) == []
    with _session(db) as session:
        (run,) = services.list_runs(session)
        listed = schedules.list_schedules(session, now=T0)
    assert run["status"] == "failed" and run["response_status_code"] == 422
    assert "parameters.days: -3 is less than the minimum of 1" in run["detail"]
    assert listed[0]["last_run"]["status"] == "failed"
    assert _count(db, ServiceScheduleOccurrence) == 1


def test_a_schedule_that_fails_to_dispatch_does_not_hold_up_the_others(
    db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its claim and watermark are undone, so the next dispatch tries it again."""
    _service(db)
    _service(db, "other")
    _schedule(db, "broken", "0 * * * * *")
    _schedule(db, "fine", "0 * * * * *", service="other")
    real = services.start_run

    def start_run(session: Session, **kw):
        if kw["service_name"] == "svc":
            raise RuntimeError("something unforeseen")
        return real(session, **kw)

    monkeypatch.setattr(services, "start_run", start_run)
    assert [s.schedule for s in _dispatch(db, T0 + MINUTE)] == ["fine"]
    assert _count(db, ServiceScheduleOccurrence) == 1
    monkeypatch.setattr(services, "start_run", real)
    assert [s.schedule for s in _dispatch(db, T0 + MINUTE)] == ["broken"]
    assert _count(db, ServiceRunLog) == 2


def test_a_new_expression_starts_from_when_it_was_given(db: TestDatabase) -> None:
    """Changed from hourly to every minute at 12:30: nothing before 12:30 is run, and the
    next run is 12:31's."""
    _service(db)
    _schedule(db, "s", "0 0 * * * *")
    changed_at = T0 + timedelta(minutes=30)
    with _session(db) as session, session.begin():
        schedules.update_schedule(
            session, service_name="svc", name="s", changes={"cron": "0  *  * * * *"}, now=changed_at
        )
        (listed,) = schedules.list_schedules(session, now=changed_at)
    assert listed["cron"] == "0 * * * * *"  # stored with single spaces
    assert _dispatch(db, changed_at + timedelta(seconds=10)) == []
    assert [s.occurrence for s in _dispatch(db, changed_at + MINUTE)] == [
        datetime(2031, 3, 1, 12, 31, tzinfo=UTC)
    ]
