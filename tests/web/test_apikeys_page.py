"""The API keys page: an admin creates a key (shown once, copied), sees it listed with its
scopes and last use, and revokes it; the key works until then."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import nav_to


def test_an_admin_creates_uses_and_revokes_a_key(signed_in: Page, live_host, admin) -> None:
    page = signed_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    nav_to(page, "API keys")
    expect(page.locator("h1")).to_have_text("API keys")
    form = page.locator("#create-key-form")
    form.get_by_label("Name").fill("weather station")
    form.get_by_label("readings:write: insert readings").check()
    form.get_by_label("Only these sensors (optional)").fill("ws-1, ws-2")
    form.get_by_role("button", name="Create key").click()
    expect(form.locator(".form-status")).to_have_text("Key weather station created.")
    key = page.locator("#new-key-value").inner_text()
    assert key.startswith("dtb_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key

    rows = page.locator("#key-list table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("read, readings:write")
    expect(rows.first).to_contain_text("sensors: ws-1, ws-2")
    expect(rows.first).to_contain_text("never")  # not used yet
    assert key not in page.locator("#key-list").inner_text()

    assert (
        httpx.post(
            live_host.api + "/sensor/list-sensors", json={}, headers={"X-API-Key": key}
        ).json()
        == []
    )
    page.reload()
    # Last used: a time from 127.0.0.1 (the local host is the front end), no longer "never".
    expect(page.locator("#key-list table tbody tr").first).to_contain_text("from 127.0.0.1")

    page.get_by_role("button", name="Revoke key weather station").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.locator("#key-list table tbody tr").first).to_contain_text("revoked")
    refused = httpx.post(
        live_host.api + "/sensor/list-sensors", json={}, headers={"X-API-Key": key}
    )
    assert (refused.status_code, refused.json()) == (401, {"detail": "API key revoked"})


def test_the_page_is_for_admins(page: Page, live_host, admin) -> None:
    from tests.web.conftest import sign_in

    admin.ok("/user/create-user", {"email": "ed@example.com", "password": "pw-editor-1"}, 201)
    sign_in(page, live_host.url, "ed@example.com", "pw-editor-1")
    # In the open Admin group, the admins' links alone stay hidden.
    page.get_by_role("button", name="Admin", exact=True).click()
    expect(page.get_by_role("link", name="Users", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="API keys")).to_be_hidden()
    page.goto(live_host.url + "/apikeys.html")
    expect(page.locator("#keys-note")).to_be_visible()
    expect(page.locator("#create-key-form")).to_be_hidden()
