"""In the browser: an editor defines vapour-pressure deficit on the sensors page from a
type's temperature and humidity, a bad expression's reason shows beside the form, and the
plots page offers the derived measure and draws it from the computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import canvas_ink, nav_to

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
TIMES = [NOW - timedelta(minutes=40 - 10 * i) for i in range(5)]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_define_a_derived_measure_and_plot_it(
    signed_in: Page, live_host, admin, console, shoot
) -> None:
    console.allow("422 (Unprocessable")
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Climate",
            "measures": [
                {"name": "temperature", "units": "C", "datatype": "float"},
                {"name": "humidity", "units": "%", "datatype": "float"},
            ],
        },
        201,
    )
    admin.ok("/sensor/insert-sensor", {"type_name": "Climate", "unique_identifier": "c-1"}, 201)
    for measure, values in (
        ("temperature", [20, 22, 25, 27, 30]),
        ("humidity", [50, 55, 60, 70, 80]),
    ):
        admin.ok(
            "/sensor/insert-sensor-readings",
            {
                "unique_identifier": "c-1",
                "measure_name": measure,
                "readings": values,
                "timestamps": [iso(t) for t in TIMES],
            },
            201,
        )

    page = signed_in
    page.goto(live_host.url + "/sensors.html")
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.url.endswith("/insert-derived-measure") else None,
    )
    # Editing a sensor first must leave the form with its one handler (each submit, one POST).
    page.get_by_role("button", name="Edit sensor c-1").click()
    expect(page.locator("#edit-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#edit-dialog")).to_be_hidden()
    form = page.locator("#add-derived-form")
    form.get_by_label("Sensor type").select_option("Climate")
    form.get_by_label("Name").fill("vpd")
    form.get_by_label("Units").fill("kPa")
    form.get_by_label("Inputs").fill("T = temperature, RH = humidity")
    form.get_by_label("Expression").fill("T.__class__")
    form.get_by_role("button", name="Add derived measure").click()
    expect(form.locator(".form-status.error")).to_contain_text("Attribute access is not allowed")
    form.get_by_label("Expression").fill("0.6108 * exp(17.27 * T / (T + 237.3)) * (1 - RH / 100)")
    form.get_by_role("button", name="Add derived measure").click()
    expect(form.locator(".form-status")).to_have_text("Derived measure “vpd” added.")
    assert len(posts) == 2, posts  # the refused expression and this one
    listed = page.locator("#derived-list table")
    expect(listed).to_contain_text("vpd (kPa)")
    expect(listed).to_contain_text("T = temperature, RH = humidity")
    shoot("derived-measures")

    nav_to(page, "Plots")
    plot_form = page.locator("#plot-form")
    plot_form.get_by_label("Sensor type").select_option("Climate")
    expect(plot_form.get_by_label("vpd (kPa) · derived")).to_be_checked()
    plot_form.get_by_label("temperature (C) · float").uncheck()
    plot_form.get_by_label("humidity (%) · float").uncheck()
    plot_form.get_by_role("button", name="Last 24 hours").click()
    plot_form.get_by_role("button", name="Plot", exact=True).click()
    charts = page.locator("figure.chart-card")
    expect(charts).to_have_count(1)
    expect(charts.first.locator("h3")).to_have_text("vpd (kPa)")
    expect(charts.first.locator(".chart-note")).to_have_text("5 points, every reading.")
    page.wait_for_timeout(300)
    assert canvas_ink(page, "vpd (kPa)", (31, 95, 191)) > 50
    shoot("derived-plot")
