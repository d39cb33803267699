"""The forecasts page drives the ARIMA starter's Durable Functions protocol: POST, 202 with
a status URL, poll until Completed/Failed/Terminated, show customStatus, link to runs.

The starter is another part of the project; until it exists these tests answer for it in
the browser (page.route) with the documented Durable replies, so the page's side of the
protocol is tested either way. A 404 from the starter must read as "unavailable"."""

from __future__ import annotations

import json

from playwright.sync_api import Page, Route, expect

from tests.web.conftest import nav_to


def seed(admin) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Climate",
            "measures": [{"name": "Temperature", "units": "Degrees C", "datatype": "float"}],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor", {"type_name": "Climate", "unique_identifier": "TRH1"}, status=201
    )


def advertise_starter(page: Page) -> None:
    def openapi(route: Route) -> None:
        reply = route.fetch()
        doc = reply.json()
        doc["paths"]["/forecast/arima"] = {"post": {"summary": "Start an ARIMA forecast"}}
        route.fulfill(response=reply, json=doc)

    page.route("**/api/openapi.json", openapi)


def test_forecast_is_started_and_followed_to_its_runs(signed_in: Page, live_host, admin) -> None:
    seed(admin)
    page = signed_in
    advertise_starter(page)
    started: list[dict] = []
    status_url = live_host.url + "/runtime/webhooks/durabletask/instances/abc123?code=k"
    statuses = [
        {"runtimeStatus": "Pending", "customStatus": None},
        {"runtimeStatus": "Running", "customStatus": {"stage": "fitting", "percent": 40}},
        {"runtimeStatus": "Running", "customStatus": {"stage": "saving", "done": 9, "total": 10}},
        {"runtimeStatus": "Completed", "customStatus": None, "output": {"run_ids": [7, 8]}},
    ]
    seen: list[str] = []

    def starter(route: Route) -> None:
        assert route.request.headers["authorization"].startswith("Bearer ")
        started.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(
            status=202,
            json={
                "id": "abc123",
                "statusQueryGetUri": status_url,
                "sendEventPostUri": "",
                "terminatePostUri": "",
                "purgeHistoryDeleteUri": "",
            },
        )

    def status(route: Route) -> None:
        body = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(body["runtimeStatus"])
        route.fulfill(
            status=200 if body["runtimeStatus"] == "Completed" else 202,
            json={
                "name": "arima_orchestrator",
                "instanceId": "abc123",
                "lastUpdatedTime": "2026-11-28T12:00:00Z",
                **body,
            },
        )

    page.route("**/api/forecast/arima", starter)
    page.route("**/runtime/webhooks/durabletask/instances/**", status)

    nav_to(page, "Forecasts")
    expect(page.locator("#service-state")).to_have_text("The forecasting service is available.")
    form = page.locator("#arima-form")
    form.get_by_label("Hours to forecast").fill("24")
    form.get_by_label("Days of training data").fill("30")
    form.get_by_role("button", name="Start forecast").click()
    line = page.locator("#run-status")
    expect(line).to_contain_text("Running: fitting")
    expect(page.locator("#run-progress")).to_have_js_property("value", 40)
    expect(line).to_contain_text("saving · 9 of 10", timeout=10_000)
    expect(line).to_contain_text("Completed", timeout=15_000)
    expect(form.locator(".form-status")).to_have_text("The forecast has finished.")
    links = page.locator("#run-links a")
    expect(links).to_have_text(
        ["See the runs of this forecast on the Models page", "Run #7", "Run #8"]
    )
    assert "models.html?model=Arima&from=" in (links.first.get_attribute("href") or "")
    assert links.nth(1).get_attribute("href") == "/models.html?model=Arima&run=7"
    assert seen[:4] == ["Pending", "Running", "Running", "Completed"]

    body = started[0]
    assert body["sensors"] == {
        "include_sensors": ["TRH1"],
        "include_measures": [["Temperature", "Degrees C"]],
    }
    assert body["arima"] == {"hours_forecast": 24}
    assert body["data"]["num_days_training"] == 30
    assert body["data"]["predict_from_datetime"].endswith("Z")


def test_a_failed_forecast_says_so(signed_in: Page, live_host, admin) -> None:
    seed(admin)
    page = signed_in
    advertise_starter(page)
    page.route(
        "**/api/forecast/arima",
        lambda r: r.fulfill(
            status=202,
            json={
                "id": "x",
                "statusQueryGetUri": live_host.url + "/runtime/webhooks/durabletask/instances/x",
            },
        ),
    )
    page.route(
        "**/runtime/webhooks/durabletask/instances/**",
        lambda r: r.fulfill(
            status=200,
            json={"runtimeStatus": "Failed", "output": "No training data", "customStatus": None},
        ),
    )
    nav_to(page, "Forecasts")
    expect(page.locator("#service-state")).to_have_text("The forecasting service is available.")
    page.locator("#arima-form").get_by_role("button", name="Start forecast").click()
    expect(page.locator("#run-status")).to_contain_text("Failed")
    expect(page.locator("#run-links")).to_have_text("The forecast ended as Failed.")
    expect(page.locator("#run-output")).to_have_text('"No training data"')
    # A failure, in red: the status line, the note and the form's status (not a success).
    danger = "rgb(180, 35, 24)"
    for where in ("#run-status", "#run-links", "#arima-form .form-status"):
        expect(page.locator(where)).to_have_css("color", danger)
    expect(page.locator("#arima-form .form-status.error")).to_have_text(
        "The forecast ended as Failed."
    )


def test_a_missing_starter_reads_as_unavailable(signed_in: Page, live_host, admin, console) -> None:
    """The OpenAPI document cannot be read, so the page tries; the 404 means unavailable."""
    console.allow("404 (Not Found)")
    seed(admin)
    page = signed_in
    page.route("**/api/openapi.json", lambda r: r.fulfill(status=404, json={"detail": "Not Found"}))
    page.route(
        "**/api/forecast/arima", lambda r: r.fulfill(status=404, json={"detail": "Not Found"})
    )
    nav_to(page, "Forecasts")
    expect(page.locator("#service-state")).to_contain_text("Could not tell")
    form = page.locator("#arima-form")
    form.get_by_role("button", name="Start forecast").click()
    expect(form.locator(".form-status.error")).to_have_text(
        "The forecasting service is unavailable on this API."
    )
    expect(page.locator("#service-state")).to_contain_text("The forecasting service is unavailable")
    expect(form.get_by_role("button", name="Start forecast")).to_be_disabled()


def test_each_series_outcome_is_shown(signed_in: Page, live_host, admin) -> None:
    """Issue 17: the page lists every series as it finishes (its run, the fallback fit
    used, or why it failed), from the custom status: a failed instance's output is only
    its message."""
    seed(admin)
    page = signed_in
    advertise_starter(page)
    first = {"sensor": "TRH1", "measure": "Temperature", "units": "Degrees C", "run_id": 7}
    second = {"sensor": "TRH2", "measure": "Temperature", "units": "Degrees C", "run_id": 8}
    failed = {
        "sensor": "TRH3",
        "measure": "Temperature",
        "units": "Degrees C",
        "error": "sensor 'TRH3', measure 'Temperature' ('Degrees C'): no training data",
    }
    statuses = [
        {
            "runtimeStatus": "Running",
            "customStatus": {
                "stage": "fitting",
                "done": 1,
                "total": 3,
                "series": [{**first, "fallback": None}],
            },
        },
        {
            "runtimeStatus": "Failed",
            "customStatus": {
                "stage": "failed",
                "done": 3,
                "total": 3,
                "failed": 1,
                "series": [
                    {**first, "fallback": None},
                    {**second, "fallback": "powell optimiser"},
                    failed,
                ],
            },
            "output": "Orchestrator function 'arima_orchestrator' failed: 1 of 3 series ...",
        },
    ]
    seen: list[str] = []

    def status(route: Route) -> None:
        body = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(body["runtimeStatus"])
        route.fulfill(status=200, json={"instanceId": "x", **body})

    page.route(
        "**/api/forecast/arima",
        lambda r: r.fulfill(
            status=202,
            json={
                "id": "x",
                "statusQueryGetUri": live_host.url + "/runtime/webhooks/durabletask/instances/x",
            },
        ),
    )
    page.route("**/runtime/webhooks/durabletask/instances/**", status)
    nav_to(page, "Forecasts")
    expect(page.locator("#service-state")).to_have_text("The forecasting service is available.")
    page.locator("#arima-form").get_by_role("button", name="Start forecast").click()
    rows = page.locator("#run-series tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_text("TRH1Temperature (Degrees C)Forecast: Run #7")
    expect(page.locator("#run-status")).to_contain_text("Failed", timeout=10_000)
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("Forecast with a fallback fit (powell optimiser): Run #8")
    expect(rows.nth(2).locator(".error")).to_have_text(
        "Failed: sensor 'TRH3', measure 'Temperature' ('Degrees C'): no training data"
    )
    assert rows.nth(1).locator("a").get_attribute("href") == "/models.html?model=Arima&run=8"
    expect(page.locator("#run-links")).to_have_text("The forecast ended as Failed.")
