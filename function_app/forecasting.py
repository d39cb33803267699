"""ARIMA forecasting as a Durable Functions orchestration (API.md §4.4, §4.5, §8.2 items
24, 26 and 27 fixed).

- `POST /api/forecast/arima` (a token, or the service key as for the ingress): the body is
  the forecast's configuration, every section optional; a bad value is a 422 naming it.
  It starts the orchestration and answers 202 with Durable's status URLs.
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
by name (NOTES §1: a function object would be called by its Python name).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel

from dtbase_core.config import apply_schedule_defaults
from dtbase_core.db import session_scope
from dtbase_core.forecasting.config import ArimaConfig, default_config
from dtbase_core.forecasting.orchestration import orchestrate
from dtbase_core.forecasting.runs import forecast_series, run_guarded, set_up
from dtbase_core.security import ACCESS
from dtbase_core.service_base import Backend, CoreBackend
from dtbase_core.timeutil import as_utc, iso_z
from function_app.http import ROUTES, Call, Route, detail_response, dispatch, json_response
from function_app.ingress import declare, service_dispatch

log = logging.getLogger(__name__)

apply_schedule_defaults()
bp = df.Blueprint()

ORCHESTRATOR = "arima_orchestrator"
SET_UP = "arima_set_up"
FIT_SERIES = "arima_fit_series"


class StartedOut(BaseModel):
    """Durable's check-status reply: the instance id and where to follow it, plus
    `statusApiUri`, the same status under /api with a DTBase token. Behind an Azure Static
    Web App only /api reaches the Function App, and Durable's own URLs carry the host's
    system key, which a browser should never hold."""

    id: str
    statusQueryGetUri: str
    sendEventPostUri: str
    terminatePostUri: str
    purgeHistoryDeleteUri: str
    statusApiUri: str


class StatusOut(BaseModel):
    instanceId: str
    runtimeStatus: str | None
    customStatus: Any = None
    output: Any = None
    createdTime: str | None
    lastUpdatedTime: str | None


class _Validated(func.HttpResponse):
    """What the synchronous part of the starter hands to the asynchronous one."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(status_code=202)
        self.config = config


def _validate(call: Call[ArimaConfig]) -> func.HttpResponse:
    """Start an ARIMA forecast (a Durable orchestration); replies with its status URLs."""
    return _Validated(call.body.model_dump(mode="json"))


START_ROUTE = declare(
    "forecast/arima",
    _validate,
    body=ArimaConfig,
    response=StartedOut,
    status=202,
    errors={503: "The orchestration could not be started"},
)


@bp.function_name(START_ROUTE.name)
@bp.route(route=START_ROUTE.path, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def forecast_arima(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    # The token check, body validation and error replies are dispatch's, in a thread (they
    # touch the database); then the orchestration starts here, on the event loop.
    checked = await asyncio.to_thread(service_dispatch, START_ROUTE, _validate, req)
    if not isinstance(checked, _Validated):
        return checked
    try:
        instance_id = await client.start_new(ORCHESTRATOR, None, checked.config)
    except Exception as exc:
        log.exception("could not start %s", ORCHESTRATOR)
        return detail_response(503, f"The forecast could not be started: {exc}")
    links = client.get_client_response_links(req, instance_id)
    api_base = req.url.split("?", 1)[0].rsplit("/" + START_ROUTE.path, 1)[0]
    links["statusApiUri"] = f"{api_base}/forecast/status/{instance_id}"
    return json_response(links, 202, {"Location": links["statusQueryGetUri"], "Retry-After": "10"})


class _Authorised(func.HttpResponse):
    """The token was good: the status may be read."""


def _authorise(call: Call[None]) -> func.HttpResponse:
    """A forecast's status, progress and output, by instance id (a token is needed)."""
    return _Authorised(status_code=200)


STATUS_ROUTE = Route(
    path="forecast/status/{instance_id}",
    method="GET",
    name="forecast_status",
    tag="forecast",
    summary="A forecast's status, progress and output, by instance id",
    body=None,
    body_required=False,
    response=StatusOut,
    status=200,
    auth=ACCESS,
    errors={404: "No such forecast"},
)
ROUTES.append(STATUS_ROUTE)


@bp.function_name(STATUS_ROUTE.name)
@bp.route(route=STATUS_ROUTE.path, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def forecast_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    checked = await asyncio.to_thread(dispatch, STATUS_ROUTE, _authorise, req)
    if not isinstance(checked, _Authorised):
        return checked
    status = await client.get_status(req.route_params.get("instance_id", ""))
    if not status.instance_id:
        return detail_response(404, "No such forecast")
    runtime = status.runtime_status
    return json_response(
        {
            "instanceId": status.instance_id,
            "runtimeStatus": getattr(runtime, "value", runtime),
            "customStatus": status.custom_status,
            "output": status.output,
            "createdTime": iso_z(status.created_time) if status.created_time else None,
            "lastUpdatedTime": iso_z(status.last_updated_time)
            if status.last_updated_time
            else None,
        }
    )


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
