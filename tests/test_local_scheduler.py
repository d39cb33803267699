"""Timer functions on the local host: NCRONTAB schedules, %SETTING% references, fire times
checked with an injected clock (no sleeping), run_on_startup, past-due, bindings."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from local.durable import client_binding, durable_client_names
from local.scheduler import (
    DEFAULT_SETTINGS,
    Schedule,
    ScheduleError,
    TimerScheduler,
    resolve_schedule,
    timer_jobs,
)
from tests.support import ROOT, TestDatabase, free_port, host_environment

# Friday 27 November 2026, ten seconds before midnight (UTC).
START = datetime(2026, 11, 27, 23, 59, 50, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeClock:
    """Time moves only when the scheduler sleeps: to the moment it sleeps until, plus an
    optional lateness (a busy machine)."""

    def __init__(self, start: datetime, late: timedelta = timedelta(0)) -> None:
        self.current = start
        self.late = late
        self.sleeps: list[datetime] = []

    def now(self) -> datetime:
        return self.current

    async def sleep_until(self, moment: datetime) -> None:
        self.sleeps.append(moment)
        self.current = max(self.current, moment + self.late)
        await asyncio.sleep(0)


def timer_app(
    schedule: str, *, run_on_startup: bool = False, body: Callable[..., Any] | None = None
) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=run_on_startup)
    def tick(timer: func.TimerRequest) -> None:
        if body is not None:
            body(timer)

    return app


def fire_times(
    schedule: str,
    count: int,
    *,
    environ: dict[str, str] | None = None,
    run_on_startup: bool = False,
    clock: FakeClock | None = None,
    body: Callable[[func.TimerRequest, FakeClock], None] | None = None,
) -> list[tuple[datetime, func.TimerRequest]]:
    """Run a one-timer app on a fake clock until it has fired `count` times."""
    clock = clock or FakeClock(START)
    seen: list[tuple[datetime, func.TimerRequest]] = []

    def record(timer: func.TimerRequest) -> None:
        seen.append((clock.now(), timer))
        if body is not None:
            body(timer, clock)

    app = timer_app(schedule, run_on_startup=run_on_startup, body=record)

    async def main() -> None:
        scheduler = TimerScheduler(app.get_functions(), environ=environ or {}, clock=clock)
        await scheduler.start()
        while len(seen) < count:
            await asyncio.sleep(0.001)
        await scheduler.stop()

    asyncio.run(asyncio.wait_for(main(), 10))
    return seen[:count]


# --- %SETTING% references -----------------------------------------------------------------


def test_settings_are_read_from_the_environment() -> None:
    env = {"MY_SCHEDULE": "*/5 * * * * *", "DT_INGRESS_SCHEDULE": "0 */10 * * * *"}
    assert resolve_schedule("%MY_SCHEDULE%", env) == "*/5 * * * * *"
    assert resolve_schedule("%DT_INGRESS_SCHEDULE%", env) == "0 */10 * * * *"
    assert resolve_schedule("0 0 * * * *", env) == "0 0 * * * *"


def test_the_app_s_settings_have_their_documented_defaults() -> None:
    assert DEFAULT_SETTINGS == {
        "DT_INGRESS_SCHEDULE": "0 0 * * * *",
        "DT_FORECAST_SCHEDULE": "0 0 3 * * *",
        "DT_NOTIFY_SCHEDULE": "*/15 * * * * *",
        "DT_ALERT_SCHEDULE": "0 * * * * *",
        "DT_SCHEDULE_DISPATCH": "0 * * * * *",
        "DT_RETENTION_SCHEDULE": "0 30 2 * * *",
    }
    assert resolve_schedule("%DT_INGRESS_SCHEDULE%", {}) == "0 0 * * * *"
    assert resolve_schedule("%DT_ALERT_SCHEDULE%", {}) == "0 * * * * *"
    assert resolve_schedule("%DT_FORECAST_SCHEDULE%", {"DT_FORECAST_SCHEDULE": ""}) == (
        "0 0 3 * * *"
    )


def test_an_unset_setting_without_default_is_refused_naming_it() -> None:
    with pytest.raises(ScheduleError, match="NOT_SET_ANYWHERE is not set"):
        resolve_schedule("%NOT_SET_ANYWHERE%", {})
    app = timer_app("%NOT_SET_ANYWHERE%")
    with pytest.raises(ScheduleError, match=r"timer function tick: .*NOT_SET_ANYWHERE"):
        timer_jobs(app.get_functions(), {})


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_FORECAST_SCHEDULE", "0 30 4 * * *")
    assert resolve_schedule("%DT_FORECAST_SCHEDULE%") == "0 30 4 * * *"
    monkeypatch.delenv("DT_FORECAST_SCHEDULE")
    assert resolve_schedule("%DT_FORECAST_SCHEDULE%") == "0 0 3 * * *"


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["0 * * * *", "* * * * * * *", "61 * * * * *", "x"])
def test_malformed_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError, match="schedule"):
        Schedule(expression)


def test_seconds_come_first() -> None:
    assert Schedule("*/5 * * * * *").next_after(START) == at("2026-11-27T23:59:55")
    assert Schedule("30 * * * * *").next_after(START) == at("2026-11-28T00:00:30")


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    """NCrontab's rule (Vixie cron would fire on every 13th and every Friday)."""
    schedule = Schedule("0 0 0 13 * 5")
    moment, fridays = START, []
    for _ in range(3):
        moment = schedule.next_after(moment)
        fridays.append(moment)
    assert fridays == [at("2027-08-13T00:00:00"), at("2028-10-13T00:00:00"), at("2029-04-13")]
    assert all(day.weekday() == 4 for day in fridays)


def test_names_of_days_and_months() -> None:
    assert Schedule("0 0 12 * * MON-FRI").next_after(START) == at("2026-11-30T12:00:00")
    assert Schedule("0 0 12 * * SUN").next_after(START) == at("2026-11-29T12:00:00")
    assert Schedule("0 0 12 * * 0").next_after(START) == at("2026-11-29T12:00:00")
    assert Schedule("0 0 0 1 JAN *").next_after(START) == at("2027-01-01T00:00:00")


def test_a_timespan_is_an_interval() -> None:
    assert Schedule("00:05:00").next_after(START) == START + timedelta(minutes=5)
    assert Schedule("1.02:00:00").next_after(START) == START + timedelta(days=1, hours=2)


# --- firing, with the injected clock ---------------------------------------------------------


def test_fires_at_the_times_the_schedule_says() -> None:
    fired = fire_times("0 */15 * * * *", 5)
    assert [moment for moment, _ in fired] == [
        at("2026-11-28T00:00:00"),
        at("2026-11-28T00:15:00"),
        at("2026-11-28T00:30:00"),
        at("2026-11-28T00:45:00"),
        at("2026-11-28T01:00:00"),
    ]
    assert not any(timer.past_due for _, timer in fired)


def test_weekday_mornings_skip_the_weekend() -> None:
    fired = fire_times("0 30 9 * * 1-5", 4)
    assert [moment for moment, _ in fired] == [
        at("2026-11-30T09:30:00"),  # Monday: Saturday and Sunday are skipped
        at("2026-12-01T09:30:00"),
        at("2026-12-02T09:30:00"),
        at("2026-12-03T09:30:00"),
    ]


def test_the_app_s_schedules_with_their_defaults() -> None:
    ingress = fire_times("%DT_INGRESS_SCHEDULE%", 3)
    assert [m for m, _ in ingress] == [
        at("2026-11-28T00:00:00"),
        at("2026-11-28T01:00:00"),
        at("2026-11-28T02:00:00"),
    ]
    forecast = fire_times("%DT_FORECAST_SCHEDULE%", 3)
    assert [m for m, _ in forecast] == [
        at("2026-11-28T03:00:00"),
        at("2026-11-29T03:00:00"),
        at("2026-11-30T03:00:00"),
    ]
    env = {"DT_FORECAST_SCHEDULE": "0 0 6 * * *"}
    custom = fire_times("%DT_FORECAST_SCHEDULE%", 2, environ=env)
    assert [m for m, _ in custom] == [at("2026-11-28T06:00:00"), at("2026-11-29T06:00:00")]


def test_run_on_startup_fires_at_once_then_on_schedule() -> None:
    fired = fire_times("0 0 * * * *", 3, run_on_startup=True)
    assert [m for m, _ in fired] == [START, at("2026-11-28T00:00:00"), at("2026-11-28T01:00:00")]
    status = fired[0][1].schedule_status
    assert status["Last"] is None and status["Next"] == "2026-11-28T00:00:00+00:00"
    second = fired[2][1].schedule_status
    assert second["Last"] == "2026-11-28T00:00:00+00:00"
    assert second["Next"] == "2026-11-28T02:00:00+00:00"
    assert fired[1][1].schedule == {"AdjustForDST": True}


def test_a_late_invocation_is_past_due() -> None:
    fired = fire_times("0 0 * * * *", 2, clock=FakeClock(START, late=timedelta(seconds=5)))
    assert [m for m, _ in fired] == [at("2026-11-28T00:00:05"), at("2026-11-28T01:00:05")]
    assert all(timer.past_due for _, timer in fired)


def test_runs_never_overlap_and_missed_occurrences_are_skipped() -> None:
    def slow(timer: func.TimerRequest, clock: FakeClock) -> None:
        clock.current += timedelta(minutes=35)  # each run takes 35 minutes

    fired = fire_times("0 */15 * * * *", 3, body=slow)
    assert [m for m, _ in fired] == [
        at("2026-11-28T00:00:00"),
        at("2026-11-28T00:45:00"),  # 00:15 and 00:30 passed while the first run ran
        at("2026-11-28T01:30:00"),
    ]


def test_a_failing_timer_function_keeps_its_schedule() -> None:
    def boom(timer: func.TimerRequest, clock: FakeClock) -> None:
        raise RuntimeError("upstream down")

    fired = fire_times("0 0 * * * *", 3, body=boom)
    assert [m for m, _ in fired] == [
        at("2026-11-28T00:00:00"),
        at("2026-11-28T01:00:00"),
        at("2026-11-28T02:00:00"),
    ]


def test_async_timer_with_a_durable_client_gets_the_binding() -> None:
    """As the forecast timer: async, with `durable_client_input`; it gets the binding JSON
    the local host serves, and a real DurableOrchestrationClient is built from it."""
    app = func.FunctionApp()
    bp = df.Blueprint()
    seen: list[tuple[datetime, str]] = []
    clock = FakeClock(START)

    @bp.timer_trigger(schedule="%DT_FORECAST_SCHEDULE%", arg_name="timer")
    @bp.durable_client_input(client_name="client")
    async def start_forecast(timer: func.TimerRequest, client: df.DurableOrchestrationClient):
        payload = client.create_http_management_payload("abc")
        seen.append((clock.now(), payload["statusQueryGetUri"]))

    app.register_functions(bp)
    functions = app.get_functions()
    assert [durable_client_names(fn) for fn in functions] == [["client"]]
    binding = client_binding("http://127.0.0.1:7071", "DTBaseHub", system_key="the-key")

    async def main() -> None:
        scheduler = TimerScheduler(
            functions,
            environ={},
            clock=clock,
            extra_bindings=lambda fn: dict.fromkeys(durable_client_names(fn), binding),
        )
        await scheduler.start()
        while len(seen) < 2:
            await asyncio.sleep(0.001)
        await scheduler.stop()
        assert len(scheduler.firings) >= 2
        assert all(f.error is None for f in scheduler.firings)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert seen[:2] == [
        (
            at("2026-11-28T03:00:00"),
            "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc"
            "?taskHub=DTBaseHub&connection=Storage&code=the-key",
        ),
        (
            at("2026-11-29T03:00:00"),
            "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc"
            "?taskHub=DTBaseHub&connection=Storage&code=the-key",
        ),
    ]
    assert (
        json.loads(binding)["rpcBaseUrl"]
        == "http://durabletask:the-key@127.0.0.1:7071/runtime/webhooks/durabletask/"
    )


def test_the_system_clock_sleeps_until_the_moment() -> None:
    from local.scheduler import SystemClock

    clock = SystemClock()
    target = clock.now() + timedelta(milliseconds=150)
    asyncio.run(clock.sleep_until(target))
    assert clock.now() >= target
    assert clock.now() - target < timedelta(milliseconds=500)
    assert clock.now().tzinfo is UTC


def test_hosts_sharing_a_database_fire_each_occurrence_once() -> None:
    """Two schedulers, one claim (as DurableRuntime.claim_timer gives on one database)."""
    claimed: set[tuple[str, datetime]] = set()
    fired: list[tuple[int, datetime]] = []

    async def claim(name: str, occurrence: datetime) -> bool:
        await asyncio.sleep(0)
        if (name, occurrence) in claimed:
            return False
        claimed.add((name, occurrence))
        return True

    def host_app(number: int, clock: FakeClock) -> func.FunctionApp:
        return timer_app("0 */30 * * * *", body=lambda timer: fired.append((number, clock.now())))

    async def main() -> None:
        clocks = [FakeClock(START), FakeClock(START)]
        schedulers = [
            TimerScheduler(
                host_app(n, clocks[n]).get_functions(), environ={}, clock=clocks[n], claim=claim
            )
            for n in (0, 1)
        ]
        for scheduler in schedulers:
            await scheduler.start()
        while len({moment for _, moment in fired}) < 4:
            await asyncio.sleep(0.001)
        for scheduler in schedulers:
            await scheduler.stop()

    asyncio.run(asyncio.wait_for(main(), 10))
    moments = [moment for _, moment in fired]
    assert len(moments) == len(set(moments))  # never twice
    assert sorted(moments)[:4] == [
        at("2026-11-28T00:00:00"),
        at("2026-11-28T00:30:00"),
        at("2026-11-28T01:00:00"),
        at("2026-11-28T01:30:00"),
    ]


def test_the_host_refuses_to_start_with_an_unset_setting(database: TestDatabase) -> None:
    """As indexing fails on Azure: the local host names the function and the setting."""
    env = host_environment(database.url)
    env.pop("T_TICK_SCHEDULE", None)
    with tempfile.TemporaryDirectory() as data_dir:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "local.cli",
                "--app",
                "tests.durable_app:app",
                "--port",
                str(free_port()),
                "--data-dir",
                data_dir,
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "dtbase-local: timer function t_tick: schedule '%T_TICK_SCHEDULE%': the app setting "
        "T_TICK_SCHEDULE is not set"
    ) in done.stderr
