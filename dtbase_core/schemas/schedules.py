"""Bodies and replies of the schedule routes under /service (docs/api.md, Schedules)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool

from dtbase_core.schemas.common import Body, Name
from dtbase_core.schemas.services import RunState

# Checked further by the core (dtbase_core/cron.py): six NCRONTAB fields, seconds first.
CronText = Annotated[str, Field(min_length=1, max_length=200, examples=["0 0 * * * *"])]


class ScheduleIn(Body):
    service_name: Name
    name: Name
    # None: the service is called with no parameters.
    parameter_set_name: Name | None = None
    # NCRONTAB, seconds first, UTC: "0 30 6 * * *" is 06:30:00 UTC every day.
    cron: CronText
    enabled: StrictBool = True


class ScheduleUpdateIn(Body):
    """Only the fields given change; `"parameter_set_name": null` runs the service with
    no parameters from then on."""

    service_name: Name
    name: Name
    parameter_set_name: Name | None = None
    cron: CronText | None = None
    enabled: StrictBool | None = None


class ScheduleKeyIn(Body):
    service_name: Name
    name: Name


class LastRunOut(BaseModel):
    run_id: int
    status: RunState
    # The service's status code (or run-service's own for a failed run); 202 while running.
    status_code: int
    # When the run started.
    timestamp: datetime


class ScheduleOut(BaseModel):
    service_name: str
    name: str
    parameter_set_name: str | None
    cron: str
    enabled: bool
    # The next three occurrences (UTC); empty while the schedule is disabled.
    next_fire_times: list[datetime]
    # The latest run it started, or null.
    last_run: LastRunOut | None
