"""A small function app for the local host's Durable runtime and timer tests.

Built as the real app is: a `df.Blueprint` registered on a plain `func.FunctionApp`.
Names start with `t_` so they never meet the real app's functions on a shared database.
Files named by the caller (`path` inputs, T_TICK_FILE) let the tests see what ran where.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from dtbase_core.forecasting.orchestration import orchestrate

bp = df.Blueprint()


@bp.route(route="health", methods=["GET"])
def t_health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"status": "ok"}', mimetype="application/json")


@bp.route(route="start/{name}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def t_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> Any:
    """An HTTP starter, as the forecast starter is: 202 with the status URLs."""
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["name"], None, json.loads(body) if body else None
    )
    return client.create_check_status_response(req, instance_id)


# --- activities -----------------------------------------------------------------------------


@bp.activity_trigger(input_name="job")
def t_square(job: dict[str, Any]) -> dict[str, Any]:
    """x², after `delay` seconds of CPU-bound work (so two run on two cores)."""
    began = time.time()
    deadline = time.perf_counter() + float(job.get("delay", 0))
    while time.perf_counter() < deadline:
        pass
    return {
        "x": job["x"],
        "square": job["x"] ** 2,
        "pid": os.getpid(),
        "span": [began, time.time()],
    }


@bp.activity_trigger(input_name="value")
async def t_async_double(value: int) -> int:
    await asyncio.sleep(0.01)
    return value * 2


_arrived: dict[str, int] = {}


@bp.activity_trigger(input_name="job")
async def t_rendezvous(job: dict[str, Any]) -> dict[str, Any]:
    """Returns once `n` calls with this `key` are all in flight, so it fails (after
    `timeout` seconds) unless they run at once; its pid says where it ran."""
    key, n = job["key"], int(job["n"])
    _arrived[key] = _arrived.get(key, 0) + 1
    deadline = time.monotonic() + float(job.get("timeout", 20))
    while _arrived[key] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {_arrived[key]} of {n} calls were in flight at once")
        await asyncio.sleep(0.01)
    return {"pid": os.getpid()}


@bp.activity_trigger(input_name="what")
def t_fail(what: str) -> str:
    raise ValueError(f"boom: {what}")


@bp.activity_trigger(input_name="code")
def t_crash(code: int) -> None:
    """The worker process dies (a segfault, the OOM killer...)."""
    os._exit(code)


@bp.orchestration_trigger(context_name="context")
def t_crashing(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_activity("t_crash", 3)
    except Exception as exc:
        crashed = str(exc).splitlines()[0]
    after = yield context.call_activity("t_async_double", 4)  # a new pool runs this
    return {"crashed": crashed, "after": after}


@bp.activity_trigger(input_name="job")
def t_flaky(job: dict[str, Any]) -> str:
    """Fails until its `succeed_on`-th attempt; each attempt is a line in `path`."""
    path = Path(job["path"])
    with path.open("a") as f:
        f.write(f"{time.time()}\n")
    attempts = len(path.read_text().splitlines())
    if attempts < job["succeed_on"]:
        raise RuntimeError(f"attempt {attempts} failed")
    return f"ok after {attempts} attempts"


# --- orchestrators --------------------------------------------------------------------------


@bp.orchestration_trigger(context_name="context")
def t_fan_out(context: df.DurableOrchestrationContext) -> Any:
    job = context.get_input() or {}
    n, delay = int(job.get("n", 3)), float(job.get("delay", 0))
    context.set_custom_status({"stage": "fan-out", "n": n})
    results = yield context.task_all(
        [context.call_activity("t_square", {"x": x, "delay": delay}) for x in range(n)]
    )
    doubled = yield context.call_activity("t_async_double", sum(r["square"] for r in results))
    context.set_custom_status({"stage": "done", "n": n})
    return {
        "squares": [r["square"] for r in results],
        "doubled_sum": doubled,
        "pids": sorted({r["pid"] for r in results}),
        "spans": [r["span"] for r in results],
    }


@bp.orchestration_trigger(context_name="context")
def t_rendezvous_fan_out(context: df.DurableOrchestrationContext) -> Any:
    job = context.get_input()
    tasks = [context.call_activity("t_rendezvous", job) for _ in range(int(job["n"]))]
    results = yield context.task_all(tasks)
    return sorted({r["pid"] for r in results})


@bp.orchestration_trigger(context_name="context")
def t_failing(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("t_square", {"x": 1})
    yield context.call_activity("t_fail", context.get_input() or "uncaught")
    return "unreachable"


@bp.orchestration_trigger(context_name="context")
def t_catching(context: df.DurableOrchestrationContext) -> Any:
    try:
        yield context.call_activity("t_fail", "caught")
    except Exception as exc:
        return {"caught": str(exc).splitlines()[0]}
    return "no error"


@bp.orchestration_trigger(context_name="context")
def t_retry(context: df.DurableOrchestrationContext) -> Any:
    job = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=3)
    try:
        result = yield context.call_activity_with_retry("t_flaky", options, job)
    except Exception as exc:
        result = f"gave up: {str(exc).splitlines()[0]}"
    after = yield context.call_activity("t_async_double", 21)  # ids stay in step after
    return {"result": result, "after": after}


@bp.orchestration_trigger(context_name="context")
def t_timer(context: df.DurableOrchestrationContext) -> Any:
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(seconds=float(context.get_input())))
    return {
        "started": started.isoformat(),
        "resumed": context.current_utc_datetime.isoformat(),
    }


@bp.orchestration_trigger(context_name="context")
def t_approval(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status("waiting for approval")
    approval = yield context.wait_for_external_event("approve")
    context.set_custom_status("approved")
    return {"approval": approval}


@bp.orchestration_trigger(context_name="context")
def t_approval_timeout(context: df.DurableOrchestrationContext) -> Any:
    deadline = context.current_utc_datetime + timedelta(seconds=float(context.get_input()))
    timer = context.create_timer(deadline)
    event = context.wait_for_external_event("approve")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        return {"approved": event.result}
    return "timed out"


@bp.orchestration_trigger(context_name="context")
def t_child(context: df.DurableOrchestrationContext) -> Any:
    value = yield context.call_activity("t_async_double", context.get_input())
    if value < 0:
        raise ValueError(f"negative: {value}")
    return value


@bp.orchestration_trigger(context_name="context")
def t_parent(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_sub_orchestrator("t_child", 20)
    second = yield context.call_sub_orchestrator("t_child", 1, f"{context.instance_id}-named")
    try:
        yield context.call_sub_orchestrator("t_child", -1)
        failure = None
    except Exception as exc:
        failure = str(exc).splitlines()[0]
    return {"sum": first + second + 1, "child_failure": failure}


@bp.orchestration_trigger(context_name="context")
def t_bad_calls(context: df.DurableOrchestrationContext) -> Any:
    """Calls that cannot be made arrive as catchable failures, as on Azure."""
    failures = []
    for name, instance_id in (("t_nope", None), ("t_child", "bad/id")):
        try:
            yield context.call_sub_orchestrator(name, 1, instance_id)
        except Exception as exc:
            failures.append(str(exc).splitlines()[0])
    try:
        yield context.call_activity("t_nope_activity", 1)
    except Exception as exc:
        failures.append(str(exc).splitlines()[0])
    return failures


@bp.orchestration_trigger(context_name="context")
def t_counter(context: df.DurableOrchestrationContext) -> Any:
    count = int(context.get_input() or 0)
    yield context.call_activity("t_async_double", count)
    if count < 3:
        context.continue_as_new(count + 1)
        return None
    return {"count": count}


@bp.orchestration_trigger(context_name="context")
def t_changing(context: df.DurableOrchestrationContext) -> Any:
    """Not deterministic: calls one activity the first time and another when replayed, as
    an orchestrator whose code changed while an instance was running would."""
    first = "t_async_double" if context.is_replaying else "t_square"
    yield context.call_activity(first, {"x": 2} if first == "t_square" else 2)
    yield context.call_activity("t_async_double", 3)
    return "unreachable"


@bp.orchestration_trigger(context_name="context")
def t_shrinking(context: df.DurableOrchestrationContext) -> Any:
    """Not deterministic: a call made the first time is left out when replayed."""
    if not context.is_replaying:
        yield context.call_activity("t_async_double", 1)
    return "done without it"


# --- the ARIMA orchestration with stand-in activities ------------------------------------


class Unexpected(Exception):
    """Any exception at all, as a fit activity might raise."""


@bp.activity_trigger(input_name="payload")
def t_arima_set_up(payload: dict[str, Any]) -> None:
    return None


@bp.activity_trigger(input_name="payload")
def t_arima_fit_series(payload: dict[str, Any]) -> dict[str, Any]:
    """Sensor "raises-*" raises, "error-*" returns an error entry (as run_guarded does), and
    "ok-<n>" succeeds with run id n."""
    sensor, measure, units = payload["sensor"], payload["measure"], payload["units"]
    if sensor.startswith("raises"):
        raise Unexpected(f"the fit of {sensor} broke")
    entry = {"sensor": sensor, "measure": measure, "units": units}
    if sensor.startswith("error"):
        return {**entry, "error": f"sensor '{sensor}': no training data"}
    return {**entry, "run_id": int(sensor.rsplit("-", 1)[1]), "metrics": {"fallback": None}}


@bp.orchestration_trigger(context_name="context")
def t_arima(context: df.DurableOrchestrationContext) -> Any:
    return (yield from orchestrate(context, "t_arima_set_up", "t_arima_fit_series"))


# --- timers ---------------------------------------------------------------------------------


@bp.timer_trigger(schedule="%T_TICK_SCHEDULE%", arg_name="tick", run_on_startup=False)
def t_tick(tick: func.TimerRequest) -> None:
    """Records each firing in T_TICK_FILE (if set)."""
    path = os.environ.get("T_TICK_FILE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"at": datetime.now(UTC).isoformat(), "past_due": tick.past_due}))
            f.write("\n")


@bp.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
@bp.durable_client_input(client_name="client")
async def t_kickoff(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Starts an orchestration from a timer (once, at start-up), as the forecast timer does."""
    instance_id = os.environ.get("T_KICKOFF_INSTANCE")
    if instance_id:
        await client.start_new("t_fan_out", instance_id, {"n": 2})


app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(bp)
