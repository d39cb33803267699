"""Models: runs filtered by model, scenario and time; a forecast drawn as its mean with the
bounds shaded and the observed readings over it; deleting a run."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import canvas_ink, copy_for_readme


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def seed_forecast(admin) -> None:
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
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=48)
    hours = [start + timedelta(hours=h) for h in range(72)]
    observed = [
        18 + 4 * math.sin(h / 24 * 2 * math.pi) + 0.3 * math.sin(h * 1.7) for h in range(72)
    ]
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "TRH1",
            "measure_name": "Temperature",
            "readings": observed,
            "timestamps": [iso(t) for t in hours],
        },
        status=201,
    )
    admin.ok("/model/insert-model", {"name": "Arima"}, status=201)
    for prefix in ("Mean ", "Upper Bound ", "Lower Bound "):
        admin.ok(
            "/model/insert-model-measure",
            {"name": prefix + "Temperature", "units": "Degrees C", "datatype": "float"},
            status=201,
        )
    forecast_hours = hours[24:]
    mean = [18 + 4 * math.sin(h / 24 * 2 * math.pi) for h in range(24, 72)]
    width = [0.5 + 0.05 * i for i in range(48)]
    for created, scenario in (
        (datetime.now(UTC) - timedelta(hours=2), "Business as usual"),
        (datetime.now(UTC) - timedelta(hours=1), "Hot summer"),
    ):
        admin.ok(
            "/model/insert-model-run",
            {
                "model_name": "Arima",
                "scenario_description": scenario,
                "create_scenario": True,
                "time_created": iso(created),
                "sensor_unique_id": "TRH1",
                "sensor_measure": {"name": "Temperature", "units": "Degrees C"},
                "measures_and_values": [
                    {
                        "measure_name": "Mean Temperature",
                        "values": mean,
                        "timestamps": [iso(t) for t in forecast_hours],
                    },
                    {
                        "measure_name": "Upper Bound Temperature",
                        "values": [m + w for m, w in zip(mean, width, strict=True)],
                        "timestamps": [iso(t) for t in forecast_hours],
                    },
                    {
                        "measure_name": "Lower Bound Temperature",
                        "values": [m - w for m, w in zip(mean, width, strict=True)],
                        "timestamps": [iso(t) for t in forecast_hours],
                    },
                ],
            },
            status=201,
        )


def test_runs_filtered_and_forecast_drawn(signed_in: Page, live_host, admin, shoot) -> None:
    seed_forecast(admin)
    page = signed_in
    page.get_by_role("link", name="Models", exact=True).click()
    form = page.locator("#runs-form")
    expect(form.get_by_label("Model")).to_have_value("Arima")
    form.get_by_role("button", name="List runs").click()
    runs = page.locator("#runs table tbody tr")
    expect(runs).to_have_count(2)
    # Newest first.
    expect(runs.nth(0)).to_contain_text("Hot summer")
    expect(runs.nth(1)).to_contain_text("Business as usual")

    form.get_by_label("Scenario").select_option("Business as usual")
    form.get_by_role("button", name="List runs").click()
    expect(runs).to_have_count(1)
    expect(runs.nth(0)).to_contain_text("TRH1")
    expect(runs.nth(0)).to_contain_text("Temperature")

    # A time window that excludes both runs.
    form.get_by_label("Scenario").select_option("")
    form.get_by_label("Run created until").fill("2020-01-01T00:00")
    form.get_by_label("Run created from").fill("2019-01-01T00:00")
    form.get_by_role("button", name="List runs").click()
    expect(page.locator("#runs")).to_contain_text("No model runs found")

    page.goto(page.url.split("?")[0])
    form.get_by_role("button", name="List runs").click()
    expect(runs).to_have_count(2)
    runs.nth(1).get_by_role("button", name="Show run 1").click()
    chart = page.locator("figure.chart-card")
    expect(chart).to_have_count(1)
    expect(chart.locator("h3")).to_have_text("Forecast of Temperature")
    expect(chart.locator(".chart-note")).to_have_text(
        "48 forecast points with the bounds shaded, 72 observed readings."
    )
    page.wait_for_timeout(300)
    # The mean (blue), the shaded band (light blue) and the observed readings (red) are drawn.
    assert canvas_ink(page, "Forecast of Temperature", (31, 95, 191), tolerance=20) > 100
    assert (
        canvas_ink(page, "Forecast of Temperature", (31, 95, 191), tolerance=12, alpha=(25, 60))
        > 2000
    )
    assert canvas_ink(page, "Forecast of Temperature", (209, 73, 91), tolerance=30) > 100
    shoot("forecast-plot")
    copy_for_readme("forecast-plot")

    # Delete the other run.
    runs.nth(0).get_by_role("button", name="Delete run 2").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(runs).to_have_count(1)
    assert len(admin.ok("/model/list-model-runs", {"model_name": "Arima"})) == 1
