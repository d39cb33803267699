"""Channels: create a webhook channel against a receiver on 127.0.0.1, send a test and see
its outcome (and the signature the receiver checked), a failing test, the deliveries table,
an email channel's form, a bad template's message, and a viewer's read-only page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.notify_standins import WebhookReceiver
from tests.web.conftest import nav_to, sign_in

SECRET = "browser-secret-" + "z" * 20


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    yield server
    server.close()


def test_create_a_webhook_channel_and_send_a_test(
    signed_in: Page, live_host, admin, receiver: WebhookReceiver, shoot, console
) -> None:
    console.allow("422 (Unprocessable")
    page = signed_in
    nav_to(page, "Channels")
    expect(page.locator("h1")).to_have_text("Channels")
    expect(page.locator("#channel-list table")).to_contain_text("No channels yet.")

    form = page.locator("#add-channel-form")
    form.get_by_label("Name").fill("ops")
    form.get_by_label("Kind").select_option("webhook")
    form.get_by_label("URL").fill(receiver.url)
    form.get_by_label("Secret").fill(SECRET)
    form.get_by_role("button", name="Add channel").click()
    expect(form.locator(".form-status")).to_have_text("Channel “ops” added.")
    listing = page.locator("#channel-list table")
    expect(listing).to_contain_text(receiver.url)
    expect(listing).not_to_contain_text(SECRET)

    page.get_by_role("button", name="Send a test to ops").click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_have_class("form-status success")
    expect(outcome).to_contain_text("Test delivered to “ops” (HTTP 200,")
    [got] = receiver.received
    assert got.signature_ok is True
    deliveries = page.locator("#delivery-list table")
    expect(deliveries.locator("tbody tr")).to_have_count(1)
    expect(deliveries).to_contain_text("delivered")
    expect(deliveries).to_contain_text("test")
    shoot("channels")

    # The receiver fails the next one: the reason is shown and the delivery is listed dead.
    receiver.replies = [503]
    page.get_by_role("button", name="Send a test to ops").click()
    expect(outcome).to_have_class("form-status error")
    expect(outcome).to_contain_text("Test to “ops” failed: HTTP 503, the receiver answered 503")
    expect(deliveries.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Status").select_option("dead")
    expect(page.locator("#delivery-list table tbody tr")).to_have_count(1)
    expect(page.locator("#delivery-list table")).to_contain_text("receiver answered 503")

    # An email channel takes recipients instead of a URL; a bad template is refused.
    form.get_by_label("Name").fill("mail")
    form.get_by_label("Kind").select_option("email")
    expect(form.get_by_label("URL")).to_be_hidden()
    form.get_by_label("Recipients").fill("ops@example.org, lead@example.org")
    form.get_by_label("Template (optional)").fill("{% if %}")
    form.get_by_role("button", name="Add channel").click()
    expect(form.locator(".form-status.error")).to_contain_text("not a valid Jinja2 template")
    form.get_by_label("Template (optional)").fill("")
    form.get_by_role("button", name="Add channel").click()
    expect(form.locator(".form-status")).to_have_text("Channel “mail” added.")
    expect(listing).to_contain_text("ops@example.org, lead@example.org")
    assert len(receiver.received) == 2


def test_a_viewer_sees_channels_but_cannot_change_or_test_them(
    page: Page, live_host, admin, receiver: WebhookReceiver, console
) -> None:
    admin.ok(
        "/notification/insert-channel",
        {"name": "ops", "kind": "webhook", "url": receiver.url, "secret": SECRET},
        201,
    )
    admin.ok("/user/create-user", {"email": "viewer@example.org", "password": "pw"}, 201)
    sign_in(page, live_host.url, "viewer@example.org", "pw", start="/channels.html")
    expect(page.locator("#channel-list table")).to_contain_text("ops")
    expect(page.get_by_role("button", name="Send a test to ops")).to_have_count(0)
    expect(page.locator("#add-channel-form")).to_be_hidden()
    expect(page.locator("#delivery-list table")).to_contain_text("Nothing sent yet.")
