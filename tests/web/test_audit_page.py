"""The audit page: an admin sees writes newest first with their actor, route, target and
status, filters them by actor, area and outcome, and pages back and forth; non-admins see
a note and no log."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support import Api
from tests.web.conftest import nav_to, sign_in

PAGE_SIZE = 50


def test_an_admin_filters_and_pages_the_log(signed_in: Page, live_host, admin: Api, shoot) -> None:
    admin.ok("/user/create-user", {"email": "ed@example.com", "password": "pw-editor-1"}, 201)
    editor = Api(live_host.api, "ed@example.com", "pw-editor-1")
    editor.ok("/sensor/insert-sensor-type", {"name": "weather", "measures": []}, 201)
    for i in range(PAGE_SIZE + 5):
        editor.ok("/model/insert-model", {"name": f"model-{i:02}"}, 201)
    refused = editor.post("/sensor/insert-sensor-type", {"name": "weather", "measures": []})
    assert refused.status_code == 409
    key = admin.ok("/apikey/create-api-key", {"name": "station", "scopes": ["read"]})["key"]
    editor.close()

    page = signed_in
    nav_to(page, "Audit log")
    expect(page.locator("h1")).to_have_text("Audit log")
    rows = page.locator("#event-list table tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    first = rows.first
    expect(first).to_contain_text("apikey/create-api-key")
    expect(first).to_contain_text("name=station")
    expect(first).to_contain_text("201")
    assert key not in page.locator("#event-list").inner_text()
    expect(rows.nth(1)).to_contain_text("ed@example.com")
    expect(rows.nth(1)).to_contain_text("409")
    shoot("page-audit")

    # Older: the rest, down to the first write (creating the editor); then back.
    written = 1 + 1 + (PAGE_SIZE + 5) + 1 + 1  # user, type, models, the 409, the key
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#page-info")).to_have_text("Page 2")
    expect(rows).to_have_count(written - PAGE_SIZE)
    expect(rows.last).to_contain_text("user/create-user")
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(page.locator("#page-info")).to_have_text("Page 1")
    expect(rows.first).to_contain_text("apikey/create-api-key")

    form = page.locator("#audit-filter")
    form.get_by_label("Actor").fill("ed@example.com")
    form.get_by_label("Route or area").fill("sensor")
    form.get_by_role("button", name="Show events").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("409")
    expect(rows.nth(1)).to_contain_text("201")
    form.get_by_label("Outcome").select_option("failure")
    form.get_by_role("button", name="Show events").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("name=weather")
    # The filters are in the URL: a reload shows the same.
    page.reload()
    expect(page.locator("#a-outcome")).to_have_value("failure")
    expect(rows).to_have_count(1)
    form.get_by_label("From").fill("2099-01-01T00:00")
    form.get_by_role("button", name="Show events").click()
    expect(page.locator("#event-list")).to_contain_text("No events match these filters.")
    form.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(PAGE_SIZE)


def test_the_page_is_for_admins(page: Page, live_host, admin: Api) -> None:
    admin.ok("/user/create-user", {"email": "ed@example.com", "password": "pw-editor-1"}, 201)
    sign_in(page, live_host.url, "ed@example.com", "pw-editor-1")
    # In the open Admin group, the admins' links alone stay hidden.
    page.get_by_role("button", name="Admin", exact=True).click()
    expect(page.get_by_role("link", name="Users", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Audit log")).to_be_hidden()
    page.goto(live_host.url + "/audit.html")
    expect(page.locator("#audit-note")).to_be_visible()
    expect(page.locator("#audit-filter")).to_be_hidden()
    expect(page.locator("#event-list")).to_be_hidden()
