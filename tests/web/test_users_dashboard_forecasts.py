"""Users (admins create and delete, everyone changes their password), the dashboard, and
the forecasts page with and without the ARIMA starter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import copy_for_readme, nav_to, sign_in


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_admin_creates_and_deletes_users_and_anyone_changes_password(
    signed_in: Page, live_host, admin, shoot, page: Page, console
) -> None:
    console.allow("409 (Conflict)")
    nav_to(page, "Users")
    users = page.locator("#user-list table tbody tr")
    expect(users).to_have_count(1)
    expect(users.first).to_contain_text(live_host.admin_email)
    expect(users.first.get_by_role("button")).to_have_count(0)  # you cannot delete yourself here
    expect(page.locator("#users-note")).to_be_hidden()
    expect(page.get_by_role("heading", name="All users")).to_be_visible()

    form = page.locator("#create-user-form")
    form.get_by_label("Email").fill("bob@example.com")
    form.get_by_label("Password").fill("bob-password-1")
    form.get_by_label("Role").select_option("admin")
    form.get_by_role("button", name="Create user").click()
    expect(form.locator(".form-status")).to_have_text(
        "User bob@example.com created as an administrator."
    )
    form.get_by_label("Email").fill("carol@example.com")
    form.get_by_label("Password").fill("carol-password-1")
    form.get_by_role("button", name="Create user").click()
    expect(form.locator(".form-status")).to_have_text("User carol@example.com created.")
    expect(users).to_have_count(3)
    form.get_by_label("Email").fill("carol@example.com")
    form.get_by_label("Password").fill("carol-password-1")
    form.get_by_role("button", name="Create user").click()
    expect(form.locator(".form-status.error")).to_have_text("User already exists")
    shoot("users")

    page.get_by_role("button", name="Delete user bob@example.com").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(users).to_have_count(2)
    assert admin.get("/user/list-users").json() == [live_host.admin_email, "carol@example.com"]

    # Carol (not an admin) changes her own password and signs in with the new one.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, live_host.url, "carol@example.com", "carol-password-1", start="/users.html")
    # A non-admin sees only herself, says the page, and cannot create users.
    expect(users).to_have_count(1)
    expect(users.first).to_contain_text("carol@example.com")
    expect(users.first.get_by_role("button")).to_have_count(0)
    expect(page.locator("#users-note")).to_be_visible()
    expect(page.locator("#users-note")).to_contain_text("You see only your own account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("#create-user-form")).to_be_hidden()
    pw = page.locator("#password-form")
    pw.get_by_label("New password", exact=True).fill("carol-password-2")
    pw.get_by_label("Repeat the new password").fill("carol-password-X")
    pw.get_by_role("button", name="Change password").click()
    expect(pw.locator(".form-status.error")).to_have_text("The two passwords differ.")
    pw.get_by_label("Repeat the new password").fill("carol-password-2")
    pw.get_by_role("button", name="Change password").click()
    expect(pw.locator(".form-status")).to_contain_text("Password changed.")
    page.wait_for_url("**/login.html?reason=password-changed")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Password", exact=True).fill("carol-password-2")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in-email")).to_have_text("carol@example.com")


def test_dashboard_counts_latest_readings_and_runs(
    signed_in: Page, live_host, admin, shoot
) -> None:
    page = signed_in
    now = datetime.now(UTC).replace(microsecond=0)
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Weather",
            "measures": [
                {"name": "temperature", "units": "degrees Celsius", "datatype": "float"},
                {"name": "raining", "units": None, "datatype": "boolean"},
            ],
        },
        status=201,
    )
    for uid in ("roof", "garden"):
        admin.ok(
            "/sensor/insert-sensor", {"type_name": "Weather", "unique_identifier": uid}, status=201
        )
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "roof",
            "measure_name": "temperature",
            "readings": [20.0, 21.0],
            "timestamps": [iso(now - timedelta(minutes=20)), iso(now - timedelta(minutes=5))],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "garden",
            "measure_name": "raining",
            "readings": [True],
            "timestamps": [iso(now - timedelta(days=2))],
        },
        status=201,
    )
    admin.ok(
        "/location/insert-location-schema",
        {
            "name": "xy",
            "description": None,
            "identifiers": [{"name": "x", "units": None, "datatype": "integer"}],
        },
        status=201,
    )
    admin.ok(
        "/location/insert-location-for-schema",
        {"schema_name": "xy", "coordinates": {"x": 1}},
        status=201,
    )
    admin.ok("/model/insert-model", {"name": "Arima"}, status=201)
    admin.ok(
        "/model/insert-model-run",
        {
            "model_name": "Arima",
            "scenario_description": "Business as usual",
            "create_scenario": True,
            "measures_and_values": [],
        },
        status=201,
    )

    page.goto(live_host.url + "/")
    stat = lambda key: page.locator(f"[data-stat='{key}'] .number")  # noqa: E731
    expect(stat("sensors")).to_have_text("2")
    expect(stat("sensor-types")).to_have_text("1")
    expect(stat("locations")).to_have_text("1")
    expect(stat("models")).to_have_text("1")
    expect(stat("model-runs-(30-days)")).to_have_text("1")
    expect(stat("service-runs")).to_have_text("0")

    latest = page.locator("#latest table tbody tr")
    expect(latest).to_have_count(2)
    garden = [c.strip() for c in latest.nth(0).locator("td").all_inner_texts()]
    roof = [c.strip() for c in latest.nth(1).locator("td").all_inner_texts()]
    assert garden[:4] == ["garden", "raining", "true", ""]
    assert garden[5] == "2 days ago stale"
    assert roof[:4] == ["roof", "temperature", "21.0", "degrees Celsius"]
    assert re.fullmatch(r"[5-9] minutes ago fresh", roof[5]), roof[5]
    # A looser threshold: nothing is stale any more.
    page.get_by_label("Mark readings stale after").select_option(label="1 week")
    expect(page.locator("#latest .badge.stale")).to_have_count(0)
    page.get_by_label("Mark readings stale after").select_option(label="1 hour")
    expect(page.locator("#model-runs table tbody tr")).to_have_count(1)
    expect(page.locator("#model-runs")).to_contain_text("Business as usual")
    expect(page.locator("#service-runs")).to_contain_text("No service has run yet.")
    shoot("dashboard")
    copy_for_readme("dashboard")


def test_forecasts_page_says_when_the_service_is_unavailable(
    signed_in: Page, live_host, admin, shoot
) -> None:
    page = signed_in
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Climate",
            "measures": [
                {"name": "Temperature", "units": "Degrees C", "datatype": "float"},
                {"name": "Label", "units": None, "datatype": "string"},
            ],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor", {"type_name": "Climate", "unique_identifier": "TRH1"}, status=201
    )
    paths = admin.get("/openapi.json").json()["paths"]
    has_starter = any(p.rstrip("/").endswith("/forecast/arima") for p in paths)

    nav_to(page, "Forecasts")
    form = page.locator("#arima-form")
    expect(form.get_by_label("Sensor")).to_have_value("TRH1")
    # Only numeric measures can be forecast.
    expect(form.get_by_label("Measure").locator("option")).to_have_text(["Temperature (Degrees C)"])
    notice = page.locator("#service-state")
    if not has_starter:
        expect(notice).to_contain_text("The forecasting service is unavailable")
        expect(form.get_by_role("button", name="Start forecast")).to_be_disabled()
    else:
        expect(notice).to_have_text("The forecasting service is available.")
        expect(form.get_by_role("button", name="Start forecast")).to_be_enabled()
    shoot("forecasts")
