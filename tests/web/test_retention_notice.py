"""The readings page says when the chosen range starts before what the sensor type's
retention keeps (docs/api.md, Retention)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.support import Api
from tests.web.conftest import nav_to


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_the_readings_page_notes_removed_raw_readings(signed_in: Page, admin: Api) -> None:
    page = signed_in
    measures = [{"name": "temperature", "units": "degC", "datatype": "float"}]
    admin.ok("/sensor/insert-sensor-type", {"name": "Keep", "measures": measures}, 201)
    # A type that keeps two days, made on the Sensors page.
    nav_to(page, "Sensors")
    form = page.locator("#add-type-form")
    form.get_by_label("Type name").fill("Short")
    row = form.locator(".measure-row").nth(0)
    row.get_by_label("Name").fill("temperature")
    row.get_by_label("Units").fill("degC")
    row.get_by_label("Datatype").select_option("float")
    # The browser's own check refuses a fraction before the API could.
    form.get_by_label("Keep raw readings (days)").fill("1.5")
    form.get_by_role("button", name="Add sensor type").click()
    expect(form.locator("input[name=retention_days]:invalid")).to_have_count(1)
    expect(form.locator(".form-status")).to_have_text("")
    form.get_by_label("Keep raw readings (days)").fill("2")
    form.get_by_role("button", name="Add sensor type").click()
    expect(form.locator(".form-status")).to_have_text("Sensor type “Short” added.")
    types = page.locator("#type-list table")
    expect(types.get_by_role("row", name=re.compile("^Short"))).to_contain_text("2 days")
    expect(types.get_by_role("row", name=re.compile("^Keep"))).to_contain_text("forever")
    # An admin changes it, and back to forever.
    change = page.locator("#retention-form")
    change.get_by_label("Sensor type").select_option("Keep")
    change.get_by_label("Days to keep").fill("400")
    change.get_by_role("button", name="Set retention").click()
    expect(change.locator(".form-status")).to_have_text(
        "Raw readings of “Keep” are kept for 400 days."
    )
    expect(types.get_by_role("row", name=re.compile("^Keep"))).to_contain_text("400 days")
    assert admin.get("/sensor/list-sensor-types").json()[0]["retention_days"] == 400
    change.get_by_role("button", name="Set retention").click()
    expect(change.locator(".form-status")).to_have_text("Raw readings of “Keep” are kept forever.")
    expect(types.get_by_role("row", name=re.compile("^Keep"))).to_contain_text("forever")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for type_name, uid in (("Short", "s-1"), ("Keep", "k-1")):
        admin.ok("/sensor/insert-sensor", {"type_name": type_name, "unique_identifier": uid}, 201)
        admin.ok(
            "/sensor/insert-sensor-readings",
            {
                "unique_identifier": uid,
                "measure_name": "temperature",
                "readings": [20.5],
                "timestamps": [iso(now - timedelta(minutes=30))],
            },
            201,
        )

    nav_to(page, "Readings")
    form = page.locator("#readings-form")
    notice = page.locator("#retention-notice")
    form.get_by_label("Sensor type").select_option("Short")
    expect(form.get_by_label("s-1")).to_be_checked()
    # The default range (the last day) is all kept: no notice.
    form.get_by_role("button", name="Show readings").click()
    expect(page.locator("#readings-table caption")).to_contain_text("1 reading from 1 sensor")
    expect(notice).to_be_hidden()

    # From five days ago: before the two days kept.
    form.get_by_label("From").fill((now - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M"))
    form.get_by_role("button", name="Show readings").click()
    days = "|".join(
        (datetime.now(UTC) - timedelta(days=2, minutes=m)).strftime("%Y-%m-%d") for m in (0, 5)
    )
    expect(notice).to_be_visible()
    expect(notice).to_have_text(
        re.compile(
            rf"^Raw readings before ({days}) \d\d:\d\d:\d\d have been removed \(retention 2 "
            r"days\); the plots' hourly and coarser aggregates still cover that range\.$"
        )
    )
    expect(page.locator("#readings-table caption")).to_contain_text("1 reading from 1 sensor")

    # A type that keeps readings forever: no notice, whatever the range.
    form.get_by_label("Sensor type").select_option("Keep")
    expect(form.get_by_label("k-1")).to_be_checked()
    form.get_by_role("button", name="Show readings").click()
    expect(page.locator("#readings-table caption")).to_contain_text("1 reading from 1 sensor")
    expect(notice).to_be_hidden()
