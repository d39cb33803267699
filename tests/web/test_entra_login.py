"""The login page offers "Sign in with Microsoft" only when /api/auth/config says so, and the
whole round trip (MSAL.js, authorization code with PKCE) works against the local provider
of tests/entra_provider.py, reached by the browser as login.microsoftonline.com."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.entra_provider import API_CLIENT_ID, SPA_CLIENT_ID, TENANT, EntraProvider, TestCA
from tests.support import ADMIN_PASSWORD, Api
from tests.web.conftest import ConsoleLog

MICROSOFT = "https://login.microsoftonline.com"


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    directory = tmp_path_factory.mktemp("entra-web-ca")
    os.chmod(directory, 0o755)
    return TestCA(directory)


@pytest.fixture(scope="module")
def provider(test_ca: TestCA) -> Iterator[EntraProvider]:
    # Tokens say they come from login.microsoftonline.com, as Entra ID's would.
    server = EntraProvider(test_ca, issuer_host=MICROSOFT).start()
    yield server
    server.stop()


@pytest.fixture
def entra_host(host_factory, provider: EntraProvider):
    return host_factory(
        env={
            "DT_ENTRA_TENANT_ID": TENANT,
            "DT_ENTRA_AUDIENCE": API_CLIENT_ID,
            "DT_ENTRA_AUTHORITY_HOST": provider.base_url,
            "DT_ENTRA_CA_BUNDLE": str(provider.ca.ca_path),
            "DT_ENTRA_SPA_CLIENT_ID": SPA_CLIENT_ID,
        }
    )


def test_no_microsoft_button_unless_configured(
    page: Page, live_host, clean_db, console: ConsoleLog
) -> None:
    scripts: list[str] = []
    page.on("request", lambda request: scripts.append(request.url))
    page.goto(live_host.url + "/login.html")
    expect(page.get_by_label("Email")).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("button", name="Sign in with Microsoft")).to_be_hidden()
    assert any(url.endswith("/api/auth/config") for url in scripts)
    assert not any("msal" in url for url in scripts), "MSAL.js loaded without Entra ID"
    # The built-in form still signs in.
    page.get_by_label("Email").fill(live_host.admin_email)
    page.get_by_label("Password", exact=True).fill(live_host.admin_password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#signed-in-email")).to_have_text(live_host.admin_email)


def _forward_to(provider: EntraProvider):
    """Answer the browser's requests to login.microsoftonline.com from the local provider."""
    http = httpx.Client(verify=ssl.create_default_context(cafile=provider.ca.ca_path), timeout=30)

    def handle(route: Route) -> None:
        request = route.request
        path = request.url[len(MICROSOFT) :]
        headers = {"X-Forwarded-Host": "login.microsoftonline.com"}
        if request.headers.get("content-type"):
            headers["Content-Type"] = request.headers["content-type"]
        reply = http.request(
            request.method,
            provider.base_url + path,
            content=request.post_data_buffer,
            headers=headers,
            follow_redirects=False,
        )
        route.fulfill(
            status=reply.status_code,
            headers={
                key: value
                for key, value in reply.headers.items()
                if key.lower() in ("content-type", "location", "access-control-allow-origin")
            },
            body=reply.content,
        )

    return handle


def test_sign_in_with_microsoft_round_trip(
    page: Page, entra_host, clean_db, provider: EntraProvider, console: ConsoleLog, shoot
) -> None:
    admin = Api(entra_host.api, entra_host.admin_email, ADMIN_PASSWORD)
    admin.ok("/user/create-user", {"email": "Grace@Example.org", "password": "pw"}, 201)
    admin.close()
    provider.signed_in = {"email": "grace@example.org", "roles": []}

    # The deployment says where to sign in; the browser reaches "Microsoft" through the route.
    config = httpx.get(entra_host.api + "/auth/config").json()
    assert config["entra"]["client_id"] == SPA_CLIENT_ID
    browser_config = {"entra": {**config["entra"], "authority": f"{MICROSOFT}/{TENANT}"}}
    page.route(
        "**/api/auth/config",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(browser_config)
        ),
    )
    page.context.route(f"{MICROSOFT}/**", _forward_to(provider))

    page.goto(entra_host.url + "/sensors.html")
    page.wait_for_url("**/login.html**")
    button = page.get_by_role("button", name="Sign in with Microsoft")
    expect(button).to_be_visible()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()  # both
    shoot("login-with-microsoft")
    button.click()
    page.wait_for_url("**/sensors.html")
    expect(page.locator("#signed-in-email")).to_have_text("Grace@Example.org")
    authorize = [k for k in provider.requests if k.endswith("/oauth2/v2.0/authorize")]
    assert authorize, "the browser never went to the authorize endpoint"
    grant = provider.token_requests[-1]
    assert grant["grant_type"] == ["authorization_code"]
    assert grant["code_verifier"], "PKCE: the code verifier was sent"
    # The token in the tab is the Entra one, and the API accepts it on every page.
    stored = json.loads(page.evaluate("() => sessionStorage.getItem('dtbase.tokens')"))
    assert stored["entra"] is True and stored["refresh_token"] is None
    page.goto(entra_host.url + "/index.html")
    expect(page.locator("#signed-in-email")).to_have_text("Grace@Example.org")


def test_unknown_microsoft_user_sees_the_api_s_reason(
    page: Page, entra_host, clean_db, provider: EntraProvider, console: ConsoleLog
) -> None:
    console.allow("401")
    provider.signed_in = {"email": "stranger@example.org", "roles": []}
    config = httpx.get(entra_host.api + "/auth/config").json()
    browser_config = {"entra": {**config["entra"], "authority": f"{MICROSOFT}/{TENANT}"}}
    page.route(
        "**/api/auth/config",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(browser_config)
        ),
    )
    page.context.route(f"{MICROSOFT}/**", _forward_to(provider))
    page.goto(entra_host.url + "/login.html")
    page.get_by_role("button", name="Sign in with Microsoft").click()
    expect(page.locator("#entra-error")).to_have_text("No DTBase user for this Entra identity")
    assert page.evaluate("() => sessionStorage.getItem('dtbase.tokens')") is None
    assert "/login.html" in page.url


def test_button_shown_when_the_host_is_configured(
    page: Page, entra_host, clean_db, console: ConsoleLog
) -> None:
    """Without any routing: the host's own /auth/config turns the button on."""
    page.goto(entra_host.url + "/login.html")
    expect(page.get_by_role("button", name="Sign in with Microsoft")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_visible()
