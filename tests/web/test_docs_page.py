"""The API reference page (/api/docs) renders in Chromium under its Content-Security-Policy:
the vendored Swagger UI loads, lists the operations, and nothing is blocked."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from function_app.http import PAGE_CSP


def test_docs_page_renders_under_its_csp(page: Page, live_host, console) -> None:
    console.allow("favicon.ico")  # the browser asks for it; the API has none
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    reply = page.goto(live_host.api + "/docs")
    assert reply is not None and reply.headers["content-security-policy"] == PAGE_CSP
    assert reply.headers["x-frame-options"] == "DENY"
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=30_000)
    assert operations.count() > 40
    expect(page.locator(".opblock-summary-path", has_text="/auth/login")).to_be_visible()
    # An operation opens (Swagger UI's own scripts and inline styles work).
    page.locator(".opblock-summary", has_text="/auth/login").first.click()
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    assert violations == []
