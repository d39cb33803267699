"""Roles (docs/api.md, Roles): every route of the app walked as a viewer, an editor and an
admin over HTTP; role changes, the last admin, and DTBase's `is_admin`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from dtbase_core.roles import Role
from function_app.http import ROUTES, Auth, Route
from tests.support import Api

SIGNED_IN = [route for route in ROUTES if route.auth in (Auth.TOKEN, Auth.TOKEN_OR_SERVICE_KEY)]
# What a viewer may call: reads only. A new route is closed to viewers unless declared
# `role=Role.VIEWER`; this list makes opening one a decision a reviewer sees.
VIEWER_ROUTES = {
    "GET forecast/status/{instance_id}",
    "POST location/list-locations",
    "GET location/list-location-schemas",
    "GET location/list-location-identifiers",
    "POST location/get-schema-details",
    "GET model/list-models",
    "GET model/list-model-scenarios",
    "GET model/list-model-measures",
    "POST model/list-model-runs",
    "POST model/get-model-run",
    "POST model/get-model-run-sensor-measure",
    "GET sensor/list-sensor-types",
    "GET sensor/list-measures",
    "POST sensor/list-sensors",
    "POST sensor/list-sensor-locations",
    "POST sensor/sensor-readings",
    "POST sensor/sensor-readings-aggregated",
    "POST sensor/latest-readings",
    "POST sensor/export-readings",
    "POST sensor/list-derived-measures",
    "POST sensor/readings-retained-from",
    "GET service/list-services",
    "POST service/list-parameter-sets",
    "GET service/run-status/{run_id}",
    "POST service/list-runs",
    "GET user/list-users",
    "POST user/change-password",
    "GET user/me",
    "GET alert/list-alert-rules",
    "POST alert/list-alerts",
    "POST alert/backtest-alert-rule",
    "GET notification/list-channels",
    "POST notification/list-deliveries",
    "GET service/list-schedules",
    "GET asset/list-asset-types",
    "POST asset/list-assets",
    "POST asset/asset-tree",
    "POST asset/list-asset-moves",
    "POST asset/list-sensor-attachments",
    "POST asset/list-asset-sensors",
    "POST annotation/list-annotations",
    "GET sta/v1.1",
    "GET sta/v1.1/{*path}",
}
ADMIN_ROUTES = {
    "POST apikey/create-api-key",
    "GET apikey/list-api-keys",
    "POST apikey/revoke-api-key",
    "POST apikey/rotate-api-key",
    "POST alert/evaluate-alerts",
    "POST notification/insert-channel",
    "POST notification/delete-channel",
    "POST notification/test-channel",
    "POST user/create-user",
    "POST user/create-service-user",
    "POST user/delete-user",
    "POST user/update-user-role",
    "GET user/list-user-roles",
    "POST audit/list-events",
    "POST sensor/set-retention",
}


def _key(route: Route) -> str:
    return f"{route.method} {route.path}"


@pytest.fixture
def callers(admin: Api, live_host) -> Iterator[dict[Role, Api]]:
    apis = {Role.ADMIN: admin}
    for role in (Role.VIEWER, Role.EDITOR):
        email, password = f"{role}@example.com", f"{role}-password-1"
        admin.ok("/user/create-user", {"email": email, "password": password, "role": role}, 201)
        apis[role] = Api(live_host.api, email, password)
    yield apis
    apis[Role.VIEWER].close()
    apis[Role.EDITOR].close()


def call_route(api: Api, route: Route) -> httpx.Response:
    """The route with a body that fails validation: a caller the role check lets through
    gets a 422 (or a 404 for a path naming nothing), so nothing is written."""
    path = "/" + re.sub(r"\{[^}]+\}", "1", route.path)
    if route.method == "GET":
        return api.get(path)
    return api.post(path, json=[]) if route.body is not None else api.post(path)


def test_declared_roles_are_the_reviewed_ones() -> None:
    declared = {role: {_key(r) for r in SIGNED_IN if r.role is role} for role in Role}
    assert declared[Role.VIEWER] == VIEWER_ROUTES
    assert declared[Role.ADMIN] == ADMIN_ROUTES
    # Every GET only reads.
    assert {_key(r) for r in SIGNED_IN if r.method == "GET"} <= VIEWER_ROUTES | ADMIN_ROUTES


def test_every_route_as_every_role(callers: dict[Role, Api]) -> None:
    wrong = []
    for route in SIGNED_IN:
        for role, api in callers.items():
            reply = call_route(api, route)
            if role.includes(route.role):
                if reply.status_code in (401, 403):
                    wrong.append((_key(route), role.value, reply.status_code, reply.text))
                continue
            expected = (
                route.errors[403]
                if route.role is Role.ADMIN
                else f"Your role '{role}' may only read: {route.path} needs the 'editor' role"
            )
            if (reply.status_code, reply.json()) != (403, {"detail": expected}):
                wrong.append((_key(route), role.value, reply.status_code, reply.text))
    assert wrong == []
    assert len(SIGNED_IN) > 50  # the walk covered the app, not an empty list


def test_a_viewer_reads_but_writes_nothing(admin: Api, callers: dict[Role, Api]) -> None:
    viewer = callers[Role.VIEWER]
    admin.ok("/sensor/insert-sensor-type", {"name": "t", "measures": []}, 201)
    assert [t["name"] for t in viewer.get("/sensor/list-sensor-types").json()] == ["t"]
    refused = viewer.post("/sensor/delete-sensor-type", {"type_name": "t"})
    assert refused.status_code == 403
    assert [t["name"] for t in admin.get("/sensor/list-sensor-types").json()] == ["t"]
    me = viewer.get("/user/me").json()
    assert me == {"email": "viewer@example.com", "is_admin": False, "role": "viewer"}
    # A viewer still changes their own password, and only their own.
    other = viewer.post("/user/change-password", {"email": "editor@example.com", "password": "x"})
    assert other.status_code == 403
    own = viewer.post("/user/change-password", {"email": "viewer@example.com", "password": "x"})
    assert own.status_code == 200


def test_a_role_change_counts_from_the_next_request(admin: Api, callers: dict[Role, Api]) -> None:
    viewer = callers[Role.VIEWER]
    body = {"name": "promoted", "measures": []}
    assert viewer.post("/sensor/insert-sensor-type", body).status_code == 403
    admin.ok("/user/update-user-role", {"email": "viewer@example.com", "role": "editor"})
    assert viewer.post("/sensor/insert-sensor-type", body).status_code == 201  # same token
    assert admin.get("/user/list-user-roles").json() == [
        {"email": "default_user@localhost", "role": "admin"},
        {"email": "viewer@example.com", "role": "editor"},
        {"email": "editor@example.com", "role": "editor"},
    ]
    missing = admin.post("/user/update-user-role", {"email": "nobody@x.org", "role": "viewer"})
    assert (missing.status_code, missing.json()) == (400, {"detail": "User doesn't exist"})
    bad = admin.post("/user/update-user-role", {"email": "viewer@example.com", "role": "owner"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "role"]


def test_the_last_admin_stays_an_admin(admin: Api, callers: dict[Role, Api]) -> None:
    me = {"email": "default_user@localhost", "role": "viewer"}
    refused = admin.post("/user/update-user-role", me)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "default_user@localhost is the last admin: make another admin first"
    }
    admin.ok("/user/update-user-role", {"email": "editor@example.com", "role": "admin"})
    admin.ok("/user/update-user-role", me)  # now there is another
    assert admin.get("/user/me").json()["role"] == "viewer"
    assert admin.post("/user/create-user", {"email": "z@x.org", "password": "p"}).status_code == 403


def test_create_user_takes_a_role_or_dtbase_is_admin(admin: Api, live_host) -> None:
    admin.ok("/user/create-user", {"email": "a@x.org", "password": "p", "is_admin": True}, 201)
    admin.ok("/user/create-user", {"email": "v@x.org", "password": "p", "role": "viewer"}, 201)
    admin.ok("/user/create-user", {"email": "e@x.org", "password": "p"}, 201)
    roles = {u["email"]: u["role"] for u in admin.get("/user/list-user-roles").json()}
    assert (roles["a@x.org"], roles["v@x.org"], roles["e@x.org"]) == ("admin", "viewer", "editor")
    both = admin.post(
        "/user/create-user",
        {"email": "c@x.org", "password": "p", "is_admin": True, "role": "viewer"},
    )
    assert both.status_code == 422
    assert '"is_admin": true contradicts "role": "viewer"' in both.json()["detail"][0]["msg"]


def test_the_service_key_passes_the_role_check(host_factory) -> None:
    """The deployment's own services call with the service key, not as a user: an
    editor's route (the weather ingress) lets them through to the body check."""
    key = "service-key-" + "s" * 24
    host = host_factory(env={"DT_SERVICE_API_KEY": key})
    reply = httpx.post(host.api + "/ingress/weather", json=[], headers={"x-functions-key": key})
    assert reply.status_code == 422
