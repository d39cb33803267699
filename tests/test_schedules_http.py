"""Schedules and parameter schemas over real HTTP through the local host (docs/api.md,
Schedules; Parameter schemas): the routes, their errors, a dispatcher that starts a
scheduled run end to end, and the app's own services registered at start-up."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dtbase_core.cron import Cron
from tests.support import Api, LocalHost, Receiver

SCHEMA = {
    "type": "object",
    "properties": {"days": {"type": "integer", "minimum": 1}},
    "required": ["days"],
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _service(api: Api, name: str, url: str, schema: dict | None = None) -> None:
    body: dict[str, Any] = {"name": name, "url": url, "http_method": "POST"}
    if schema is not None:
        body["parameters_schema"] = schema
    api.ok("/service/insert-service", body, 201)


def _detail(reply: Any) -> list[tuple[list, str]]:
    return [(item["loc"], item["msg"]) for item in reply.json()["detail"]]


def test_parameter_schemas_validate_sets_and_runs(admin: Api, receiver: Receiver) -> None:
    _service(admin, "plain", receiver.url)
    _service(admin, "counted", receiver.url, SCHEMA)
    listed = admin.get("/service/list-services").json()
    # A service without a schema is listed exactly as DTBase lists it.
    assert listed == [
        {"name": "plain", "url": receiver.url, "http_method": "POST"},
        {
            "name": "counted",
            "url": receiver.url,
            "http_method": "POST",
            "parameters_schema": SCHEMA,
        },
    ]

    # A schema that is not one: 422 naming where.
    reply = admin.post(
        "/service/insert-service",
        {
            "name": "bad",
            "url": receiver.url,
            "http_method": "POST",
            "parameters_schema": {"properties": {"days": {"minimum": "one"}}},
        },
    )
    assert reply.status_code == 422
    ((loc, msg),) = _detail(reply)
    assert loc == ["body", "parameters_schema", "properties", "days", "minimum"]
    assert msg.startswith("not a valid JSON Schema: 'one' is not of type 'number'")
    reply = admin.post(
        "/service/insert-service",
        {"name": "bad", "url": receiver.url, "http_method": "POST", "parameters_schema": [1]},
    )
    assert reply.status_code == 422

    # Parameter sets: checked on insert and edit, only where there is a schema.
    admin.ok(
        "/service/insert-parameter-set",
        {"service_name": "plain", "name": "any", "parameters": {"days": -3}},
        201,
    )
    reply = admin.post(
        "/service/insert-parameter-set",
        {"service_name": "counted", "name": "bad", "parameters": {"days": -3}},
    )
    assert reply.status_code == 422
    assert _detail(reply) == [
        (
            ["body", "parameters", "days"],
            "-3 is less than the minimum of 1 (the parameters schema of service 'counted')",
        )
    ]
    admin.ok(
        "/service/insert-parameter-set",
        {"service_name": "counted", "name": "week", "parameters": {"days": 7}},
        201,
    )
    reply = admin.post(
        "/service/edit-parameter-set",
        {"service_name": "counted", "name": "week", "parameters": {"days": "7"}},
    )
    assert reply.status_code == 422
    assert _detail(reply)[0][1].startswith("'7' is not of type 'integer'")
    # An unknown set is that, before its parameters are looked at.
    reply = admin.post(
        "/service/edit-parameter-set",
        {"service_name": "counted", "name": "nope", "parameters": {"days": "7"}},
    )
    assert (reply.status_code, reply.json()) == (400, {"detail": "Parameter set does not exist."})
    assert [s["parameters"] for s in admin.ok("/service/list-parameter-sets", None, 200)] == [
        {"days": -3},
        {"days": 7},
    ]

    # run-service: explicit parameters are checked before anything is logged or called.
    reply = admin.post(
        "/service/run-service", {"service_name": "counted", "parameters": {"days": 0}}
    )
    assert reply.status_code == 422 and _detail(reply)[0][0] == ["body", "parameters", "days"]
    reply = admin.post("/service/run-service", {"service_name": "counted", "parameters": {}})
    assert reply.status_code == 422
    assert "'days' is a required property" in _detail(reply)[0][1]
    assert admin.ok("/service/list-runs", None, 200) == []
    assert receiver.bodies == []
    ran = admin.ok(
        "/service/run-service", {"service_name": "counted", "parameter_set_name": "week"}
    )
    assert ran["response_json"] == {"received": {"days": 7}}
    ran = admin.ok("/service/run-service", {"service_name": "plain", "parameters": {"days": -3}})
    assert ran["status_code"] == 200


def test_schedule_routes(admin: Api, receiver: Receiver) -> None:
    _service(admin, "counted", receiver.url, SCHEMA)
    admin.ok(
        "/service/insert-parameter-set",
        {"service_name": "counted", "name": "week", "parameters": {"days": 7}},
        201,
    )
    body = {
        "service_name": "counted",
        "name": "nightly",
        "parameter_set_name": "week",
        "cron": "0 30 2 * * *",
        "enabled": True,
    }
    assert admin.ok("/service/insert-schedule", body, 201) == {
        "detail": "Schedule created successfully."
    }
    before = datetime.now(UTC)
    (listed,) = admin.get("/service/list-schedules").json()
    after = datetime.now(UTC)
    expected = Cron("0 30 2 * * *").next_times(before, 3)
    assert expected == Cron("0 30 2 * * *").next_times(after, 3)  # not across 02:30 itself
    assert listed == {
        "service_name": "counted",
        "name": "nightly",
        "parameter_set_name": "week",
        "cron": "0 30 2 * * *",
        "enabled": True,
        "next_fire_times": [t.isoformat().replace("+00:00", "Z") for t in expected],
        "last_run": None,
    }

    # Errors, each naming what is wrong.
    reply = admin.post("/service/insert-schedule", body)
    assert (reply.status_code, reply.json()) == (409, {"detail": "Schedule already exists."})
    reply = admin.post("/service/insert-schedule", {**body, "name": "x", "cron": "30 2 * * *"})
    assert reply.status_code == 422
    ((loc, msg),) = _detail(reply)
    assert loc == ["body", "cron"] and "six fields" in msg and "'30 2 * * *'" in msg
    reply = admin.post("/service/insert-schedule", {**body, "name": "x", "cron": "0 61 * * * *"})
    assert reply.status_code == 422 and _detail(reply)[0][0] == ["body", "cron"]
    reply = admin.post("/service/insert-schedule", {**body, "service_name": "nope"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Service does not exist."})
    reply = admin.post("/service/insert-schedule", {**body, "parameter_set_name": "nope"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Parameter set does not exist."})
    reply = admin.post("/service/insert-schedule", {**body, "enabled": "yes"})
    assert reply.status_code == 422

    # A set a schedule runs cannot be deleted.
    reply = admin.post("/service/delete-parameter-set", {"service_name": "counted", "name": "week"})
    assert reply.status_code == 409 and "'nightly'" in reply.json()["detail"]

    # Update: only what is given changes.
    admin.ok(
        "/service/update-schedule", {"service_name": "counted", "name": "nightly", "enabled": False}
    )
    (listed,) = admin.get("/service/list-schedules?service_name=counted").json()
    assert (listed["enabled"], listed["cron"], listed["next_fire_times"]) == (
        False,
        "0 30 2 * * *",
        [],
    )
    admin.ok(
        "/service/update-schedule",
        {
            "service_name": "counted",
            "name": "nightly",
            "cron": "0 0 */6 * * *",
            "parameter_set_name": None,
            "enabled": True,
        },
    )
    (listed,) = admin.get("/service/list-schedules").json()
    assert listed["parameter_set_name"] is None and listed["cron"] == "0 0 */6 * * *"
    assert len(listed["next_fire_times"]) == 3
    reply = admin.post(
        "/service/update-schedule", {"service_name": "counted", "name": "nightly", "cron": "bad"}
    )
    assert reply.status_code == 422 and _detail(reply)[0][0] == ["body", "cron"]
    reply = admin.post("/service/update-schedule", {"service_name": "counted", "name": "nope"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Schedule does not exist."})
    assert admin.get("/service/list-schedules?service_name=other").json() == []

    admin.ok("/service/delete-schedule", {"service_name": "counted", "name": "nightly"})
    reply = admin.post("/service/delete-schedule", {"service_name": "counted", "name": "nightly"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Schedule does not exist."})
    assert admin.get("/service/list-schedules").json() == []
    admin.ok("/service/delete-parameter-set", {"service_name": "counted", "name": "week"})


def test_schedule_routes_need_a_token(anon: Api) -> None:
    assert anon.get("/service/list-schedules").status_code == 401
    for route in ("insert-schedule", "update-schedule", "delete-schedule"):
        assert anon.post(f"/service/{route}").status_code == 401


def _wait_for(check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError("timed out")


def test_the_dispatcher_runs_a_schedule_like_run_service(
    host_factory: Callable[..., LocalHost], receiver: Receiver
) -> None:
    """A host whose dispatcher fires every two seconds starts a schedule that is due every
    second: each run is logged, named by its schedule, completed with the service's reply,
    and shown as the schedule's last run; disabled, it stops."""
    host = host_factory(env={"DT_SCHEDULE_DISPATCH": "*/2 * * * * *"}, own_database=True)
    api = Api(host.api, host.admin_email, host.admin_password)
    _service(api, "counted", receiver.url, SCHEMA)
    api.ok(
        "/service/insert-parameter-set",
        {"service_name": "counted", "name": "week", "parameters": {"days": 7}},
        201,
    )
    api.ok(
        "/service/insert-schedule",
        {
            "service_name": "counted",
            "name": "often",
            "parameter_set_name": "week",
            "cron": "* * * * * *",
        },
        201,
    )

    def completed() -> list[dict]:
        runs = api.ok("/service/list-runs", {"service_name": "counted"}, 200)
        return [r for r in runs if r["status"] == "completed"]

    runs = _wait_for(completed)
    run = runs[0]
    assert run["schedule_name"] == "often" and run["parameter_set_name"] == "week"
    assert run["response_json"] == {"received": {"days": 7}}
    status = api.get(f"/service/run-status/{run['run_id']}").json()
    assert status["status"] == "completed" and status["status_code"] == 200
    (listed,) = api.get("/service/list-schedules").json()
    assert listed["last_run"]["run_id"] >= run["run_id"]

    # One run per dispatch at most (not one per second missed between two dispatches).
    runs = api.ok("/service/list-runs", {"service_name": "counted"}, 200)
    starts = sorted(datetime.fromisoformat(r["timestamp"]) for r in runs)
    assert all(b - a > timedelta(seconds=1) for a, b in itertools.pairwise(starts))

    # Disabled, it stops: a witness schedule, still enabled, shows two more dispatches.
    api.ok(
        "/service/update-schedule", {"service_name": "counted", "name": "often", "enabled": False}
    )
    stopped = len(api.ok("/service/list-runs", {"service_name": "counted"}, 200))
    _service(api, "witness", receiver.url)
    api.ok(
        "/service/insert-schedule",
        {"service_name": "witness", "name": "w", "cron": "* * * * * *"},
        201,
    )
    _wait_for(lambda: len(api.ok("/service/list-runs", {"service_name": "witness"}, 200)) >= 2)
    assert len(api.ok("/service/list-runs", {"service_name": "counted"}, 200)) == stopped
    api.close()


def test_own_services_are_registered_at_start_up_once(
    host_factory: Callable[..., LocalHost],
) -> None:
    """Two hosts starting on one database: the weather ingress and the ARIMA forecast are
    services once each, at the host's own address, with their schemas."""
    on = {"DT_REGISTER_OWN_SERVICES": "true"}
    first = host_factory(env=on, own_database=True)
    second_env = {**on, "DT_DATABASE_URL": first.env["DT_DATABASE_URL"]}
    second = host_factory(env=second_env)
    api = Api(first.api, first.admin_email, first.admin_password)
    listed = api.get("/service/list-services").json()
    assert [(s["name"], s["http_method"], s["use_service_key"]) for s in listed] == [
        ("weather-ingress", "POST", True),
        ("arima-forecast", "POST", True),
    ]
    # The URL is the first host's (registered first; the second found it up to date or
    # moved it to its own address: either is a host of this app).
    assert listed[0]["url"] in (f"{h.api}/ingress/weather" for h in (first, second))
    assert "latitude" in listed[0]["parameters_schema"]["properties"]
    reply = api.post(
        "/service/insert-parameter-set",
        {"service_name": "weather-ingress", "name": "far north", "parameters": {"latitude": 95}},
    )
    assert reply.status_code == 422
    assert _detail(reply)[0][0] == ["body", "parameters", "latitude"]
    api.close()
