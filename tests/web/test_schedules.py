"""Scheduling a service in the browser: a service with a parameters schema, a parameter
set the schema refuses (its errors beside the editor), then a schedule with its next three
fire times; a bad expression named; disabling and deleting it. And a schedule's last run,
started by a host's dispatcher."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from dtbase_core.cron import Cron
from tests.web.conftest import nav_to

SCHEMA = '{"type": "object", "properties": {"days": {"type": "integer", "minimum": 1}}}'


def test_schedule_a_service_and_see_its_next_fire_times(
    signed_in: Page, admin, shoot, console
) -> None:
    console.allow("422 (Unprocessable")
    page = signed_in
    nav_to(page, "Services")
    add = page.locator("#add-service-form")
    add.get_by_label("Name").fill("counted")
    add.get_by_label("URL").fill("http://127.0.0.1:9/run")
    add.get_by_label("Parameters schema (optional JSON Schema)").fill(SCHEMA)
    add.get_by_role("button", name="Add service").click()
    expect(add.locator(".form-status")).to_have_text("Service “counted” added.")
    assert admin.get("/service/list-services").json()[0]["parameters_schema"]["properties"] == {
        "days": {"type": "integer", "minimum": 1}
    }

    page.get_by_role("button", name="Open service counted").click()
    page.locator("#schema-details summary").click()
    expect(page.locator("#schema-view")).to_contain_text('"minimum": 1')

    # The schema refuses the set: the API's error, with its path, beside the editor.
    page.get_by_label("Parameter set name").fill("week")
    editor = page.get_by_label("Parameters (a JSON object)")
    editor.fill('{"days": -3}')
    page.get_by_role("button", name="Save as parameter set").click()
    expect(page.locator("#parameters-form .form-status.error")).to_contain_text(
        "parameters.days: -3 is less than the minimum of 1"
    )
    expect(page.locator("#parameters-check")).to_contain_text(
        "The service's schema refuses these parameters: parameters.days: -3 is less than"
    )
    expect(editor).to_have_attribute("aria-invalid", "true")
    editor.fill('{"days": 7}')
    page.get_by_role("button", name="Save as parameter set").click()
    expect(page.locator("#parameters-form .form-status")).to_have_text(
        "Parameter set created successfully."
    )

    # A schedule: daily at 02:30 UTC with the set.
    form = page.locator("#schedule-form")
    expect(form.get_by_label("Parameter set")).to_contain_text("week")
    form.get_by_label("Schedule name").fill("nightly")
    form.get_by_label("Parameter set").select_option("week")
    form.get_by_label("Cron (NCRONTAB, UTC)").fill("0 30 2 * * *")
    expected = Cron("0 30 2 * * *").next_times(datetime.now(UTC), 3)
    form.get_by_role("button", name="Save schedule").click()
    first = expected[0].strftime("%Y-%m-%d %H:%M:%S")
    expect(form.locator(".form-status")).to_have_text(f"Schedule “nightly” created. Next: {first}.")
    row = page.locator("#schedules table tbody tr")
    expect(row).to_have_count(1)
    times = row.first.locator(".next-fire-times time")
    expect(times).to_have_text([t.strftime("%Y-%m-%d %H:%M:%S") for t in expected])
    cells = [c.strip() for c in row.first.locator("td").all_inner_texts()]
    assert cells[:4] == ["nightly", "week", "0 30 2 * * *", "yes"]
    assert cells[5] == "not yet"
    shoot("services-schedule")

    # A bad expression is named.
    form.get_by_label("Schedule name").fill("broken")
    form.get_by_label("Cron (NCRONTAB, UTC)").fill("30 2 * * *")
    form.get_by_role("button", name="Save schedule").click()
    expect(form.locator(".form-status.error")).to_contain_text("cron:")
    expect(form.locator(".form-status.error")).to_contain_text("six fields")

    # Edit: the form takes the schedule; a new expression is saved as an update.
    page.get_by_role("button", name="Edit schedule nightly").click()
    expect(form.get_by_label("Schedule name")).to_have_value("nightly")
    expect(form.get_by_label("Cron (NCRONTAB, UTC)")).to_have_value("0 30 2 * * *")
    form.get_by_label("Cron (NCRONTAB, UTC)").fill("0 0 */6 * * *")
    form.get_by_role("button", name="Save schedule").click()
    expect(form.locator(".form-status")).to_contain_text("Schedule “nightly” updated.")
    expect(row.first).to_contain_text("0 0 */6 * * *")

    # Disabled: no fire times; then deleted.
    page.get_by_role("button", name="Disable schedule nightly").click()
    expect(row.first).to_contain_text("— (disabled)")
    assert admin.get("/service/list-schedules").json()[0]["enabled"] is False
    page.get_by_role("button", name="Delete schedule nightly").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("#schedules")).to_contain_text("Not scheduled")
    assert admin.get("/service/list-schedules").json() == []


def test_a_schedule_shows_its_last_run(page: Page, host_factory, console) -> None:
    """A host dispatching every two seconds runs a schedule due every second; the page
    shows the run it started as the schedule's last run, and the run in the log."""
    from tests.support import Api, Receiver
    from tests.web.conftest import sign_in

    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    host = host_factory(env={"DT_SCHEDULE_DISPATCH": "*/2 * * * * *"}, own_database=True)
    api = Api(host.api, host.admin_email, host.admin_password)
    try:
        api.ok(
            "/service/insert-service",
            {"name": "often", "url": receiver.url, "http_method": "POST"},
            201,
        )
        api.ok(
            "/service/insert-schedule",
            {"service_name": "often", "name": "each second", "cron": "* * * * * *"},
            201,
        )
        deadline = time.monotonic() + 60
        while True:  # until the dispatcher has started a run and it has completed
            (listed,) = api.get("/service/list-schedules").json()
            if listed["last_run"] and listed["last_run"]["status"] == "completed":
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.25)
        api.ok(
            "/service/update-schedule",
            {"service_name": "often", "name": "each second", "enabled": False},
        )
        (listed,) = api.get("/service/list-schedules").json()
        last = listed["last_run"]

        sign_in(
            page, host.url, host.admin_email, host.admin_password, "/services.html?service=often"
        )
        row = page.locator("#schedules table tbody tr")
        expect(row).to_have_count(1)
        expect(row.first.locator(".last-run")).to_contain_text(f"run #{last['run_id']}")
        expect(row.first.locator(".last-run .badge")).to_have_text("completed 200")
        expect(row.first).to_contain_text("— (disabled)")
        expect(page.locator("#run-log table tbody tr").first).to_contain_text("200")
    finally:
        api.close()
        receiver.shutdown()
        receiver.server_close()
