"""Services: add one (a small JSON service on 127.0.0.1 stands in for a real one), edit its
parameter sets with JSON validation, run it with a set and ad hoc, read its run log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, Route, expect

from tests.web.conftest import nav_to


class EchoHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = json.loads(self.rfile.read(length) or b"null")
        failing = self.path.endswith("/fail")
        body = json.dumps({"received": received, "ok": not failing}).encode()
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/run"
    server.shutdown()
    server.server_close()


def test_service_parameter_sets_runs_and_log(
    signed_in: Page, live_host, admin, echo_service: str, shoot, console
) -> None:
    console.allow("409 (Conflict)")
    page = signed_in
    nav_to(page, "Services")
    add = page.locator("#add-service-form")
    add.get_by_label("Name").fill("echo")
    add.get_by_label("URL").fill(echo_service)
    add.get_by_label("HTTP method").select_option("POST")
    add.get_by_role("button", name="Add service").click()
    expect(add.locator(".form-status")).to_have_text("Service “echo” added.")
    expect(page.locator("#service-list table")).to_contain_text(echo_service)

    # A duplicate: the API's detail beside the form.
    add.get_by_label("Name").fill("echo")
    add.get_by_label("URL").fill(echo_service)
    add.get_by_role("button", name="Add service").click()
    expect(add.locator(".form-status.error")).to_have_text("Service already exists.")

    page.get_by_role("button", name="Open service echo").click()
    editor = page.get_by_label("Parameters (a JSON object)")
    check = page.locator("#parameters-check")
    editor.fill('{"days": ')
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(check).to_contain_text("Not valid JSON")
    editor.fill("[1, 2]")
    expect(check).to_have_text('Parameters must be a JSON object, like {"key": 1}.')
    page.get_by_role("button", name="Run with these parameters").click()
    expect(page.locator("#parameters-form .form-status.error")).to_contain_text(
        "must be a JSON object"
    )
    editor.fill('{"days": 1}')
    expect(editor).to_have_attribute("aria-invalid", "false")

    # Save as a set, then run with it.
    page.get_by_label("Parameter set name").fill("daily")
    page.get_by_role("button", name="Save as parameter set").click()
    expect(page.locator("#parameters-form .form-status")).to_have_text(
        "Parameter set created successfully."
    )
    sets = page.locator("#parameter-sets table tbody tr")
    expect(sets).to_have_count(1)
    expect(sets.first).to_contain_text('"days": 1')
    page.get_by_role("button", name="Run with set daily").click()
    log = page.locator("#run-log table tbody tr")
    expect(page.locator("#run-log caption")).to_contain_text("1 run ")
    cells = [c.strip() for c in log.first.locator("td").all_inner_texts()]
    assert cells[1] == "daily" and cells[3] == "200"
    assert json.loads(cells[4]) == {"received": {"days": 1}, "ok": True}

    # Ad hoc parameters: no set name.
    page.get_by_label("Parameter set name").fill("")
    editor.fill('{"days": 3, "where": "roof"}')
    page.get_by_role("button", name="Run with these parameters").click()
    expect(page.locator("#run-log caption")).to_contain_text("2 runs ")
    expect(page.locator("#parameters-form .form-status")).to_have_text(
        "Service called successfully."
    )
    newest = [c.strip() for c in log.first.locator("td").all_inner_texts()]
    assert newest[1] == "ad hoc"
    assert json.loads(newest[2]) == {"days": 3, "where": "roof"}
    assert json.loads(newest[4])["received"] == {"days": 3, "where": "roof"}

    # Edit the set.
    page.get_by_role("button", name="Edit set daily").click()
    expect(page.get_by_label("Parameter set name")).to_have_value("daily")
    expect(editor).to_have_value('{\n  "days": 1\n}')
    editor.fill('{"days": 2}')
    page.get_by_role("button", name="Save as parameter set").click()
    expect(page.locator("#parameters-form .form-status")).to_have_text(
        "Parameter set edited successfully."
    )
    expect(sets.first).to_contain_text('"days": 2')
    shoot("services")

    # Deleting the set keeps its runs in the log.
    page.get_by_role("button", name="Delete set daily").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("#parameter-sets")).to_contain_text("No parameter sets")
    expect(page.locator("#run-log caption")).to_contain_text("2 runs ")
    expect(log.nth(1)).to_contain_text("ad hoc")  # the set is gone, so its run is ad hoc now

    page.get_by_role("button", name="Delete service echo").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("#service-list")).to_contain_text("No services yet")
    expect(page.locator("#service-section")).to_be_hidden()
    assert admin.get("/service/list-services").json() == []


def test_a_run_the_service_answers_with_an_error_is_shown_as_a_failure(
    signed_in: Page, admin, echo_service: str
) -> None:
    """run-service itself succeeds (200), but the service answered 500: the page says the
    run failed, in red, and the log marks it."""
    failing = echo_service.replace("/run", "/fail")
    admin.ok(
        "/service/insert-service",
        {"name": "broken", "url": failing, "http_method": "POST"},
        status=201,
    )
    page = signed_in
    nav_to(page, "Services")
    page.get_by_role("button", name="Open service broken").click()
    page.get_by_label("Parameters (a JSON object)").fill('{"days": 1}')
    page.get_by_role("button", name="Run with these parameters").click()
    status = page.locator("#parameters-form .form-status.error")
    expect(status).to_have_text("The service answered 500: the run failed (see the log).")
    expect(status).to_have_css("color", "rgb(180, 35, 24)")
    expect(page.locator("#run-log table tbody tr").first.locator(".badge.bad")).to_have_text("500")


def test_a_run_still_going_is_followed_until_it_ends(
    signed_in: Page, live_host, admin, echo_service: str
) -> None:
    """run-service answers 202 with the run's status URL (a run longer than the API's wait);
    the page polls it (202 while running) and reports the run's end. The API's replies are
    stood in for by the browser; the page's clock is Playwright's, moved by the test."""
    admin.ok(
        "/service/insert-service",
        {"name": "long", "url": echo_service, "http_method": "POST"},
        status=201,
    )
    status_url = f"{live_host.url}/api/service/run-status/99"
    running = {"run_id": 99, "service_name": "long", "parameter_set_name": None}
    polls: list[int] = []

    def run_service(route: Route) -> None:
        route.fulfill(
            status=202,
            headers={"Location": status_url, "Retry-After": "2"},
            json={
                "detail": "Service still running after 30 s",
                "run_id": 99,
                "status_url": status_url,
            },
        )

    def run_status(route: Route) -> None:
        polls.append(1)
        if len(polls) == 1:
            route.fulfill(status=202, json={**running, "status": "running", "status_code": None})
        else:
            route.fulfill(
                status=200,
                json={
                    **running,
                    "status": "completed",
                    "status_code": 201,
                    "detail": "Service called successfully.",
                },
            )

    page = signed_in
    page.clock.install()
    page.route("**/api/service/run-service", run_service)
    page.route("**/api/service/run-status/99", run_status)
    page.goto(f"{live_host.url}/services.html")
    page.get_by_role("button", name="Open service long").click()
    page.get_by_role("button", name="Run with these parameters").click()
    status = page.locator("#parameters-form .form-status")
    expect(status).to_have_text("Still running (run #99); the log shows it when it ends.")
    with page.expect_response("**/api/service/run-status/99") as first:
        page.clock.fast_forward(1_000)
    assert first.value.status == 202
    expect(status).to_have_text("Still running (run #99); the log shows it when it ends.")
    with page.expect_response("**/api/service/run-status/99") as second:
        page.clock.fast_forward(1_500)
    assert second.value.status == 200
    expect(status).to_have_text("Service called successfully.")
    expect(status).to_have_class("form-status success")
    assert len(polls) == 2
