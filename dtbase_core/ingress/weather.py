"""Weather ingress from OpenWeatherMap's One Call API 3.0 (docs/api.md, Weather ingress;
Weather ingress and forecasts).

- The past: `/data/3.0/onecall/timemachine?dt=<unix>` answers one data point, so each whole
  hour of the window up to now is one call. Its readings go to the sensor
  `OpenWeatherMapHistory`.
- The future: one call to `/data/3.0/onecall` gives the hourly forecast for 48 hours. Its
  readings go to the sensor `OpenWeatherMapForecast`. (A window straddling now takes both.)
- Instants are the replies' Unix `dt`s as UTC (never the host's zone). Every value is
  checked before anything is written: a missing field, a null, a NaN, a string where a
  number belongs, or a reply that is not the documented JSON ends the run with an error
  naming the reply, the entry and the field. Upstream failures (a refused key, 429, 5xx,
  timeouts, unreachable) are errors naming the cause.
- Then the set-up (sensor type, sensors, location), and all series in ONE
  `insert-readings-bulk` call: all or nothing. Readings stored already are counted as
  duplicates, so re-running a window inserts nothing twice.
- Both sensors are placed at the configured latitude/longitude (a location in the schema
  `latitude-longitude`); a new location is recorded only when it changes.

    ingress = WeatherIngress(backend)            # a DTBaseClient, or CoreBackend(session)
    summary = ingress(dt_from="present", dt_to=now + timedelta(hours=48))
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field

from dtbase_core import redact
from dtbase_core.config import Settings, get_settings
from dtbase_core.errors import DomainError, Invalid
from dtbase_core.schemas.common import Body, UtcDatetime
from dtbase_core.service_base import Backend, BaseIngress
from dtbase_core.timeutil import as_utc, iso_z, utcnow

log = logging.getLogger(__name__)
redact.install_log_filter()  # httpx logs request URLs, keys included

PRESENT = "present"
ONECALL = "/data/3.0/onecall"
TIMEMACHINE = "/data/3.0/onecall/timemachine"
ONE_HOUR = timedelta(hours=1)
# The past costs one call per hour; at most this far back per run (as DTBase: 5 days).
MAX_PAST = timedelta(days=5)
# The hourly forecast covers 48 hours.
MAX_FUTURE = timedelta(hours=48)
# What the timer (and an HTTP call without dt_from/dt_to) ingests: the last hours again (a
# missed run is caught up; what is stored already counts as duplicates) and the forecast.
DEFAULT_LOOKBACK = timedelta(hours=3)
DEFAULT_LOOKAHEAD = MAX_FUTURE

SENSOR_TYPE = {
    "name": "Weather",
    "description": "Weather sensors and forecasts (OpenWeatherMap One Call API 3.0).",
}
HISTORY_SENSOR = {
    "unique_identifier": "OpenWeatherMapHistory",
    "name": "OpenWeatherMap Historical Data",
}
FORECAST_SENSOR = {
    "unique_identifier": "OpenWeatherMapForecast",
    "name": "OpenWeatherMap Forecasts",
}
LOCATION_IDENTIFIERS = [
    {"name": "latitude", "units": "degrees", "datatype": "float"},
    {"name": "longitude", "units": "degrees", "datatype": "float"},
]
LOCATION_SCHEMA = "latitude-longitude"  # insert-location names schemas after identifiers


@dataclass(frozen=True)
class Measure:
    """One measure of the Weather sensor type and where its value sits in an entry."""

    key: str  # the entry's field
    name: str
    units: str
    datatype: str  # float | integer | string


# DTBase's measures, in the order of its `ingress_weather.py`.
MEASURES = (
    Measure("temp", "temperature", "degrees Celsius", "float"),
    Measure("pressure", "air pressure", "millibar", "integer"),
    Measure("humidity", "relative humidity", "percent", "integer"),
    Measure("wind_speed", "wind speed", "m/s", "float"),
    Measure("wind_deg", "wind direction", "degrees", "integer"),
    Measure("icon", "icon", "", "string"),
    Measure("rain", "rain", "mms", "float"),
)


class WeatherIngressError(DomainError):
    """OpenWeatherMap failed us or answered something unusable: 502 through the API."""

    status_code = 502


class WeatherTimeout(WeatherIngressError):
    status_code = 504


# --- the window --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    dt_from: datetime
    dt_to: datetime
    present: datetime

    @property
    def past_hours(self) -> list[datetime]:
        """Each whole hour in [dt_from, min(dt_to, present)]: one timemachine call each."""
        first = _ceil_hour(self.dt_from)
        last = min(self.dt_to, self.present)
        hours = []
        while first <= last:
            hours.append(first)
            first += ONE_HOUR
        return hours

    @property
    def wants_forecast(self) -> bool:
        return self.dt_to > self.present

    def contains(self, instant: datetime) -> bool:
        return self.dt_from <= instant <= self.dt_to


def _ceil_hour(instant: datetime) -> datetime:
    floor = instant.replace(minute=0, second=0, microsecond=0)
    return floor if floor == instant else floor + ONE_HOUR


def _bound(value: datetime | str | None, present: datetime, default: datetime, field: str) -> Any:
    if value is None:
        return default
    if isinstance(value, str):
        if value.strip().lower() == PRESENT:
            return present
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            raise Invalid(
                f"{field}: must be an ISO 8601 datetime or 'present', got {value!r}",
                loc=("body", field),
            ) from None
    return as_utc(value)


def resolve_window(
    dt_from: datetime | str | None, dt_to: datetime | str | None, present: datetime
) -> Window:
    """The window to ingest; either bound may be a datetime, "present" or None (the
    default: the last 3 hours and the 48-hour forecast). Invalid names the field."""
    start = _bound(dt_from, present, present - DEFAULT_LOOKBACK, "dt_from")
    end = _bound(dt_to, present, present + DEFAULT_LOOKAHEAD, "dt_to")
    if start >= end:
        raise Invalid(
            f"dt_from ({iso_z(start)}) must be before dt_to ({iso_z(end)})", loc=("body", "dt_to")
        )
    if start < present - MAX_PAST:
        raise Invalid(
            f"dt_from ({iso_z(start)}) is more than {MAX_PAST.days} days before now: each past "
            "hour is one OpenWeatherMap call, so ingest long ranges a few days at a time",
            loc=("body", "dt_from"),
        )
    if end > present + MAX_FUTURE:
        raise Invalid(
            f"dt_to ({iso_z(end)}) is more than 48 hours after now, beyond OpenWeatherMap's "
            "hourly forecast",
            loc=("body", "dt_to"),
        )
    return Window(start, end, present)


# --- OpenWeatherMap ------------------------------------------------------------------------


@dataclass
class OpenWeatherMap:
    """The two One Call 3.0 endpoints, with every failure turned into a clear error."""

    api_key: str
    base_url: str = "https://api.openweathermap.org"
    timeout: float = 10.0
    http: httpx.Client | None = None

    def history(self, latitude: float, longitude: float, hour: datetime) -> dict[str, Any]:
        return self._get(
            TIMEMACHINE,
            {"lat": latitude, "lon": longitude, "dt": int(hour.timestamp()), "units": "metric"},
        )

    def forecast(self, latitude: float, longitude: float) -> dict[str, Any]:
        return self._get(
            ONECALL,
            {
                "lat": latitude,
                "lon": longitude,
                "units": "metric",
                "exclude": "current,minutely,daily,alerts",
            },
        )

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        what = f"OpenWeatherMap {path}"
        if "dt" in params:
            what += f" (dt={params['dt']}, {iso_z(datetime.fromtimestamp(params['dt'], UTC))})"
        url = self.base_url.rstrip("/") + path
        query = {**params, "appid": self.api_key}
        try:
            if self.http is not None:
                reply = self.http.get(url, params=query, timeout=self.timeout)
            else:
                reply = httpx.get(url, params=query, timeout=self.timeout)
        except httpx.TimeoutException:
            raise WeatherTimeout(f"{what}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise WeatherIngressError(
                f"{what}: could not be reached ({redact.mask_text(str(exc)) or type(exc).__name__})"
            ) from None
        if reply.status_code != 200:
            raise WeatherIngressError(f"{what}: {_refusal(reply)}")
        try:
            # json, not orjson: a NaN must parse, so that it is reported as a NaN field.
            body = json.loads(reply.content)
        except ValueError as exc:
            raise WeatherIngressError(f"{what}: the reply is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise WeatherIngressError(
                f"{what}: the reply is not a JSON object (got {type(body).__name__})"
            )
        return body


def _refusal(reply: httpx.Response) -> str:
    try:
        message = reply.json().get("message")
    except (ValueError, AttributeError):
        message = None
    suffix = f": {message}" if message else ""
    status = reply.status_code
    if status == 401:
        return f"the API key was refused (HTTP 401{suffix})"
    if status == 429:
        return f"too many requests, the key's call limit is reached (HTTP 429{suffix})"
    if status >= 500:
        return f"OpenWeatherMap server error (HTTP {status}{suffix})"
    return f"the request was refused (HTTP {status}{suffix})"


# --- validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeatherPoint:
    timestamp: datetime
    values: dict[str, Any]  # measure name -> checked value


def _number(entry: Mapping[str, Any], key: str, where: str) -> float:
    if key not in entry or entry[key] is None:
        raise WeatherIngressError(f"{where}: field '{key}' is missing")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WeatherIngressError(f"{where}: field '{key}' is not a number (got {value!r})")
    if not math.isfinite(value):
        raise WeatherIngressError(f"{where}: field '{key}' is {value} (not a finite number)")
    return float(value)


def _integer(entry: Mapping[str, Any], key: str, where: str) -> int:
    return round(_number(entry, key, where))


def _icon(entry: Mapping[str, Any], where: str) -> str:
    weather = entry.get("weather")
    if not isinstance(weather, list) or not weather or not isinstance(weather[0], Mapping):
        raise WeatherIngressError(f"{where}: field 'weather' is missing or empty")
    icon = weather[0].get("icon")
    if not isinstance(icon, str) or not icon:
        raise WeatherIngressError(f"{where}: field 'weather[0].icon' is missing")
    return icon


def _rain(entry: Mapping[str, Any], where: str) -> float:
    """Rain in the last hour; an entry without `rain` (or without its `1h`) had none."""
    rain = entry.get("rain")
    if rain is None:
        return 0.0
    if not isinstance(rain, Mapping):
        raise WeatherIngressError(f"{where}: field 'rain' is not an object (got {rain!r})")
    if "1h" not in rain:
        return 0.0
    return _number(rain, "1h", f"{where}.rain")


def parse_point(entry: Any, where: str) -> WeatherPoint:
    """One hourly entry, every field checked and converted to its measure's datatype."""
    if not isinstance(entry, Mapping):
        raise WeatherIngressError(f"{where}: not a JSON object (got {entry!r})")
    dt = entry.get("dt")
    if isinstance(dt, bool) or not isinstance(dt, int | float) or not math.isfinite(dt):
        raise WeatherIngressError(f"{where}: field 'dt' is missing or not a Unix time")
    values: dict[str, Any] = {}
    for measure in MEASURES:
        if measure.key == "icon":
            values[measure.name] = _icon(entry, where)
        elif measure.key == "rain":
            values[measure.name] = _rain(entry, where)
        elif measure.datatype == "integer":
            values[measure.name] = _integer(entry, measure.key, where)
        else:
            values[measure.name] = _number(entry, measure.key, where)
    return WeatherPoint(datetime.fromtimestamp(dt, UTC), values)


def _entries(body: Mapping[str, Any], key: str, what: str) -> list[Any]:
    entries = body.get(key)
    if not isinstance(entries, list):
        raise WeatherIngressError(f"{what}: the reply has no '{key}' list")
    return entries


def history_points(body: Mapping[str, Any], hour: datetime) -> list[WeatherPoint]:
    what = f"OpenWeatherMap {TIMEMACHINE} (dt={int(hour.timestamp())}, {iso_z(hour)})"
    entries = _entries(body, "data", what)
    if not entries:
        raise WeatherIngressError(f"{what}: its 'data' list is empty")
    return [parse_point(e, f"{what} data[{i}]") for i, e in enumerate(entries)]


def forecast_points(body: Mapping[str, Any]) -> list[WeatherPoint]:
    what = f"OpenWeatherMap {ONECALL}"
    entries = _entries(body, "hourly", what)
    if not entries:
        raise WeatherIngressError(f"{what}: its 'hourly' list is empty")
    return [parse_point(e, f"{what} hourly[{i}]") for i, e in enumerate(entries)]


# --- the HTTP body (POST /api/ingress/weather) -----------------------------------------------


class WeatherIngressIn(Body):
    """Every field optional: the window defaults to the last 3 hours and the 48-hour
    forecast, the key and place to DT_OPENWEATHERMAP_APIKEY / _LAT / _LON."""

    dt_from: UtcDatetime | Literal["present"] | None = None
    dt_to: UtcDatetime | Literal["present"] | None = None
    api_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None


# --- the service ----------------------------------------------------------------------------


@dataclass
class SeriesCount:
    sensor: str
    readings: int = 0
    first: datetime | None = None
    last: datetime | None = None


@dataclass
class IngressSummary:
    dt_from: datetime
    dt_to: datetime
    latitude: float
    longitude: float
    calls: int = 0
    inserted: int = 0
    duplicates: int = 0
    sensors: list[SeriesCount] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "detail": "Weather data ingested",
            "dt_from": self.dt_from,
            "dt_to": self.dt_to,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "openweathermap_calls": self.calls,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "sensors": [
                {
                    "unique_identifier": s.sensor,
                    "timestamps": s.readings,
                    "measures": len(MEASURES),
                    "first": s.first,
                    "last": s.last,
                }
                for s in self.sensors
            ],
        }


class WeatherIngress(BaseIngress):
    """OpenWeatherMap → DTBase. `run(dt_from, dt_to, api_key, latitude, longitude)`; any
    argument left out comes from the settings (DT_OPENWEATHERMAP_*)."""

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        settings: Settings | None = None,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(backend)
        self.settings = settings or get_settings()
        self.http = http
        self.clock = clock

    def run(  # type: ignore[override]
        self,
        dt_from: datetime | str | None = None,
        dt_to: datetime | str | None = None,
        api_key: str | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
    ) -> dict[str, Any]:
        return self.ingest(dt_from, dt_to, api_key, latitude, longitude).as_json()

    def ingest(
        self,
        dt_from: datetime | str | None = None,
        dt_to: datetime | str | None = None,
        api_key: str | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
    ) -> IngressSummary:
        window = resolve_window(dt_from, dt_to, as_utc(self.clock()))
        key = api_key or self.settings.services.openweathermap_api_key
        if not key:
            raise Invalid(
                "api_key: no OpenWeatherMap API key given, and DT_OPENWEATHERMAP_APIKEY is not set",
                loc=("body", "api_key"),
            )
        lat = self.settings.services.openweathermap_latitude if latitude is None else latitude
        lon = self.settings.services.openweathermap_longitude if longitude is None else longitude
        summary = IngressSummary(window.dt_from, window.dt_to, lat, lon)

        # 1. Fetch and check everything; nothing is written before this is all done.
        owm = OpenWeatherMap(
            key,
            self.settings.services.openweathermap_base_url,
            self.settings.services.openweathermap_timeout_seconds,
            self.http,
        )
        history: dict[datetime, WeatherPoint] = {}
        for hour in window.past_hours:
            summary.calls += 1
            for point in history_points(owm.history(lat, lon, hour), hour):
                if window.contains(point.timestamp):
                    history.setdefault(point.timestamp, point)
        forecast: dict[datetime, WeatherPoint] = {}
        if window.wants_forecast:
            summary.calls += 1
            for point in forecast_points(owm.forecast(lat, lon)):
                if window.contains(point.timestamp):
                    forecast.setdefault(point.timestamp, point)

        # 2. Set-up (each step may have been done before), then every series in one call.
        by_sensor = [
            (HISTORY_SENSOR, sorted(history.values(), key=lambda p: p.timestamp)),
            (FORECAST_SENSOR, sorted(forecast.values(), key=lambda p: p.timestamp)),
        ]
        self._set_up(lat, lon, window.present, by_sensor)
        series = [
            {
                "unique_identifier": sensor["unique_identifier"],
                "measure_name": measure.name,
                "readings": [p.values[measure.name] for p in points],
                "timestamps": [p.timestamp for p in points],
            }
            for sensor, points in by_sensor
            if points
            for measure in MEASURES
        ]
        if series:
            counts = self.backend.insert_readings_bulk(series)
            summary.inserted, summary.duplicates = counts["inserted"], counts["duplicates"]
        for sensor, points in by_sensor:
            summary.sensors.append(
                SeriesCount(
                    sensor["unique_identifier"],
                    len(points),
                    points[0].timestamp if points else None,
                    points[-1].timestamp if points else None,
                )
            )
        log.info(
            "weather ingress %s..%s: %d calls, %d readings inserted, %d duplicates",
            iso_z(window.dt_from),
            iso_z(window.dt_to),
            summary.calls,
            summary.inserted,
            summary.duplicates,
        )
        return summary

    def _set_up(
        self,
        latitude: float,
        longitude: float,
        present: datetime,
        by_sensor: Sequence[tuple[Mapping[str, str], Sequence[WeatherPoint]]],
    ) -> None:
        backend = self.backend
        backend.ensure_sensor_type(
            SENSOR_TYPE["name"],
            SENSOR_TYPE["description"],
            [{"name": m.name, "units": m.units, "datatype": m.datatype} for m in MEASURES],
        )
        backend.ensure_location(LOCATION_IDENTIFIERS, [float(latitude), float(longitude)])
        here = {"latitude": float(latitude), "longitude": float(longitude)}
        for sensor, points in by_sensor:
            uid = sensor["unique_identifier"]
            backend.ensure_sensor(SENSOR_TYPE["name"], uid, sensor["name"])
            history = backend.sensor_locations(uid)  # newest installation first
            if history and {k: history[0].get(k) for k in here} == here:
                continue
            # A new sensor is placed from its first reading on; a moved one from now on.
            installed = present
            if not history and points:
                installed = min(present, points[0].timestamp)
            backend.insert_sensor_location(uid, LOCATION_SCHEMA, here, installed)
