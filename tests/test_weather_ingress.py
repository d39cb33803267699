"""Weather ingress (docs/api.md, Weather ingress; Weather ingress and
forecasts) against a
small server on 127.0.0.1 that answers like OpenWeatherMap's One Call API 3.0: the
documented JSON shapes (`/data/3.0/onecall` with `hourly`, `/data/3.0/onecall/timemachine`
with a one-point `data` list), and each failure (a refused key, 429, 500, a timeout,
malformed JSON, NaN or missing fields), which must end the run with a clear error and
nothing written."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa

from dtbase_core.client import DTBaseClient
from dtbase_core.config import Settings, get_settings, reset_settings
from dtbase_core.errors import Invalid
from dtbase_core.ingress import weather
from dtbase_core.ingress.weather import (
    WeatherIngress,
    WeatherIngressError,
    WeatherTimeout,
    parse_point,
    resolve_window,
)
from dtbase_core.orm import reading_tables
from tests.support import Api, LocalHost, TestDatabase, replace_settings

API_KEY = "good-key"
SERVICE_KEY = "service-key-" + "k" * 20
PRESENT = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def entry(dt: int) -> dict[str, Any]:
    """One hourly entry as One Call 3.0 documents it, with values that follow the hour."""
    hour = dt // 3600
    point: dict[str, Any] = {
        "dt": dt,
        # A whole number is sent as a JSON integer, as OpenWeatherMap does.
        "temp": 12 if hour % 6 == 0 else 10 + (hour % 24) / 4,
        "feels_like": 9.5,
        "pressure": 1000 + hour % 30,
        "humidity": 60 + hour % 10,
        "dew_point": 5.1,
        "uvi": 0.2,
        "clouds": 40,
        "visibility": 10000,
        "wind_speed": 3.6,
        "wind_deg": 200 + hour % 5,
        "wind_gust": 5.2,
        "weather": [
            {"id": 500, "main": "Rain", "description": "light rain", "icon": f"{hour % 4:02d}d"}
        ],
        "pop": 0.3,
    }
    if hour % 2 == 0:
        point["rain"] = {"1h": 0.25}
    return point


class FakeOpenWeatherMap:
    """A threaded HTTP server answering like OpenWeatherMap. `fail(path, mode)` makes
    replies to paths ending with `path` fail: "401", "429", "500", "timeout", "malformed",
    "nan", "missing", "null", "string", "empty", "not-object"."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.failure: tuple[str, str] | None = None
        # A "timeout" reply is held until reset (the client's own timeout ends the call).
        self.held = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append((url.path, query))
                status, body = fake.answer(url.path, query)
                if status == "timeout":
                    fake.held.wait(30)
                    status, body = 200, b"{}"
                try:
                    self.send_response(int(status))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, path: str, mode: str) -> None:
        self.failure = (path, mode)

    def reset(self) -> None:
        self.failure = None
        self.requests.clear()
        self.held.set()
        self.held = threading.Event()

    def calls(self, path_end: str) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p.endswith(path_end)]

    def answer(self, path: str, query: dict[str, str]) -> tuple[Any, bytes]:
        if query.get("appid") != API_KEY:
            return 401, json.dumps({"cod": 401, "message": "Invalid API key."}).encode()
        lat, lon = float(query["lat"]), float(query["lon"])
        if path == "/data/3.0/onecall/timemachine":
            reply = {
                "lat": lat,
                "lon": lon,
                "timezone": "Europe/London",
                "timezone_offset": 0,
                "data": [entry(int(query["dt"]))],
            }
            key = "data"
        elif path == "/data/3.0/onecall":
            start = int(time.time()) // 3600 * 3600 if self.now is None else self.now
            reply = {
                "lat": lat,
                "lon": lon,
                "timezone": "Europe/London",
                "timezone_offset": 0,
                "hourly": [entry(start + 3600 * h) for h in range(48)],
            }
            key = "hourly"
        else:
            return 404, json.dumps({"cod": "404", "message": "Not found"}).encode()
        if self.failure is not None and path.endswith(self.failure[0]):
            return self.broken(reply, key, self.failure[1])
        return 200, json.dumps(reply).encode()

    now: int | None = None  # the forecast's first hour (Unix); None: the current hour

    @staticmethod
    def broken(reply: dict[str, Any], key: str, mode: str) -> tuple[Any, bytes]:
        message = {"401": "Invalid API key.", "429": "Too many requests", "500": "Internal error"}
        if mode in message:
            return int(mode), json.dumps({"cod": int(mode), "message": message[mode]}).encode()
        if mode == "timeout":
            return "timeout", b""
        if mode == "malformed":
            return 200, json.dumps(reply).encode()[:-20]
        if mode == "not-object":
            return 200, b"[1, 2, 3]"
        if mode == "empty":
            reply[key] = []
            return 200, json.dumps(reply).encode()
        point = reply[key][-1]
        if mode == "nan":
            point["wind_speed"] = math.nan  # json.dumps writes NaN, as a broken server might
        elif mode == "missing":
            del point["humidity"]
        elif mode == "null":
            point["pressure"] = None
        elif mode == "string":
            point["temp"] = "warm"
        elif mode == "no-icon":
            point["weather"] = []
        return 200, json.dumps(reply).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def owm() -> Iterator[FakeOpenWeatherMap]:
    server = FakeOpenWeatherMap()
    yield server
    server.close()


@pytest.fixture
def fake(owm: FakeOpenWeatherMap) -> Iterator[FakeOpenWeatherMap]:
    owm.reset()
    owm.now = int(PRESENT.timestamp()) // 3600 * 3600
    yield owm
    owm.reset()


def settings_for(fake: FakeOpenWeatherMap, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "openweathermap_base_url": fake.url,
        "openweathermap_api_key": API_KEY,
        "openweathermap_latitude": 51.53,
        "openweathermap_longitude": -0.127,
        "openweathermap_timeout_seconds": 1.0,
    }
    return replace_settings(get_settings(), services={**values, **changes})


@pytest.fixture
def client(live_host: LocalHost, admin: Api) -> Iterator[DTBaseClient]:
    with DTBaseClient.with_password(
        live_host.api, live_host.admin_email, live_host.admin_password
    ) as c:
        yield c


def ingress_for(client: DTBaseClient, fake: FakeOpenWeatherMap, **changes: Any) -> WeatherIngress:
    return WeatherIngress(client, settings=settings_for(fake, **changes), clock=lambda: PRESENT)


def stored_readings(database: TestDatabase) -> int:
    with database.engine.connect() as conn:
        return sum(
            conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            for table in reading_tables.values()
        )


def sensor_types(database: TestDatabase) -> int:
    with database.engine.connect() as conn:
        return conn.scalar(sa.text("select count(*) from sensor_type")) or 0


# --- the window and the checks, without a server ------------------------------------------------


def test_the_window() -> None:
    window = resolve_window(None, None, PRESENT)
    assert (window.dt_from, window.dt_to) == (
        PRESENT - timedelta(hours=3),
        PRESENT + timedelta(hours=48),
    )
    assert window.past_hours == [PRESENT.replace(minute=0) - timedelta(hours=h) for h in (2, 1, 0)]
    assert window.wants_forecast
    past = resolve_window("2026-03-09T23:00:00Z", "present", PRESENT)
    assert len(past.past_hours) == 14 and not past.wants_forecast
    future = resolve_window("present", PRESENT + timedelta(hours=5), PRESENT)
    assert future.past_hours == [] and future.wants_forecast
    naive = resolve_window(datetime(2026, 3, 10, 11), "2026-03-10T14:00:00+02:00", PRESENT)
    assert naive.dt_from == datetime(2026, 3, 10, 11, tzinfo=UTC)
    assert naive.dt_to == datetime(2026, 3, 10, 12, tzinfo=UTC)  # converted to UTC


@pytest.mark.parametrize(
    ("dt_from", "dt_to", "field", "words"),
    [
        ("present", "present", "dt_to", "must be before"),
        (PRESENT, PRESENT - timedelta(hours=1), "dt_to", "must be before"),
        (PRESENT - timedelta(days=6), "present", "dt_from", "more than 5 days"),
        ("present", PRESENT + timedelta(hours=49), "dt_to", "more than 48 hours"),
        ("yesterday", "present", "dt_from", "ISO 8601"),
    ],
)
def test_a_bad_window_names_its_field(dt_from: Any, dt_to: Any, field: str, words: str) -> None:
    with pytest.raises(Invalid) as caught:
        resolve_window(dt_from, dt_to, PRESENT)
    assert caught.value.loc == ("body", field) and words in caught.value.detail


def test_an_entry_is_checked_and_converted() -> None:
    point = parse_point(entry(int(PRESENT.timestamp()) // 3600 * 3600), "e")
    assert point.timestamp == datetime(2026, 3, 10, 12, tzinfo=UTC)
    values = point.values
    assert values["temperature"] == 12.0 and isinstance(values["temperature"], float)
    assert isinstance(values["air pressure"], int) and isinstance(values["relative humidity"], int)
    assert values["rain"] == 0.25 and values["icon"] == "00d"
    odd = entry(3600)
    odd.pop("rain", None)
    odd["humidity"] = 64.0  # a float holding a whole number is fine for an integer measure
    assert parse_point(odd, "e").values["rain"] == 0.0
    assert parse_point(odd, "e").values["relative humidity"] == 64
    for change, message in [
        ({"temp": math.nan}, "field 'temp' is nan"),
        ({"temp": math.inf}, "field 'temp' is inf"),
        ({"temp": None}, "field 'temp' is missing"),
        ({"temp": True}, "field 'temp' is not a number"),
        ({"pressure": "1000"}, "field 'pressure' is not a number"),
        ({"dt": "soon"}, "field 'dt'"),
        ({"weather": []}, "field 'weather'"),
        ({"weather": [{"main": "Rain"}]}, "weather[0].icon"),
        ({"rain": {"1h": math.nan}}, "rain: field '1h' is nan"),
        ({"rain": 3}, "field 'rain' is not an object"),
    ]:
        with pytest.raises(WeatherIngressError) as caught:
            parse_point({**entry(3600), **change}, "hourly[3]")
        assert str(caught.value).startswith("hourly[3]") and message in str(caught.value), (
            change,
            str(caught.value),
        )


# --- through the API client (the ingress as a remote service) ------------------------------------


def test_ingress_writes_every_series_once_and_records_the_location(
    client: DTBaseClient, fake: FakeOpenWeatherMap, admin: Api
) -> None:
    summary = ingress_for(client, fake).run()
    # 10:00, 11:00 and 12:00 from the timemachine (one call each), 48 forecast hours.
    assert [q["dt"] for q in fake.calls("/timemachine")] == [
        str(int((PRESENT.replace(minute=0) - timedelta(hours=h)).timestamp())) for h in (2, 1, 0)
    ]
    assert len(fake.calls("/onecall")) == 1
    assert all(q["units"] == "metric" and q["appid"] == API_KEY for _, q in fake.requests)
    assert summary["openweathermap_calls"] == 4
    assert summary["inserted"] == (3 + 48) * 7 and summary["duplicates"] == 0
    history, forecast = summary["sensors"]
    assert history["unique_identifier"] == "OpenWeatherMapHistory" and history["timestamps"] == 3
    assert forecast["unique_identifier"] == "OpenWeatherMapForecast"
    assert forecast["timestamps"] == 48 and forecast["first"] == PRESENT.replace(minute=0)

    types = admin.get("/sensor/list-sensor-types").json()
    assert types == [
        {
            "name": "Weather",
            "description": weather.SENSOR_TYPE["description"],
            "measures": [
                {"name": m.name, "units": m.units, "datatype": m.datatype} for m in weather.MEASURES
            ],
            "retention_days": None,  # the weather is kept
        }
    ]
    temperature = admin.ok(
        "/sensor/sensor-readings",
        {
            "unique_identifier": "OpenWeatherMapHistory",
            "measure_name": "temperature",
            "dt_from": "2026-03-10T00:00:00Z",
            "dt_to": "2026-03-11T00:00:00Z",
        },
        200,
    )
    assert [r["timestamp"] for r in temperature] == [
        "2026-03-10T10:00:00Z",
        "2026-03-10T11:00:00Z",
        "2026-03-10T12:00:00Z",
    ]
    assert [r["value"] for r in temperature] == [12.5, 12.75, 12.0]  # 12:00 sent as int 12
    assert all(isinstance(r["value"], float) for r in temperature)
    rain = admin.ok(
        "/sensor/sensor-readings",
        {
            "unique_identifier": "OpenWeatherMapHistory",
            "measure_name": "rain",
            "dt_from": "2026-03-10T00:00:00Z",
            "dt_to": "2026-03-11T00:00:00Z",
        },
        200,
    )
    assert [r["value"] for r in rain] == [0.25, 0.0, 0.25]
    for uid in ("OpenWeatherMapHistory", "OpenWeatherMapForecast"):
        located = admin.ok("/sensor/list-sensor-locations", {"unique_identifier": uid}, 200)
        assert len(located) == 1
        assert (located[0]["latitude"], located[0]["longitude"]) == (51.53, -0.127)
    located = admin.ok(
        "/sensor/list-sensor-locations", {"unique_identifier": "OpenWeatherMapHistory"}, 200
    )
    assert located[0]["installation_datetime"] == "2026-03-10T10:00:00Z"  # its first reading

    # The same window again: every reading is a duplicate, nothing is inserted twice.
    again = ingress_for(client, fake).run()
    assert (again["inserted"], again["duplicates"]) == (0, (3 + 48) * 7)
    for uid in ("OpenWeatherMapHistory", "OpenWeatherMapForecast"):
        assert len(admin.ok("/sensor/list-sensor-locations", {"unique_identifier": uid}, 200)) == 1

    # Somewhere else: a new location is recorded, from now on.
    moved = ingress_for(client, fake).run(latitude=48.85, longitude=2.35)
    assert moved["latitude"] == 48.85
    assert fake.requests[-1][1]["lat"] == "48.85"
    located = admin.ok(
        "/sensor/list-sensor-locations", {"unique_identifier": "OpenWeatherMapForecast"}, 200
    )
    assert [(loc["latitude"], loc["installation_datetime"]) for loc in located] == [
        (48.85, "2026-03-10T12:30:00Z"),
        (51.53, "2026-03-10T12:00:00Z"),
    ]


def test_a_past_window_calls_the_timemachine_only(
    client: DTBaseClient, fake: FakeOpenWeatherMap
) -> None:
    summary = ingress_for(client, fake).run("2026-03-09T22:30:00Z", "2026-03-10T01:00:00Z")
    assert len(fake.calls("/timemachine")) == 3 and fake.calls("/onecall") == []
    assert summary["inserted"] == 3 * 7
    assert summary["sensors"][1]["timestamps"] == 0


FAILURES = [
    (
        "/onecall",
        "401",
        WeatherIngressError,
        "the API key was refused (HTTP 401: Invalid API key.)",
    ),
    ("/onecall", "429", WeatherIngressError, "too many requests"),
    ("/timemachine", "500", WeatherIngressError, "server error (HTTP 500: Internal error)"),
    ("/onecall", "timeout", WeatherTimeout, "no answer within 1 s"),
    ("/onecall", "malformed", WeatherIngressError, "the reply is not valid JSON"),
    ("/timemachine", "not-object", WeatherIngressError, "not a JSON object"),
    ("/timemachine", "empty", WeatherIngressError, "its 'data' list is empty"),
    ("/onecall", "nan", WeatherIngressError, "hourly[47]: field 'wind_speed' is nan"),
    ("/onecall", "missing", WeatherIngressError, "hourly[47]: field 'humidity' is missing"),
    ("/timemachine", "null", WeatherIngressError, "data[0]: field 'pressure' is missing"),
    ("/onecall", "string", WeatherIngressError, "field 'temp' is not a number"),
    ("/onecall", "no-icon", WeatherIngressError, "field 'weather' is missing or empty"),
]


@pytest.mark.parametrize(("path", "mode", "kind", "message"), FAILURES)
def test_each_upstream_failure_is_named_and_nothing_is_written(
    client: DTBaseClient,
    fake: FakeOpenWeatherMap,
    database: TestDatabase,
    path: str,
    mode: str,
    kind: type[Exception],
    message: str,
) -> None:
    fake.fail(path, mode)
    with pytest.raises(kind) as caught:
        ingress_for(client, fake).run()
    assert message in str(caught.value), str(caught.value)
    assert "OpenWeatherMap /data/3.0/onecall" in str(caught.value)
    assert stored_readings(database) == 0 and sensor_types(database) == 0


def test_a_bad_key_and_no_key(client: DTBaseClient, fake: FakeOpenWeatherMap) -> None:
    with pytest.raises(WeatherIngressError, match=r"API key was refused \(HTTP 401"):
        ingress_for(client, fake).run(api_key="bad-key")
    with pytest.raises(Invalid, match="DT_OPENWEATHERMAP_APIKEY is not set") as caught:
        ingress_for(client, fake, openweathermap_api_key=None).run()
    assert caught.value.loc == ("body", "api_key")


def test_a_failure_after_earlier_runs_adds_nothing(
    client: DTBaseClient, fake: FakeOpenWeatherMap, database: TestDatabase
) -> None:
    ingress_for(client, fake).run("2026-03-10T09:00:00Z", "2026-03-10T11:00:00Z")
    before = stored_readings(database)
    assert before == 3 * 7
    fake.fail("/onecall", "nan")  # the history part would be new, the forecast is broken
    with pytest.raises(WeatherIngressError):
        ingress_for(client, fake).run()
    assert stored_readings(database) == before


# --- inside the function app: the HTTP function and the timer -----------------------------------


@pytest.fixture
def weather_host(
    host_factory: Callable[..., LocalHost], owm: FakeOpenWeatherMap, admin: Api
) -> LocalHost:
    return host_factory(
        env={
            "DT_OPENWEATHERMAP_BASE_URL": owm.url,
            "DT_OPENWEATHERMAP_APIKEY": API_KEY,
            "DT_OPENWEATHERMAP_LAT": "52.2",
            "DT_OPENWEATHERMAP_LON": "0.12",
            "DT_OPENWEATHERMAP_TIMEOUT_SECONDS": "1",
            "DT_SERVICE_API_KEY": SERVICE_KEY,
            # The host's own timer would ingest on the hour: not during this test.
            "DT_INGRESS_SCHEDULE": "0 0 0 1 1 *",
        }
    )


def test_the_http_function_end_to_end(
    weather_host: LocalHost, owm: FakeOpenWeatherMap, database: TestDatabase
) -> None:
    owm.reset()
    owm.now = None  # the host's own clock: the forecast starts at the current hour
    api = Api(weather_host.api, weather_host.admin_email, weather_host.admin_password)
    try:
        # No token: 401, as every endpoint; nothing was fetched.
        anon = Api(weather_host.api)
        assert anon.post("/ingress/weather").status_code == 401
        assert owm.requests == []
        # Bad bodies: 422 naming each field, before any call upstream.
        reply = api.post("/ingress/weather", {"dt_from": "yesterday", "latitude": 100})
        assert reply.status_code == 422
        assert {tuple(e["loc"][:2]) for e in reply.json()["detail"]} >= {
            ("body", "dt_from"),
            ("body", "latitude"),
        }
        reply = api.post(
            "/ingress/weather", content=b"{", headers={"content-type": "application/json"}
        )
        assert reply.status_code == 422 and reply.json()["detail"][0]["type"] == "json_invalid"
        reply = api.post("/ingress/weather", {"dt_from": "present", "dt_to": "present"})
        assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "dt_to"]
        assert owm.requests == []

        # The default window: the last 3 hours and the forecast, at the configured place.
        reply = api.post("/ingress/weather")
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["detail"] == "Weather data ingested"
        assert body["inserted"] == (3 + 48) * 7 and body["duplicates"] == 0
        assert (body["latitude"], body["longitude"]) == (52.2, 0.12)
        assert {q["lat"] for _, q in owm.requests} == {"52.2"}
        first = stored_readings(database)
        assert first == (3 + 48) * 7

        # Upstream failures: 502 / 504 naming the cause, and nothing more written.
        for path, mode, status, words in [
            ("/onecall", "429", 502, "too many requests"),
            ("/onecall", "timeout", 504, "no answer within 1 s"),
            ("/timemachine", "nan", 502, "field 'wind_speed' is nan"),
        ]:
            owm.fail(path, mode)
            reply = api.post("/ingress/weather", {})
            assert reply.status_code == status, reply.text
            assert words in reply.json()["detail"]
        owm.failure = None
        reply = api.post("/ingress/weather", {"api_key": "bad-key"})
        assert reply.status_code == 502 and "HTTP 401" in reply.json()["detail"]
        assert stored_readings(database) == first

        # The service key stands in for a token; a wrong one is refused.
        reply = anon.post(f"/ingress/weather?code={SERVICE_KEY}", {"dt_from": "present"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["inserted"] == 0  # the forecast is stored already
        reply = anon.post("/ingress/weather", {}, headers={"x-functions-key": SERVICE_KEY})
        assert reply.status_code == 200
        reply = anon.post("/ingress/weather?code=wrong", {})
        assert (reply.status_code, reply.json()) == (401, {"detail": "Invalid service key"})

        # Registered as a service: run-service calls it, and the run is logged.
        url = f"{weather_host.api}/ingress/weather?code={SERVICE_KEY}"
        api.ok(
            "/service/insert-service",
            {"name": "weather", "url": url, "http_method": "POST"},
            201,
        )
        api.ok(
            "/service/insert-parameter-set",
            {"service_name": "weather", "name": "forecast", "parameters": {"dt_from": "present"}},
            201,
        )
        reply = api.post(
            "/service/run-service", {"service_name": "weather", "parameter_set_name": "forecast"}
        )
        assert reply.status_code == 200, reply.text
        (run,) = api.ok("/service/list-runs", {"service_name": "weather"}, 200)
        assert run["response_status_code"] == 200
        assert run["response_json"]["detail"] == "Weather data ingested"
        assert run["parameters"] == {"dt_from": "present"}
        anon.close()
    finally:
        api.close()


def test_the_timer_function_ingests_the_last_hours_and_the_forecast(
    database: TestDatabase,
    owm: FakeOpenWeatherMap,
    monkeypatch: pytest.MonkeyPatch,
    admin: Api,
) -> None:
    """The timer's function, called as the local scheduler (or Azure) would call it."""
    import azure.functions.timer as timer

    from dtbase_core.db import dispose_engine
    from function_app.ingress import ingress_weather_timer

    owm.reset()
    owm.now = None
    trigger = ingress_weather_timer._function.get_trigger()
    assert trigger.schedule == "%DT_INGRESS_SCHEDULE%"
    for key, value in {
        "DT_DATABASE_URL": database.url,
        "DT_OPENWEATHERMAP_BASE_URL": owm.url,
        "DT_OPENWEATHERMAP_APIKEY": API_KEY,
        "DT_JWT_SECRET_KEY": "x" * 40,
    }.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    dispose_engine()
    try:
        ingress_weather_timer(timer.TimerRequest(past_due=False))
        assert stored_readings(database) == (3 + 48) * 7
        # Again: duplicates, unless the clock passed an hour (then that hour is new).
        ingress_weather_timer(timer.TimerRequest(past_due=False))
        assert (3 + 48) * 7 <= stored_readings(database) <= (3 + 48) * 7 + 2 * 7
        # Without a key, the timer does nothing (and says so in the log).
        monkeypatch.delenv("DT_OPENWEATHERMAP_APIKEY")
        reset_settings()
        owm.reset()
        ingress_weather_timer(timer.TimerRequest(past_due=False))
        assert owm.requests == []
    finally:
        monkeypatch.undo()
        reset_settings()
        dispose_engine()
