"""The import page: a year of one-minute readings uploaded from a CSV file in parts, checked
with a dry run, imported, then plotted; and a dry run that lists the bad lines."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support import Api

MINUTES_PER_YEAR = 365 * 24 * 60


def logger(admin: Api) -> None:
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


def year_file(path: Path, start: datetime) -> None:
    minute = timedelta(minutes=1)
    with path.open("w") as out:
        out.write("Time,Temp\n")
        for i in range(MINUTES_PER_YEAR):
            stamp = (start + i * minute).strftime("%Y-%m-%d %H:%M")
            value = 10 + 8 * math.sin(2 * math.pi * i / MINUTES_PER_YEAR)
            out.write(f"{stamp},{value + 3 * math.sin(2 * math.pi * i / 1440):.3f}\n")


def test_a_year_of_minute_readings_imports_from_csv_and_plots(
    signed_in: Page, live_host, admin: Api, shoot, tmp_path: Path
) -> None:
    logger(admin)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=MINUTES_PER_YEAR - 1)
    path = tmp_path / "year.csv"
    year_file(path, start)
    assert path.stat().st_size > 8 * 1024 * 1024  # more than one part

    page = signed_in
    page.goto(live_host.url + "/import.html")
    form = page.locator("#import-form")
    expect(form.get_by_label("Sensor", exact=True)).to_have_value("minute-logger")
    form.get_by_label("CSV file").set_input_files(str(path))
    preview = page.locator("#i-preview table")
    expect(preview.locator("tbody tr")).to_have_count(10)
    expect(preview.locator("thead")).to_contain_text("Time")
    expect(preview.locator("tbody tr").first).to_contain_text(start.strftime("%Y-%m-%d %H:%M"))
    expect(form.get_by_label("Timestamp column")).to_have_value("Time")
    form.get_by_label("Timestamp format").select_option("custom")
    form.get_by_label("strptime format").fill("%Y-%m-%d %H:%M")
    form.get_by_label("Sensor", exact=True).select_option("minute-logger")
    expect(form.get_by_label("Temp", exact=True)).to_have_value("")
    form.get_by_label("Temp", exact=True).select_option("temperature")
    shoot("import-mapped")

    form.get_by_role("button", name="Dry run").click()
    status = form.locator(".form-status")
    expect(status).to_contain_text(f"all {MINUTES_PER_YEAR:,} rows are good", timeout=180_000)
    expect(page.locator("#i-progress")).to_have_text("")
    expect(page.locator(".report-summary")).to_contain_text("0 errors")

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/sensor/" in r.url else None)
    form.get_by_role("button", name="Import").click()
    expect(status).to_contain_text(
        f"Imported {MINUTES_PER_YEAR:,} readings (0 stored already)", timeout=300_000
    )
    # The parts uploaded for the dry run were imported; none was sent again.
    assert not any("upload-csv-part" in url for url in requests)
    shoot("import-done")

    page.get_by_role("link", name="Plot the imported readings").click()
    plot_status = page.locator("#plot-form .form-status")
    expect(plot_status).to_contain_text("drawn in", timeout=60_000)
    text = plot_status.inner_text()
    points = int(text.split(" points")[0].split(", ")[-1].replace(",", ""))
    assert "(6h buckets)" in text and 1400 <= points <= 1465, text
    shoot("import-plot")


def test_a_dry_run_lists_the_bad_lines(
    signed_in: Page, live_host, admin: Api, console, tmp_path: Path
) -> None:
    console.allow("422")  # the import refused on purpose
    logger(admin)
    path = tmp_path / "bad.csv"
    path.write_text(
        "when;value\n2024-01-01T00:00:00Z;1.5\nyesterday;2\n2024-01-01T00:02:00Z;warm\n"
    )
    page = signed_in
    page.goto(live_host.url + "/import.html")
    form = page.locator("#import-form")
    expect(form.get_by_label("Sensor", exact=True)).to_have_value("minute-logger")
    form.get_by_label("Delimiter").select_option(";")
    form.get_by_label("CSV file").set_input_files(str(path))
    expect(form.get_by_label("Timestamp column")).to_have_value("when")
    form.get_by_label("Sensor", exact=True).select_option("minute-logger")
    form.get_by_label("value", exact=True).select_option("temperature")
    form.get_by_role("button", name="Dry run").click()
    expect(form.locator(".form-status")).to_contain_text("Dry run: 2 errors")
    rows = page.locator("#i-report table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("3")
    expect(rows.nth(0)).to_contain_text("when")
    expect(rows.nth(1)).to_contain_text("'warm' is not a valid float value")
    # Importing anyway stores nothing and lists the problems.
    form.get_by_role("button", name="Import").click()
    expect(form.locator(".form-status")).to_contain_text("Nothing imported: 2 problems")
    expect(page.locator("#i-report li")).to_have_count(2)
    readings = admin.ok(
        "/sensor/sensor-readings",
        {
            "measure_name": "temperature",
            "unique_identifier": "minute-logger",
            "dt_from": "2023-12-31T00:00:00Z",
            "dt_to": "2024-01-02T00:00:00Z",
        },
    )
    assert readings == []
