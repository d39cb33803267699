"""API keys (docs/api.md, API keys): made by admins, shown once, stored as keyed hashes,
scoped and limited per route, revoked, rotated, expiring; last use written at most once a
minute; the scope matrix over every route; the service key as a key like any other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import apikeys
from dtbase_core.apikeys import Scope
from dtbase_core.client import DTBaseClient
from dtbase_core.config import Settings
from dtbase_core.errors import Forbidden, Unauthorized
from function_app.http import ROUTES, Auth, Route
from tests.support import Api, TestDatabase
from tests.test_roles import call_route

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(jwt_secret_key="k" * 40)
SIGNED_IN = [route for route in ROUTES if route.auth in (Auth.TOKEN, Auth.TOKEN_OR_SERVICE_KEY)]
# Which routes each scope opens to keys; every other route refuses keys. A key never
# manages users, keys (or, later, channels).
SCOPED = {
    Scope.READINGS_WRITE: {
        "POST sensor/insert-sensor-readings",
        "POST sensor/insert-readings-bulk",
    },
    Scope.SERVICES_RUN: {
        "POST service/run-service",
        "POST ingress/weather",
        "POST forecast/arima",
    },
}


@pytest.fixture
def session(database: TestDatabase) -> Iterator[Session]:
    """A session on empty tables, rolled back afterwards."""
    from dtbase_core.migrations import upgrade

    upgrade(database.url)
    database.truncate_all()
    with Session(database.engine) as session:
        yield session
        session.rollback()


def _key(route: Route) -> str:
    return f"{route.method} {route.path}"


class KeyApi(Api):
    """A client that sends an API key instead of a token."""

    def __init__(self, base: str, key: str, header: str = "Authorization") -> None:
        super().__init__(base)
        self.key = key
        self.header = header

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        value = f"ApiKey {self.key}" if self.header == "Authorization" else self.key
        return {self.header: value, **(headers or {})}


@pytest.fixture
def keys(admin: Api, live_host) -> Iterator[dict[str, KeyApi]]:
    """One key per scope, and one with all three."""
    made = {}
    for name, scopes in (
        ("read", ["read"]),
        ("readings:write", ["readings:write"]),
        ("services:run", ["services:run"]),
        ("all", ["read", "readings:write", "services:run"]),
    ):
        reply = admin.ok("/apikey/create-api-key", {"name": name, "scopes": scopes}, 201)
        made[name] = KeyApi(live_host.api, reply["key"])
    yield made
    for api in made.values():
        api.close()


def _set_up_sensors(admin: Api) -> None:
    measure = {"name": "temperature", "units": "C", "datatype": "float"}
    admin.ok("/sensor/insert-sensor-type", {"name": "thermo", "measures": [measure]}, 201)
    admin.ok("/sensor/insert-sensor-type", {"name": "other", "measures": [measure]}, 201)
    for uid, kind in (("t1", "thermo"), ("t2", "thermo"), ("o1", "other")):
        admin.ok("/sensor/insert-sensor", {"unique_identifier": uid, "type_name": kind}, 201)


def _readings(uid: str, value: float = 1.5) -> dict:
    return {
        "unique_identifier": uid,
        "measure_name": "temperature",
        "units": "C",
        "readings": [value],
        "timestamps": ["2026-01-01T00:00:00Z"],
    }


def test_a_key_is_shown_once_and_stored_as_a_hash(admin: Api, live_host, clean_db) -> None:
    made = admin.ok(
        "/apikey/create-api-key",
        {"name": "station", "scopes": ["read", "readings:write"], "sensors": ["t1"]},
        201,
    )
    key = made["key"]
    assert re.fullmatch(r"dtb_[A-Za-z0-9_-]{43}", key)
    assert made["prefix"] == key[:12] and made["created_by"] == "default_user@localhost"
    KeyApi(live_host.api, key).get("/sensor/list-sensor-types").raise_for_status()
    listed = admin.get("/apikey/list-api-keys").json()
    assert [k["name"] for k in listed] == ["station"]
    assert "key" not in listed[0] and listed[0]["scopes"] == ["read", "readings:write"]
    assert listed[0]["sensors"] == ["t1"] and listed[0]["last_used_at"] is not None
    # Nowhere in the database, nor in the host's log.
    with clean_db.engine.connect() as conn:
        tables = conn.execute(
            sa.text("select tablename from pg_tables where schemaname = 'public'")
        ).scalars()
        dump = "\n".join(
            row
            for table in tables
            for row in conn.execute(sa.text(f'select t::text from "{table}" t')).scalars()
        )
    assert "station" in dump and key[12:] not in dump
    assert key[12:] not in live_host.log()
    taken = admin.post("/apikey/create-api-key", {"name": "station", "scopes": ["read"]})
    assert (taken.status_code, taken.json()["detail"]) == (409, "API key 'station' exists already")


def test_both_headers_and_the_401s(admin: Api, live_host) -> None:
    key = admin.ok("/apikey/create-api-key", {"name": "k", "scopes": ["read"]}, 201)["key"]
    for header in ("Authorization", "X-API-Key"):
        reply = KeyApi(live_host.api, key, header).get("/sensor/list-sensor-types")
        assert reply.status_code == 200, header

    def refused(key: str) -> str:
        reply = KeyApi(live_host.api, key).get("/sensor/list-sensor-types")
        assert reply.status_code == 401
        return reply.json()["detail"]

    assert refused(key[:-1] + ("A" if key[-1] != "A" else "B")) == "Unknown API key"
    assert refused("dtb_nothing") == "Unknown API key"
    admin.ok("/apikey/revoke-api-key", {"name": "k"})
    assert refused(key) == "API key revoked"
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    old = admin.ok(
        "/apikey/create-api-key", {"name": "old", "scopes": ["read"], "expires_at": past}, 201
    )
    assert refused(old["key"]) == "API key expired"
    missing = admin.post("/apikey/revoke-api-key", {"name": "nope"})
    assert (missing.status_code, missing.json()) == (400, {"detail": "No API key named 'nope'"})
    bad = admin.post("/apikey/create-api-key", {"name": "x", "scopes": ["write-all"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "scopes"]


def test_the_scope_matrix_over_every_route(keys: dict[str, KeyApi]) -> None:
    """Each route with each key: let through to the body check (a 422, nothing written)
    when the key has the route's scope, else 403 naming the scope, or saying keys may not
    use it at all."""
    wrong = []
    for route in SIGNED_IN:
        for name, api in keys.items():
            reply = call_route(api, route)
            scopes = {Scope(s) for s in ("read", "readings:write", "services:run")}
            held = scopes if name == "all" else {Scope(name)}
            if route.scope is None:
                expected = (403, f"API keys may not use {route.path}")
            elif route.scope not in held:
                expected = (403, f"API key lacks scope '{route.scope}'")
            else:
                if reply.status_code in (401, 403):
                    wrong.append((_key(route), name, reply.status_code, reply.text))
                continue
            if (reply.status_code, reply.json().get("detail")) != expected:
                wrong.append((_key(route), name, reply.status_code, reply.text))
    assert wrong == []
    declared = {scope: {_key(r) for r in SIGNED_IN if r.scope is scope} for scope in Scope}
    assert declared[Scope.READINGS_WRITE] == SCOPED[Scope.READINGS_WRITE]
    assert declared[Scope.SERVICES_RUN] == SCOPED[Scope.SERVICES_RUN]
    # The read scope opens the reads a viewer may use, minus the user's own account.
    viewer_reads = {_key(r) for r in SIGNED_IN if r.role.value == "viewer"}
    assert declared[Scope.READ] == viewer_reads - {
        "GET user/list-users",
        "GET user/me",
        "POST user/change-password",
    }


def test_a_key_limited_to_sensors_writes_only_those(admin: Api, live_host) -> None:
    _set_up_sensors(admin)
    by_sensor = admin.ok(
        "/apikey/create-api-key",
        {"name": "t1 only", "scopes": ["readings:write"], "sensors": ["t1"]},
        201,
    )
    by_type = admin.ok(
        "/apikey/create-api-key",
        {"name": "thermos", "scopes": ["readings:write"], "sensor_types": ["thermo"]},
        201,
    )
    one, thermos = KeyApi(live_host.api, by_sensor["key"]), KeyApi(live_host.api, by_type["key"])
    assert one.post("/sensor/insert-sensor-readings", _readings("t1")).status_code == 201
    refused = one.post("/sensor/insert-sensor-readings", _readings("t2"))
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "API key may not write sensor 't2'"},
    )
    bulk = {"series": [_readings("t1", 2.5), _readings("o1")]}
    refused = thermos.post("/sensor/insert-readings-bulk", bulk)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "API key may not write sensor 'o1'"},
    )
    # All or nothing: t1's reading of the refused batch is not there.
    query = {**_readings("t1"), "dt_from": "2025-01-01T00:00:00Z", "dt_to": "2027-01-01T00:00:00Z"}
    stored = admin.ok("/sensor/sensor-readings", query)
    assert [r["value"] for r in stored] == [1.5]
    ok = thermos.post("/sensor/insert-readings-bulk", {"series": [_readings("t2", 3.0)]})
    assert ok.status_code == 201


def test_keys_never_manage_users_or_keys(admin: Api, keys: dict[str, KeyApi]) -> None:
    everything = keys["all"]
    for path, body in (
        ("/apikey/create-api-key", {"name": "mine", "scopes": ["read"]}),
        ("/user/create-user", {"email": "x@y.org", "password": "p"}),
        ("/apikey/revoke-api-key", {"name": "read"}),
    ):
        reply = everything.post(path, body)
        assert reply.status_code == 403, path
    assert everything.get("/apikey/list-api-keys").status_code == 403
    assert everything.get("/user/me").json() == {"detail": "API keys may not use user/me"}


def test_last_use_is_written_at_most_once_a_minute(session: Session) -> None:
    settings = SETTINGS
    made = apikeys.create_api_key(
        session, name="busy", scopes=["read"], created_by="t", now=T0, settings=settings
    )

    def use(at: datetime, address: str) -> tuple[datetime | None, str | None]:
        apikeys.authenticate_key(session, made["key"], now=at, address=address, settings=settings)
        row = session.execute(
            sa.text("select last_used_at, last_used_address from api_key where name = 'busy'")
        ).one()
        return row[0], row[1]

    assert use(T0, "10.0.0.1") == (T0, "10.0.0.1")
    assert use(T0 + timedelta(seconds=59), "10.0.0.2") == (T0, "10.0.0.1")  # no write
    later = T0 + timedelta(seconds=61)
    assert use(later, "10.0.0.3") == (later, "10.0.0.3")


def test_rotation_keeps_both_keys_for_the_overlap(session: Session) -> None:
    settings = SETTINGS
    first = apikeys.create_api_key(
        session,
        name="gateway",
        scopes=["readings:write"],
        sensors=["t1"],
        created_by="t",
        now=T0,
        settings=settings,
    )
    second = apikeys.rotate_api_key(
        session,
        name="gateway",
        overlap=timedelta(hours=1),
        created_by="t",
        now=T0,
        settings=settings,
    )
    assert second["name"] == "gateway" and second["sensors"] == ["t1"]

    def who(key: str, at: datetime) -> str:
        return apikeys.authenticate_key(session, key, now=at, address=None, settings=settings).name

    soon = T0 + timedelta(minutes=59)
    assert who(first["key"], soon) == "gateway (rotated 2026-03-01T12:00:00Z)"
    assert who(second["key"], soon) == "gateway"
    with pytest.raises(Unauthorized, match="API key expired"):
        who(first["key"], T0 + timedelta(hours=1))
    assert who(second["key"], T0 + timedelta(days=400)) == "gateway"
    principal = apikeys.authenticate_key(
        session, second["key"], now=T0, address=None, settings=settings
    )
    with pytest.raises(Forbidden, match="API key lacks scope 'read'"):
        principal.require(Scope.READ)


def test_the_service_key_is_a_listed_scoped_key(host_factory) -> None:
    key = "service-key-" + "s" * 24
    host = host_factory(env={"DT_SERVICE_API_KEY": key})
    admin = Api(host.api, host.admin_email, host.admin_password)
    listed = {k["name"]: k for k in admin.get("/apikey/list-api-keys").json()}
    service = listed["built-in services"]
    assert service["scopes"] == ["read", "readings:write", "services:run"]
    assert service["prefix"] == key[:12] and key not in str(listed)
    refused = admin.post("/apikey/revoke-api-key", {"name": "built-in services"})
    assert refused.status_code == 409
    # Sent the services' old way, or as an API key: the same key.
    old_way = httpx.get(host.api + "/service/list-services", headers={"x-functions-key": key})
    assert old_way.status_code == 401  # not one of the services' own routes
    with DTBaseClient(host.api, api_key=key) as client:
        assert client.get("/service/list-services") == []
    wrong = httpx.post(host.api + "/ingress/weather", json={}, headers={"x-functions-key": "no"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid service key"})
    admin.close()
