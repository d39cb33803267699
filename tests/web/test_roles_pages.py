"""The web app hides what a role cannot do (the API refuses it anyway): a viewer sees data
and no control that writes; an admin changes a user's role on the Users page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import nav_to, sign_in


def test_a_viewer_sees_no_control_that_writes(page: Page, live_host, admin, console) -> None:
    admin.ok("/sensor/insert-sensor-type", {"name": "weather", "measures": []}, 201)
    admin.ok("/sensor/insert-sensor", {"unique_identifier": "w1", "type_name": "weather"}, 201)
    admin.ok(
        "/user/create-user",
        {"email": "v@example.com", "password": "pw-viewer-1", "role": "viewer"},
        201,
    )
    sign_in(page, live_host.url, "v@example.com", "pw-viewer-1", start="/sensors.html")
    expect(page.locator(".viewer-badge")).to_be_visible()
    rows = page.locator("#sensor-list table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_role("link", name="Readings of w1")).to_be_visible()
    expect(rows.first.get_by_role("button", name="Delete sensor w1")).to_be_hidden()
    expect(rows.first.get_by_role("button", name="Edit sensor w1")).to_be_hidden()
    expect(page.locator("#add-sensor-form")).to_be_hidden()
    expect(page.locator("#add-type-form")).to_be_hidden()
    page.goto(live_host.url + "/services.html")
    expect(page.locator("#add-service-form")).to_be_hidden()
    page.goto(live_host.url + "/forecasts.html")
    expect(page.locator("#arima-form")).to_be_hidden()
    page.get_by_role("button", name="Data", exact=True).click()
    expect(page.get_by_role("link", name="Plots", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Import", exact=True)).to_be_hidden()
    page.goto(live_host.url + "/import.html")
    expect(page.locator("#import-form")).to_be_hidden()

    # The same pages as an editor show them.
    page.get_by_role("button", name="Sign out").click()
    admin.ok("/user/update-user-role", {"email": "v@example.com", "role": "editor"})
    sign_in(page, live_host.url, "v@example.com", "pw-viewer-1", start="/sensors.html")
    expect(page.locator("#add-sensor-form")).to_be_visible()
    expect(page.get_by_role("button", name="Delete sensor w1")).to_be_visible()
    page.get_by_role("button", name="Data", exact=True).click()
    expect(page.get_by_role("link", name="Import", exact=True)).to_be_visible()
    expect(page.locator(".viewer-badge")).to_be_hidden()


def test_an_admin_changes_a_role_on_the_users_page(signed_in: Page, admin) -> None:
    page = signed_in
    admin.ok("/user/create-user", {"email": "e@example.com", "password": "pw-editor-1"}, 201)
    nav_to(page, "Users")
    role = page.get_by_label("Role of e@example.com")
    expect(role).to_have_value("editor")
    with page.expect_response("**/user/update-user-role") as saved:
        role.select_option("viewer")
    assert saved.value.status == 200
    assert admin.get("/user/list-user-roles").json()[-1] == {
        "email": "e@example.com",
        "role": "viewer",
    }
    page.reload()
    expect(page.get_by_label("Role of e@example.com")).to_have_value("viewer")
