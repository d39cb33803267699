"""Weather ingress: an hourly timer and `POST /api/ingress/weather` (API.md §4.3, §4.5 with
§8.2 items 22, 25 and 27 fixed).

Both run `WeatherIngress` on the core, inside one transaction: the readings of a run are
all written or none. The HTTP function answers what was inserted; a bad body is a 422
naming the field, an OpenWeatherMap failure a 502 (504 for a timeout) naming the cause.

Service calls. `/service/run-service` forwards no token, so a service registered with the
plain URL would be refused. The ingress and forecast functions therefore also accept the
deployment's service key (DT_SERVICE_API_KEY), the way Azure Functions takes function
keys: as `?code=<key>` in the registered URL or an `x-functions-key` header. A wrong key
is a 401; no key and no token is the usual 401 "Not authenticated". Without
DT_SERVICE_API_KEY set, only tokens are accepted.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func
from pydantic import BaseModel

from dtbase_core.config import Settings, apply_schedule_defaults, get_settings
from dtbase_core.db import session_scope
from dtbase_core.ingress.weather import WeatherIngress, WeatherIngressIn
from dtbase_core.security import ACCESS
from dtbase_core.service_base import CoreBackend
from function_app.http import ROUTES, Call, Route, detail_response, dispatch, error_response

log = logging.getLogger(__name__)

apply_schedule_defaults()
bp = func.Blueprint()

SERVICE_KEY_PARAM = "code"
SERVICE_KEY_HEADER = "x-functions-key"


# --- service calls: a token, or the service key --------------------------------------------


def service_key_check(req: func.HttpRequest, settings: Settings) -> bool | None:
    """None when no key is presented; else whether it is the service key."""
    presented = req.params.get(SERVICE_KEY_PARAM) or req.headers.get(SERVICE_KEY_HEADER)
    if not presented:
        return None
    expected = settings.service_api_key
    return bool(expected) and hmac.compare_digest(presented.encode(), (expected or "").encode())


def service_dispatch(
    route: Route, handler: Callable[[Call[Any]], Any], req: func.HttpRequest
) -> func.HttpResponse:
    """`dispatch` (JSON, token, body, transaction, error mapping), where a valid service
    key stands in for the token (then `call.user` is None)."""
    try:
        settings = get_settings()
    except Exception as exc:  # a ConfigError: answered as dispatch would
        return error_response(exc)
    keyed = service_key_check(req, settings)
    if keyed is False:
        return detail_response(401, "Invalid service key")
    return dispatch(dataclasses.replace(route, auth=None) if keyed else route, handler, req)


def service_route(
    bp: func.Blueprint,
    path: str,
    *,
    body: type[BaseModel],
    response: Any,
    status: int = 200,
    errors: dict[int, str] | None = None,
) -> Callable[[Callable[[Call[Any]], Any]], Callable[[Call[Any]], Any]]:
    """As `@endpoint(bp, path, body=..., body_required=False)`, for a service: a valid
    service key stands in for the token."""

    def register(handler: Callable[[Call[Any]], Any]) -> Callable[[Call[Any]], Any]:
        route = declare(path, handler, body=body, response=response, status=status, errors=errors)

        def http_function(req: func.HttpRequest) -> func.HttpResponse:
            return service_dispatch(route, handler, req)

        http_function.__name__ = http_function.__qualname__ = route.name
        http_function.__doc__ = handler.__doc__
        bp.function_name(name=route.name)(
            bp.route(route=path, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)(
                http_function
            )
        )
        return handler

    return register


def declare(
    path: str,
    handler: Callable[..., Any],
    *,
    body: type[BaseModel],
    response: Any,
    status: int,
    errors: dict[int, str] | None,
) -> Route:
    """The route's entry for the OpenAPI document; its body is optional."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", path)
    route = Route(
        path=path,
        method="POST",
        name=name,
        tag=path.split("/", 1)[0],
        summary=(handler.__doc__ or name).strip().splitlines()[0],
        body=body,
        body_required=False,
        response=response,
        status=status,
        auth=ACCESS,
        errors={401: "No token, a bad token or a wrong service key", **(errors or {})},
    )
    ROUTES.append(route)
    return route


# --- the weather ingress ---------------------------------------------------------------------


class SensorIngested(BaseModel):
    unique_identifier: str
    timestamps: int
    measures: int
    first: str | None
    last: str | None


class WeatherIngressOut(BaseModel):
    detail: str
    dt_from: str
    dt_to: str
    latitude: float
    longitude: float
    openweathermap_calls: int
    inserted: int
    duplicates: int
    sensors: list[SensorIngested]


@service_route(
    bp,
    "ingress/weather",
    body=WeatherIngressIn,
    response=WeatherIngressOut,
    errors={
        422: "dt_from/dt_to out of range, or no API key",
        502: "OpenWeatherMap refused the call or answered unusable data (named in detail)",
        504: "OpenWeatherMap did not answer in time",
    },
)
def ingress_weather(call: Call[WeatherIngressIn]) -> Any:
    """Ingest OpenWeatherMap's weather for a window (default: the last 3 hours and the
    48-hour forecast); replies with what was inserted."""
    ingress = WeatherIngress(CoreBackend(call.session), settings=call.settings)
    return ingress.run(**call.body.model_dump())


@bp.function_name("ingress_weather_timer")
@bp.timer_trigger(schedule="%DT_INGRESS_SCHEDULE%", arg_name="timer")
def ingress_weather_timer(timer: func.TimerRequest) -> None:
    """Every DT_INGRESS_SCHEDULE (default hourly): the last 3 hours and the forecast."""
    settings = get_settings()
    if not settings.openweathermap_api_key:
        log.warning("weather ingress skipped: DT_OPENWEATHERMAP_APIKEY is not set")
        return
    with session_scope() as session:
        summary = WeatherIngress(CoreBackend(session), settings=settings).run()
    log.info(
        "weather ingress: %d inserted, %d duplicates", summary["inserted"], summary["duplicates"]
    )
