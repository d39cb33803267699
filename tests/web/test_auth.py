"""Signing in and out, the sign-in guard on every page, tokens kept per tab, token refresh
(before expiry and on a 401), and admin-only controls hidden from other users."""

from __future__ import annotations

import time

import jwt
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import JWT_SECRET
from tests.web.conftest import sign_in

PAGES = [
    "index.html",
    "sensors.html",
    "readings.html",
    "plots.html",
    "locations.html",
    "assets.html",
    "models.html",
    "forecasts.html",
    "services.html",
    "channels.html",
    "alerts.html",
    "users.html",
]


@pytest.mark.parametrize("path", PAGES)
def test_signed_out_visitor_is_sent_to_login_and_back(
    page: Page, live_host, admin, console, path: str
) -> None:
    page.goto(f"{live_host.url}/{path}?x=1")
    page.wait_for_url("**/login.html?next=**")
    assert f"next=%2F{path.replace('.', '.')}%3Fx%3D1" in page.url
    page.get_by_label("Email").fill(live_host.admin_email)
    page.get_by_label("Password", exact=True).fill(live_host.admin_password)
    page.get_by_label("Password", exact=True).press("Enter")
    page.wait_for_url(f"**/{path}?x=1")
    expect(page.locator("nav a[aria-current=page]")).to_have_count(1)
    expect(page.locator("#signed-in-email")).to_have_text(live_host.admin_email)


def test_wrong_password_shows_the_api_detail(page: Page, live_host, admin, console) -> None:
    console.allow("401 (Unauthorized)")
    page.goto(live_host.url + "/login.html")
    page.get_by_label("Email").fill(live_host.admin_email)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.locator("#login-form .form-status")
    expect(alert).to_have_text("Incorrect email or password")
    expect(alert).to_have_attribute("role", "alert")
    assert page.url.endswith("/login.html")
    # The password can be shown to check it, and hidden again.
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "text")
    page.get_by_role("button", name="Hide").click()
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "password")


def test_sign_out_and_tokens_per_tab(signed_in: Page, live_host, context) -> None:
    page = signed_in
    stored = page.evaluate("() => JSON.parse(sessionStorage.getItem('dtbase.tokens'))")
    assert stored["access_token"].count(".") == 2 and stored["refresh_token"]
    assert page.evaluate("() => localStorage.length") == 0  # nothing outlives the tab

    # Another tab has its own session: it is signed out.
    other = context.new_page()
    other.goto(live_host.url + "/sensors.html")
    other.wait_for_url("**/login.html?next=%2Fsensors.html")
    other.close()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login.html?reason=signed-out")
    expect(page.locator("#login-notice")).to_have_text("You have signed out.")
    assert page.evaluate("() => sessionStorage.getItem('dtbase.tokens')") is None
    page.goto(live_host.url + "/index.html")
    page.wait_for_url("**/login.html?next=%2Findex.html")


def _tokens(page: Page) -> dict[str, str]:
    return dict(page.evaluate("() => JSON.parse(sessionStorage.getItem('dtbase.tokens'))"))


def _with_lifetime(token: str, iat: int, exp: int) -> str:
    """`token` (its user, account key and version) re-signed with the test hosts' secret
    for another lifetime: a token the server really accepts until `exp`, and refuses as
    expired after it."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode({**claims, "iat": iat, "exp": exp}, JWT_SECRET, algorithm="HS256")


def _store(page: Page, access: str, refresh: str) -> None:
    page.evaluate(
        "([a, r]) => sessionStorage.setItem('dtbase.tokens',"
        " JSON.stringify({access_token: a, refresh_token: r}))",
        [access, refresh],
    )


def test_token_refreshed_before_expiry_and_on_401(browser: Browser, live_host, admin) -> None:
    """The page stays signed in: refreshed on schedule, and after a 401 "Token has expired"
    when its clock is behind the server's. The page's clock is Playwright's, moved by the
    test; the server's expiry is met with tokens whose lifetime really ends."""
    admin.ok(
        "/sensor/insert-sensor-type",
        {"name": "T", "measures": [{"name": "m", "units": None, "datatype": "float"}]},
        status=201,
    )
    admin.ok("/sensor/insert-sensor", {"type_name": "T", "unique_identifier": "s-1"}, status=201)

    # 1. Scheduled refresh: a token with a minute to live is renewed 15 s before its end.
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    statuses: list[tuple[str, int]] = []
    page.on(
        "response",
        lambda r: (
            statuses.append((r.url.split("/api/")[-1], r.status)) if "/api/" in r.url else None
        ),
    )
    page.clock.install()
    sign_in(
        page, live_host.url, live_host.admin_email, live_host.admin_password, start="/sensors.html"
    )
    expect(page.locator("#sensor-list table")).to_contain_text("s-1")
    issued = _tokens(page)
    now = int(time.time())
    short = _with_lifetime(issued["access_token"], now, now + 60)
    _store(page, short, issued["refresh_token"])
    page.reload()
    expect(page.locator("#sensor-list table")).to_contain_text("s-1")
    with page.expect_response("**/api/auth/refresh") as refreshed:
        page.clock.fast_forward(50_000)  # past the refresh point, before the end
    assert refreshed.value.status == 200
    page.wait_for_function(
        "(old) => JSON.parse(sessionStorage.getItem('dtbase.tokens')).access_token !== old",
        arg=short,
    )
    page.get_by_role("link", name="Sensors", exact=True).click()
    page.wait_for_url("**/sensors.html")
    expect(page.locator("#sensor-list table")).to_contain_text("s-1")
    assert all(status != 401 for _, status in statuses), statuses
    assert errors == []
    context.close()

    # 2. A 401 "Token has expired": the page's clock is two minutes behind, so it does not
    #    see the expiry coming; it refreshes on the 401 and retries the request.
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    statuses = []
    page.on(
        "response",
        lambda r: (
            statuses.append((r.url.split("/api/")[-1], r.status)) if "/api/" in r.url else None
        ),
    )
    page.clock.install(time=time.time() - 120)
    sign_in(
        page, live_host.url, live_host.admin_email, live_host.admin_password, start="/sensors.html"
    )
    expect(page.locator("#sensor-list table")).to_contain_text("s-1")
    issued = _tokens(page)
    now = int(time.time())
    _store(
        page, _with_lifetime(issued["access_token"], now - 100, now - 10), issued["refresh_token"]
    )
    statuses.clear()
    page.get_by_role("link", name="Sensors", exact=True).click()
    page.wait_for_url("**/sensors.html")
    expect(page.locator("#sensor-list table")).to_contain_text("s-1")
    assert ("user/me", 401) in statuses or ("sensor/list-sensor-types", 401) in statuses, statuses
    assert ("auth/refresh", 200) in statuses, statuses
    assert "login.html" not in page.url
    context.close()


def test_admin_only_controls_hidden_from_a_normal_user(
    page: Page, live_host, admin, console
) -> None:
    admin.ok(
        "/user/create-user", {"email": "ann@example.com", "password": "ann-password-1"}, status=201
    )
    sign_in(page, live_host.url, "ann@example.com", "ann-password-1", start="/users.html")
    expect(page.locator("#password-form")).to_be_visible()
    expect(page.locator("#create-user-form")).to_be_hidden()
    # A normal user sees only their own account, and the page says so.
    expect(page.locator("#user-list table tbody tr")).to_have_count(1)
    expect(page.locator("#user-list")).to_contain_text("ann@example.com")
    expect(page.locator("#user-list")).not_to_contain_text(live_host.admin_email)
    expect(
        page.get_by_text("You see only your own account: administrators see and manage every user.")
    ).to_be_visible()
    expect(page.locator(".admin-badge")).to_be_hidden()
