"""Alerts in the browser: write a rule in the editor, backtest it on the last week (drawn
on the sensor's plot), save it, post readings over the API, evaluate, see it firing on the
Alerts page and on the dashboard, acknowledge it with a comment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import nav_to, sign_in


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def seed_week(admin, now: datetime) -> None:
    """A sensor reporting hourly for a week, above 30 three times (once each)."""
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Thermo",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        201,
    )
    admin.ok("/sensor/insert-sensor", {"type_name": "Thermo", "unique_identifier": "t-1"}, 201)
    hours = list(range(7 * 24 - 1, 1, -1))  # up to two hours ago
    spikes = {100, 60, 30}
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "t-1",
            "measure_name": "temperature",
            "readings": [35.0 if h in spikes else 20.0 for h in hours],
            "timestamps": [iso(now - timedelta(hours=h)) for h in hours],
        },
        201,
    )


def test_write_backtest_save_fire_and_acknowledge_a_rule(
    signed_in: Page, live_host, admin, shoot, console
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed_week(admin, now)
    page = signed_in
    nav_to(page, "Alerts")
    expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    expect(page.locator("#open-alerts")).to_contain_text("No open alert.")

    form = page.locator("#rule-form")
    form.get_by_label("Name").fill("too-hot")
    form.get_by_label("Kind").select_option("threshold")
    form.get_by_label("Severity").select_option("critical")
    form.get_by_label("Sensor", exact=True).select_option("t-1")
    form.get_by_label("Measure").select_option(label="temperature (C)")
    form.get_by_label("Fire above").fill("30")

    form.get_by_role("button", name="Backtest the last 7 days").click()
    expect(page.locator(".backtest-summary")).to_have_text(
        "Would have fired 3 times in the last 7 days."
    )
    chart = page.locator("#backtest .chart-card")
    expect(chart).to_have_attribute("data-shaded", "3")
    expect(chart.locator("canvas")).to_be_visible()
    expect(page.locator("#rule-list")).to_contain_text("No rules yet.")  # nothing saved
    shoot("alerts-backtest")

    form.get_by_role("button", name="Save rule").click()
    expect(form.locator(".form-status")).to_have_text("Rule “too-hot” saved.")
    expect(page.locator("#rule-list table")).to_contain_text("too-hot")
    expect(page.locator("#rule-list table")).to_contain_text("above 30")

    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "t-1",
            "measure_name": "temperature",
            "readings": [36.5],
            "timestamps": [iso(datetime.now(UTC) - timedelta(seconds=5))],
        },
        201,
    )
    [made] = admin.ok("/alert/evaluate-alerts")["transitions"]
    assert (made["rule_name"], made["to_state"]) == ("too-hot", "firing")

    page.get_by_role("button", name="Refresh").click()
    row = page.locator("#open-alerts tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("firing")
    expect(row).to_contain_text("critical")
    expect(row).to_contain_text("36.5 above 30")
    expect(page.locator("#open-alerts caption")).to_contain_text("1 firing, 1 open")

    page.get_by_role("link", name="Dashboard", exact=True).click()
    expect(page.locator("[data-stat='firing-alerts'] .number")).to_have_text("1")
    expect(page.locator("[data-stat='firing-alerts']")).to_have_class("stat alerting")
    shoot("dashboard-alerting")
    page.locator("[data-stat='firing-alerts'] a").click()
    page.wait_for_url("**/alerts.html")

    page.get_by_role("button", name=f"Acknowledge alert {made['alert_id']}").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Comment").fill("fan switched on")
    dialog.get_by_role("button", name="Acknowledge").click()
    row = page.locator("#open-alerts tbody tr")
    expect(row).to_contain_text("acknowledged")
    expect(row).to_contain_text("default_user@localhost — fan switched on")
    expect(page.get_by_role("button", name=f"Acknowledge alert {made['alert_id']}")).to_have_count(
        0
    )
    shoot("alerts")


def test_silence_and_edit_a_rule(signed_in: Page, live_host, admin, console) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed_week(admin, now)
    admin.ok(
        "/alert/insert-alert-rule",
        {
            "name": "quiet",
            "kind": "no_data",
            "measure_name": "temperature",
            "type_name": "Thermo",
            "params": {"no_data_seconds": 600},
            "severity": "warning",
            "channels": [],
            "enabled": True,
        },
        201,
    )
    page = signed_in
    page.goto(live_host.url + "/alerts.html")
    rules = page.locator("#rule-list table")
    expect(rules).to_contain_text("every Thermo · temperature")
    page.get_by_label("Silence for").select_option(label="1 day")
    page.get_by_role("button", name="Silence rule quiet").click()
    expect(rules).to_contain_text("silenced until")
    [rule] = admin.get("/alert/list-alert-rules").json()
    until = datetime.fromisoformat(rule["silenced_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1)
    page.get_by_role("button", name="Unsilence rule quiet").click()
    expect(rules).to_contain_text("active")

    page.get_by_role("button", name="Edit rule quiet").click()
    form = page.locator("#rule-form")
    expect(form.get_by_label("Watch")).to_have_value("type")
    expect(form.get_by_label("No reading for (seconds)")).to_have_value("600")
    form.get_by_label("No reading for (seconds)").fill("1200")
    form.get_by_role("button", name="Save rule").click()
    expect(form.locator(".form-status")).to_have_text("Rule “quiet” saved.")
    expect(rules).to_contain_text("no_data_seconds 1200")
    assert admin.get("/alert/list-alert-rules").json()[0]["params"] == {"no_data_seconds": 1200}


def test_a_non_admin_acknowledges_but_does_not_evaluate(
    page: Page, live_host, admin, console
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed_week(admin, now)
    admin.ok(
        "/alert/insert-alert-rule",
        {
            "name": "too-hot",
            "kind": "threshold",
            "measure_name": "temperature",
            "unique_identifier": "t-1",
            "params": {"above": 30},
            "severity": "warning",
        },
        201,
    )
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "t-1",
            "measure_name": "temperature",
            "readings": [31.0],
            "timestamps": [iso(datetime.now(UTC) - timedelta(seconds=5))],
        },
        201,
    )
    [made] = admin.ok("/alert/evaluate-alerts")["transitions"]
    admin.ok("/user/create-user", {"email": "op@example.com", "password": "pw"}, 201)
    sign_in(page, live_host.url, "op@example.com", "pw", start="/alerts.html")
    expect(page.locator("#open-alerts tbody tr")).to_contain_text("firing")
    expect(page.get_by_role("button", name="Evaluate now")).to_be_hidden()
    page.get_by_role("button", name=f"Acknowledge alert {made['alert_id']}").click()
    page.get_by_role("dialog").get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#open-alerts tbody tr")).to_contain_text("op@example.com")
