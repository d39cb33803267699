"""The audit log (docs/api.md, Audit log) over real HTTP: which routes are recorded (every
write, walked route by route), the actor of each kind (user, API key, the built-in
services), failures with their status and nothing changed, a rolled-back write with no
success row, filters and paging, admins only, and no secret in any row."""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dtbase_core.timeutil import utcnow
from function_app.http import ROUTES, Auth, Route, default_audit
from tests.support import Api, TestDatabase
from tests.test_roles import call_route

ADMIN = "default_user@localhost"
# Routes whose recording is declared against the default (a write is a route closed to
# viewers that is not a GET): opening or closing one is a decision a reviewer sees.
DECLARED = {
    "POST user/change-password": True,  # a viewer's write
    "POST audit/list-events": False,  # an admin's read
    "POST telemetry/list-dead-letters": False,  # an editor's read
}


def _key(route: Route) -> str:
    return f"{route.method} {route.path}"


def events(api: Api, **filters: Any) -> list[dict[str, Any]]:
    reply = api.post("/audit/list-events", filters)
    assert reply.status_code == 200, reply.text
    return reply.json()


def latest(api: Api, **filters: Any) -> dict[str, Any]:
    return events(api, limit=1, **filters)[0]


def sensor_type(api: Api, name: str = "weather") -> None:
    measure = {"name": "temperature", "units": "C", "datatype": "float"}
    api.ok("/sensor/insert-sensor-type", {"name": name, "measures": [measure]}, 201)


def sensor(api: Api, uid: str, type_name: str = "weather") -> None:
    api.ok("/sensor/insert-sensor", {"type_name": type_name, "unique_identifier": uid}, 201)


def readings(uid: str, count: int = 3) -> dict[str, Any]:
    return {
        "unique_identifier": uid,
        "measure_name": "temperature",
        "readings": [20.0 + i for i in range(count)],
        "timestamps": [f"2026-01-01T00:0{i}:00Z" for i in range(count)],
    }


@pytest.fixture
def editor(admin: Api, live_host) -> Iterator[Api]:
    admin.ok("/user/create-user", {"email": "ed@example.com", "password": "pw-editor-1"}, 201)
    api = Api(live_host.api, "ed@example.com", "pw-editor-1")
    yield api
    api.close()


def test_the_audited_routes_are_the_writes_and_the_declared_ones() -> None:
    declared = {
        _key(r): r.audit for r in ROUTES if r.audit != default_audit(r.method, r.auth, r.role)
    }
    assert declared == DECLARED
    assert not [_key(r) for r in ROUTES if r.audit and r.auth is Auth.NONE]
    assert len([r for r in ROUTES if r.audit]) > 40  # the writes of the whole app


def test_every_audited_route_records_a_call_and_no_other_route_does(admin: Api) -> None:
    """Each route called as an admin with a body that fails validation (or, for a route
    without one, as it is): its audit row, with the reply's status; a read leaves none."""
    replies = {}
    for route in ROUTES:
        if route.auth in (Auth.TOKEN, Auth.TOKEN_OR_SERVICE_KEY):
            replies[_key(route)] = call_route(admin, route).status_code
    recorded = defaultdict(list)
    for event in events(admin, limit=1000):
        recorded[f"{event['method']} {event['route']}"].append(event["status"])
    audited = {_key(r) for r in ROUTES if r.audit}
    assert {key: [status] for key, status in replies.items() if key in audited} == recorded
    assert all(event["actor"] == ADMIN for event in events(admin, limit=1000))


def test_a_users_write_names_the_user_route_target_and_outcome(admin: Api) -> None:
    before = utcnow()
    sensor_type(admin)
    sensor(admin, "ws-1")
    [made, typed] = events(admin)
    assert typed["route"] == "sensor/insert-sensor-type"
    assert typed["target"] == "name=weather"
    assert {
        k: made[k] for k in ("actor_kind", "actor", "method", "route", "status", "outcome")
    } == {
        "actor_kind": "user",
        "actor": ADMIN,
        "method": "POST",
        "route": "sensor/insert-sensor",
        "status": 201,
        "outcome": "success",
    }
    assert made["target"] == "unique_identifier=ws-1, type_name=weather"
    assert made["id"] > typed["id"]
    at = made["at"]
    assert before.isoformat()[:16] <= at.replace("Z", "+00:00")[:16]


def test_an_api_keys_write_names_the_key_and_counts_the_readings(admin: Api, live_host) -> None:
    sensor_type(admin)
    sensor(admin, "ws-1")
    key = admin.ok("/apikey/create-api-key", {"name": "station", "scopes": ["readings:write"]})
    headers = {"X-API-Key": key["key"]}
    reply = httpx.post(
        live_host.api + "/sensor/insert-sensor-readings", json=readings("ws-1"), headers=headers
    )
    assert reply.status_code == 201
    event = latest(admin)
    assert (event["actor_kind"], event["actor"], event["route"], event["status"]) == (
        "api_key",
        "station",
        "sensor/insert-sensor-readings",
        201,
    )
    assert event["target"] == "unique_identifier=ws-1, measure_name=temperature, 3 readings"
    # A key refused for its scope is recorded too, with its 403.
    refused = httpx.post(
        live_host.api + "/sensor/insert-sensor", json={"type_name": "weather"}, headers=headers
    )
    assert refused.status_code == 403
    assert (latest(admin)["actor"], latest(admin)["status"]) == ("station", 403)


def test_the_built_in_services_key_is_the_service_actor(admin: Api, host_factory) -> None:
    service_key = "service-key-" + "a" * 24
    host = host_factory(env={"DT_SERVICE_API_KEY": service_key})
    sensor_type(admin)
    sensor(admin, "ws-1")
    reply = httpx.post(
        host.api + "/sensor/insert-sensor-readings",
        json=readings("ws-1", 2),
        headers={"X-API-Key": service_key},
    )
    assert reply.status_code == 201
    # The services' own header, on their own routes: the same actor.
    ingress = httpx.post(
        host.api + "/ingress/weather", json=[], headers={"x-functions-key": service_key}
    )
    assert ingress.status_code == 422
    [refused, stored] = events(admin, actor="built-in services")
    assert (stored["actor_kind"], stored["route"], stored["status"]) == (
        "service",
        "sensor/insert-sensor-readings",
        201,
    )
    assert (refused["actor_kind"], refused["route"], refused["status"]) == (
        "service",
        "ingress/weather",
        422,
    )


def test_failed_writes_are_recorded_with_their_status_and_change_nothing(
    admin: Api, editor: Api
) -> None:
    sensor_type(admin)
    missing = editor.post("/sensor/insert-sensor", {"type_name": "nope", "unique_identifier": "x"})
    assert missing.status_code == 400
    twice = admin.post("/sensor/insert-sensor-type", {"name": "weather", "measures": []})
    assert twice.status_code == 409
    not_admin = editor.post("/user/create-user", {"email": "z@example.com", "password": "pw-z"})
    assert not_admin.status_code == 403
    bad = editor.post("/sensor/insert-sensor", {"type_name": "weather"})
    assert bad.status_code == 422
    assert [
        (e["actor"], e["route"], e["target"], e["status"], e["outcome"])
        for e in events(admin, outcome="failure")
    ] == [
        ("ed@example.com", "sensor/insert-sensor", "type_name=weather", 422, "failure"),
        ("ed@example.com", "user/create-user", "email=z@example.com", 403, "failure"),
        (ADMIN, "sensor/insert-sensor-type", "name=weather", 409, "failure"),
        (
            "ed@example.com",
            "sensor/insert-sensor",
            "unique_identifier=x, type_name=nope",
            400,
            "failure",
        ),
    ]
    assert admin.post("/sensor/list-sensors", {}).json() == []
    assert "z@example.com" not in admin.get("/user/list-users").json()
    # What a refused body names is stored as text PostgreSQL can hold.
    nul = admin.post("/sensor/insert-sensor-type", {"name": "a\x00b", "measures": []})
    assert nul.status_code == 422
    assert (latest(admin)["target"], latest(admin)["status"]) == ("name=a\ufffdb", 422)


def test_a_rolled_back_write_leaves_a_failure_and_no_success(admin: Api) -> None:
    """A bulk insert whose second series names an unknown sensor: the first series was
    written in the transaction, which rolls back with the audit row it would have had."""
    sensor_type(admin)
    sensor(admin, "ws-1")
    body = {"series": [readings("ws-1"), readings("ghost")]}
    reply = admin.post("/sensor/insert-readings-bulk", body)
    assert reply.status_code == 400
    bulk = events(admin, action="sensor/insert-readings-bulk")
    assert [(e["status"], e["target"]) for e in bulk] == [
        (400, "2 sensors (ws-1, ghost), 6 readings")
    ]
    stored = admin.post(
        "/sensor/sensor-readings",
        {
            "unique_identifier": "ws-1",
            "measure_name": "temperature",
            "dt_from": "2025-01-01T00:00:00Z",
            "dt_to": "2027-01-01T00:00:00Z",
        },
    ).json()
    assert stored == []
    body["series"].pop()
    assert admin.post("/sensor/insert-readings-bulk", body).status_code == 201
    assert latest(admin)["target"] == "1 sensor (ws-1), 3 readings"


def test_a_bulk_insert_names_a_few_sensors_and_counts_the_rest(admin: Api) -> None:
    sensor_type(admin)
    uids = [f"s-{i:02}" for i in range(15)]
    for uid in uids:
        sensor(admin, uid)
    body = {"series": [readings(uid, 2) for uid in uids]}
    assert admin.post("/sensor/insert-readings-bulk", body).status_code == 201
    assert latest(admin)["target"] == (
        "15 sensors (s-00, s-01, s-02, s-03, s-04, s-05, s-06, s-07, s-08, s-09 and 5 more), "
        "30 readings"
    )


def test_an_asynchronous_write_is_recorded_after_its_reply(admin: Api) -> None:
    """run-service commits its own transactions; its outcome follows in one more, here an
    unreachable service (502), which is logged as a run too."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/nothing-here"
        admin.ok("/service/insert-service", {"name": "gone", "url": url, "http_method": "GET"})
        reply = admin.post("/service/run-service", {"service_name": "gone"})
    assert reply.status_code == 502
    event = latest(admin)
    assert (event["route"], event["target"], event["status"], event["outcome"]) == (
        "service/run-service",
        "service_name=gone",
        502,
        "failure",
    )
    missing = admin.post("/service/run-service", {"service_name": "nothing"})
    assert missing.status_code == 400
    assert (latest(admin)["target"], latest(admin)["status"]) == ("service_name=nothing", 400)


def test_filters_and_paging(admin: Api, editor: Api) -> None:
    sensor_type(admin)
    for i in range(5):
        sensor(editor, f"e-{i}")
    admin.ok("/model/insert-model", {"name": "arima"}, 201)
    everything = events(admin)
    assert len(everything) == 1 + 1 + 5 + 1  # create-user, sensor type, sensors, model
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)

    by_editor = events(admin, actor="ed@example.com")
    assert [e["target"] for e in by_editor] == [
        f"unique_identifier=e-{i}, type_name=weather" for i in reversed(range(5))
    ]
    assert {e["route"] for e in events(admin, action="sensor")} == {
        "sensor/insert-sensor-type",
        "sensor/insert-sensor",
    }
    assert [e["route"] for e in events(admin, action="model/insert-model")] == [
        "model/insert-model"
    ]
    assert events(admin, action="model/delete-model") == []
    assert events(admin, actor="nobody@example.com") == []

    # Paging: newest first, the next page before the last id seen.
    first = events(admin, limit=3)
    second = events(admin, limit=3, before_id=first[-1]["id"])
    third = events(admin, limit=3, before_id=second[-1]["id"])
    assert [e["id"] for e in first + second + third] == [e["id"] for e in everything]
    assert len(third) == 2

    # Time: dt_from inclusive, dt_to exclusive.
    middle = everything[3]["at"]
    assert [e["id"] for e in events(admin, dt_from=middle)] == [e["id"] for e in everything[:4]]
    assert [e["id"] for e in events(admin, dt_to=middle)] == [
        e["id"] for e in everything if e["at"] < middle
    ]
    later = (utcnow() + timedelta(hours=1)).isoformat()
    assert events(admin, dt_from=later) == []

    bad = admin.post("/audit/list-events", {"limit": 0, "outcome": "maybe"})
    assert bad.status_code == 422
    assert {tuple(item["loc"]) for item in bad.json()["detail"]} == {
        ("body", "limit"),
        ("body", "outcome"),
    }


def test_only_admins_read_the_log(admin: Api, editor: Api, live_host) -> None:
    refused = editor.post("/audit/list-events", {})
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "Only an admin can read the audit log"},
    )
    key = admin.ok("/apikey/create-api-key", {"name": "reader", "scopes": ["read"]})["key"]
    by_key = httpx.post(live_host.api + "/audit/list-events", json={}, headers={"X-API-Key": key})
    assert by_key.status_code == 403
    # Reading the log is not itself recorded.
    assert [e["route"] for e in events(admin)] == ["apikey/create-api-key", "user/create-user"]


def test_no_password_secret_url_or_key_reaches_the_table(
    admin: Api, clean_db: TestDatabase, live_host
) -> None:
    password, new_password = "pw-first-Secret-1", "pw-second-Secret-2"
    secret = "whsec-" + "q" * 30
    hook = "https://hooks.example.org/services/T000/B000/tok3nInTheUrl"
    admin.ok(
        "/user/create-user", {"email": "v@example.com", "password": password, "role": "viewer"}
    )
    viewer = Api(live_host.api, "v@example.com", password)
    refused = viewer.post("/user/change-password", {"email": ADMIN, "password": new_password})
    assert refused.status_code == 403
    viewer.ok("/user/change-password", {"email": "v@example.com", "password": new_password})
    viewer.close()
    channel = {"name": "ops", "kind": "webhook", "url": hook, "secret": secret}
    admin.ok("/notification/insert-channel", channel, 201)
    again = admin.post("/notification/insert-channel", channel)
    assert again.status_code == 409
    invalid = admin.post("/notification/insert-channel", {**channel, "name": "", "kind": "fax"})
    assert invalid.status_code == 422
    made = admin.ok("/apikey/create-api-key", {"name": "gateway", "scopes": ["read"]}, 201)
    rotated = admin.ok("/apikey/rotate-api-key", {"name": "gateway"}, 201)
    token = viewer.token or ""

    with clean_db.engine.connect() as conn:
        rows = conn.scalars(sa.text("select audit_event::text from audit_event")).all()
    assert len(rows) == 8
    text = "\n".join(rows)
    for value in (password, new_password, secret, hook, made["key"], rotated["key"], token):
        assert value not in text
    assert "hooks.example.org" not in text and "tok3n" not in text
    assert "email=v@example.com" in text and "name=ops" in text and "name=gateway" in text
