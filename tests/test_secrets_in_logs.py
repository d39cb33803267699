"""No key in any log (README, "Migrating from DTBase: what changed"):
OpenWeatherMap's `appid` must travel in its query and the old-style `?code=` service URLs
still work, but every log line (the root logger at DEBUG in this process, pytest's capture,
and a local host's log file at DEBUG) shows them as `***`. The run log and the listings do
too."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dtbase_core import redact, services
from dtbase_core.client import DTBaseClient
from dtbase_core.ingress.weather import WeatherIngress
from dtbase_core.orm.base import HttpMethod
from dtbase_core.outbound import OutboundPolicy
from tests.support import Api, LocalHost
from tests.test_service_security import Recorder
from tests.test_weather_ingress import API_KEY, PRESENT, FakeOpenWeatherMap, settings_for

SERVICE_KEY = "service-key-" + "q" * 24
SECRETS = (API_KEY, SERVICE_KEY)


@pytest.fixture
def owm() -> Iterator[FakeOpenWeatherMap]:
    server = FakeOpenWeatherMap()
    yield server
    server.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, captured by pytest's handler on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    root.setLevel(level)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET https://h/x?appid=abc&lat=1", "GET https://h/x?appid=***&lat=1"),
        ("https://h/x?lat=1&APPID=abc", "https://h/x?lat=1&APPID=***"),
        ("'https://h/x?code=abc==' failed", "'https://h/x?code=***' failed"),
        ("u?Key=a&token=b&sig=c&keep=d#f", "u?Key=***&token=***&sig=***&keep=d#f"),
        ("u?mykey=a&code=", "u?mykey=a&code="),
        ("no query here, code=abc", "no query here, code=abc"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert redact.mask_text(text) == masked


def test_in_process_weather_ingress_and_service_run_log_no_key(
    debug_logs: pytest.LogCaptureFixture,
    owm: FakeOpenWeatherMap,
    recorder: Recorder,
    live_host: LocalHost,
    admin: Api,
) -> None:
    owm.now = int(PRESENT.timestamp()) // 3600 * 3600
    with DTBaseClient.with_password(
        live_host.api, live_host.admin_email, live_host.admin_password
    ) as client:
        ingress = WeatherIngress(client, settings=settings_for(owm), clock=lambda: PRESENT)
        summary = ingress.run(dt_from="present")
    assert summary["inserted"] > 0
    assert {q["appid"] for _, q in owm.requests} == {API_KEY}  # the key went in the query

    target = services.RunTarget(
        1, recorder.url(f"/run?code={SERVICE_KEY}&n=1"), HttpMethod.GET, False, None, {"a": 1}
    )
    out = services.Outbound(OutboundPolicy.allowing(["127.0.0.1"]), timeout=5)
    result = asyncio.run(services.call_service(target, out))
    assert result.status_code == 200
    assert result.response_json == {"path": "/run?code=***&n=1&a=1"}
    assert recorder.requests[0][0].startswith(f"/run?code={SERVICE_KEY}")

    text = debug_logs.text + "\n".join(r.getMessage() for r in debug_logs.records)
    assert "appid=***" in text and "code=***" in text  # httpx logged both requests, masked
    assert_no_secret(text)


def test_a_host_at_debug_logs_no_key(
    host_factory: Callable[..., LocalHost], owm: FakeOpenWeatherMap, admin: Api
) -> None:
    host = host_factory(
        env={
            "DT_OPENWEATHERMAP_BASE_URL": owm.url,
            "DT_OPENWEATHERMAP_APIKEY": API_KEY,
            "DT_SERVICE_API_KEY": SERVICE_KEY,
        },
        log_level="debug",
        own_database=True,  # its runs' calls need its key: no other host may run them
    )
    api = Api(host.api, host.admin_email, host.admin_password)
    weather = host.api + "/ingress/weather"
    for name, url, extra in (
        ("weather", weather, {"use_service_key": True}),
        ("weather, old style", f"{weather}?code={SERVICE_KEY}", {}),
    ):
        body: dict[str, Any] = {"name": name, "url": url, "http_method": "POST", **extra}
        api.ok("/service/insert-service", body, 201)
        reply = api.post(
            "/service/run-service", {"service_name": name, "parameters": {"dt_from": "present"}}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["status_code"] == 200, reply.text
        assert reply.json()["response_json"]["detail"] == "Weather data ingested"
        assert_no_secret(reply.text)
    assert {q["appid"] for _, q in owm.requests} == {API_KEY}

    listed = json.dumps(api.get("/service/list-services").json())
    runs = json.dumps(api.ok("/service/list-runs", None, 200))
    assert "code=***" in listed
    assert_no_secret(listed + runs)
    api.close()
    host.stop()  # flushes everything to the log file
    log = host.log()
    assert "appid=***" in log and "code=***" in log  # the requests were logged, masked
    assert_no_secret(log)
