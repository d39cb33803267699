"""The forecasts page against the real ARIMA starter and the local host's Durable runtime:
start a forecast from the form, follow it to Completed, and reach its run."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.test_forecasting import seed_climate
from tests.web.conftest import nav_to


@pytest.mark.timeout(600)
def test_a_real_forecast_from_the_form_to_its_run(signed_in: Page, admin, shoot) -> None:
    seed_climate(admin, ["TRH1"])
    page = signed_in
    nav_to(page, "Forecasts")
    expect(page.locator("#service-state")).to_have_text("The forecasting service is available.")
    expect(page.locator("#f-sensor")).to_have_value("TRH1")
    page.locator("#f-training-days").fill("30")
    page.locator("#f-hours").fill("24")
    page.locator("#arima-form").get_by_role("button", name="Start forecast").click()
    status = page.locator("#run-status")
    expect(status).to_have_attribute("data-runtime-status", "Completed", timeout=300_000)
    expect(page.locator("#run-links a").nth(1)).to_have_text("Run #1")
    shoot("forecasts-real")
    runs = admin.ok(
        "/model/list-model-runs",
        {"model_name": "Arima", "dt_from": "2000-01-01T00:00:00Z", "dt_to": "2100-01-01T00:00:00Z"},
    )
    assert [r["sensor_unique_id"] for r in runs] == ["TRH1"]
    products = admin.ok("/model/get-model-run", {"run_id": runs[0]["id"]})
    assert len(products["Mean Temperature"]) == 24

    # The run's page: the metrics the forecast stored, and where its forecast starts.
    run = runs[0]
    page.goto(f"{page.url.split('/forecasts.html')[0]}/models.html?model=Arima&run={run['id']}")
    details = page.locator("#run-details")
    metrics = run["metrics"]
    expect(details.locator("[data-metric=training_points] .number")).to_have_text(
        str(metrics["training_points"])
    )
    expect(details.locator("[data-metric=imputed_points] .number")).to_contain_text(
        str(metrics["imputed_points"])
    )
    rmse = float(format(metrics["RMSE"], ".3g"))  # three significant digits, as shown
    expect(details.locator("[data-metric=RMSE] .number")).to_have_text(f"{rmse:g}")
    expect(details.locator("[data-metric=MAPE] .number")).to_contain_text(" %")
    # The forecast starts one hour after the farm-cycle cutoff (16:00 or 04:00 UTC by
    # default), which is where the training data ended.
    first = products["Mean Temperature"][0]["timestamp"]
    cutoff = details.locator(".forecast-why time.cutoff")
    expect(cutoff).to_have_text(re.compile(r" (16|04):00:00$"))
    shown_first = details.locator(".forecast-window time").first
    expect(shown_first).to_have_attribute("datetime", re.compile("^" + first[:13]))
    shoot("model-run-real")
