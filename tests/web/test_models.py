"""Models: runs filtered by model, scenario and time; a forecast drawn as its mean with the
bounds shaded and the observed readings over it; deleting a run."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import canvas_ink, copy_for_readme, nav_to


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
    nav_to(page, "Models")
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


def test_recent_runs_show_on_arrival(signed_in: Page, live_host, admin) -> None:
    seed_forecast(admin)
    page = signed_in
    nav_to(page, "Models")
    runs = page.locator("#runs table tbody tr")
    expect(runs).to_have_count(2)  # without pressing "List runs"
    expect(runs.nth(0)).to_contain_text("Hot summer")
    expect(page.locator("#runs caption")).to_contain_text("2 runs, newest first")


def test_a_run_shows_its_metrics_and_where_its_forecast_starts(
    signed_in: Page, live_host, admin, shoot
) -> None:
    seed_forecast(admin)
    # An ARIMA run as dtbase_core/forecasting stores it, created three weeks ago (outside
    # the page's default week): its metrics, and a forecast from 17:00 after a 16:00 cutoff.
    first = datetime(2026, 3, 2, 17, tzinfo=UTC)
    stamps = [iso(first + timedelta(hours=h)) for h in range(24)]
    admin.ok(
        "/model/insert-model-run",
        {
            "model_name": "Arima",
            "scenario_description": "Business as usual",
            "time_created": iso(datetime.now(UTC) - timedelta(days=21)),
            "sensor_unique_id": "TRH1",
            "sensor_measure": {"name": "Temperature", "units": "Degrees C"},
            "metrics": {
                "RMSE": 0.41234,
                "MAPE": 0.023456,
                "cv_folds": 4,
                "cv_test_size": 36,
                "training_points": 312,
                "imputed_points": 5,
            },
            "measures_and_values": [
                {
                    "measure_name": prefix + "Temperature",
                    "values": [18.0 + d] * 24,
                    "timestamps": stamps,
                }
                for prefix, d in (("Mean ", 0), ("Upper Bound ", 0.5), ("Lower Bound ", -0.5))
            ],
        },
        status=201,
    )
    page = signed_in
    page.goto(f"{live_host.url}/models.html?model=Arima&run=3")
    details = page.locator("#run-details")
    metric = lambda key: details.locator(f"[data-metric={key}] .number")  # noqa: E731
    expect(metric("RMSE")).to_have_text("0.412")
    expect(details.locator("[data-metric=RMSE] .label")).to_have_text("RMSE (Degrees C)")
    expect(metric("MAPE")).to_have_text("2.35 %")
    expect(metric("training_points")).to_have_text("312")
    expect(metric("imputed_points")).to_have_text("5 (1.6 %)")
    expect(details.locator("[data-metric=RMSE]")).to_contain_text("4 cross-validation folds")
    # The run's own facts come from its listing, though it is older than the listed week.
    expect(details.locator(".run-facts")).to_contain_text("Business as usual")
    window = details.locator(".forecast-window")
    expect(window).to_have_text(
        "The forecast runs from 2026-03-02 17:00:00 to 2026-03-03 16:00:00 (UTC), "
        "24 points an hour apart."
    )
    why = details.locator(".forecast-why")
    expect(why).to_contain_text("farm-cycle cutoff")
    expect(why.locator("time.cutoff")).to_have_text("2026-03-02 16:00:00")
    # No JSON anywhere on the run.
    assert "{" not in details.inner_text()
    shoot("model-run-metrics")

    # A run stored without metrics (not from the ARIMA forecast) shows its window only.
    page.goto(f"{live_host.url}/models.html?model=Arima&run=1")
    expect(details.locator(".forecast-window")).to_contain_text("48 points an hour apart")
    expect(details.locator("[data-metric]")).to_have_count(0)
    expect(details.locator(".forecast-why")).to_have_count(0)
