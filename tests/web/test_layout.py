"""Every page: no console errors, a screenshot, labels on every input, usable at 390 and
1280 pixels and by keyboard alone, a clear message when the API is down, and the Static
Web Apps configuration (CSP without inline scripts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.web.conftest import nav_to, sign_in

STATIC = Path(__file__).resolve().parents[2] / "static_web"
PAGES = {
    "index.html": "Dashboard",
    "sensors.html": "Sensors",
    "readings.html": "Readings",
    "plots.html": "Time-series plots",
    "locations.html": "Locations",
    "assets.html": "Assets",
    "asset.html": "Asset",
    "import.html": "Import readings from CSV",
    "models.html": "Models",
    "forecasts.html": "Forecasts",
    "services.html": "Services",
    "channels.html": "Channels",
    "alerts.html": "Alerts",
    "users.html": "Users",
    "apikeys.html": "API keys",
    "audit.html": "Audit log",
}

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden')
    .filter(el => !(el.labels && el.labels.length))
    .filter(el => !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map(el => el.outerHTML)"""


def seed(admin) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Weather",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor", {"type_name": "Weather", "unique_identifier": "roof"}, status=201
    )
    admin.ok(
        "/location/insert-location-schema",
        {
            "name": "xy",
            "description": None,
            "identifiers": [{"name": "x", "units": None, "datatype": "float"}],
        },
        status=201,
    )
    admin.ok(
        "/service/insert-service",
        {"name": "svc", "url": "http://127.0.0.1:9/", "http_method": "POST"},
        status=201,
    )


def test_every_page_loads_without_console_errors_and_labels_every_input(
    signed_in: Page, live_host, admin, shoot, console
) -> None:
    seed(admin)
    page = signed_in
    for path, heading in PAGES.items():
        page.goto(f"{live_host.url}/{path}")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator("body")).not_to_have_class(re.compile("auth-pending"))
        page.wait_for_load_state("networkidle")
        expect(page.locator(".loading")).to_have_count(0)
        assert page.title().endswith("· DTBase")
        assert page.evaluate(UNLABELLED) == [], path
        expect(page.locator("nav a[aria-current=page]")).to_have_count(1)
        if path in ("index.html", "services.html", "users.html", "forecasts.html"):
            shoot(f"page-{path.removesuffix('.html')}")
    # The sign-in page too.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login.html**")
    assert page.evaluate(UNLABELLED) == []
    shoot("login")


@pytest.mark.parametrize("width", [390, 1280])
def test_pages_fit_the_screen(
    browser: Browser, live_host, admin, screenshots: Path, width: int
) -> None:
    seed(admin)
    context = browser.new_context(viewport={"width": width, "height": 844}, timezone_id="UTC")
    page = context.new_page()
    sign_in(page, live_host.url, live_host.admin_email, live_host.admin_password)
    for path in PAGES:
        page.goto(f"{live_host.url}/{path}")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px too wide at {width}px"
    menu = page.get_by_role("button", name="Menu")
    data_group = page.get_by_role("button", name="Data", exact=True)
    sensors_link = page.get_by_role("link", name="Sensors", exact=True)
    if width == 390:
        expect(data_group).to_be_hidden()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        data_group.click()
        expect(sensors_link).to_be_visible()
        page.screenshot(path=str(screenshots / "mobile-menu.png"))
        sensors_link.click()
        page.wait_for_url("**/sensors.html")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / "mobile-sensors.png"), full_page=True)
    else:
        expect(menu).to_be_hidden()
        expect(sensors_link).to_be_hidden()
        data_group.click()
        expect(sensors_link).to_be_visible()
    context.close()


def test_the_navigation_groups_open_one_at_a_time_and_close_on_escape_or_outside(
    signed_in: Page, live_host
) -> None:
    page = signed_in
    page.goto(f"{live_host.url}/channels.html")
    data = page.get_by_role("button", name="Data", exact=True)
    alerts = page.get_by_role("button", name="Alerts", exact=True)
    # The group holding the page shown is marked, though closed.
    expect(alerts).to_have_class(re.compile(r"\bcurrent\b"))
    expect(data).not_to_have_class(re.compile(r"\bcurrent\b"))
    data.click()
    expect(data).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="Plots", exact=True)).to_be_visible()
    alerts.click()  # opening another closes the first
    expect(data).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name="Plots", exact=True)).to_be_hidden()
    page.keyboard.press("Escape")
    expect(alerts).to_have_attribute("aria-expanded", "false")
    expect(alerts).to_be_focused()
    data.click()
    page.locator("h1").click()
    expect(data).to_have_attribute("aria-expanded", "false")


def test_keyboard_alone(page: Page, live_host, admin, console) -> None:
    """Sign in and add a sensor type without touching the mouse."""
    page.goto(live_host.url + "/sensors.html")
    page.wait_for_url("**/login.html**")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(live_host.admin_email)
    page.keyboard.press("Tab")
    page.keyboard.type(live_host.admin_password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/sensors.html")
    expect(page.locator("#type-filter")).to_be_enabled()
    page.wait_for_load_state("networkidle")

    # The first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")

    def tab_to(selector: str, limit: int = 80) -> None:
        for _ in range(limit):
            if page.evaluate(
                "(s) => document.activeElement && document.activeElement.matches(s)", selector
            ):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#new-type-name")
    page.keyboard.type("Keyboard")
    tab_to("#add-type-form select[name=measure_choice]")
    page.keyboard.press("Tab")
    page.keyboard.type("level")
    page.keyboard.press("Tab")
    page.keyboard.type("cm")
    tab_to("#add-type-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#add-type-form .form-status")).to_have_text(
        "Sensor type “Keyboard” added."
    )
    assert admin.get("/sensor/list-sensor-types").json()[0]["measures"] == [
        {"name": "level", "units": "cm", "datatype": "float"}
    ]
    # Focus is visible: the focused control draws a ring.
    tab_to("#new-sensor-id")
    shadow = page.evaluate("() => getComputedStyle(document.activeElement).boxShadow")
    assert shadow and shadow != "none"


def test_api_down_is_reported_and_pages_still_work(
    signed_in: Page, live_host, admin, console
) -> None:
    console.allow("net::ERR_FAILED")
    console.allow("503 (Service Unavailable)")
    page = signed_in
    page.route("**/api/**", lambda route: route.abort())
    page.goto(live_host.url + "/sensors.html")
    banner = page.locator("#api-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("The API cannot be reached")
    expect(page.locator("#sensor-list .error")).to_contain_text("The API cannot be reached")
    # The page itself still works: navigation, forms and their messages.
    form = page.locator("#add-type-form")
    form.get_by_label("Type name").fill("X")
    form.locator(".measure-row").first.get_by_label("Name").fill("m")
    form.get_by_role("button", name="Add sensor type").click()
    expect(form.locator(".form-status.error")).to_contain_text("The API cannot be reached")
    nav_to(page, "Readings")
    page.wait_for_url("**/readings.html")
    expect(page.locator("#api-banner")).to_be_visible()
    # A 503 from the API (its database down) is reported the same way.
    page.unroute("**/api/**")
    page.route(
        "**/api/**",
        lambda route: route.fulfill(
            status=503, json={"status": "error", "database": "unavailable"}
        ),
    )
    page.goto(live_host.url + "/index.html")
    expect(page.locator("#api-banner")).to_contain_text("unavailable")
    # And it recovers once the API is back.
    page.unroute("**/api/**")
    page.goto(live_host.url + "/index.html")
    expect(page.locator("[data-stat=sensors] .number")).to_have_text("0")
    expect(page.locator("#api-banner")).to_be_hidden()


def test_static_web_app_config_and_no_inline_scripts(live_host) -> None:
    config = json.loads((STATIC / "staticwebapp.config.json").read_text())
    # Every page is its own file: an unknown address gets the 404 page, not the dashboard.
    assert "navigationFallback" not in config
    assert config["responseOverrides"]["404"] == {"rewrite": "/404.html", "statusCode": 404}
    csp = config["globalHeaders"]["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"
    for header in ("X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"):
        assert header in config["globalHeaders"]

    # The local host serves the pages with these headers.
    reply = httpx.get(live_host.url + "/sensors.html")
    assert reply.status_code == 200
    assert reply.headers["content-security-policy"] == csp
    assert reply.headers["content-type"].startswith("text/html")

    for html in STATIC.glob("*.html"):
        text = html.read_text()
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) is None, (
            f"inline script in {html.name}"
        )
        assert re.search(r"\son[a-z]+\s*=", text) is None, f"inline handler in {html.name}"
        assert "style=" not in text, f"inline style in {html.name}"
        assert '<meta charset="utf-8">' in text
    for js in STATIC.glob("js/**/*.js"):
        text = js.read_text()
        assert "innerHTML" not in text and "eval(" not in text, js.name
    assert (STATIC / "vendor/uplot/LICENSE").read_text().startswith("The MIT License")


def test_a_loading_state_shows_while_the_api_answers(signed_in: Page, live_host, admin) -> None:
    page = signed_in
    # The page asks for the types twice (the types table and the sensor list), in either
    # order: every request is held until the loading state has been seen, then all go.
    held: list[Route] = []
    released: list[bool] = []

    def hold(route: Route) -> None:
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/sensor/list-sensor-types", hold)
    page.goto(live_host.url + "/sensors.html")
    expect(page.locator("#sensor-list .loading")).to_have_text("Loading…")
    expect(page.locator("#sensor-list")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#activity")).to_have_text("Loading…")
    released.append(True)
    for route in held:
        route.continue_()
    expect(page.locator("#sensor-list table")).to_be_visible()
    expect(page.locator("#sensor-list .loading")).to_have_count(0)
    expect(page.locator("#activity")).to_have_text("")


HEADER_LINE = """() => {
    const bar = document.querySelector('#site-header .bar');
    // Parts shown to this user only (a link for admins is hidden from others).
    const shown = '.brand, nav a, .nav-group-button, .docs-link, .user-email, #sign-out';
    const parts = [...bar.querySelectorAll(shown)]
        .filter(p => p.getClientRects().length);
    const middles = parts.map(p => {
        const r = p.getBoundingClientRect();
        return r.top + r.height / 2;
    });
    return {height: bar.getBoundingClientRect().height,
            spread: Math.max(...middles) - Math.min(...middles)};
}"""


def test_the_header_is_one_line_at_1280_with_a_link_to_the_api_docs(
    signed_in: Page, live_host, admin, console
) -> None:
    page = signed_in
    for path in PAGES:
        page.goto(f"{live_host.url}/{path}")
        page.wait_for_load_state("networkidle")
        line = page.evaluate(HEADER_LINE)
        # One line of links is about 50 px high; a wrapped header is twice that.
        assert line["height"] < 60 and line["spread"] < 4, (path, line)
    docs = page.get_by_role("link", name="API docs")
    expect(docs).to_have_attribute("href", "/api/docs")
    console.allow("/favicon.ico")  # the reference page (Swagger UI) names no icon
    docs.click()
    page.wait_for_url("**/api/docs")
    expect(page).to_have_title("DTBase API reference")


def test_a_long_address_is_cut_in_the_header(browser: Browser, live_host, admin) -> None:
    email = "firstname.middlename.lastname.with.a.long.address@greenhouse-operations.example.org"
    admin.ok("/user/create-user", {"email": email, "password": "long-pw-1"}, status=201)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, live_host.url, email, "long-pw-1", start="/models.html")
    line = page.evaluate(HEADER_LINE)
    assert line["height"] < 60 and line["spread"] < 4, line
    shown = page.locator("#signed-in-email")
    expect(shown).to_have_attribute("title", email)
    assert page.evaluate(CUT, "#signed-in-email")
    context.close()


# Whether an element's text is cut: it has an ellipsis and more text than room.
CUT = """(selector) => {
    const node = document.querySelector(selector);
    const style = getComputedStyle(node);
    return style.textOverflow === 'ellipsis' && node.scrollWidth > node.clientWidth;
}"""


def test_long_names_are_cut_with_an_ellipsis_inside_the_card(
    signed_in: Page, live_host, admin, shoot
) -> None:
    type_name = "Weather station " + "t" * 84
    sensor_id = "greenhouse-north-wing-bench-" + "9" * 72
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": type_name,
            "description": "Long enough to wrap: " + "a description of the station " * 6,
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor",
        {
            "type_name": type_name,
            "unique_identifier": sensor_id,
            "name": "North wing, bench fourteen, " + "n" * 60,
            "notes": "Replaced in March; " * 10,
        },
        status=201,
    )
    page = signed_in
    page.goto(live_host.url + "/sensors.html")
    cell = page.locator("#sensor-list td .clip", has_text=sensor_id[:20]).first
    expect(cell).to_have_attribute("title", sensor_id)
    expect(cell).to_have_text(sensor_id)  # all of it is there, for copying and searching
    assert cell.evaluate(
        "n => getComputedStyle(n).textOverflow === 'ellipsis' && n.scrollWidth > n.clientWidth"
    )
    # Every column stays inside the card: the table needs no sideways scrolling and the
    # row's last button lies within the card.
    wrap = page.locator("#sensor-list .table-wrap")
    assert wrap.evaluate("n => n.scrollWidth <= n.clientWidth")
    card = page.locator("#sensor-list").locator("xpath=ancestor::section[1]").bounding_box()
    delete = page.get_by_role("button", name=f"Delete sensor {sensor_id}").bounding_box()
    assert card and delete and delete["x"] + delete["width"] <= card["x"] + card["width"]
    shoot("long-names")


def test_an_unknown_page_gets_the_404_page(page: Page, live_host, shoot, console) -> None:
    csp = json.loads((STATIC / "staticwebapp.config.json").read_text())["globalHeaders"][
        "Content-Security-Policy"
    ]
    for path in ("/no-such-page", "/sensors/index", "/js/missing.js"):
        reply = httpx.get(live_host.url + path)
        assert reply.status_code == 404, path
        assert reply.headers["content-type"].startswith("text/html")
        assert reply.headers["content-security-policy"] == csp
        assert "<h1>Page not found</h1>" in reply.text
    # Known pages, with or without .html, and the API's own 404 are unchanged.
    assert httpx.get(live_host.url + "/sensors").status_code == 200
    assert httpx.get(live_host.url + "/").status_code == 200
    missing = httpx.get(live_host.api + "/no-such-endpoint")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})

    console.allow("404 (Not Found)")  # the browser logs the page's own status
    page.goto(live_host.url + "/no-such-page")
    expect(page.locator("h1")).to_have_text("Page not found")
    assert page.title() == "Page not found · DTBase"
    shoot("not-found")
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url("**/login.html**")  # the dashboard asks a signed-out visitor to sign in
