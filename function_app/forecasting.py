"""ARIMA forecasting as a Durable Functions orchestration (docs/api.md, Forecasts;
Weather ingress and forecasts; docs/architecture.md, Timers).

- `POST /api/forecast/arima` (a token, or the service key as for the ingress): the body is
  the forecast's configuration, every section optional; a bad value is a 422 naming it.
  It starts the orchestration and answers 202 with Durable's status URLs, its `Location`
  being `GET /api/forecast/status/{id}` (token or service key): 202 while the forecast
  runs, 200 once it has ended. So run-service, which polls a 202's Location but never
  the Durable management API, follows a forecast registered as a service to its end.
- A timer on DT_FORECAST_SCHEDULE (default daily at 03:00 UTC) starts it with the default
  configuration (or DT_FORECAST_CONFIG).
- `arima_orchestrator` (its steps are dtbase_core/forecasting/orchestration.py): fixes
  "now" as predict_from when the configuration leaves it out, sets up the model and
  measures (one activity), fans out one `arima_fit_series` activity per (sensor,
  measure), reports each series' outcome as it finishes (custom status), and returns a
  summary: the run ids created and, per series, its metrics.
- A series that cannot be forecast (no data, wrong units, too short, a model that no
  fallback could fit, or an activity that raised, whatever the exception) does not stop
  the others: every other series is stored, and then the orchestration fails with a
  message naming each failed series and the runs created (runtimeStatus "Failed").

Activities read and write through the core (service_base.CoreBackend), each in its own
short transactions, and import pandas and statsmodels only when they run. They are called
by name: a function object would be called by its Python name (docs/architecture.md,
Pitfalls worked around).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from dtbase_core.apikeys import Scope
from dtbase_core.db import session_scope
from dtbase_core.forecasting.config import ArimaConfig, default_config
from dtbase_core.forecasting.orchestration import orchestrate
from dtbase_core.forecasting.runs import forecast_series, run_guarded, set_up
from dtbase_core.roles import Role
from dtbase_core.schemas.forecasting import StartedOut, StatusOut
from dtbase_core.service_base import Backend, CoreBackend
from dtbase_core.timeutil import as_utc, iso_z
from function_app.http import Auth, Call, detail_response, endpoint, json_response, route_url

log = logging.getLogger(__name__)

bp = df.Blueprint()

ORCHESTRATOR = "arima_orchestrator"
SET_UP = "arima_set_up"
FIT_SERIES = "arima_fit_series"
# Instance ids this app starts (hex) and any a user may choose, without URL metacharacters.
_INSTANCE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
RETRY_AFTER = "2"  # seconds, for those polling a running forecast
RUNNING = frozenset({"Pending", "Running"})


@endpoint(
    bp,
    "forecast/arima",
    body=ArimaConfig,
    scope=Scope.SERVICES_RUN,
    body_required=False,
    response=StartedOut,
    status=202,
    auth=Auth.TOKEN_OR_SERVICE_KEY,
    errors={
        401: "No token, a bad token or a wrong service key",
        503: "The orchestration could not be started",
    },
    durable_client=True,
)
async def forecast_arima(call: Call[ArimaConfig]) -> Any:
    """Start an ARIMA forecast (a Durable orchestration); replies with its status URLs."""
    client: df.DurableOrchestrationClient = call.durable
    try:
        instance_id = await client.start_new(ORCHESTRATOR, None, call.body.model_dump(mode="json"))
    except Exception as exc:
        log.exception("could not start %s", ORCHESTRATOR)
        return detail_response(503, f"The forecast could not be started: {exc}")
    links = client.get_client_response_links(call.request, instance_id)
    links["statusApiUri"] = route_url(call.request, f"forecast/status/{instance_id}")
    # The status under /api, not Durable's management API: a caller polling the Location
    # needs no system key (and run-service never calls the management API).
    headers = {"Location": links["statusApiUri"], "Retry-After": RETRY_AFTER}
    return json_response(links, 202, headers)


@endpoint(
    bp,
    "forecast/status/{instance_id}",
    method="GET",
    response=StatusOut,
    replies={202: (StatusOut, "Still running: ask again after Retry-After (Location)")},
    auth=Auth.TOKEN_OR_SERVICE_KEY,
    errors={404: "No such forecast"},
    durable_client=True,
    role=Role.VIEWER,
    scope=Scope.READ,
)
async def forecast_status(call: Call[None]) -> Any:
    """A forecast's status, progress and output, by instance id; 202 while it runs."""
    client: df.DurableOrchestrationClient = call.durable
    instance_id = call.request.route_params.get("instance_id", "")
    if not _INSTANCE_ID.fullmatch(instance_id):
        # No instance can have this id (ours are hex); it would not survive the status URL.
        return detail_response(404, "No such forecast")
    status = await client.get_status(instance_id)
    if not status.instance_id or status.name != ORCHESTRATOR:  # not a forecast's
        return detail_response(404, "No such forecast")
    runtime = getattr(status.runtime_status, "value", status.runtime_status)
    found = {
        "instanceId": status.instance_id,
        "runtimeStatus": runtime,
        "customStatus": status.custom_status,
        "output": status.output,
        "createdTime": iso_z(status.created_time) if status.created_time else None,
        "lastUpdatedTime": iso_z(status.last_updated_time) if status.last_updated_time else None,
    }
    if runtime in RUNNING:
        here = route_url(call.request, f"forecast/status/{instance_id}")
        return json_response(found, 202, {"Location": here, "Retry-After": RETRY_AFTER})
    return found


@bp.function_name("forecast_arima_timer")
@bp.timer_trigger(schedule="%DT_FORECAST_SCHEDULE%", arg_name="timer")
@bp.durable_client_input(client_name="client")
async def forecast_arima_timer(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    """Every DT_FORECAST_SCHEDULE (default daily, 03:00 UTC): the default forecast."""
    config = default_config().model_dump(mode="json")
    instance_id = await client.start_new(ORCHESTRATOR, None, config)
    log.info("scheduled ARIMA forecast started: instance %s", instance_id)


@bp.orchestration_trigger(context_name="context")
def arima_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return (yield from orchestrate(context, SET_UP, FIT_SERIES))


@contextmanager
def _core() -> Iterator[Backend]:
    with session_scope() as session:
        yield CoreBackend(session)


@bp.activity_trigger(input_name="payload")
def arima_set_up(payload: dict[str, Any]) -> None:
    """The model, its scenario and the three model measures per configured measure."""
    with _core() as backend:
        set_up(backend, ArimaConfig.model_validate(payload))


@bp.activity_trigger(input_name="payload")
def arima_fit_series(payload: dict[str, Any]) -> dict[str, Any]:
    """One (sensor, measure): read, clean, fit, forecast, store; its summary or error."""
    config = ArimaConfig.model_validate(payload["config"])
    sensor, measure, units = payload["sensor"], payload["measure"], payload["units"]
    created = as_utc(datetime.fromisoformat(payload["time_created"].replace("Z", "+00:00")))
    return run_guarded(
        lambda: forecast_series(_core, config, sensor, measure, units, time_created=created),
        sensor,
        measure,
        units,
    )
