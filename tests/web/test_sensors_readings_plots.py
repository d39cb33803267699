"""From an empty database: create a sensor type and a sensor in the browser, post readings
through the API, then see them in the readings table (typed), the CSV and the plots."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.web.conftest import canvas_ink, nav_to

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
TIMES = [NOW - timedelta(minutes=50 - 10 * i) for i in range(5)]
TEMPERATURES = [20.5, 21.0, 21.25, 22.0, 19.75]
COUNTS = [3, 4, 5, 6, 7]
RAINING = [True, False, True, False, False]
ICONS = ["01d", "02d", "03d", "04d", "10d"]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def add_weather_type_in_browser(page: Page, base_url: str) -> None:
    page.goto(base_url + "/sensors.html")
    form = page.locator("#add-type-form")
    form.get_by_label("Type name").fill("Weather")
    form.get_by_label("Description").fill("A weather station")
    rows = [
        ("temperature", "degrees Celsius", "float"),
        ("count", "", "integer"),
        ("raining", "", "boolean"),
        ("icon", "", "string"),
    ]
    for i, (name, units, datatype) in enumerate(rows):
        if i:
            form.get_by_role("button", name="Add another measure").click()
        row = form.locator(".measure-row").nth(i)
        row.get_by_label("Name").fill(name)
        row.get_by_label("Units").fill(units)
        row.get_by_label("Datatype").select_option(datatype)
    form.get_by_role("button", name="Add sensor type").click()
    expect(form.locator(".form-status")).to_have_text("Sensor type “Weather” added.")
    types = page.locator("#type-list table")
    expect(types).to_contain_text("Weather")
    expect(types).to_contain_text("temperature (degrees Celsius): float")
    expect(types).to_contain_text("raining: boolean")


def add_sensor_in_browser(page: Page, uid: str, name: str) -> None:
    form = page.locator("#add-sensor-form")
    form.get_by_label("Sensor type").select_option("Weather")
    form.get_by_label("Unique identifier").fill(uid)
    form.get_by_label("Name").fill(name)
    form.get_by_role("button", name="Add sensor").click()
    expect(form.locator(".form-status")).to_have_text(f"Sensor “{uid}” added.")
    expect(page.locator("#sensor-list table")).to_contain_text(uid)


def post_readings(admin, uid: str, offset: float = 0.0) -> None:
    for measure, values in (
        ("temperature", [v + offset for v in TEMPERATURES]),
        ("count", COUNTS),
        ("raining", RAINING),
        ("icon", ICONS),
    ):
        admin.ok(
            "/sensor/insert-sensor-readings",
            {
                "unique_identifier": uid,
                "measure_name": measure,
                "readings": values,
                "timestamps": [iso(t) for t in TIMES],
            },
            status=201,
        )


def test_sensor_to_readings_csv_and_plot(signed_in: Page, live_host, admin, shoot) -> None:
    page = signed_in
    add_weather_type_in_browser(page, live_host.url)
    add_sensor_in_browser(page, "station-1", "Roof")
    add_sensor_in_browser(page, "station-2", "Garden")
    shoot("sensors")
    post_readings(admin, "station-1")
    post_readings(admin, "station-2", offset=5.0)

    # Readings table: every value shown as its type.
    nav_to(page, "Readings")
    form = page.locator("#readings-form")
    expect(form.get_by_label("station-1 (Roof)")).to_be_checked()
    form.get_by_label("station-2 (Garden)").uncheck()
    form.get_by_role("button", name="Show readings").click()
    table = page.locator("#readings-table")
    expect(table.locator("caption")).to_contain_text("20 readings from 1 sensor")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(20)
    first_time = TIMES[0].strftime("%Y-%m-%d %H:%M:%S")
    cells = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(4)]
    assert cells == [
        [first_time, "station-1", "count", "3", "integer"],
        [first_time, "station-1", "icon", "01d", "string"],
        [first_time, "station-1", "raining", "true", "boolean"],
        [first_time, "station-1", "temperature (degrees Celsius)", "20.5", "float"],
    ]
    # A whole float keeps its decimal; an integer has none.
    last_temperature = table.locator("td[data-datatype=float]").last
    expect(last_temperature).to_have_text("19.75")
    expect(table.locator("td[data-datatype=boolean]").nth(1)).to_have_text("false")

    shoot("readings")

    # Paging: both sensors give 40 readings, 25 a page.
    form.get_by_label("station-2 (Garden)").check()
    form.get_by_role("button", name="Show readings").click()
    expect(table.locator("caption")).to_contain_text("40 readings from 2 sensors")
    page.get_by_label("Rows per page").select_option("25")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 2")
    expect(rows).to_have_count(25)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#page-info")).to_have_text("Page 2 of 2")
    expect(rows).to_have_count(15)
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    # CSV download through the export endpoint, both sensors.
    with page.expect_download() as download_info:
        form.get_by_role("button", name="Download CSV").click()
    download = download_info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 40
    assert list(records[0].keys()) == [
        "unique_identifier",
        "measure_name",
        "units",
        "timestamp",
        "value",
    ]
    by_key = {
        (r["unique_identifier"], r["measure_name"], r["timestamp"]): r["value"] for r in records
    }
    assert by_key[("station-2", "temperature", iso(TIMES[0]))] in ("25.5",)
    assert by_key[("station-1", "raining", iso(TIMES[0]))] == "true"
    assert by_key[("station-1", "count", iso(TIMES[4]))] == "7"
    assert by_key[("station-1", "icon", iso(TIMES[1]))] == "02d"
    expect(form.locator(".form-status")).to_have_text("CSV downloaded.")

    # Plots: one chart per plottable measure (strings are not plotted), two lines each.
    nav_to(page, "Plots")
    plot_form = page.locator("#plot-form")
    expect(plot_form.get_by_label("station-1 (Roof)")).to_be_checked()
    plot_form.get_by_role("button", name="Last 24 hours").click()
    plot_form.get_by_role("button", name="Plot", exact=True).click()
    charts = page.locator("figure.chart-card")
    expect(charts).to_have_count(3)
    expect(charts.first.locator("h3")).to_have_text("temperature (degrees Celsius)")
    expect(charts.first.locator(".chart-note")).to_have_text("10 points, every reading.")
    # Both series drew ink on the canvas: blue (station-1) and red (station-2).
    page.wait_for_timeout(300)
    assert canvas_ink(page, "temperature (degrees Celsius)", (31, 95, 191)) > 50
    assert canvas_ink(page, "temperature (degrees Celsius)", (209, 73, 91)) > 50
    shoot("plots")

    # Zoom and pan by buttons (keyboard reachable): every chart follows the same x range.
    x_range = "() => [...document.querySelectorAll('figure.chart-card')].map(f => f.dataset.xRange)"
    full = page.evaluate(x_range)
    charts.first.get_by_role("button", name="Zoom in").click()
    zoomed = page.evaluate(x_range)
    assert zoomed[0] != full[0] and len(set(zoomed)) == 1
    charts.nth(1).get_by_role("button", name="Pan earlier").click()
    panned = page.evaluate(x_range)
    assert panned[0] != zoomed[0] and len(set(panned)) == 1
    charts.first.get_by_role("button", name="Reset zoom").click()
    assert page.evaluate(x_range) == full


def test_type_with_existing_measure_edit_delete_and_filter(
    signed_in: Page, live_host, admin, console
) -> None:
    console.allow("409 (Conflict)")
    page = signed_in
    add_weather_type_in_browser(page, live_host.url)
    # A second type reusing an existing measure and declaring a new one.
    form = page.locator("#add-type-form")
    form.get_by_label("Type name").fill("Indoor")
    first = form.locator(".measure-row").first
    first.get_by_label("Measure 1", exact=True).select_option(
        label="temperature (degrees Celsius) · float"
    )
    expect(first.get_by_label("Name")).to_be_hidden()
    form.get_by_role("button", name="Add another measure").click()
    second = form.locator(".measure-row").nth(1)
    second.get_by_label("Name").fill("co2")
    second.get_by_label("Units").fill("ppm")
    second.get_by_label("Datatype").select_option("integer")
    form.get_by_role("button", name="Add sensor type").click()
    expect(form.locator(".form-status")).to_have_text("Sensor type “Indoor” added.")
    indoor = next(t for t in admin.get("/sensor/list-sensor-types").json() if t["name"] == "Indoor")
    assert indoor["measures"] == [
        {"name": "temperature", "units": "degrees Celsius", "datatype": "float"},
        {"name": "co2", "units": "ppm", "datatype": "integer"},
    ]
    # The same type name again: the API's detail beside the form.
    form.get_by_label("Type name").fill("Indoor")
    form.locator(".measure-row").first.get_by_label("Name").fill("x")
    form.get_by_role("button", name="Add sensor type").click()
    expect(form.locator(".form-status.error")).to_have_text("Sensor type exists already")

    add_sensor_in_browser(page, "station-1", "Roof")
    sensor_form = page.locator("#add-sensor-form")
    sensor_form.get_by_label("Sensor type").select_option("Indoor")
    sensor_form.get_by_label("Unique identifier").fill("desk-1")
    sensor_form.get_by_role("button", name="Add sensor").click()
    expect(sensor_form.locator(".form-status")).to_have_text("Sensor “desk-1” added.")

    # List by type.
    sensors = page.locator("#sensor-list table tbody tr")
    expect(sensors).to_have_count(2)
    page.get_by_label("Sensor type", exact=True).first.select_option("Indoor")
    expect(sensors).to_have_count(1)
    expect(sensors.first).to_contain_text("desk-1")
    page.locator("#type-filter").select_option("")

    # Edit in a dialog.
    page.get_by_role("button", name="Edit sensor station-1").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Name")).to_have_value("Roof")
    dialog.get_by_label("Name").fill("North roof")
    dialog.get_by_label("Notes").fill("Moved in March")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(sensors.first).to_contain_text("North roof")
    expect(sensors.first).to_contain_text("Moved in March")
    listed = admin.ok("/sensor/list-sensors", {"type_name": "Weather"})
    assert listed == [
        {"unique_identifier": "station-1", "name": "North roof", "notes": "Moved in March"}
    ]

    # Delete, after confirming; cancelling keeps it.
    page.get_by_role("button", name="Delete sensor desk-1").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(sensors).to_have_count(2)
    page.get_by_role("button", name="Delete sensor desk-1").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(sensors).to_have_count(1)
    assert admin.ok("/sensor/list-sensors", {}) == [
        {"unique_identifier": "station-1", "name": "North roof", "notes": "Moved in March"}
    ]


def test_a_sensor_s_readings_link_shows_its_readings(signed_in: Page, live_host, admin) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Weather",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        status=201,
    )
    for uid in ("recent", "old"):
        admin.ok(
            "/sensor/insert-sensor", {"type_name": "Weather", "unique_identifier": uid}, status=201
        )
    # "old" last reported ten days ago, before the page's default day.
    for uid, shift in (("recent", timedelta(0)), ("old", timedelta(days=10))):
        admin.ok(
            "/sensor/insert-sensor-readings",
            {
                "unique_identifier": uid,
                "measure_name": "temperature",
                "readings": TEMPERATURES,
                "timestamps": [iso(t - shift) for t in TIMES],
            },
            status=201,
        )
    page = signed_in
    for uid, shift in (("recent", timedelta(0)), ("old", timedelta(days=10))):
        page.goto(live_host.url + "/sensors.html")
        page.get_by_role("link", name=f"Readings of {uid}").click()
        table = page.locator("#readings-table")
        expect(table.locator("caption")).to_contain_text("5 readings from 1 sensor")
        rows = table.locator("tbody tr")
        expect(rows).to_have_count(5)
        expect(rows.first.locator("td").nth(1)).to_have_text(uid)
        expect(rows.first.locator("td").first).to_have_text(
            (TIMES[0] - shift).strftime("%Y-%m-%d %H:%M:%S")
        )


def test_a_refused_sensor_type_delete_keeps_the_table(signed_in: Page, admin, console) -> None:
    """Deleting a type that still has sensors is refused (409): the reason shows above the
    types table, which stays, and stays after a while (no reload replaces it)."""
    console.allow("409 (Conflict)")
    admin.ok(
        "/sensor/insert-sensor-type",
        {"name": "Busy", "measures": [{"name": "m", "units": None, "datatype": "float"}]},
        201,
    )
    admin.ok("/sensor/insert-sensor", {"type_name": "Busy", "unique_identifier": "b-1"}, 201)
    page = signed_in
    nav_to(page, "Sensors")
    types = page.locator("#type-list table tbody tr")
    expect(types).to_have_count(1)
    page.get_by_role("button", name="Delete sensor type Busy").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    error = page.locator("#type-list p.error")
    expect(error).to_have_text("Sensor type 'Busy' still has 1 sensor(s); delete them first")
    expect(error).to_have_css("color", "rgb(180, 35, 24)")
    expect(types).to_have_count(1)
    expect(types.first).to_contain_text("Busy")
    assert [t["name"] for t in admin.get("/sensor/list-sensor-types").json()] == ["Busy"]
