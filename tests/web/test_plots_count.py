"""Plots of bucket counts: the browser's zone goes with the request (its local days), and a
count's axis carries no units."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import nav_to


def test_a_count_plot_has_no_units_and_local_day_buckets(signed_in: Page, admin) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Logger",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor", {"type_name": "Logger", "unique_identifier": "lg"}, status=201
    )
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    stamps = [end - timedelta(hours=h) for h in range(24 * 6)]
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "lg",
            "measure_name": "temperature",
            "readings": [20.0] * len(stamps),
            "timestamps": [t.isoformat() for t in stamps],
        },
        status=201,
    )
    page = signed_in
    bodies: list[dict] = []
    page.on(
        "request",
        lambda r: (
            bodies.append(json.loads(r.post_data or "{}"))
            if r.url.endswith("/sensor/sensor-readings-aggregated")
            else None
        ),
    )
    nav_to(page, "Plots")
    form = page.locator("#plot-form")
    expect(form.get_by_label("lg")).to_be_checked()
    form.get_by_role("button", name="Last 7 days").click()
    form.get_by_label("Resolution").select_option("1d")
    form.get_by_label("Bucket value").select_option("count")
    form.get_by_role("button", name="Plot", exact=True).click()
    expect(form.locator(".form-status")).to_contain_text("drawn in")
    chart = page.locator("figure.chart-card").first
    expect(chart.locator("h3")).to_have_text("temperature (readings per 1d)")
    y_label = chart.locator(".chart").get_attribute("data-y-label")
    assert y_label == "count"
    assert "C" not in y_label
    # The request named the browser's zone, so the buckets are its local days.
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert bodies and all(b["timezone"] == zone and b["aggregation"] == "count" for b in bodies)
    # A mean keeps the measure's units.
    form.get_by_label("Bucket value").select_option("mean")
    form.get_by_role("button", name="Plot", exact=True).click()
    expect(chart.locator("h3")).to_have_text("temperature (C)")
    assert page.locator("figure.chart-card .chart").first.get_attribute("data-y-label") == "C"
