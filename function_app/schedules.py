"""/service schedules and their dispatcher (docs/api.md, Schedules; docs/architecture.md,
Schedules).

The routes keep schedules; the timer `schedule_dispatch_timer` (every
DT_SCHEDULE_DISPATCH, default every minute) runs `schedules.dispatch` in one transaction
(the due occurrences claimed, their runs logged `running`), then starts each run's
orchestration as run-service does (`service_run_orchestrator`), so that a scheduled run
appears in list-runs and run-status like any other.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from dtbase_core import schedules, services
from dtbase_core.apikeys import Scope
from dtbase_core.config import get_settings
from dtbase_core.roles import Role
from dtbase_core.schemas.schedules import (
    ScheduleIn,
    ScheduleKeyIn,
    ScheduleOut,
    ScheduleUpdateIn,
)
from dtbase_core.timeutil import utcnow
from function_app.http import Call, endpoint, in_transaction
from function_app.services import start_orchestration

log = logging.getLogger(__name__)

bp = df.Blueprint()

MISSING = f"{services.SERVICE_MISSING} / {services.SET_MISSING} / {schedules.SCHEDULE_MISSING}"


@endpoint(
    bp,
    "service/insert-schedule",
    body=ScheduleIn,
    status=201,
    errors={
        400: f"{services.SERVICE_MISSING} / {services.SET_MISSING}",
        409: schedules.SCHEDULE_EXISTS,
        422: "A bad cron expression, or a parameter set its service's schema refuses",
    },
)
def insert_schedule(call: Call[ScheduleIn]) -> Any:
    """Schedule a service on an NCRONTAB expression (six fields, seconds first, UTC).

    With one of its parameter sets, or none."""
    schedules.insert_schedule(call.session, **call.body.model_dump())
    return {"detail": "Schedule created successfully."}


@endpoint(
    bp,
    "service/list-schedules",
    method="GET",
    response=list[ScheduleOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_schedules(call: Call[None]) -> Any:
    """Every schedule with its next three fire times and its latest run.

    `?service_name=` lists one service's."""
    service_name = call.request.params.get("service_name") or None
    return schedules.list_schedules(call.session, service_name=service_name)


@endpoint(
    bp,
    "service/update-schedule",
    body=ScheduleUpdateIn,
    errors={400: MISSING, 422: "A bad cron expression, or a set the service's schema refuses"},
)
def update_schedule(call: Call[ScheduleUpdateIn]) -> Any:
    """Change a schedule's parameter set, expression or enabled flag (only those given)."""
    body = call.body
    fields = body.model_fields_set - {"service_name", "name"}
    changes = {key: getattr(body, key) for key in fields}
    schedules.update_schedule(
        call.session, service_name=body.service_name, name=body.name, changes=changes
    )
    return {"detail": "Schedule updated successfully."}


@endpoint(
    bp, "service/delete-schedule", body=ScheduleKeyIn, errors={400: schedules.SCHEDULE_MISSING}
)
def delete_schedule(call: Call[ScheduleKeyIn]) -> Any:
    """Delete a schedule; the runs it started stay in the log."""
    schedules.delete_schedule(call.session, **call.body.model_dump())
    return {"detail": "Schedule deleted successfully."}


@bp.function_name("schedule_dispatch_timer")
@bp.timer_trigger(schedule="%DT_SCHEDULE_DISPATCH%", arg_name="timer")
@bp.durable_client_input(client_name="client")
async def schedule_dispatch_timer(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Every DT_SCHEDULE_DISPATCH (default every minute): start the due schedules, each
    occurrence once however many instances run this."""
    now = utcnow()
    started = await in_transaction(lambda session: schedules.dispatch(session, now=now))
    limit = get_settings().services.service_run_max_seconds
    for run in started:
        failed = await start_orchestration(client, run.run_id, run.target, limit)
        log.info(
            "schedule %s/%s: run %d %s",
            run.service_name,
            run.schedule,
            run.run_id,
            "could not be started" if failed else "started",
        )
