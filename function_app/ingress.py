"""Weather ingress: an hourly timer and `POST /api/ingress/weather` (docs/api.md, Weather
ingress; Weather ingress and forecasts; docs/architecture.md, Timers).

Both run `WeatherIngress` on the core, inside one transaction: the readings of a run are
all written or none. The HTTP function answers what was inserted; a bad body is a 422
naming the field, an OpenWeatherMap failure a 502 (504 for a timeout) naming the cause.

A service call (run-service, a script) may send the deployment's service key
(DT_SERVICE_API_KEY) in the `x-functions-key` header instead of a token (`Auth.
TOKEN_OR_SERVICE_KEY`, checked in function_app/http.py).
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from dtbase_core.apikeys import Scope
from dtbase_core.config import get_settings
from dtbase_core.db import session_scope
from dtbase_core.ingress.weather import WeatherIngress, WeatherIngressIn
from dtbase_core.schemas.ingress import WeatherIngressOut
from dtbase_core.service_base import CoreBackend
from function_app.http import Auth, Call, endpoint

log = logging.getLogger(__name__)

bp = func.Blueprint()


@endpoint(
    bp,
    "ingress/weather",
    body=WeatherIngressIn,
    scope=Scope.SERVICES_RUN,
    body_required=False,
    response=WeatherIngressOut,
    auth=Auth.TOKEN_OR_SERVICE_KEY,
    errors={
        401: "No token, a bad token or a wrong service key",
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
    if not settings.services.openweathermap_api_key:
        log.warning("weather ingress skipped: DT_OPENWEATHERMAP_APIKEY is not set")
        return
    with session_scope() as session:
        summary = WeatherIngress(CoreBackend(session), settings=settings).run()
    log.info(
        "weather ingress: %d inserted, %d duplicates", summary["inserted"], summary["duplicates"]
    )
