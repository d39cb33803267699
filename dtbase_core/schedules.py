"""Service schedules: run a service with a parameter set on an NCRONTAB expression
(docs/api.md, Schedules; docs/architecture.md, Schedules).

A schedule names its service, optionally one of the service's parameter sets, an
expression (six fields, seconds first, UTC; dtbase_core/cron.py) and whether it is enabled.

`dispatch(session, now=...)` is what the dispatcher timer runs (function_app/schedules.py,
every DT_SCHEDULE_DISPATCH). For each enabled schedule it finds the latest occurrence at or
before `now` and after the schedule's watermark (the latest occurrence considered), and
starts that one only: after downtime a schedule runs once, for its latest missed
occurrence, not once per occurrence missed. Safe with several instances on one database:

- each schedule row is taken `FOR UPDATE SKIP LOCKED`, so one dispatcher at a time reads
  and moves its watermark (another skips it: the one holding it starts what is due);
- the occurrence itself is a row (schedule, occurrence) inserted ON CONFLICT DO NOTHING:
  the insert that succeeds starts the run; any other finds it there and starts nothing.

Starting a run is run-service's first phase (`services.start_run`: the run-log row,
`running`, naming the schedule), in the same transaction as the occurrence row and the
watermark, so that an occurrence is claimed and its run logged together or not at all.
The caller then starts each run's orchestration as run-service does. `now` is a parameter
everywhere, so tests move the clock without sleeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core import parameter_schemas, services
from dtbase_core.cron import Cron, CronError
from dtbase_core.errors import AlreadyExists, Invalid, NotFound
from dtbase_core.orm import (
    Service,
    ServiceParameterSet,
    ServiceRunLog,
    ServiceSchedule,
    ServiceScheduleOccurrence,
)
from dtbase_core.orm.services import RunStatus
from dtbase_core.timeutil import utcnow

log = logging.getLogger(__name__)

SCHEDULE_MISSING = "Schedule does not exist."
SCHEDULE_EXISTS = "Schedule already exists."
NEXT_FIRE_TIMES = 3
# Status code of a scheduled run refused before any call: its parameters no longer
# satisfy the service's schema (the set or the schema changed since it was scheduled).
INVALID_PARAMETERS = 422
# Occurrence rows older than this are deleted as their schedule is dispatched: only recent
# ones can still be raced for, and the run log keeps the history.
KEEP_OCCURRENCES = timedelta(days=7)


def parse_cron(expression: str) -> Cron:
    """The expression, or a 422 naming `cron` and what is wrong with it."""
    try:
        return Cron(expression)
    except CronError as exc:
        raise Invalid(f"cron: {exc}", loc=("body", "cron")) from exc


def _service(session: Session, service_name: str) -> tuple[int, Any]:
    found = session.execute(
        sa.select(Service.id, Service.parameters_schema).where(Service.name == service_name)
    ).first()
    if found is None:
        raise NotFound(services.SERVICE_MISSING)
    return found[0], found[1]


def _parameter_set(
    session: Session, *, service_id: int, service_name: str, name: str | None, schema: Any
) -> int | None:
    """The set's id (None for none); it must exist and satisfy the service's schema now."""
    if name is None:
        return None
    found = session.execute(
        sa.select(ServiceParameterSet.id, ServiceParameterSet.parameters).where(
            ServiceParameterSet.service_id == service_id, ServiceParameterSet.name == name
        )
    ).first()
    if found is None:
        raise NotFound(services.SET_MISSING)
    parameter_schemas.validate(
        schema,
        found[1],
        service_name=service_name,
        loc=("body", "parameter_set_name"),
        source=f"parameter set '{name}'",
    )
    return int(found[0])


def insert_schedule(
    session: Session,
    *,
    service_name: str,
    name: str,
    cron: str,
    parameter_set_name: str | None = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> None:
    """A new schedule; it first fires at its first occurrence after `now`."""
    expression = parse_cron(cron).expression
    service_id, schema = _service(session, service_name)
    set_id = _parameter_set(
        session,
        service_id=service_id,
        service_name=service_name,
        name=parameter_set_name,
        schema=schema,
    )
    inserted = session.scalar(
        insert(ServiceSchedule)
        .values(
            service_id=service_id,
            name=name,
            parameter_set_id=set_id,
            cron=expression,
            enabled=enabled,
            watermark=now or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[ServiceSchedule.service_id, ServiceSchedule.name])
        .returning(ServiceSchedule.id)
    )
    if inserted is None:
        raise AlreadyExists(SCHEDULE_EXISTS)


def _locked_schedule(session: Session, service_name: str, name: str) -> ServiceSchedule:
    schedule = session.scalar(
        sa.select(ServiceSchedule)
        .join(Service, Service.id == ServiceSchedule.service_id)
        .where(Service.name == service_name, ServiceSchedule.name == name)
        .with_for_update(of=ServiceSchedule)
    )
    if schedule is None:
        raise NotFound(SCHEDULE_MISSING)
    return schedule


def update_schedule(
    session: Session,
    *,
    service_name: str,
    name: str,
    changes: dict[str, Any],
    now: datetime | None = None,
) -> None:
    """Change the fields in `changes` (`parameter_set_name`, `cron`, `enabled`). A schedule
    enabled again, or given a new expression, starts afresh from `now`: what it would have
    fired meanwhile is not run."""
    now = now or utcnow()
    schedule = _locked_schedule(session, service_name, name)
    if "cron" in changes and changes["cron"] is not None:
        expression = parse_cron(changes["cron"]).expression
        if expression != schedule.cron:
            schedule.cron = expression
            schedule.watermark = now
    if "parameter_set_name" in changes:
        _, schema = _service(session, service_name)
        schedule.parameter_set_id = _parameter_set(
            session,
            service_id=schedule.service_id,
            service_name=service_name,
            name=changes["parameter_set_name"],
            schema=schema,
        )
    if changes.get("enabled") is not None and changes["enabled"] != schedule.enabled:
        schedule.enabled = changes["enabled"]
        if schedule.enabled:
            schedule.watermark = now
    session.flush()


def delete_schedule(session: Session, *, service_name: str, name: str) -> None:
    """Its runs stay in the log, without a schedule."""
    deleted = session.scalar(
        sa.delete(ServiceSchedule)
        .where(
            ServiceSchedule.service_id
            == sa.select(Service.id).where(Service.name == service_name).scalar_subquery(),
            ServiceSchedule.name == name,
        )
        .returning(ServiceSchedule.id)
    )
    if deleted is None:
        raise NotFound(SCHEDULE_MISSING)


def next_fire_times(expression: str, now: datetime, count: int = NEXT_FIRE_TIMES) -> list[datetime]:
    """The next `count` occurrences after `now`; none for an expression that no longer
    parses (checked when stored, but a parser may grow stricter)."""
    try:
        return Cron(expression).next_times(now, count)
    except CronError:
        return []


def list_schedules(
    session: Session, *, service_name: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every schedule (by service, then as created) with its next fire times after `now`
    (none while disabled) and its latest run."""
    now = now or utcnow()
    last_run = (
        sa.select(
            ServiceRunLog.id,
            ServiceRunLog.status,
            ServiceRunLog.response_status_code,
            ServiceRunLog.timestamp,
        )
        .where(ServiceRunLog.schedule_id == ServiceSchedule.id)
        .order_by(ServiceRunLog.id.desc())
        .limit(1)
        .lateral("last_run")
    )
    query = (
        sa.select(
            Service.name.label("service_name"),
            ServiceSchedule.name,
            ServiceParameterSet.name.label("parameter_set_name"),
            ServiceSchedule.cron,
            ServiceSchedule.enabled,
            last_run.c.id.label("run_id"),
            last_run.c.status,
            last_run.c.response_status_code,
            last_run.c.timestamp,
        )
        .join(Service, Service.id == ServiceSchedule.service_id)
        .outerjoin(ServiceParameterSet, ServiceParameterSet.id == ServiceSchedule.parameter_set_id)
        .outerjoin(last_run, sa.true())
        .order_by(Service.id, ServiceSchedule.id)
    )
    if service_name is not None:
        query = query.where(Service.name == service_name)
    listed = []
    for row in session.execute(query):
        listed.append(
            {
                "service_name": row.service_name,
                "name": row.name,
                "parameter_set_name": row.parameter_set_name,
                "cron": row.cron,
                "enabled": row.enabled,
                "next_fire_times": next_fire_times(row.cron, now) if row.enabled else [],
                "last_run": None
                if row.run_id is None
                else {
                    "run_id": row.run_id,
                    "status": row.status,
                    "status_code": row.response_status_code,
                    "timestamp": row.timestamp,
                },
            }
        )
    return listed


@dataclass(frozen=True)
class Started:
    """A run the dispatcher logged as `running`: its orchestration is the caller's to start."""

    schedule: str
    service_name: str
    occurrence: datetime
    run_id: int
    target: services.RunTarget


def _claim(session: Session, schedule_id: int, occurrence: datetime) -> bool:
    """True for the one transaction whose insert of (schedule, occurrence) goes in."""
    return (
        session.scalar(
            insert(ServiceScheduleOccurrence)
            .values(schedule_id=schedule_id, occurrence=occurrence)
            .on_conflict_do_nothing()
            .returning(ServiceScheduleOccurrence.schedule_id)
        )
        is not None
    )


def _refused(session: Session, row: Any, exc: Invalid, now: datetime) -> int:
    """A failed run in the log, when the set no longer satisfies the service's schema:
    nothing is called, and the schedule shows why in its last run."""
    run_id = session.scalar(
        sa.insert(ServiceRunLog)
        .values(
            service_id=row.service_id,
            parameter_set_id=row.parameter_set_id,
            parameters=sa.literal(row.parameters, ServiceRunLog.parameters.type),
            response_status_code=INVALID_PARAMETERS,
            response_json=None,
            timestamp=now,
            status=RunStatus.FAILED.value,
            detail=f"Parameters refused: {exc.detail}"[:2000],
            finished_at=now,
            schedule_id=row.id,
        )
        .returning(ServiceRunLog.id)
    )
    assert run_id is not None
    return run_id


def dispatch(session: Session, *, now: datetime) -> list[Started]:
    """Start every enabled schedule's due occurrence (at most one each: the latest at or
    before `now`, after its watermark); the runs started, for their orchestrations."""
    due = session.execute(
        sa.select(
            ServiceSchedule.id,
            ServiceSchedule.name,
            ServiceSchedule.cron,
            ServiceSchedule.watermark,
            ServiceSchedule.service_id,
            ServiceSchedule.parameter_set_id,
            Service.name.label("service_name"),
            ServiceParameterSet.name.label("set_name"),
            ServiceParameterSet.parameters,
        )
        .join(Service, Service.id == ServiceSchedule.service_id)
        .outerjoin(ServiceParameterSet, ServiceParameterSet.id == ServiceSchedule.parameter_set_id)
        .where(ServiceSchedule.enabled, ServiceSchedule.watermark < now)
        .order_by(ServiceSchedule.id)
        .with_for_update(of=ServiceSchedule, skip_locked=True)
    ).all()
    started = []
    for row in due:
        try:
            # A savepoint each: a schedule whose dispatch fails for its own reasons (logged)
            # is tried again at the next dispatch, and the others go ahead now.
            with session.begin_nested():
                run = _dispatch_one(session, row, now)
        except sa.exc.DBAPIError:
            raise  # the database's own (a conflict, a lost connection): the whole dispatch
        except Exception:
            log.exception("schedule %s/%s: dispatch failed", row.service_name, row.name)
            continue
        if run is not None:
            started.append(run)
    return started


def _dispatch_one(session: Session, row: Any, now: datetime) -> Started | None:
    """Start the schedule's due occurrence, if any; the run to orchestrate (None when none
    is due, another dispatcher started it, or its parameters were refused)."""
    try:
        occurrence = Cron(row.cron).latest_at_or_before(now)
    except CronError:  # stored before a stricter parser: never due, and said so
        log.warning("schedule %s/%s: bad expression %r", row.service_name, row.name, row.cron)
        return None
    if occurrence is None or occurrence <= row.watermark:
        return None
    session.execute(
        sa.update(ServiceSchedule)
        .where(ServiceSchedule.id == row.id)
        .values(watermark=sa.func.greatest(ServiceSchedule.watermark, occurrence))
    )
    if not _claim(session, row.id, occurrence):
        return None  # another dispatcher started it
    session.execute(
        sa.delete(ServiceScheduleOccurrence).where(
            ServiceScheduleOccurrence.schedule_id == row.id,
            ServiceScheduleOccurrence.occurrence < occurrence - KEEP_OCCURRENCES,
        )
    )
    target: services.RunTarget | None
    savepoint = session.begin_nested()
    try:
        target, run_id = services.start_run(
            session,
            service_name=row.service_name,
            parameter_set_name=row.set_name,
            schedule_id=row.id,
        )
    except Invalid as exc:
        savepoint.rollback()
        run_id = _refused(session, row, exc, now)
        target = None
    else:
        savepoint.commit()
    session.execute(
        sa.update(ServiceScheduleOccurrence)
        .where(
            ServiceScheduleOccurrence.schedule_id == row.id,
            ServiceScheduleOccurrence.occurrence == occurrence,
        )
        .values(run_id=run_id)
    )
    log.info(
        "schedule %s/%s: occurrence %s, run %d",
        row.service_name,
        row.name,
        occurrence.isoformat(),
        run_id,
    )
    if target is None:
        return None
    return Started(row.name, row.service_name, occurrence, run_id, target)
