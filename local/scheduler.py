"""Timer-triggered functions on the local host, fired on their NCRONTAB schedules.

As the Functions host does: six fields, seconds first (`0 */5 * * * *`), in UTC;
`%SETTING%` in a schedule is read from the environment (the app settings), with the
documented defaults of the app's own settings when they are unset (on Azure, the infra
sets them: an unset setting fails indexing there); `run_on_startup` fires once at start;
a function's runs never overlap (an occurrence missed while it runs is skipped), and
hosts sharing a database fire each occurrence once (a timer is a singleton); the
function gets an `azure.functions.timer.TimerRequest`, and its durable client binding
if it declares one. Also accepted, as on App Service plans: a TimeSpan `hh:mm:ss`
(every interval, from start).

The clock is injectable (`Clock.now()` and `await Clock.sleep_until(moment)`), so tests
check fire times against the schedule without sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from dtbase_core.config import SCHEDULE_DEFAULTS
from dtbase_core.cron import Cron, CronError

log = logging.getLogger(__name__)

# The app settings the function app's timers name, and the defaults the infra program
# deploys: an unset one resolves to its default here, as it would on Azure.
DEFAULT_SETTINGS = SCHEDULE_DEFAULTS

PAST_DUE_AFTER = timedelta(seconds=1)
_SETTING = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


class ScheduleError(ValueError):
    """A timer's schedule cannot be resolved or parsed."""


def resolve_schedule(expression: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each `%NAME%` with the app setting NAME (or its documented default)."""
    env = os.environ if environ is None else environ

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        value = env.get(name) or DEFAULT_SETTINGS.get(name)
        if not value:
            raise ScheduleError(f"schedule {expression!r}: the app setting {name} is not set")
        return value

    return _SETTING.sub(setting, expression).strip()


class Schedule:
    """A resolved timer schedule: NCRONTAB (six fields; dtbase_core/cron.py) or a TimeSpan."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.interval: timedelta | None = None
        self._cron: Cron | None = None
        span = _TIMESPAN.match(expression)
        if span:
            days, hours, minutes, seconds = (int(g or 0) for g in span.groups())
            self.interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            if self.interval <= timedelta(0):
                raise ScheduleError(f"schedule {expression!r}: the interval must be positive")
            return
        try:
            self._cron = Cron(expression)
        except CronError as exc:
            raise ScheduleError(f"schedule {exc}") from exc

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (aware, UTC)."""
        if self.interval is not None:
            return moment + self.interval
        assert self._cron is not None
        return self._cron.next_after(moment)


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, moment: datetime) -> None: ...


class SystemClock:
    """Real time, UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        while True:
            delay = (moment - self.now()).total_seconds()
            if delay <= 0:
                return
            await asyncio.sleep(min(delay, 60.0))  # re-check: the wall clock may jump


@dataclass
class TimerJob:
    function: Any
    name: str
    arg_name: str
    schedule: Schedule
    run_on_startup: bool


@dataclass
class Firing:
    """One invocation, as recorded for diagnostics and tests."""

    name: str
    scheduled: datetime | None  # None: run_on_startup
    started: datetime
    past_due: bool
    error: str | None = None


def timer_jobs(functions: list[Any], environ: Mapping[str, str] | None = None) -> list[TimerJob]:
    """The app's timer-triggered functions with their resolved schedules (raises
    ScheduleError naming the function, as indexing fails on Azure)."""
    jobs = []
    for fn in functions:
        trigger = fn.get_trigger()
        if trigger.get_binding_name() != "timerTrigger":
            continue
        name = fn.get_function_name()
        try:
            schedule = Schedule(resolve_schedule(str(trigger.schedule), environ))
        except ScheduleError as exc:
            raise ScheduleError(f"timer function {name}: {exc}") from exc
        jobs.append(TimerJob(fn, name, trigger.name, schedule, bool(trigger.run_on_startup)))
    return jobs


class TimerScheduler:
    """Fires each timer function on its schedule, in the running event loop."""

    def __init__(
        self,
        functions: list[Any],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        extra_bindings: Callable[[Any], dict[str, Any]] | None = None,
        claim: Callable[[str, datetime], Awaitable[bool]] | None = None,
    ) -> None:
        self.jobs = timer_jobs(functions, environ)
        self.clock: Clock = clock or SystemClock()
        self.extra_bindings = extra_bindings
        # Timers are singletons: with hosts sharing a database, `claim(name, occurrence)`
        # is true for one of them only (DurableRuntime.claim_timer).
        self.claim = claim
        self.firings: collections.deque[Firing] = collections.deque(maxlen=1000)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start one task per timer; `ready` is awaited before the first firing (the
        server must be listening before a function calls back into it)."""
        for job in self.jobs:
            log.info("timer %s: %s", job.name, job.schedule.expression)
            self._tasks.append(asyncio.create_task(self._run(job, ready), name=job.name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, job: TimerJob, ready: Callable[[], Awaitable[None]] | None) -> None:
        if ready is not None:
            await ready()
        last: datetime | None = None
        start = self.clock.now()
        upcoming = job.schedule.next_after(start)
        if job.run_on_startup:
            await self._fire(job, None, last, upcoming)
        while True:
            await self.clock.sleep_until(upcoming)
            following = job.schedule.next_after(max(upcoming, self.clock.now()))
            if await self._claimed(job, upcoming):
                await self._fire(job, upcoming, last, following)
            last = upcoming
            # An occurrence that passed while the function ran is skipped, not queued.
            upcoming = job.schedule.next_after(max(upcoming, self.clock.now()))

    async def _claimed(self, job: TimerJob, occurrence: datetime) -> bool:
        if self.claim is None:
            return True
        try:
            claimed = await self.claim(job.name, occurrence)
        except Exception:  # better twice than never: fire anyway
            log.exception("timer %s: could not record the occurrence %s", job.name, occurrence)
            return True
        if not claimed:
            log.info("timer %s: %s fired by another host", job.name, occurrence.isoformat())
        return claimed

    async def _fire(
        self, job: TimerJob, scheduled: datetime | None, last: datetime | None, upcoming: datetime
    ) -> None:
        from azure.functions.timer import TimerRequest

        now = self.clock.now()
        past_due = scheduled is not None and now - scheduled > PAST_DUE_AFTER
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": last.isoformat() if last else None,
                "Next": upcoming.isoformat(),
                "LastUpdated": now.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        kwargs: dict[str, Any] = {job.arg_name: request}
        if self.extra_bindings is not None:
            kwargs.update(self.extra_bindings(job.function))
        firing = Firing(job.name, scheduled, now, past_due)
        self.firings.append(firing)
        user_function = job.function.get_user_function()
        try:
            if inspect.iscoroutinefunction(user_function):
                await user_function(**kwargs)
            else:
                await asyncio.to_thread(user_function, **kwargs)
        except Exception as exc:  # logged, as the Functions host does; the timer goes on
            firing.error = f"{type(exc).__name__}: {exc}"
            log.exception("timer function %s failed", job.name)
