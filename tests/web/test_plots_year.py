"""A year of one-minute readings is plotted from database-side buckets in about a second."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import canvas_ink

MINUTES_PER_YEAR = 365 * 24 * 60


def test_a_year_of_minute_data_draws_quickly(signed_in: Page, live_host, admin, shoot) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Logger",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        status=201,
    )
    admin.ok(
        "/sensor/insert-sensor",
        {"type_name": "Logger", "unique_identifier": "minute-logger"},
        status=201,
    )
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=MINUTES_PER_YEAR - 1)
    chunk = 60 * 24 * 30
    started = time.monotonic()
    for offset in range(0, MINUTES_PER_YEAR, chunk):
        n = min(chunk, MINUTES_PER_YEAR - offset)
        stamps = [
            (start + timedelta(minutes=offset + i)).strftime("%Y-%m-%dT%H:%M:00Z") for i in range(n)
        ]
        values = [
            round(
                10
                + 8 * math.sin(2 * math.pi * (offset + i) / MINUTES_PER_YEAR)
                + 3 * math.sin(2 * math.pi * (offset + i) / 1440),
                3,
            )
            for i in range(n)
        ]
        reply = admin.post(
            "/sensor/insert-readings-bulk",
            {
                "series": [
                    {
                        "unique_identifier": "minute-logger",
                        "measure_name": "temperature",
                        "readings": values,
                        "timestamps": stamps,
                    }
                ]
            },
        )
        assert reply.status_code == 201, reply.text
    print(f"inserted {MINUTES_PER_YEAR} readings in {time.monotonic() - started:.1f} s")

    page = signed_in
    requests: list[str] = []
    page.on(
        "request",
        lambda r: requests.append(r.url.rsplit("/", 1)[-1]) if "/api/sensor/" in r.url else None,
    )
    page.goto(live_host.url + "/plots.html")
    form = page.locator("#plot-form")
    expect(form.get_by_label("minute-logger")).to_be_checked()
    form.get_by_role("button", name="Last year").click()
    clicked = time.monotonic()
    form.get_by_role("button", name="Plot", exact=True).click()
    status = form.locator(".form-status")
    expect(status).to_contain_text("drawn in", timeout=30_000)
    elapsed = time.monotonic() - clicked
    text = status.inner_text()
    print(text, f"(wall {elapsed:.2f} s)")
    assert "sensor-readings-aggregated" in requests and "sensor-readings" not in requests
    assert "(6h buckets)" in text
    points = int(text.split(" points")[0].split(", ")[-1].replace(",", ""))
    assert 1400 <= points <= 1465
    # "About a second": generous for a shared CI machine, but far below drawing raw points.
    assert elapsed < 5, f"took {elapsed:.2f} s"
    page.wait_for_timeout(200)
    assert canvas_ink(page, "temperature (C)", (31, 95, 191)) > 500
    shoot("plot-year")

    # Zooming in fetches finer data for the visible range, down to every reading.
    chart = page.locator("figure.chart-card").first
    note = chart.locator(".chart-note")
    # 6h buckets from local midnight (no longer from dt_from): a year of minutes fills 1,460
    # or, when it does not start on a bucket boundary, touches 1,461.
    whole = note.inner_text()
    assert whole in ("1,460 points, 6h means.", "1,461 points, 6h means."), whole
    requests.clear()
    for _ in range(7):  # 365 days / 2**7 is under three days
        chart.get_by_role("button", name="Zoom in").click()
    expect(note).to_contain_text("every reading. Zoomed in", timeout=10_000)
    assert "sensor-readings" in requests
    shown = int(note.inner_text().split(" points")[0].replace(",", ""))
    assert 2.8 * 1440 < shown < 6 * 1440
    chart.get_by_role("button", name="Reset zoom").click()
    expect(note).to_have_text(whole)
