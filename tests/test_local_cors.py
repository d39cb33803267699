"""The local host answers CORS as the Azure platform does for the Function App: only for
the origins in DT_CORS_ORIGINS, and not at all when the setting is unset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dtbase_core.config import ConfigError, get_settings, reset_settings
from tests.support import ADMIN_PASSWORD, DEFAULT_USER_EMAIL, LocalHost, TestDatabase, start_host

SITE = "http://127.0.0.1:1"  # never contacted: only named in Origin headers
OTHER_SITE = "https://dtbase.example"
STRANGER = "http://127.0.0.1:2"


def preflight(host: LocalHost, origin: str, path: str = "/auth/login") -> httpx.Response:
    return httpx.options(
        host.api + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def cors_headers(reply: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.lower().startswith("access-control-")}


@pytest.fixture(scope="module")
def cors_host(database: TestDatabase, host_root: Path) -> Iterator[LocalHost]:
    host = start_host(
        database.url,
        host_root / "cors",
        {"DT_CORS_ORIGINS": f"{SITE}, {OTHER_SITE}/"},
    )
    yield host
    host.stop()


def test_unset_setting_means_cors_closed(live_host: LocalHost) -> None:
    assert "DT_CORS_ORIGINS" not in live_host.env
    assert cors_headers(preflight(live_host, SITE)) == {}
    health = httpx.get(live_host.api + "/health", headers={"Origin": SITE})
    assert health.status_code == 200 and cors_headers(health) == {}


def test_listed_origin_gets_its_preflight_answered(cors_host: LocalHost) -> None:
    for origin in (SITE, OTHER_SITE):
        reply = preflight(cors_host, origin)
        assert reply.status_code == 204
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-methods"] == "POST"
        assert reply.headers["access-control-allow-headers"] == "authorization,content-type"
        assert "access-control-allow-credentials" not in reply.headers  # bearer tokens only
        assert reply.headers["vary"] == "Origin"


def test_listed_origin_can_sign_in_read_and_write(
    cors_host: LocalHost, clean_db: TestDatabase
) -> None:
    login = httpx.post(
        cors_host.api + "/auth/login",
        json={"email": DEFAULT_USER_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Origin": SITE},
    )
    assert login.status_code == 200
    assert login.headers["access-control-allow-origin"] == SITE
    token = login.json()["access_token"]
    auth = {"Origin": SITE, "Authorization": f"Bearer {token}"}
    created = httpx.post(
        cors_host.api + "/location/insert-location-schema",
        json={
            "name": "cors-check",
            "description": "",
            "identifiers": [{"name": "x", "units": "m", "datatype": "float"}],
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == SITE
    # An error reply names the origin too, so the page can read the API's detail.
    refused = httpx.get(cors_host.api + "/user/me", headers={"Origin": SITE})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == SITE


@pytest.mark.parametrize("origin", [STRANGER, "https://dtbase.example.evil", "null"])
def test_other_origins_get_nothing(cors_host: LocalHost, origin: str) -> None:
    assert cors_headers(preflight(cors_host, origin)) == {}
    health = httpx.get(cors_host.api + "/health", headers={"Origin": origin})
    assert health.status_code == 200 and cors_headers(health) == {}


@pytest.mark.parametrize(
    "value",
    ["*", "https://site.example/app", "site.example", "ftp://site.example"],
)
def test_a_setting_that_is_not_a_list_of_origins_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DT_CORS_ORIGINS", value)
    reset_settings()
    try:
        with pytest.raises(ConfigError, match="DT_CORS_ORIGINS"):
            get_settings()
    finally:
        monkeypatch.delenv("DT_CORS_ORIGINS")
        reset_settings()


def test_origins_are_read_as_the_browser_sends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_CORS_ORIGINS", "HTTPS://Site.Example/, http://127.0.0.1:8080")
    reset_settings()
    try:
        assert get_settings().cors_origins == ("https://site.example", "http://127.0.0.1:8080")
    finally:
        monkeypatch.delenv("DT_CORS_ORIGINS")
        reset_settings()
