"""Cross-cutting HTTP behaviour (docs/api.md, Conventions; Errors; Extensions): every route needs
a token, unknown paths and verbs, trailing slashes, the OpenAPI document and the docs page."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

from tests.support import ROOT, Api, free_port

PUBLIC = {
    "auth/login",
    "auth/config",
    "openapi.json",
    "docs",
    "docs/{asset}",
    "health",
    "{*path}",
}


@functools.cache
def http_functions() -> list[tuple[str, str]]:
    """(route, method) of every HTTP function the app registers, read from the app."""
    from function_app import app

    found = []
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        if trigger.get_binding_name() == "httpTrigger":
            for method in trigger.methods or ["GET"]:
                found.append((trigger.route, str(getattr(method, "value", method))))
    return found


def test_there_are_at_least_dtbase_s_49_endpoints() -> None:
    routes = {route for route, _ in http_functions()} - PUBLIC - {"auth/refresh"}
    assert len(routes) >= 47 + 5  # DTBase's 49 less the two /auth ones, plus extensions


def test_every_route_needs_a_token(anon: Api) -> None:
    for route, method in http_functions():
        if route in PUBLIC:
            continue
        path = "/" + route.replace("{", "").replace("}", "")
        # No body, no token: 401 (docs/api.md, Order of checks).
        reply = anon.http.request(method, path)
        assert reply.status_code == 401, (route, reply.status_code, reply.text)
        assert reply.json() == {"detail": "Not authenticated"}
        assert reply.headers.get("www-authenticate") == "Bearer"


def test_check_order(anon: Api) -> None:
    """JSON syntax before the token; the token before the fields (docs/api.md, Order of checks)."""
    bad_json = anon.http.post(
        "/sensor/insert-sensor", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert anon.post("/sensor/insert-sensor", {"wrong": 1}).status_code == 401


def test_unknown_path_wrong_verb_and_trailing_slash(admin: Api) -> None:
    reply = admin.get("/no/such/thing")
    assert (reply.status_code, reply.json()) == (404, {"detail": "Not Found"})
    reply = admin.post("/user/list-users")
    assert (reply.status_code, reply.json()) == (405, {"detail": "Method Not Allowed"})
    reply = admin.get("/sensor/list-sensor-types/", follow_redirects=False)
    assert reply.status_code == 307
    assert reply.headers["location"].endswith("/api/sensor/list-sensor-types")


def test_openapi_document_covers_every_route(anon: Api) -> None:
    doc = anon.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for route, method in http_functions():
        if route in ("{*path}",):
            continue
        # A catch-all `{*name}` is documented as `{name}`.
        assert method.lower() in doc["paths"]["/" + route.replace("{*", "{")], route
    insert = doc["paths"]["/sensor/insert-sensor-readings"]["post"]
    schema_ref = insert["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {"measure_name", "unique_identifier", "readings", "timestamps"}
    assert {"201", "401", "422"} <= set(insert["responses"])


def test_docs_page_uses_vendored_assets(anon: Api) -> None:
    page = anon.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "//cdn" not in page.text and "https://" not in page.text
    bundle = anon.get("/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert anon.get("/docs/..%2Fhttp.py").status_code == 404


def test_health(anon: Api) -> None:
    assert anon.get("/health").json() == {"status": "ok", "database": "ok"}


HEALTH_WITH_DEAD_DATABASE = """
import asyncio
import azure.functions as func
from function_app import app
fn = next(f for f in app.get_functions() if f.get_function_name() == "health")
request = func.HttpRequest("GET", "http://h/api/health", body=b"")
reply = asyncio.run(fn.get_user_function()(req=request))
print(reply.status_code, reply.get_body().decode())
"""


def test_health_names_a_database_that_is_down() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DT_LOCAL_MODE": "1",
        "DT_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
    }
    out = subprocess.run(
        [sys.executable, "-c", HEALTH_WITH_DEAD_DATABASE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    status, body = out.stdout.strip().split(" ", 1)
    assert status == "503", out.stderr
    assert json.loads(body)["database"].startswith("down")


@pytest.mark.parametrize("body", [b"[]", b"null", b"42", b'"text"'])
def test_non_object_bodies_are_422(admin: Api, body: bytes) -> None:
    reply = admin.http.post(
        "/sensor/insert-sensor",
        content=body,
        headers={"Authorization": f"Bearer {admin.token}", "content-type": "application/json"},
    )
    assert reply.status_code == 422, reply.text
